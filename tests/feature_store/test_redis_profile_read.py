"""Connections kept between commands: the profile read every /candidates request makes keeps
its own (RedisStore._read_profile_held), the rest go through the client's pool. These check that
nothing a connection went through leaks into the next command: a flushed script cache, a
connection the server closed, a read abandoned mid-flight."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import numpy as np
import pytest
import redis.asyncio as aioredis

from feature_store.redis_store import RedisStore
from feature_store.settings import StoreSettings
from tests.feature_store.conftest import make_table

VERSION = "als_v1"


@pytest.fixture
async def held(redis_url: str) -> AsyncIterator[tuple[RedisStore, aioredis.Redis, str]]:
    """A store whose connections carry a name of their own, an admin client, and that name."""
    name = f"held-{uuid.uuid4().hex[:10]}"
    sep = "&" if "?" in redis_url else "?"
    settings = StoreSettings(redis_url=f"{redis_url}{sep}client_name={name}", redis_prefix=f"test-{name}")
    store = RedisStore.from_settings(settings)
    table = make_table(n_users=20)
    await store.mark_version(VERSION, {"status": "writing", "users": len(table)})
    await store.write_version(VERSION, table)
    await store.mark_version(VERSION, {"status": "complete", "users": len(table)})
    admin = aioredis.Redis.from_url(redis_url)
    try:
        yield store, admin, name
    finally:
        await store.flush_namespace()
        await store.close()
        await admin.aclose()


async def _same(store: RedisStore, user: str, expected) -> None:
    profile = await store.get_profile(VERSION, user)
    assert profile.known
    np.testing.assert_array_equal(profile.seen, expected.seen)
    np.testing.assert_array_equal(profile.embeddings["als"], expected.embeddings["als"])


async def test_reads_keep_their_connection_and_return_each_users_own_profile(held) -> None:
    store, _, _ = held
    first = {u: await store.get_profile(VERSION, u) for u in ("user-1", "user-2", "user-3")}
    assert len(store._held) == 1  # one reader at a time: one connection, kept and reused
    for user, expected in first.items():
        await _same(store, user, expected)


async def test_a_flushed_script_cache_is_reloaded_without_a_failed_read(held) -> None:
    store, admin, _ = held
    expected = await store.get_profile(VERSION, "user-4")
    await admin.script_flush()
    await _same(store, "user-4", expected)


async def test_a_connection_the_server_closed_costs_a_retry_not_a_failed_read(held) -> None:
    store, admin, name = held
    expected = await store.get_profile(VERSION, "user-5")
    clients = await admin.client_list()
    ours = [c["id"] for c in clients if c.get("name") == name and c.get("cmd") == "evalsha"]
    assert ours, "the kept read connection should be open"
    for client_id in ours:
        await admin.client_kill_filter(_id=client_id)
    await _same(store, "user-5", expected)


async def test_a_read_abandoned_mid_flight_never_answers_the_next_one(held) -> None:
    store, admin, _ = held
    expected = {u: await store.get_profile(VERSION, u) for u in ("user-6", "user-7")}
    await admin.client_pause(300)  # every client's commands wait: the read below times out
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await store.get_profile(VERSION, "user-6")
    await asyncio.sleep(0.3)
    # The abandoned read's reply (user-6's profile) must not be taken as user-7's.
    await _same(store, "user-7", expected["user-7"])
    await _same(store, "user-6", expected["user-6"])


async def test_every_command_survives_the_server_closing_all_idle_connections(held) -> None:
    store, admin, name = held
    expected = await store.get_profile(VERSION, "user-8")
    await store.active_version()
    for client in await admin.client_list():
        if client.get("name") == name:
            await admin.client_kill_filter(_id=client["id"])
    assert await store.active_version() is None  # nothing activated in this prefix
    await _same(store, "user-8", expected)
