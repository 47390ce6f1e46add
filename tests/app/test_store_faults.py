"""The store failing under the service: answers degrade to popularity within the timeout budget,
readyz says degraded, writes say they were not stored, and recovery needs nobody."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from app.main import create_app
from feature_store.redis_store import RedisStore
from feature_store.settings import StoreSettings
from tests.app.conftest import publish, serve_settings, users_by_tier
from tests.app.live_server import LiveServer, free_port
from tests.app.load import Load
from tests.private_redis import PrivateRedis, private_redis

STORE_TIMEOUT_S = 0.2


@pytest.fixture
def own_redis() -> Iterator[PrivateRedis]:
    with private_redis() as server:
        yield server


@pytest.fixture
def own_redis_debug() -> Iterator[PrivateRedis]:
    """With DEBUG allowed (Redis 7 refuses it by default), so a test can stall the server."""
    with private_redis(["--enable-debug-command", "yes"]) as server:
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


def test_redis_killed_during_a_load_run_every_request_still_gets_an_answer_and_it_recovers(
    tmp_path: Path, artifacts: Path
) -> None:
    """Redis with its data on disk (as in production) is killed with SIGKILL mid-run and started
    again on the same port: no request fails or outlives the budget, readyz reports degraded then
    ready, and answers go back to ALS without anyone touching the service."""
    persist = ["--dir", str(tmp_path), "--dbfilename", "dump.rdb"]
    with private_redis(persist) as server:
        store_settings = StoreSettings(
            redis_url=server.url, artifacts=artifacts, redis_timeout_s=0.25, redis_connect_timeout_s=0.25
        )
        publish(store_settings, artifacts / "als_v1")
        redis.Redis.from_url(server.url).save()  # the snapshot the restarted server loads
        port = server.port
        warm = users_by_tier(artifacts / "als_v1")["warm"]
        app = create_app(serve_settings(artifacts, store_timeout_s=STORE_TIMEOUT_S), store_settings)
        with LiveServer(app) as live, Load(live.url, warm) as load:
            time.sleep(1.0)
            killed_at = load.now()
            server.kill()
            time.sleep(2.0)
            restarting_at = load.now()
            with private_redis(persist, port=port):
                back_at = load.now()
                deadline = time.monotonic() + 15
                while not any(a.at > back_at and a.method == "als" for a in load.answers):
                    assert time.monotonic() < deadline, "no ALS answer within 15 s of Redis coming back"
                    time.sleep(0.05)
                time.sleep(0.5)
                load.finish()  # before this Redis goes away too
    answers = load.answers
    statuses = {a.status for a in answers}
    assert statuses == {200}, f"statuses {statuses}"
    slowest = max(a.seconds for a in answers)
    assert slowest < STORE_TIMEOUT_S + 1.0, f"slowest answer {slowest:.2f}s with a {STORE_TIMEOUT_S}s budget"
    assert all(a.method == "als" for a in answers if a.at + a.seconds < killed_at)
    down = [a for a in answers if killed_at + 0.05 < a.at and a.at + a.seconds < restarting_at]
    assert down and all(a.method == "popularity_fallback" for a in down), [
        a for a in down if a.method != "popularity_fallback"
    ][:5]
    first_fallback = min(a.at + a.seconds for a in answers if a.method == "popularity_fallback")
    first_als_again = min(a.at + a.seconds for a in answers if a.at > back_at and a.method == "als")
    relapsed = [a for a in answers if a.at > first_als_again and a.method != "als"]
    assert not relapsed, f"{len(relapsed)} answers fell back again after recovery"
    assert [s for _, s in load.ready] == ["ready", "degraded", "ready"], load.ready
    degraded_at, ready_at = load.ready[1][0], load.ready[2][0]
    print(
        f"\n{len(answers)} answers in {load.now():.1f}s, all 200, slowest {slowest * 1000:.0f} ms, "
        f"{sum(a.method == 'popularity_fallback' for a in answers)} popularity_fallback; "
        f"detected {first_fallback - killed_at:.3f}s after the kill (readyz degraded after "
        f"{degraded_at - killed_at:.3f}s); recovered {first_als_again - restarting_at:.3f}s after the "
        f"restart began, Redis start-up included (readyz ready after {ready_at - restarting_at:.3f}s)"
    )


def test_a_redis_stalled_by_debug_sleep_costs_each_request_at_most_its_budget(
    own_redis_debug: PrivateRedis, artifacts: Path
) -> None:
    store_settings = StoreSettings(
        redis_url=own_redis_debug.url, redis_prefix="sleepy", artifacts=artifacts, redis_timeout_s=0.25
    )
    publish(store_settings, artifacts / "als_v1")
    warm = users_by_tier(artifacts / "als_v1")["warm"][0]
    app = create_app(serve_settings(artifacts, store_timeout_s=STORE_TIMEOUT_S), store_settings)
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=10) as client:
        assert _ask(client, warm)[0].json()["method_used"] == "als"
        sleeper = threading.Thread(
            target=lambda: redis.Redis.from_url(own_redis_debug.url).execute_command("DEBUG", "SLEEP", "1.5")
        )
        sleeper.start()
        time.sleep(0.1)
        timings = []
        for _ in range(4):
            response, seconds = _ask(client, warm)
            assert response.status_code == 200 and response.json()["method_used"] == "popularity_fallback"
            timings.append(seconds)
        sleeper.join()
        assert max(timings) < STORE_TIMEOUT_S + 0.3, timings
        deadline = time.monotonic() + 5
        while _ask(client, warm)[0].json()["method_used"] != "als":
            assert time.monotonic() < deadline, "did not recover after DEBUG SLEEP ended"
            time.sleep(0.05)


async def _streamed(settings: StoreSettings, request_id: str) -> int:
    store = RedisStore.from_settings(settings)
    try:
        return sum(e.fields.get("request_id") == request_id for e in await store.read_events(count=100_000))
    finally:
        await store.close()


def test_events_sent_while_redis_is_down_are_refused_then_stored_exactly_once_on_retry(
    own_redis: PrivateRedis, artifacts: Path
) -> None:
    store_settings = StoreSettings(
        redis_url=own_redis.url, redis_prefix="writes", artifacts=artifacts, redis_timeout_s=0.25
    )
    publish(store_settings, artifacts / "als_v1")
    batch = {
        "request_id": "checkout-7f0c",
        "events": [{"user_id": "u000003", "item_id": f"i00000{i}", "event_type": "click"} for i in range(3)],
    }
    app = create_app(serve_settings(artifacts, store_timeout_s=STORE_TIMEOUT_S), store_settings)
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=10) as client:
        own_redis.pause()
        refused = client.post("/interactions", json=batch)
        assert refused.status_code == 503 and "not stored" in refused.json()["detail"]
        assert "retry with the same request id" in refused.json()["detail"]
        own_redis.resume()
        answers = [client.post("/interactions", json=batch).json() for _ in range(3)]
    assert answers[0]["stored"] == 3 and answers[0]["duplicate"] is False
    assert all(a["stored"] == 0 and a["duplicate"] for a in answers[1:])
    assert asyncio.run(_streamed(store_settings, "checkout-7f0c")) == 3


def test_an_item_write_while_redis_is_down_is_a_503_and_nothing_is_half_applied(
    own_redis: PrivateRedis, artifacts: Path
) -> None:
    store_settings = StoreSettings(
        redis_url=own_redis.url, redis_prefix="items-down", artifacts=artifacts, redis_timeout_s=0.25
    )
    publish(store_settings, artifacts / "als_v1")
    auth = {"Authorization": "Bearer faults-token"}
    app = create_app(
        serve_settings(artifacts, store_timeout_s=STORE_TIMEOUT_S, admin_token="faults-token"), store_settings
    )
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=10) as client:
        top = client.post("/candidates", json={"user_id": "new-user", "k": 3}).json()["candidates"]
        batch = {"items": [{"item_id": c["item_id"], "hidden": True} for c in top]}
        own_redis.pause()
        refused = client.post("/items", json=batch, headers=auth)
        patched = client.patch(f"/items/{top[0]['item_id']}", json={"hidden": True}, headers=auth)
        own_redis.resume()
        assert refused.status_code == 503 and patched.status_code == 503
        assert "retry" in refused.json()["detail"]
        # Nothing of the batch landed: every item still served, none recorded as changed.
        answer = client.post("/candidates", json={"user_id": "new-user", "k": 3}).json()["candidates"]
        assert [c["item_id"] for c in answer] == [c["item_id"] for c in top]
        described = client.get(f"/items/{top[1]['item_id']}", headers=auth).json()
        assert described["hidden"] is False and described["generation"] == 0
