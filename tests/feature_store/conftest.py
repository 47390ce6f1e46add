"""Fixtures of the feature-store tests: a small profile table and both store implementations."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import numpy as np
import pytest

from feature_store.base import FeatureStore
from feature_store.embedded_store import EmbeddedStore
from feature_store.redis_store import RedisStore
from feature_store.settings import StoreSettings
from feature_store.version_files import ProfileTable


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


@pytest.fixture(params=["embedded", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[FeatureStore]:
    """Each contract test runs once per implementation; Redis gets a fresh key prefix."""
    if request.param == "embedded":
        yield EmbeddedStore(tmp_path / "artifacts", recent_limit=50)
        return
    url = request.getfixturevalue("redis_url")
    settings = StoreSettings(redis_url=url, redis_prefix=f"test-{uuid.uuid4().hex[:12]}", publish_chunk=7)
    redis_store = RedisStore.from_settings(settings)
    try:
        yield redis_store
    finally:
        await redis_store.flush_namespace()
        await redis_store.close()
