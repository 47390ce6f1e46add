"""`recsys train --engine spark` end to end: a version folder the service cannot tell apart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from app.versions import load_serving_version
from tests.training.spark.conftest import require_spark
from training.events import DEFAULT_EVENT_WEIGHTS
from training.synthetic import SyntheticConfig, generate

PINNED = [
    "--factors",
    "16",
    "--regularization",
    "5",
    "--alpha",
    "4",
    "--iterations",
    "5",
    "--scaling",
    "log",
    "--popularity-discount",
    "0",
]


def _train(log: Path, artifacts: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "training.cli", "train", "-i", str(log), "--artifacts", str(artifacts)]
    return subprocess.run(
        [*command, *PINNED, *extra],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "RECSYS_SPARK_DRIVER_MEMORY": "1g"},
        check=False,
    )


def test_spark_version_has_the_implicit_versions_files_and_serves(tmp_path: Path) -> None:
    require_spark()
    data = generate(SyntheticConfig(users=800, items=200, interactions=12_000, clusters=4, seed=9))
    log = tmp_path / "log.parquet"
    pq.write_table(data.interactions, log)
    spark = _train(
        log,
        tmp_path / "spark",
        "--engine",
        "spark",
        "--master",
        "local[2]",
        "--spark-partitions",
        "2",
        "--spark-reg-param",
        "0.5",
    )
    assert spark.returncode == 0, spark.stderr[-3000:]
    implicit = _train(log, tmp_path / "implicit")
    assert implicit.returncode == 0, implicit.stderr[-3000:]

    ours, theirs = tmp_path / "implicit" / "als_v1", tmp_path / "spark" / "als_v1"
    # Not from Spark: implicit's own model object (MLlib's lives in the JVM) and the per-iteration
    # loss curve (MLlib reports no iterations). Nothing that publish or the service reads.
    implicit_only = {"model.npz", "training_curve.png"}
    assert {p.name for p in theirs.iterdir()} == {p.name for p in ours.iterdir()} - implicit_only
    manifest = json.loads((theirs / "manifest.json").read_text())
    hyper = manifest["hyperparameters"]
    assert hyper["engine"] == "spark" and hyper["spark_alpha"] == 1.0 and hyper["alpha"] == 4.0
    assert hyper["spark_reg_param"] == 0.5, "--spark-reg-param reaches MLlib as given"
    assert (
        manifest["data_fingerprint"] == json.loads((ours / "manifest.json").read_text())["data_fingerprint"]
    )
    assert "als" in manifest["metrics"] and manifest["metrics"]["engine"] == "spark"
    version = load_serving_version(tmp_path / "spark", "als_v1", DEFAULT_EVENT_WEIGHTS)
    assert version.name == "als_v1"


def test_gpu_flag_with_spark_is_refused_with_a_reason(tmp_path: Path) -> None:
    result = _train(tmp_path / "missing.parquet", tmp_path / "a", "--engine", "spark", "--use-gpu")
    assert result.returncode != 0
    assert "--use-gpu is for the implicit engine" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_without_java_the_spark_engine_says_what_to_install(tmp_path: Path) -> None:
    pytest.importorskip("pyspark", reason="the [spark] extra is not installed")
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id,weight\na,x,1\nb,y,1\na,y,1\n")
    python_only = str(Path(sys.executable).parent)  # the venv's bin: no java on this PATH
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "training.cli",
            "train",
            "-i",
            str(log),
            "--artifacts",
            str(tmp_path / "a"),
            "--engine",
            "spark",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "JAVA_HOME"} | {"PATH": python_only},
        check=False,
    )
    assert result.returncode != 0
    assert "needs Java 17 or newer" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
