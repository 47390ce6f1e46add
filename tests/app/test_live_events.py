"""An accepted event is never lost: not across a deploy under write load (one Redis and a Redis
Cluster, two workers), not across a rollback, not for a version an A/B variant pins; and a user's
tier means the same whether their log was trained on or recorded live."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from app.main import create_app
from feature_store.base import FeatureStore
from feature_store.keys import KeySchema
from feature_store.live_view import LiveView
from feature_store.manifest import read_manifest
from feature_store.redis_store import RedisStore
from feature_store.settings import StoreSettings
from feature_store.version_files import ITEM_MAPPING, load_mapping
from tests.app.conftest import flush, publish, redis_settings, serve_settings, users_by_tier
from tests.app.live_server import LiveServer, free_port, server_process
from tests.builders import small_data
from tests.private_cluster import private_cluster
from training.dataset import build_dataset
from training.events import DEFAULT_EVENT_WEIGHTS
from training.interaction_log import from_table
from training.pipeline import train
from training.settings import TrainSettings

LIKES_PER_USER = 5  # a new user with 5 liked known items is warm (default thresholds 5 and 20)


def _view(folder: Path) -> LiveView:
    manifest = read_manifest(folder)
    items = load_mapping(folder, ITEM_MAPPING)
    return LiveView(
        {item: row for row, item in enumerate(items)}, float(manifest.hyperparameters["data_until"])
    )


async def _profiles(settings: StoreSettings, folder: Path, users: list[str]) -> dict[str, tuple[int, int]]:
    """(count, live) of each user as the version in `folder` sees them, read from the store."""
    store: FeatureStore = RedisStore.from_settings(settings)
    view = _view(folder)
    try:
        out = {}
        for user in users:
            profile = await store.get_profile(folder.name, user, view=view)
            out[user] = (profile.count, profile.live)
        return out
    finally:
        await store.close()


async def _stream_size(settings: StoreSettings) -> int:
    store = RedisStore.from_settings(settings)
    try:
        total, after = 0, "0"
        while entries := await store.read_events(after=after, count=10_000):
            total, after = total + len(entries), entries[-1].entry_id
        return total
    finally:
        await store.close()


@contextmanager
def _two_workers(settings: StoreSettings, artifacts: Path, ab_config: Path | None = None) -> Iterator[str]:
    """`recsys serve --workers 2` as users run it, polling the pointer every 0.2 s."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")}
    assert settings.redis_url is not None
    env |= {
        "RECSYS_REDIS_URL": settings.redis_url.get_secret_value(),
        "RECSYS_REDIS_CLUSTER": "1" if settings.redis_cluster else "0",
        "RECSYS_REDIS_PREFIX": settings.redis_prefix,
        "RECSYS_ARTIFACTS": str(artifacts),
        "RECSYS_PORT": str(port),
        "RECSYS_WORKERS": "2",
        "RECSYS_RELOAD_POLL_S": "0.2",
        "RECSYS_LOG_LEVEL": "warning",
    }
    if ab_config is not None:
        env["RECSYS_AB_CONFIG"] = str(ab_config)
    with server_process([sys.executable, "-m", "app"], env, port):
        yield f"http://127.0.0.1:{port}"


def _wait_for_version(
    url: str, version: str, users: list[str], timeout_s: float = 20, variant: str | None = None
) -> None:
    """Until both workers answer with `version` (asked on fresh connections, so both are hit)."""
    headers = {"X-AB-Variant": variant} if variant else {}
    deadline = time.monotonic() + timeout_s
    streak = 0
    while streak < 20:
        assert time.monotonic() < deadline, f"the workers did not all switch to {version}"
        with httpx.Client(base_url=url, timeout=10) as c:
            body = c.post(
                "/candidates", json={"user_id": users[streak % len(users)], "k": 1}, headers=headers
            ).json()
        streak = streak + 1 if body["model_version"] == version else 0


