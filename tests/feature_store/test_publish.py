"""publish: verified, complete, atomic, re-runnable; on both stores, with real trained versions."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from feature_store.base import FeatureStore, LiveEvent
from feature_store.embedded_store import EmbeddedStore
from feature_store.errors import VersionNotReadyError
from feature_store.live_view import LiveView
from feature_store.manifest import ArtifactError
from feature_store.publish import publish_version
from feature_store.redis_store import RedisStore
from feature_store.settings import StoreSettings
from feature_store.version_files import ITEM_MAPPING, load_mapping, load_profile_table
from tests.builders import train_versions

ROOT = Path(__file__).resolve().parents[2]


def _train_versions(artifacts: Path, users: int, versions: int) -> list[Path]:
    return train_versions(artifacts, users=users, versions=versions)


@pytest.fixture(scope="module")
def versions(tmp_path_factory) -> list[Path]:
    return _train_versions(tmp_path_factory.mktemp("artifacts"), users=600, versions=3)


async def test_publish_makes_every_user_of_the_version_readable(store: FeatureStore, versions) -> None:
    report = await publish_version(versions[0], store)
    assert await store.active_version() == versions[0].name == report.version
    table = load_profile_table(versions[0])
    assert report.users == len(table)
    for u in (0, len(table) // 2, len(table) - 1):
        profile = await store.get_profile(report.version, table.user_ids[u])
        assert profile.known and profile.count == table.counts[u]
        np.testing.assert_array_equal(profile.embeddings["als"], table.embeddings["als"][u])


async def test_a_new_version_keeps_the_previous_for_rollback_and_drops_older(store, versions) -> None:
    for folder in versions:
        report = await publish_version(folder, store)
    assert report.previous == versions[1].name
    assert report.deleted == [versions[0].name]
    assert set(await store.version_status()) == {versions[1].name, versions[2].name}
    assert await store.activate(versions[1].name) == versions[2].name


async def test_republishing_the_live_version_is_harmless(store, versions) -> None:
    await publish_version(versions[0], store)
    again = await publish_version(versions[0], store)
    assert again.previous == versions[0].name and await store.active_version() == versions[0].name


async def test_a_corrupt_version_is_refused_and_the_old_one_stays_live(store, versions, tmp_path) -> None:
    await publish_version(versions[0], store)
    bad = tmp_path / versions[1].name
    shutil.copytree(versions[1], bad)
    factors = bad / "user_factors.npy"
    factors.write_bytes(factors.read_bytes()[:-64])
    with pytest.raises(ArtifactError, match="user_factors.npy"):
        await publish_version(bad, store)
    assert await store.active_version() == versions[0].name


async def test_events_recorded_after_the_training_data_count_in_the_new_version_unreplayed(
    store, versions
) -> None:
    await publish_version(versions[0], store)
    table = load_profile_table(versions[1])
    user = table.user_ids[0]
    late = time.time() + 10  # after every synthetic event
    item_rows = {item: row for row, item in enumerate(load_mapping(versions[1], ITEM_MAPPING))}
    seen = set(table.seen_items[table.seen_indptr[0] : table.seen_indptr[1]].tolist())
    new_item = next(item for item, row in item_rows.items() if row not in seen)
    await store.record([LiveEvent(user, new_item, 1.0, late, "click")])
    await store.record([LiveEvent(user, new_item, 1.0, 0.0, "click")])  # in the training data
    await publish_version(versions[1], store)
    view = LiveView(
        item_rows,
        since=float(json.loads((versions[1] / "manifest.json").read_text())["hyperparameters"]["data_until"]),
    )
    profile = await store.get_profile(versions[1].name, user, view=view)
    assert profile.live == 1
    assert profile.count == table.counts[0] + 1 and profile.recent_items[-1] == item_rows[new_item]


async def test_publish_keeps_a_version_a_running_server_pins(store, versions) -> None:
    for folder in versions[:2]:
        await publish_version(folder, store)
    await store.pin("replica-b", [versions[0].name], ttl_s=30)  # neither live nor previous next
    report = await publish_version(versions[2], store)
    assert report.deleted == [] and report.previous == versions[1].name
    assert (await store.version_status())[versions[0].name]["status"] == "complete"
    await store.pin("replica-b", [], ttl_s=30)  # the variant is gone: the next cleanup may delete it
    assert versions[0].name in (await publish_version(versions[2], store)).deleted


async def test_the_embedded_pointer_reaches_another_process_through_the_artifacts_folder(versions) -> None:
    artifacts = versions[0].parent
    for stale in ("ACTIVE.json",):
        (artifacts / stale).unlink(missing_ok=True)
    server_side = EmbeddedStore(artifacts)
    assert await server_side.active_version() is None
    await publish_version(versions[2], EmbeddedStore(artifacts))
    await asyncio.sleep(0.01)
    assert await server_side.active_version() == versions[2].name
    table = load_profile_table(versions[2])
    profile = await server_side.get_profile(versions[2].name, table.user_ids[3])
    assert profile.known and profile.count == table.counts[3]


def test_a_publish_killed_half_way_leaves_the_old_version_live_and_a_rerun_completes_it(
    redis_url, tmp_path
) -> None:
    big = _train_versions(tmp_path / "artifacts", users=20_000, versions=2)
    prefix = f"test-kill-{uuid.uuid4().hex[:8]}"
    settings = StoreSettings(redis_url=redis_url, redis_prefix=prefix)
    env = {
        **os.environ,
        "RECSYS_REDIS_URL": redis_url,
        "RECSYS_REDIS_PREFIX": prefix,
        "RECSYS_PUBLISH_CHUNK": "1",  # one user per round trip: slow enough to be killed mid-way
        "RECSYS_PUBLISH_PIPELINE": "1",
    }
    cmd = [sys.executable, "-m", "training.cli", "publish", "--artifacts", str(big[0].parent)]
    subprocess.run([*cmd, big[0].name], env=env, cwd=ROOT, check=True, capture_output=True)

    async def state() -> tuple[str | None, dict]:
        store = RedisStore.from_settings(settings)
        try:
            return await store.active_version(), await store.version_status()
        finally:
            await store.close()

    proc = subprocess.Popen([*cmd, big[1].name], env=env, cwd=ROOT, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline:
        _, status = asyncio.run(state())
        if status.get(big[1].name, {}).get("status") == "writing":
            break
        time.sleep(0.01)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    active, status = asyncio.run(state())
    assert active == big[0].name
    assert status[big[1].name]["status"] == "writing"

    async def try_activate() -> None:
        store = RedisStore.from_settings(settings)
        try:
            await store.activate(big[1].name)
        finally:
            await store.close()

    with pytest.raises(VersionNotReadyError):
        asyncio.run(try_activate())
    fast = {k: v for k, v in env.items() if k not in ("RECSYS_PUBLISH_CHUNK", "RECSYS_PUBLISH_PIPELINE")}
    done = subprocess.run([*cmd, big[1].name], env=fast, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    active, status = asyncio.run(state())
    assert active == big[1].name and status[big[1].name]["status"] == "complete"

    async def cleanup() -> None:
        store = RedisStore.from_settings(settings)
        await store.flush_namespace()
        await store.close()

    asyncio.run(cleanup())


def test_the_cli_names_a_missing_version_in_one_line_without_a_traceback(tmp_path) -> None:
    from typer.testing import CliRunner

    from training.cli import app

    result = CliRunner().invoke(app, ["publish", "als_v7", "--artifacts", str(tmp_path)])
    assert result.exit_code == 2
    assert "als_v7" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["activate", "als_v7", "--artifacts", str(tmp_path)])
    assert result.exit_code == 2 and "not completely written" in result.output
