"""Fixtures of the feature-store tests: a small profile table and the store implementations
(embedded, one Redis, a Redis Cluster of 3 masters)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest

from feature_store.base import FeatureStore
from feature_store.embedded_store import EmbeddedStore
from feature_store.redis_store import RedisStore
from feature_store.settings import StoreSettings
from feature_store.version_files import ProfileTable
from tests.private_cluster import PrivateCluster, private_cluster

LIVE_CAP = 100  # run-time events kept per user by the stores under test


def make_table(n_users: int = 50, n_items: int = 30, dim: int = 8, seed: int = 0) -> ProfileTable:
    rng = np.random.default_rng(seed)
    seen_lists = [rng.choice(n_items, rng.integers(0, 12), replace=False) for _ in range(n_users)]
    seen_indptr = np.concatenate([[0], np.cumsum([len(s) for s in seen_lists])]).astype(np.int64)
    seen_items = np.concatenate(seen_lists).astype(np.int32)
    return ProfileTable(
        user_ids=[f"user-{i}" for i in range(n_users)],
        counts=np.diff(seen_indptr).astype(np.int32),
        embeddings={"als": rng.standard_normal((n_users, dim)).astype(np.float32)},
        seen_indptr=seen_indptr,
        seen_items=seen_items,
        recent_indptr=seen_indptr.copy(),
        recent_items=seen_items.copy(),
        recent_weights=rng.uniform(0.5, 3, len(seen_items)).astype(np.float32),
    )


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[PrivateCluster]:
    """One 3-master cluster for the session (about 2 s to start); tests use their own prefixes."""
    with private_cluster() as cluster:
        yield cluster


@pytest.fixture(params=["embedded", "redis", "redis-cluster"])
async def store(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[FeatureStore]:
    """Each contract test runs once per implementation; Redis gets a fresh key prefix."""
    if request.param == "embedded":
        yield EmbeddedStore(tmp_path / "artifacts", recent_limit=50, live_events_per_user=LIVE_CAP)
        return
    if request.param == "redis-cluster":
        url, cluster = request.getfixturevalue("redis_cluster").url, True
    else:
        url, cluster = request.getfixturevalue("redis_url"), False
    settings = StoreSettings(
        redis_url=url,
        redis_cluster=cluster,
        redis_prefix=f"test-{uuid.uuid4().hex[:12]}",
        publish_chunk=7,
        live_events_per_user=LIVE_CAP,
    )
    redis_store = RedisStore.from_settings(settings)
    try:
        yield redis_store
    finally:
        await redis_store.flush_namespace()
        await redis_store.close()