@dataclass
class Writers:
    """Clients recording a 5-like batch for a new user as fast as the server takes them."""

    url: str
    items: list[str]
    threads: int = 3
    accepted: dict[str, str] = field(default_factory=dict)  # user -> model_version in the answer
    refused: list[int] = field(default_factory=list)
    retried: int = 0  # 503s answered by a retry with the same request id
    stop: threading.Event = field(default_factory=threading.Event)

    def _write(self, n: int) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            k = 0
            while not self.stop.is_set():
                user = f"new-{n}-{k}"
                likes = [self.items[(7 * k + 11 * j + n) % len(self.items)] for j in range(LIKES_PER_USER)]
                body = {
                    "request_id": f"batch-{user}",
                    "events": [{"user_id": user, "item_id": i, "event_type": "like"} for i in likes],
                }
                tries = 0
                while tries < 10:  # a 503 is retried with the same request id, as documented
                    r = client.post("/interactions", json=body)
                    if r.status_code != 503:
                        break
                    tries += 1
                self.retried += tries
                # After a 503, "duplicate" means the attempt that answered 503 had stored it.
                done = r.status_code == 200 and (
                    r.json()["stored"] == LIKES_PER_USER or (tries > 0 and r.json()["duplicate"])
                )
                if done:
                    self.accepted[user] = r.json()["model_version"]
                else:
                    self.refused.append(r.status_code)
                k += 1

    def __enter__(self) -> Writers:
        self.workers = [threading.Thread(target=self._write, args=(n,)) for n in range(self.threads)]
        for w in self.workers:
            w.start()
        return self

    def wait_for(self, batches: int, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.accepted) < batches:
            assert time.monotonic() < deadline, f"only {len(self.accepted)} batches in {timeout_s}s"
            time.sleep(0.02)

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for w in self.workers:
            w.join()


@pytest.mark.parametrize("deployment", ["redis", "redis-cluster"])
def test_no_accepted_event_is_lost_across_a_deploy_under_write_load(
    artifacts: Path, redis_url: str, deployment: str
) -> None:
    with ExitStack() as stack:
        if deployment == "redis-cluster":
            cluster = stack.enter_context(private_cluster())
            settings = StoreSettings(
                redis_url=cluster.url, redis_cluster=True, redis_prefix=f"dep-{uuid.uuid4().hex[:8]}"
            )
        else:
            settings = redis_settings(redis_url, artifacts)
            stack.callback(flush, settings)
        publish(settings, artifacts / "als_v1")
        items = load_mapping(artifacts / "als_v1", ITEM_MAPPING)
        known = users_by_tier(artifacts / "als_v1")["warm"][:10]
        url = stack.enter_context(_two_workers(settings, artifacts))
        with Writers(url, items) as writers:
            writers.wait_for(600)  # traffic on als_v1 first
            publish(settings, artifacts / "als_v2")
            _wait_for_version(url, "als_v2", known)
            writers.wait_for(len(writers.accepted) + 600)  # and on als_v2 after
        stream = asyncio.run(_stream_size(settings))
        users = sorted(writers.accepted)
        seen = asyncio.run(_profiles(settings, artifacts / "als_v2", users))
    answered_by = {v: sum(1 for a in writers.accepted.values() if a == v) for v in ("als_v1", "als_v2")}
    assert writers.refused == [] and min(answered_by.values()) >= 300, answered_by
    lost = [u for u in users if seen[u] != (LIKES_PER_USER, LIKES_PER_USER)]
    assert lost == [], f"{len(lost)} of {len(users)} users lost events on als_v2: {lost[:5]}"
    assert stream == LIKES_PER_USER * len(users)  # each accepted event streamed exactly once
    print(
        f"\n{deployment}: {len(users):,} batches ({LIKES_PER_USER * len(users):,} events) accepted "
        f"during a deploy, {answered_by['als_v1']:,} by als_v1 and {answered_by['als_v2']:,} by als_v2; "
        f"every one counts on als_v2, {stream:,} stream entries; {writers.retried} retries after a 503"
    )


