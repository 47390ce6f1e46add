"""`recsys retrain` end to end on a synthetic marketplace advanced by a week: it publishes a good
candidate (with the event stream's events in it), refuses a log with a tracking outage, one with
bots and a worse model, each with its reason and the live version untouched, and never runs twice
at once."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from feature_store.base import FeatureStore, LiveEvent
from feature_store.embedded_store import EmbeddedStore
from feature_store.factory import open_store
from feature_store.settings import StoreSettings
from tests.app.conftest import flush
from training import retrain_history
from training.cli import app
from training.commands.store import run_publish
from training.pipeline import train_all
from training.readers import read_interactions
from training.retrain import LOCK, Outcome, run_retrain
from training.settings import TrainSettings
from training.synthetic import SyntheticConfig, generate

T = TypeVar("T")

START = 1_700_000_000
DAY = 86_400
WEEK0_END = START + 180 * DAY  # the live version's data ends here; a week of new events follows
runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic log of 187 days, the first 180 trained into als_v1 (published, embedded)."""
    root = tmp_path_factory.mktemp("retrain")
    data = generate(SyntheticConfig(users=2_000, items=400, interactions=60_000, days=187, start_epoch=START))
    table = data.interactions
    pq.write_table(table, root / "week1.parquet")
    pq.write_table(table.filter(pc.less(table["timestamp"], WEEK0_END)), root / "week0.parquet")
    pq.write_table(data.items, root / "items.parquet")
    settings = _settings(root / "artifacts")
    log = read_interactions(str(root / "week0.parquet"), settings.event_weights)
    from training.pipeline import dataset_from_log

    train_all(dataset_from_log(log, settings), settings.model_copy(update={"test_split": 0.0}))
    return root


def _settings(artifacts: Path, **values: object) -> TrainSettings:
    return TrainSettings(artifacts=artifacts, two_tower=False, **values)  # type: ignore[arg-type]


def _live(world: Path, tmp_path: Path, redis_url: str | None = None) -> tuple[Path, StoreSettings]:
    """A private copy of the artifacts with als_v1 published to a fresh store."""
    artifacts = tmp_path / "artifacts"
    shutil.copytree(world / "artifacts", artifacts)
    values: dict[str, object] = {"artifacts": artifacts}
    if redis_url is not None:
        values.update(redis_url=redis_url, redis_prefix=f"test-retrain-{uuid.uuid4().hex[:10]}")
    store_settings = StoreSettings(**values)  # type: ignore[arg-type]
    run_publish(artifacts / "als_v1", store_settings)
    return artifacts, store_settings


def _with_store(store_settings: StoreSettings, call: Callable[[FeatureStore], Awaitable[T]]) -> T:
    async def go() -> T:
        store = open_store(store_settings)
        try:
            return await call(store)
        finally:
            await store.close()

    return asyncio.run(go())


def _active(store_settings: StoreSettings) -> str | None:
    return _with_store(store_settings, lambda store: store.active_version())


def _hold_lock(store_settings: StoreSettings, holder: str) -> None:
    """Another retrain's lock, as the store holds it."""
    assert _with_store(store_settings, lambda store: store.acquire_lock(LOCK, holder, ttl_s=3600)) is None


def _log(table: pa.Table, settings: TrainSettings):
    from training.interaction_log import from_table

    return from_table(table, settings.event_weights)


def test_a_week_of_new_events_and_the_event_stream_are_published_as_a_new_version(
    world: Path, tmp_path: Path, redis_url: str
) -> None:
    artifacts, store_settings = _live(world, tmp_path, redis_url)
    settings = _settings(artifacts)
    week1 = pq.read_table(world / "week1.parquet")
    newest = int(pc.max(week1["timestamp"]).as_py())
    streamed = [
        LiveEvent(f"signed-up-today-{n}", f"i{(n * 7 + j) % 400:06d}", 2.0, newest + 60 + j, "like")
        for n in range(3)
        for j in range(6)
    ]

    _with_store(store_settings, lambda store: store.record(streamed, request_id="after-the-export"))
    try:
        report = run_retrain(_log(week1, settings), settings, store_settings, progress=lambda _: None)
        assert report.outcome == Outcome.published, report.reasons
        assert report.published == "als_v2" and _active(store_settings) == "als_v2"
        assert report.record["data"]["stream_events_added"] == len(streamed)
        data = json.loads((artifacts / "als_v2" / "metrics.json").read_text())["data"]
        assert data["events"] == week1.num_rows + len(streamed)
        users = json.loads((artifacts / "als_v2" / "user_mapping.json").read_text())
        assert {f"signed-up-today-{n}" for n in range(3)} <= set(users)
        assert report.candidate is not None and report.live is not None
        assert report.gate is not None and report.gate.publish
    finally:
        flush(store_settings)


def test_a_tracking_outage_is_refused_and_the_live_version_stays(world: Path, tmp_path: Path) -> None:
    artifacts, store_settings = _live(world, tmp_path)
    week1 = pq.read_table(world / "week1.parquet")
    day = (week1["timestamp"].to_numpy() - WEEK0_END) // DAY
    rng = np.random.default_rng(0)
    lost = (day == 2) & (rng.random(week1.num_rows) < 0.5)  # half of the third new day's events
    table = week1.filter(pa.array(~lost))
    result = runner.invoke(
        app, _cli(table, tmp_path, artifacts), env={"RECSYS_TWO_TOWER": "false"}, catch_exceptions=False
    )
    assert result.exit_code == 4, result.output
    assert "refused by the data checks; als_v1 stays live" in result.output
    assert "a tracking outage?" in result.output
    assert _active(store_settings) == "als_v1"
    assert sorted(p.name for p in artifacts.glob("als_v*")) == ["als_v1"]
    last = retrain_history.read(artifacts)[-1]
    assert last["decision"] == "refused_by_checks" and last["checks"][0]["check"] == "outage"


