"""The load-test command end to end, briefly: loadtest/run.py starts `recsys serve` on a
train-all version, drives it with the real locustfile headless, and prints the per-endpoint table
from locust's CSV. A scenario that fails, or a request name that never ran, fails this test."""

from __future__ import annotations

import asyncio
import csv
import subprocess
import sys
from pathlib import Path

import pytest

from feature_store.embedded_store import EmbeddedStore
from feature_store.publish import publish_version
from tests.builders import train_all_version

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = train_all_version(tmp_path_factory.mktemp("loadtest"))
    asyncio.run(publish_version(folder, EmbeddedStore(folder.parent)))
    return folder.parent


def _run(artifacts: Path, out: Path, *extra: str) -> str:
    command = [sys.executable, "loadtest/run.py", "--artifacts", str(artifacts), "--out", str(out), *extra]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_short_run_exercises_every_scenario_without_failures(artifacts: Path, tmp_path: Path) -> None:
    out = _run(
        artifacts, tmp_path, "--users", "6", "--spawn-rate", "6", "--duration", "6", "--variants", "default"
    )
    with (tmp_path / "users6_stats.csv").open() as fh:
        rows = {r["Name"]: r for r in csv.DictReader(fh)}
    names = {"new", "cold", "warm", "hot", "filters", "ab"}
    assert {f"/candidates [{n}]" for n in names} | {"/interactions", "Aggregated"} <= set(rows), sorted(rows)
    assert rows["Aggregated"]["Failure Count"] == "0", (tmp_path / "users6_failures.csv").read_text()
    assert (tmp_path / "users6.html").stat().st_size > 10_000
    assert "endpoint" in out and "p99 ms" in out and "/candidates [hot]" in out


def test_tags_run_one_scenario_and_a_sweep_prints_its_verdicts(artifacts: Path, tmp_path: Path) -> None:
    out = _run(artifacts, tmp_path, "--sweep", "2,4", "--duration", "3", "--tags", "hot")
    with (tmp_path / "users4_stats.csv").open() as fh:
        names = {r["Name"] for r in csv.DictReader(fh)}
    assert names == {"/candidates [hot]", "Aggregated"}
    assert "sweep (all requests; target p99 < 50 ms)" in out
    assert (tmp_path / "sweep.png").stat().st_size > 5_000