def test_a_rollback_keeps_the_events_recorded_while_the_newer_version_was_live(
    artifacts: Path, redis_url: str
) -> None:
    settings = redis_settings(redis_url, artifacts)
    publish(settings, artifacts / "als_v1")
    publish(settings, artifacts / "als_v2")
    items = load_mapping(artifacts / "als_v2", ITEM_MAPPING)
    users = [f"roll-{n}" for n in range(20)]
    try:
        with _two_workers(settings, artifacts) as url, httpx.Client(base_url=url, timeout=10) as client:
            for n, user in enumerate(users):
                events = [
                    {"user_id": user, "item_id": items[n + 13 * j], "event_type": "like"} for j in range(5)
                ]
                assert client.post("/interactions", json={"events": events}).json()["stored"] == 5
            on_v2 = [client.post("/candidates", json={"user_id": u, "k": 5}).json() for u in users]
            assert {(a["model_version"], a["tier"]) for a in on_v2} == {("als_v2", "warm")}

            async def rollback() -> None:
                store = RedisStore.from_settings(settings)
                try:
                    assert await store.activate("als_v1") == "als_v2"
                finally:
                    await store.close()

            asyncio.run(rollback())
            _wait_for_version(url, "als_v1", users)
            on_v1 = [client.post("/candidates", json={"user_id": u, "k": 5}).json() for u in users]
    finally:
        flush(settings)
    assert {(a["model_version"], a["tier"], a["method_used"]) for a in on_v1} == {("als_v1", "warm", "als")}


@pytest.fixture
def three_versions(artifacts: Path, tmp_path: Path) -> Path:
    """als_v1 and als_v2 of the package's artifacts beside a fresh als_v3."""
    import shutil

    from tests.builders import train_versions

    own = tmp_path / "artifacts"
    shutil.copytree(artifacts, own)
    train_versions(own, versions=1)
    assert (own / "als_v3").is_dir()
    return own


def test_publish_keeps_the_version_a_variant_pins_and_a_missing_pin_is_a_flagged_fallback(
    three_versions: Path, redis_url: str, tmp_path: Path
) -> None:
    artifacts = three_versions
    settings = redis_settings(redis_url, artifacts)
    ab = tmp_path / "ab.toml"
    ab.write_text(
        'salt = "s"\n[[variants]]\nname = "control"\ntraffic = 0.5\n'
        '[[variants]]\nname = "old-model"\ntraffic = 0.5\nmodel_version = "als_v1"\n'
    )
    publish(settings, artifacts / "als_v1")
    publish(settings, artifacts / "als_v2")
    warm = users_by_tier(artifacts / "als_v1")["warm"][:10]
    old = {"X-AB-Variant": "old-model"}
    try:
        with _two_workers(settings, artifacts, ab) as url, httpx.Client(base_url=url, timeout=10) as client:
            time.sleep(0.5)  # both workers have declared their pin (they do at start and every poll)
            publish(settings, artifacts / "als_v3")  # als_v1: neither live nor previous now
            _wait_for_version(url, "als_v3", warm, variant="control")
            pinned = [client.post("/candidates", json={"user_id": u, "k": 5}, headers=old) for u in warm]
            assert {(r.json()["model_version"], r.json()["tier"]) for r in pinned} == {("als_v1", "warm")}
            assert all("X-Recsys-Fallback" not in r.headers for r in pinned)
            assert client.get("/readyz").json()["status"] == "ready"

            async def lose_pinned_version() -> None:  # what a cleanup that ignored pins did
                store = RedisStore.from_settings(settings)
                try:
                    await store._unlink_matching(KeySchema(settings.redis_prefix).version_pattern("als_v1"))
                    await store._client.hdel(store.keys.versions, "als_v1")
                finally:
                    await store.close()

            asyncio.run(lose_pinned_version())
            deadline = time.monotonic() + 10
            while client.get("/readyz").json()["status"] != "degraded":
                assert time.monotonic() < deadline, "readyz never said degraded"
                time.sleep(0.1)
            ready = client.get("/readyz").json()
            missing = client.post("/candidates", json={"user_id": warm[0], "k": 5}, headers=old)
    finally:
        flush(settings)
    assert ready["missing_pinned_versions"] == ["als_v1"]
    assert missing.status_code == 200 and missing.json()["model_version"] == "als_v3"
    assert "pinned version als_v1" in missing.headers["X-Recsys-Fallback"]


