"""Writes trust no reply they cannot check: a server that answers +OK to everything (a proxy gone
wrong, an impostor on the port) stores nothing the service may report as stored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from feature_store.base import LiveEvent, StoreUnavailableError
from feature_store.redis_store import RedisStore
from feature_store.settings import StoreSettings


async def _answer_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads RESP commands (`*N` then N bulk strings) and answers each with +OK."""
    try:
        while line := await reader.readline():
            if not line.startswith(b"*"):
                continue
            for _ in range(int(line[1:])):
                size = int((await reader.readline())[1:])
                await reader.readexactly(size + 2)
            writer.write(b"+OK\r\n")
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def yes_server() -> AsyncIterator[str]:
    server = await asyncio.start_server(_answer_ok, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"redis://127.0.0.1:{port}/0"


async def test_a_server_that_answers_ok_to_everything_stores_nothing_we_report(yes_server: str) -> None:
    store = RedisStore.from_settings(StoreSettings(redis_url=yes_server))
    try:
        with pytest.raises(StoreUnavailableError, match="unexpected reply"):
            await store.record([LiveEvent("u", "i1", 1.0, 1.0, "view")], request_id="r-1")
        with pytest.raises(StoreUnavailableError, match="unexpected reply"):
            await store.get_profile("als_v1", "u")
    finally:
        await store.close()


async def test_a_status_entry_that_is_not_json_is_invalid_not_a_crash(redis_url: str) -> None:
    import uuid

    store = RedisStore.from_settings(
        StoreSettings(redis_url=redis_url, redis_prefix=f"t-{uuid.uuid4().hex[:8]}")
    )
    try:
        await store._client.hset(store.keys.versions, "als_v1", b"\xff not json")
        await store._client.hset(store.keys.versions, "als_v2", "[1, 2]")
        assert await store.version_status() == {
            "als_v1": {"status": "invalid"},
            "als_v2": {"status": "invalid"},
        }
        await store.pin("server-1", ["als_v1"], ttl_s=30)
        assert await store.pinned_versions() == {"als_v1"}
    finally:
        await store.flush_namespace()
        await store.close()


async def test_a_call_the_client_sends_again_after_a_lost_reply_is_not_a_duplicate(redis_url: str) -> None:
    """redis-py resends a command whose reply timed out; the script finds its own nonce in the
    marker and reports the batch stored, where a new request with the same id is a duplicate."""
    import uuid

    from feature_store.redis_store import _Call, _Part

    store = RedisStore.from_settings(
        StoreSettings(redis_url=redis_url, redis_prefix=f"t-{uuid.uuid4().hex[:8]}")
    )
    events = [LiveEvent("u", "i1", 1.0, 1.0, "view")]
    try:
        whole = _Part(store.keys.idempotency("req-1"), 1, True)
        for part in store._parts(events, "req-1", stream=True):
            whole.writes += part.writes
        call = _Call()
        call.add(whole)
        args = store._record_args(call, "attempt-1")
        assert await store._record(keys=call.keys, args=args) == [1]
        assert await store._record(keys=call.keys, args=args) == [1]  # the resend: still ours
        assert len(await store.read_events()) == 1  # and applied once
        again = await store.record(events, request_id="req-1")  # a new request, same id
        assert again.duplicate and again.stored == 0
    finally:
        await store.flush_namespace()
        await store.close()
