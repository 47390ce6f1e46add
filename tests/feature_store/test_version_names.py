"""Versions are data, never paths: one name rule, held at train, publish, activate and in the key
schema. A name such as `{meta}` once made publish's cleanup delete the store's own pointer keys."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from feature_store.embedded_store import EmbeddedStore
from feature_store.keys import KeySchema
from feature_store.manifest import list_versions, resolve_version, write_latest, write_manifest
from feature_store.publish import publish_version
from feature_store.redis_store import RedisStore
from feature_store.settings import StoreSettings
from feature_store.version_names import (
    InvalidVersionNameError,
    check_version_name,
    is_version_name,
    split_version_name,
)
from tests.builders import train_versions
from tests.forge import copy_version
from training.artifacts import next_version

VALID = ["als_v1", "als_v3", "als_v10", "als_v999999999", "tt2_v7", "a" * 32 + "_v1"]
INVALID: list[object] = [
    "",
    "..",
    ".",
    "/etc",
    "/some/abs/path/als_v2",
    "../../../x",
    "als_v1/../als_v2",
    "{meta}",
    "als_v0",
    "als_v01",
    "als_v1\n",
    " als_v1",
    "ALS_v1",
    "als.v1",
    "two_tower_v1",  # one family segment: no underscores inside it
    "als_v1234567890",
    "a" * 33 + "_v1",
    "als_v1*",
    "live",
    b"als_v1",
    b"\xff\xfe",
    None,
    3,
]


@pytest.mark.parametrize("name", VALID)
def test_family_vn_names_pass(name: str) -> None:
    assert is_version_name(name) and check_version_name(name) == name
    assert split_version_name(name) is not None


@pytest.mark.parametrize("name", INVALID, ids=repr)
def test_anything_else_is_refused_with_the_rule_in_the_message(name: object) -> None:
    assert not is_version_name(name)
    with pytest.raises(InvalidVersionNameError, match="expected <family>_v<N> such as als_v3"):
        check_version_name(name)


def test_training_and_latest_only_produce_names_that_pass(tmp_path: Path) -> None:
    assert next_version(tmp_path, "als") == "als_v1"
    for family in ("../x", "Als", "two_tower", "x/y", ""):
        with pytest.raises(InvalidVersionNameError):
            next_version(tmp_path, family)
    with pytest.raises(InvalidVersionNameError):
        write_latest(tmp_path, "../../etc")
    with pytest.raises(InvalidVersionNameError):
        write_manifest(
            tmp_path,
            version="{meta}",
            model_family="als",
            data_fingerprint="x",
            hyperparameters={},
            metrics={},
        )
    (tmp_path / "LATEST").write_text("../outside\n")  # written by hand: still refused when resolved
    with pytest.raises(InvalidVersionNameError, match="LATEST"):
        resolve_version(tmp_path, None)
    (tmp_path / "als_v1.bak").mkdir()
    assert list_versions(tmp_path) == []


def test_the_key_schema_refuses_to_build_a_deletion_pattern_reaching_its_own_keys() -> None:
    keys = KeySchema("recsys")
    assert keys.version_pattern("als_v3") == "recsys:als_v3:*"
    for name in ("{meta}", "", "a:b", "live", "idem"):
        with pytest.raises(InvalidVersionNameError):
            keys.version_pattern(name)


@pytest.mark.parametrize("name", ["..", "/etc", "../../x", "{meta}", "als_v1/../als_v2"])
async def test_the_embedded_store_refuses_to_activate_a_path(tmp_path: Path, name: str) -> None:
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    (artifacts / "manifest.json").write_text("{}")  # what '..' of a version folder would find
    store = EmbeddedStore(artifacts)
    with pytest.raises(InvalidVersionNameError):
        await store.activate(name)
    assert await store.active_version() is None and not (artifacts / "ACTIVE.json").exists()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return train_versions(tmp_path_factory.mktemp("names-artifacts"), versions=2)


@pytest.fixture
def live_redis(redis_url: str, trained: list[Path]) -> Iterator[tuple[StoreSettings, redis.Redis]]:
    """A fresh prefix with als_v1 then als_v2 published: active, previous and versions all set."""
    settings = StoreSettings(
        redis_url=redis_url, redis_prefix=f"test-{uuid.uuid4().hex[:12]}", artifacts=trained[0].parent
    )

    async def publish_both() -> None:
        store = RedisStore.from_settings(settings, bulk=True)
        try:
            for folder in trained:
                await publish_version(folder, store)
        finally:
            await store.close()

    asyncio.run(publish_both())
    client = redis.Redis.from_url(redis_url)
    try:
        yield settings, client
    finally:
        for key in client.scan_iter(match=f"{settings.redis_prefix}:*"):
            client.delete(key)
        client.close()


def _meta_keys(settings: StoreSettings, client: redis.Redis) -> tuple[object, object, object]:
    keys = KeySchema(settings.redis_prefix)
    return client.get(keys.active), client.get(keys.previous), client.hgetall(keys.versions)


def test_publishing_a_version_named_meta_is_refused_and_deletes_nothing(
    live_redis: tuple[StoreSettings, redis.Redis], trained: list[Path], tmp_path: Path
) -> None:
    settings, client = live_redis
    before = _meta_keys(settings, client)
    assert before[0] == b"als_v2" and before[1] == b"als_v1"
    forged = copy_version(trained[1], tmp_path, "{meta}")

    async def publish_forged() -> None:
        store = RedisStore.from_settings(settings, bulk=True)
        try:
            await publish_version(forged, store)
        finally:
            await store.close()

    with pytest.raises(InvalidVersionNameError, match="version folder name"):
        asyncio.run(publish_forged())
    assert _meta_keys(settings, client) == before


def test_the_cli_refuses_to_publish_or_activate_meta_in_one_line(
    live_redis: tuple[StoreSettings, redis.Redis], trained: list[Path], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from training.cli import app

    settings, client = live_redis
    before = _meta_keys(settings, client)
    copy_version(trained[1], tmp_path, "{meta}")
    env = {
        "RECSYS_REDIS_URL": str(settings.redis_url.get_secret_value()),
        "RECSYS_REDIS_PREFIX": settings.redis_prefix,
    }
    for command in ("publish", "activate"):
        result = CliRunner().invoke(app, [command, "{meta}", "--artifacts", str(tmp_path)], env=env)
        assert result.exit_code == 2, result.output
        assert "expected <family>_v<N>" in result.output and "Traceback" not in result.output
    assert _meta_keys(settings, client) == before


async def test_the_redis_store_refuses_to_activate_a_path(
    live_redis: tuple[StoreSettings, redis.Redis],
) -> None:
    settings, client = live_redis
    before = _meta_keys(settings, client)
    store = RedisStore.from_settings(settings)
    try:
        for name in ("/some/abs/path", "../../../x", "{meta}", ".."):
            with pytest.raises(InvalidVersionNameError):
                await store.activate(name)
    finally:
        await store.close()
    assert _meta_keys(settings, client) == before
