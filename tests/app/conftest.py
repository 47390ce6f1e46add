"""Fixtures of the API tests: two small trained versions, published to a real Redis under a
fresh prefix, and a real uvicorn serving them."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.main import create_app
from app.settings import ServeSettings
from feature_store.publish import publish_version
from feature_store.redis_store import RedisStore
from feature_store.settings import StoreSettings
from feature_store.version_files import load_mapping
from tests.app.live_server import LiveServer
from tests.builders import train_versions


@pytest.fixture(scope="package")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two versions (als_v1, als_v2) of the same data; tests publish what they need."""
    folder = tmp_path_factory.mktemp("serving-artifacts")
    train_versions(folder, versions=2)
    return folder


def redis_settings(redis_url: str, artifacts: Path) -> StoreSettings:
    return StoreSettings(
        redis_url=redis_url, redis_prefix=f"test-{uuid.uuid4().hex[:12]}", artifacts=artifacts
    )


async def _publish(settings: StoreSettings, folder: Path) -> None:
    store = RedisStore.from_settings(settings, bulk=True)
    try:
        await publish_version(folder, store)
    finally:
        await store.close()


def publish(settings: StoreSettings, folder: Path) -> None:
    asyncio.run(_publish(settings, folder))


async def _flush(settings: StoreSettings) -> None:
    store = RedisStore.from_settings(settings)
    try:
        await store.flush_namespace()
    finally:
        await store.close()


def flush(settings: StoreSettings) -> None:
    asyncio.run(_flush(settings))


@pytest.fixture
def own_artifacts(artifacts: Path, tmp_path: Path) -> Path:
    """A private copy of the package's versions, for tests that damage or add files."""
    copy = tmp_path / "artifacts"
    shutil.copytree(artifacts, copy)
    return copy


@pytest.fixture
def own_store_settings(redis_url: str, own_artifacts: Path) -> Iterator[StoreSettings]:
    """als_v1 of the private copy published and live under a fresh prefix."""
    settings = redis_settings(redis_url, own_artifacts)
    publish(settings, own_artifacts / "als_v1")
    yield settings
    flush(settings)


def serve_settings(artifacts: Path, **overrides: object) -> ServeSettings:
    values: dict[str, object] = {"artifacts": artifacts, "reload_poll_s": 0}
    values.update(overrides)
    return ServeSettings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def store_settings(redis_url: str, artifacts: Path) -> Iterator[StoreSettings]:
    settings = redis_settings(redis_url, artifacts)
    publish(settings, artifacts / "als_v1")
    yield settings
    flush(settings)


@pytest.fixture(scope="module")
def server(artifacts: Path, store_settings: StoreSettings) -> Iterator[LiveServer]:
    """The app on Redis with als_v1 live and the defaults of ServeSettings."""
    app = create_app(serve_settings(artifacts), store_settings)
    with LiveServer(app) as live:
        yield live


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


def users_by_tier(folder: Path) -> dict[str, list[str]]:
    """Published user ids of a version by tier (default thresholds 5 and 20)."""
    counts = np.load(folder / "profile_counts.npy")
    ids = load_mapping(folder, "user_mapping.json")
    out: dict[str, list[str]] = {"cold": [], "warm": [], "hot": []}
    for user, n in zip(ids, counts.tolist(), strict=True):
        out["cold" if n < 5 else "warm" if n < 20 else "hot"].append(user)
    return out


def seen_items(folder: Path, user_id: str) -> set[str]:
    ids = load_mapping(folder, "user_mapping.json")
    items = load_mapping(folder, "item_mapping.json")
    row = ids.index(user_id)
    indptr = np.load(folder / "profile_seen_indptr.npy")
    seen = np.load(folder / "profile_seen_items.npy")[indptr[row] : indptr[row + 1]]
    return {items[i] for i in seen.tolist()}
