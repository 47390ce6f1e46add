"""The store failing under the service: answers degrade to popularity within the timeout budget,
readyz says degraded, writes say they were not stored, and recovery needs nobody."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from app.main import create_app
from feature_store.settings import StoreSettings
from tests.app.conftest import publish, serve_settings, users_by_tier
from tests.app.live_server import LiveServer, free_port

STORE_TIMEOUT_S = 0.2


@pytest.fixture
def private_redis() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A redis-server of this test's own, so it can be paused and killed."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("RECSYS_REQUIRE_SERVICES"):
            pytest.fail("redis-server is required (scripts/test.sh installs it)")
        pytest.skip("redis-server not installed (scripts/test.sh installs it)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
        proc.wait()


def _ask(client: httpx.Client, user: str) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = client.post("/candidates", json={"user_id": user, "k": 10})
    return response, time.perf_counter() - started


def test_a_paused_then_killed_store_degrades_to_popularity_and_recovers_by_itself(
    private_redis: tuple[subprocess.Popen[bytes], str], artifacts: Path
) -> None:
    proc, url = private_redis
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

        proc.send_signal(signal.SIGSTOP)  # a hung Redis: connections open, no answers
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

        proc.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + 10
        while _ask(client, warm)[0].json()["method_used"] != "als":
            assert time.monotonic() < deadline, "did not recover within 10 s of the store coming back"
            time.sleep(0.05)
        assert client.get("/readyz").json()["status"] == "ready"

        proc.kill()  # a dead Redis: connections refused
        proc.wait()
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
