"""What only a Redis Cluster can get wrong: writes that span slots and masters, deletes that must
visit every master, exactly-once recording split per slot, and cluster errors that must degrade.

The contract suite (test_contract.py) also runs against the cluster; these add what it does not
reach: many users at once, and a retry that finds part of its batch already applied.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis
from redis.asyncio.cluster import RedisCluster

from feature_store.base import LiveEvent, StoreUnavailableError
from feature_store.live_view import LiveView
from feature_store.redis_store import RedisStore
from feature_store.settings import StoreSettings
from tests.app.live_server import free_port
from tests.feature_store.conftest import make_table
from tests.private_cluster import PrivateCluster
from tests.private_redis import private_redis


@pytest.fixture
async def cluster_store(redis_cluster: PrivateCluster) -> AsyncIterator[RedisStore]:
    settings = StoreSettings(
        redis_url=redis_cluster.url,
        redis_cluster=True,
        redis_prefix=f"test-{uuid.uuid4().hex[:12]}",
        publish_chunk=100,
        publish_pipeline=3,
    )
    store = RedisStore.from_settings(settings)
    try:
        yield store
    finally:
        await store.flush_namespace()
        await store.close()


def _keys_per_master(cluster: PrivateCluster, prefix: str) -> dict[int, int]:
    return {
        port: sum(1 for _ in redis.Redis(port=port).scan_iter(match=f"{prefix}:*", count=1_000))
        for port in cluster.masters()
    }


async def test_a_version_spread_over_every_master_reads_back_and_deletes_everywhere(
    cluster_store: RedisStore, redis_cluster: PrivateCluster
) -> None:
    table = make_table(n_users=2_000, seed=4)
    assert await cluster_store.write_version("als_v1", table) == len(table)
    per_master = _keys_per_master(redis_cluster, cluster_store.keys.prefix)
    assert sorted(per_master.values())[0] > 500 and sum(per_master.values()) == len(table)
    for u in (0, 999, 1_999):
        profile = await cluster_store.get_profile("als_v1", table.user_ids[u])
        assert profile.known and profile.count == table.counts[u]
        assert profile.embeddings["als"].tolist() == table.embeddings["als"][u].tolist()

    assert await cluster_store.delete_version("als_v1") == len(table)
    assert sum(_keys_per_master(redis_cluster, cluster_store.keys.prefix).values()) == 0


async def test_a_batch_over_many_users_is_recorded_once_even_when_a_retry_finds_half_of_it_done(
    cluster_store: RedisStore,
) -> None:
    users = [f"buyer-{n}" for n in range(12)]  # 12 hash tags: spread over the three masters
    events = [LiveEvent(u, f"i{n}", 1.0, float(n), "click") for n, u in enumerate(users)]
    # The first attempt got as far as half the users' writes (say their master answered and the
    # stream's did not): the retry must add the rest and the stream, and nothing twice.
    first = await cluster_store.record(events[:6], request_id="batch-7", stream=False)
    assert (first.stored, first.duplicate) == (6, False)
    retry = await cluster_store.record(events, request_id="batch-7")
    assert (retry.stored, retry.duplicate) == (12, False)
    again = await cluster_store.record(events, request_id="batch-7")
    assert (again.stored, again.duplicate) == (0, True)

    view = LiveView({f"i{n}": n for n in range(12)}, since=None)
    for n, user in enumerate(users):
        profile = await cluster_store.get_profile("als_v1", user, view=view)
        assert (profile.count, profile.live, profile.seen.tolist()) == (1, 1, [n]), user
    streamed = await cluster_store.read_events()
    assert sorted(e.fields["user_id"] for e in streamed) == sorted(users)


async def test_a_retry_after_only_the_stream_was_written_applies_just_the_profiles(
    cluster_store: RedisStore,
) -> None:
    users = ("amy", "bob", "cyd")
    events = [LiveEvent(u, "i1", 1.0, 1.0, "view") for u in users]
    # The first attempt wrote only the stream's part (its master answered, the users' did not).
    stream_only = cluster_store._parts(events, "r-9", stream=True)[-1:]
    await cluster_store._record_per_slot(stream_only)
    retry = await cluster_store.record(events, request_id="r-9")
    assert (retry.stored, retry.duplicate) == (3, False)
    view = LiveView({"i1": 1}, since=None)
    assert [(await cluster_store.get_profile("als_v1", u, view=view)).count for u in users] == [1, 1, 1]
    assert len(await cluster_store.read_events()) == 3


async def test_cluster_client_errors_surface_as_store_unavailable() -> None:
    nothing = StoreSettings(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_cluster=True)
    with private_redis() as plain:  # a Redis without cluster mode answers CLUSTER SLOTS with an error
        not_a_cluster = StoreSettings(redis_url=plain.url, redis_cluster=True)
        for settings in (nothing, not_a_cluster):
            store = RedisStore.from_settings(settings)
            try:
                # RedisClusterException, or its subclass RedisClusterUnreachableError (redis-py 8)
                with pytest.raises(StoreUnavailableError, match="RedisCluster"):
                    await store.ping()
                with pytest.raises(StoreUnavailableError):
                    await store.get_profile("als_v1", "anyone")
            finally:
                await store.close()


def test_the_cluster_client_gets_the_same_timeouts_tls_and_pool_as_one_redis(tmp_path: Path) -> None:
    settings = StoreSettings(
        redis_url="rediss://:pw@127.0.0.1:7000",
        redis_cluster=True,
        redis_tls_ca_file=tmp_path / "ca.pem",
        redis_timeout_s=0.3,
        redis_connect_timeout_s=0.5,
        redis_pool_size=12,
    )
    serving, bulk = RedisStore.from_settings(settings), RedisStore.from_settings(settings, bulk=True)
    client = serving._client
    assert isinstance(client, RedisCluster) and isinstance(bulk._client, RedisCluster)
    options = client.get_connection_kwargs()
    assert options["ssl_ca_certs"] == str(tmp_path / "ca.pem") and options["password"] == "pw"
    assert (options["socket_timeout"], options["socket_connect_timeout"]) == (0.3, 0.5)
    assert options["max_connections"] == 12  # per node
    assert bulk._client.get_connection_kwargs()["socket_timeout"] == settings.publish_timeout_s
    # Serving retries once (after re-reading the slot map); publish rides out a short failover.
    assert (client.retry.get_retries(), bulk._client.retry.get_retries()) == (1, 8)