def test_bot_traffic_is_refused_with_the_bots_named(world: Path, tmp_path: Path) -> None:
    artifacts, store_settings = _live(world, tmp_path)
    week1 = pq.read_table(world / "week1.parquet")
    rng = np.random.default_rng(1)
    n = 1_500
    bots = pa.table(
        {
            "user_id": pa.array([f"crawler-{i % 2}" for i in range(n)]),
            "item_id": pa.array([f"i{j:06d}" for j in rng.integers(0, 400, n)]),
            "event_type": pa.array(["view"] * n),
            "timestamp": pa.array(WEEK0_END + DAY + rng.integers(0, 2 * DAY, n), pa.int64()),
        }
    )
    table = pa.concat_tables(
        [week1.select(bots.column_names), bots.cast(week1.select(bots.column_names).schema)]
    )
    result = runner.invoke(app, _cli(table, tmp_path, artifacts), env={"RECSYS_TWO_TOWER": "false"})
    assert result.exit_code == 4, result.output
    assert "user 'crawler-0' has" in result.output and "a bot?" in result.output
    assert _active(store_settings) == "als_v1"


def test_a_worse_candidate_is_refused_by_the_gate_and_force_publishes_it_loudly(
    world: Path, tmp_path: Path
) -> None:
    artifacts, store_settings = _live(world, tmp_path)
    week1 = pq.read_table(world / "week1.parquet")
    crippled = {"RECSYS_TWO_TOWER": "false", "RECSYS_FACTORS": "2", "RECSYS_ITERATIONS": "1"}
    result = runner.invoke(app, _cli(week1, tmp_path, artifacts), env=crippled)
    assert result.exit_code == 3, result.output
    assert "refused by the gate; als_v1 stays live" in result.output
    assert "NO  recall@20: candidate" in result.output
    assert _active(store_settings) == "als_v1"
    forced = runner.invoke(app, [*_cli(week1, tmp_path, artifacts), "--force"], env=crippled)
    assert forced.exit_code == 0, forced.output
    assert "--force: publishing whatever" in forced.output and "forced past: recall@20" in forced.output
    assert _active(store_settings) == "als_v2"


def test_a_second_retrain_while_one_holds_the_lock_stops_with_a_message(world: Path, tmp_path: Path) -> None:
    artifacts, store_settings = _live(world, tmp_path)

    _hold_lock(store_settings, "retrain on cron-host pid 1")
    week1 = pq.read_table(world / "week1.parquet")
    result = runner.invoke(app, _cli(week1, tmp_path, artifacts), env={"RECSYS_TWO_TOWER": "false"})
    assert result.exit_code == 5, result.output
    assert "another retrain holds the lock: retrain on cron-host pid 1" in result.output
    assert _active(store_settings) == "als_v1"


def test_the_same_log_again_has_nothing_new_and_history_shows_every_run(world: Path, tmp_path: Path) -> None:
    artifacts, _ = _live(world, tmp_path)
    week0 = pq.read_table(world / "week0.parquet")
    result = runner.invoke(app, _cli(week0, tmp_path, artifacts), env={"RECSYS_TWO_TOWER": "false"})
    assert result.exit_code == 0, result.output
    assert "nothing new to train on" in result.output
    shown = runner.invoke(app, ["history", "--artifacts", str(artifacts)])
    assert shown.exit_code == 0, shown.output
    assert "nothing_new" in shown.output and (artifacts / "retrains.png").stat().st_size > 1000


def _cli(table: pa.Table, tmp_path: Path, artifacts: Path) -> list[str]:
    path = tmp_path / f"log-{uuid.uuid4().hex[:6]}.parquet"
    pq.write_table(table, path)
    return ["retrain", "-i", str(path), "--artifacts", str(artifacts)]


def test_the_lock_of_a_retrain_that_died_on_this_host_is_taken_over(world: Path, tmp_path: Path) -> None:
    artifacts, store_settings = _live(world, tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    holder = f"retrain on {socket.gethostname()} pid {dead.pid} (0badc0de)"

    _hold_lock(store_settings, holder)
    week0 = pq.read_table(world / "week0.parquet")
    result = runner.invoke(app, _cli(week0, tmp_path, artifacts), env={"RECSYS_TWO_TOWER": "false"})
    assert result.exit_code == 0, result.output
    assert f"taking over the lock of a retrain that died: {holder}" in result.output


def test_on_the_embedded_store_the_events_a_server_recorded_reach_the_retrain(
    world: Path, tmp_path: Path
) -> None:
    """The server and the retrain are two processes sharing the artifacts folder (EVENTS.jsonl)."""
    artifacts, store_settings = _live(world, tmp_path)
    week1 = pq.read_table(world / "week1.parquet")
    newest = int(pc.max(week1["timestamp"]).as_py())
    server = EmbeddedStore(artifacts)
    events = [
        LiveEvent(f"walk-in-{n}", f"i{(n * 5 + j) % 400:06d}", 2.0, newest + 10 + n, "like")
        for n in range(4)
        for j in range(3)
    ]
    asyncio.run(server.record(events, request_id="from-the-server"))
    report = run_retrain(
        _log(week1, _settings(artifacts)), _settings(artifacts), store_settings, progress=lambda _: None
    )
    assert report.decision == "published", report.reasons
    assert report.record["data"]["stream_events_added"] == 12
    users = json.loads((artifacts / "als_v2" / "user_mapping.json").read_text())
    assert {f"walk-in-{n}" for n in range(4)} <= set(users)
