"""Retries: reads through connection errors and 503s, writes exactly once under a paused store."""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from recsys_client import AsyncRecsysClient, RecsysClient, RetryPolicy, UnavailableError
from recsys_client.retry import retry_after

from app.main import create_app
from feature_store.redis_store import RedisStore
from feature_store.settings import StoreSettings
from tests.app.conftest import publish, serve_settings
from tests.app.live_server import LiveServer, free_port
from tests.private_redis import private_redis

FAST = RetryPolicy(attempts=4, backoff_s=0.01, max_backoff_s=0.05)


class Counting(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []
        self.statuses: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(f"{request.method} {request.url.path}")
        response = super().handle_request(request)
        self.statuses.append(response.status_code)
        return response


def test_the_backoff_grows_exponentially_with_full_jitter_and_a_cap() -> None:
    policy = RetryPolicy(backoff_s=0.1, max_backoff_s=0.5)
    rng = random.Random(7)
    for attempt, bound in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.5), (9, 0.5)]:
        waits = [policy.delay(attempt, rng=rng) for _ in range(500)]
        assert min(waits) >= 0 and max(waits) <= bound
        assert max(waits) > 0.8 * bound and min(waits) < 0.2 * bound  # spread over the whole range
    assert policy.delay(1, retry_after=3.0) == 3.0
    assert (retry_after("2"), retry_after("9999"), retry_after("Wed, 21 Oct 2015"), retry_after(None)) == (
        2.0,
        30.0,
        None,
        None,
    )


def test_a_server_that_is_not_there_is_retried_then_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    transport = Counting()
    with RecsysClient(url, retry=FAST, transport=transport) as client:
        started = time.monotonic()
        with pytest.raises(UnavailableError, match="no answer"):
            client.candidates("u1")
        assert time.monotonic() - started < 2
    assert transport.sent == ["POST /candidates"] * 4


async def test_the_async_client_retries_the_same_way() -> None:
    async with AsyncRecsysClient(f"http://127.0.0.1:{free_port()}", retry=FAST) as client:
        with pytest.raises(UnavailableError):
            await client.record([{"user_id": "u1", "item_id": "i1", "weight": 1.0}])


def test_a_503_read_is_retried_and_then_raised_with_the_servers_detail(
    redis_url: str, artifacts: Path
) -> None:
    empty = StoreSettings(
        redis_url=redis_url, redis_prefix=f"test-{uuid.uuid4().hex[:12]}", artifacts=artifacts
    )
    transport = Counting()
    with (
        LiveServer(create_app(serve_settings(artifacts), empty)) as live,
        RecsysClient(live.url, retry=FAST, transport=transport) as client,
    ):
        assert not client.ready().ready  # nothing published: not ready, and not retried
        with pytest.raises(UnavailableError, match="no model version is loaded") as caught:
            client.candidates("u1")
        assert caught.value.status == 503
    assert transport.statuses == [503] + [503] * 4


async def _stream_count(settings: StoreSettings, request_id: str) -> int:
    store = RedisStore.from_settings(settings)
    try:
        events = await store.read_events(count=100_000)
        return sum(e.fields.get("request_id") == request_id for e in events)
    finally:
        await store.close()


def test_a_batch_retried_through_a_paused_store_is_stored_exactly_once(artifacts: Path) -> None:
    """The store stops (SIGSTOP) with the server's write sent to it: the server answers 503
    after its store timeout, the client waits and sends the same batch with the same request id;
    when the store wakes up it runs the first write, and the retry finds the id and stores
    nothing again. Whatever the interleaving, the events are in the stream once."""
    with private_redis() as redis_server:
        settings = StoreSettings(
            redis_url=redis_server.url, redis_prefix="exactly-once", artifacts=artifacts, redis_timeout_s=0.2
        )
        publish(settings, artifacts / "als_v1")
        app = create_app(serve_settings(artifacts, store_timeout_s=0.2), settings)
        transport = Counting()
        patient = RetryPolicy(attempts=8, backoff_s=0.2, max_backoff_s=0.8)
        events = [{"user_id": "u00003", "item_id": f"i0000{i}", "event_type": "click"} for i in range(3)]
        with LiveServer(app) as live, RecsysClient(live.url, retry=patient, transport=transport) as client:
            redis_server.pause()
            waker = threading.Timer(1.0, redis_server.resume)
            waker.start()
            try:
                result = client.record(events, request_id="checkout-42")
            finally:
                waker.join()
            again = client.record(events, request_id="checkout-42")
        assert transport.statuses[0] == 503 and transport.statuses[-2:] == [200, 200]
        assert len(transport.statuses) >= 3  # at least one retry of the first call
        assert result.stored + (3 if result.duplicate else 0) == 3  # stored now, or by the first try
        assert again.duplicate and again.stored == 0
        assert asyncio.run(_stream_count(settings, "checkout-42")) == 3
