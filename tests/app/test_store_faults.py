"""The store failing under the service: answers degrade to popularity within the timeout budget,
readyz says degraded, writes say they were not stored, and recovery needs nobody."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from feature_store.settings import StoreSettings
from tests.app.conftest import publish, serve_settings, users_by_tier
from tests.app.live_server import LiveServer, free_port
from tests.private_redis import PrivateRedis, private_redis

STORE_TIMEOUT_S = 0.2


@pytest.fixture
def own_redis() -> Iterator[PrivateRedis]:
    with private_redis() as server:
        yield server


def _ask(client: httpx.Client, user: str) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = client.post("/candidates", json={"user_id": user, "k": 10})
    return response, time.perf_counter() - started


def test_a_paused_then_killed_store_degrades_to_popularity_and_recovers_by_itself(
    own_redis: PrivateRedis, artifacts: Path
) -> None:
    url = own_redis.url
    store_settings = StoreSettings(
        redis_url=url,
        redis_prefix="faults",
        artifacts=artifacts,
        redis_timeout_s=0.25,
        redis_connect_timeout_s=0.25,
    )
    publish(store_settings, artifacts / "als_v1")
    warm = users_by_tier(artifacts / "als_v1")["warm"][0]
    app = create_app(serve_settings(artifacts, store_timeout_s=STORE_TIMEOUT_S), store_settings)
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=10) as client:
        assert _ask(client, warm)[0].json()["method_used"] == "als"

        own_redis.pause()  # a hung Redis: connections open, no answers
        for _ in range(3):
            response, seconds = _ask(client, warm)
            body = response.json()
            assert response.status_code == 200 and body["method_used"] == "popularity_fallback"
            assert body["tier"] == "unknown" and len(body["candidates"]) == 10
            assert response.headers["x-recsys-fallback"] == "store unavailable"
            assert seconds < STORE_TIMEOUT_S + 0.5, f"took {seconds:.2f}s with a {STORE_TIMEOUT_S}s budget"
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        write = client.post(
            "/interactions", json={"user_id": warm, "item_id": "i000001", "event_type": "view"}
        )
        assert write.status_code == 503 and write.json()["detail"].startswith("not stored")

        own_redis.resume()
        deadline = time.monotonic() + 10
        while _ask(client, warm)[0].json()["method_used"] != "als":
            assert time.monotonic() < deadline, "did not recover within 10 s of the store coming back"
            time.sleep(0.05)
        assert client.get("/readyz").json()["status"] == "ready"

        own_redis.kill()  # a dead Redis: connections refused
        response, seconds = _ask(client, warm)
        assert response.json()["method_used"] == "popularity_fallback" and seconds < STORE_TIMEOUT_S + 0.5
        assert client.get("/readyz").json()["store"]["ok"] is False
        metrics = client.get("/metrics").text
        assert 'recsys_store_errors_total{operation="get_profile"}' in metrics


def test_a_store_down_at_start_up_serves_the_latest_trained_version_with_popularity(artifacts: Path) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    store_settings = StoreSettings(
        redis_url=closed, artifacts=artifacts, redis_timeout_s=0.2, redis_connect_timeout_s=0.2
    )
    app = create_app(serve_settings(artifacts, store_timeout_s=STORE_TIMEOUT_S), store_settings)
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=10) as client:
        body = client.post("/candidates", json={"user_id": "u000001", "k": 5}).json()
        assert (body["method_used"], body["model_version"]) == ("popularity_fallback", "als_v2")
        assert len(body["candidates"]) == 5
        assert client.get("/readyz").json()["status"] == "degraded"