def test_a_log_recorded_live_gives_every_user_the_tier_training_gives_them(
    artifacts: Path, redis_url: str, tmp_path: Path
) -> None:
    """Train on a log (als_v1 of the package), then replay the same log live into a version that
    knows the items but none of these users: every user lands in the same tier."""
    log = small_data().interactions  # the log als_v1 was trained on (tests/builders.py)
    strangers = log.set_column(
        0, "user_id", pc.binary_join_element_wise("other-", pc.cast(log["user_id"], pa.string()), "")
    )
    empty = tmp_path / "artifacts"
    train(
        build_dataset(from_table(strangers, DEFAULT_EVENT_WEIGHTS)),
        TrainSettings(
            artifacts=empty, factors=8, regularization=1.0, alpha=4.0, iterations=2, test_split=0.0
        ),
    )
    data_until = float(read_manifest(empty / "als_v1").hyperparameters["data_until"])
    stamps = pc.cast(log["timestamp"], pa.int64()).to_numpy()
    shift = data_until - float(stamps.min()) + 1.0  # every replayed event is newer than its data
    rows = log.to_pylist()
    settings = redis_settings(redis_url, empty)
    publish(settings, empty / "als_v1")
    trained = {user: tier for tier, users in users_by_tier(artifacts / "als_v1").items() for user in users}
    try:
        with (
            LiveServer(create_app(serve_settings(empty), settings)) as live,
            httpx.Client(base_url=live.url, timeout=30) as client,
        ):
            for start in range(0, len(rows), 1_000):
                events = [
                    {
                        "user_id": str(r["user_id"]),
                        "item_id": str(r["item_id"]),
                        "event_type": str(r["event_type"]),
                        "timestamp": float(r["timestamp"]) + shift,
                    }
                    for r in rows[start : start + 1_000]
                ]
                assert client.post("/interactions", json={"events": events}).status_code == 200
            replayed = {
                user: client.post("/candidates", json={"user_id": user, "k": 1}).json()["tier"]
                for user in trained
            }
    finally:
        flush(settings)
    differ = {u: (trained[u], replayed[u]) for u in trained if trained[u] != replayed[u]}
    assert differ == {}, f"{len(differ)} of {len(trained)} users differ: {list(differ.items())[:5]}"
    assert {"cold", "warm", "hot"} <= set(trained.values())


def test_one_users_flood_of_events_leaves_what_a_request_reads_bounded(
    artifacts: Path, redis_url: str
) -> None:
    settings = redis_settings(redis_url, artifacts)
    publish(settings, artifacts / "als_v1")
    items = load_mapping(artifacts / "als_v1", ITEM_MAPPING)
    try:
        with (
            LiveServer(create_app(serve_settings(artifacts), settings)) as live,
            httpx.Client(base_url=live.url, timeout=30) as client,
        ):
            for batch in range(20):  # 20,000 views, every answer 200
                events = [
                    {
                        "user_id": "flood",
                        "item_id": items[(batch * 1_000 + n) % len(items)],
                        "event_type": "view",
                    }
                    for n in range(1_000)
                ]
                assert client.post("/interactions", json={"events": events}).status_code == 200
            answer = client.post("/candidates", json={"user_id": "flood", "k": 10}).json()

            async def stored() -> int:
                store = RedisStore.from_settings(settings)
                try:
                    return int(await store._client.llen(store.keys.live("flood")))
                finally:
                    await store.close()

            kept = asyncio.run(stored())
    finally:
        flush(settings)
    assert kept == settings.live_events_per_user == 1_000
    assert answer["tier"] == "hot" and not answer["method_used"].endswith("fallback")
