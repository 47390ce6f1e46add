"""The named lock, one contract for both stores: one holder at a time, renewal by the holder,
expiry for a holder that died, release only by the holder."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from feature_store.base import FeatureStore
from feature_store.embedded_store import EmbeddedStore


async def test_one_holder_at_a_time_and_the_refusal_names_the_holder(store: FeatureStore) -> None:
    assert await store.acquire_lock("retrain", "job-a", ttl_s=30) is None
    assert await store.acquire_lock("retrain", "job-b", ttl_s=30) == "job-a"
    assert await store.acquire_lock("retrain", "job-a", ttl_s=30) is None  # renewed by its holder
    assert await store.acquire_lock("other", "job-b", ttl_s=30) is None  # names are independent


async def test_only_the_holder_releases_and_then_anyone_may_take_it(store: FeatureStore) -> None:
    await store.acquire_lock("retrain", "job-a", ttl_s=30)
    assert not await store.release_lock("retrain", "job-b")
    assert await store.acquire_lock("retrain", "job-b", ttl_s=30) == "job-a"
    assert await store.release_lock("retrain", "job-a")
    assert await store.acquire_lock("retrain", "job-b", ttl_s=30) is None


async def test_a_holder_that_died_loses_the_lock_when_it_expires(store: FeatureStore) -> None:
    await store.acquire_lock("retrain", "killed-job", ttl_s=0.3)
    assert await store.acquire_lock("retrain", "next-job", ttl_s=30) == "killed-job"
    await asyncio.sleep(0.45)
    assert await store.acquire_lock("retrain", "next-job", ttl_s=30) is None
    assert not await store.release_lock("retrain", "killed-job")  # it cannot free the new holder's


async def test_a_lock_name_is_checked_before_it_reaches_a_key(store: FeatureStore) -> None:
    with pytest.raises(ValueError, match="invalid lock name"):
        await store.acquire_lock("../../etc", "job", ttl_s=1)


async def test_two_embedded_stores_on_one_folder_see_each_others_lock(tmp_path: Path) -> None:
    """Two processes sharing an artifacts folder (a cron job and a manual run) share the lock."""
    one, two = EmbeddedStore(tmp_path), EmbeddedStore(tmp_path)
    assert await one.acquire_lock("retrain", "cron", ttl_s=30) is None
    assert await two.acquire_lock("retrain", "manual", ttl_s=30) == "cron"
    (tmp_path / "LOCKS.json").write_text("[not a lock file")
    assert await two.acquire_lock("retrain", "manual", ttl_s=30) is None  # a torn file holds nothing
