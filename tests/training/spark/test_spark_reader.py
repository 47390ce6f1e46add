"""Spark reads the same sources as the implicit engine and gives the very same dataset."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from tests.conftest import REQUIRE_SERVICES
from training.dataset import Dataset, build_dataset
from training.errors import TrainingInputError, UnknownEventTypesError
from training.events import DEFAULT_EVENT_WEIGHTS
from training.readers import read_interactions
from training.spark.reader import jdbc_options, read_with_spark
from training.spark.session import DEBIAN_POSTGRES_JAR
from training.synthetic import SyntheticConfig, generate


@pytest.fixture(scope="module")
def log_table() -> pa.Table:
    return generate(
        SyntheticConfig(users=400, items=120, interactions=6_000, clusters=4, seed=2)
    ).interactions


def _same_dataset(ours: Dataset, theirs: Dataset) -> None:
    assert theirs.fingerprint == ours.fingerprint
    assert theirs.user_ids.tolist() == ours.user_ids.tolist()
    assert ours.times is not None and theirs.times is not None
    assert np.array_equal(theirs.times, ours.times)


def test_parquet_read_in_spark_gives_the_implicit_engines_dataset(
    spark: Any, log_table: pa.Table, tmp_path: Path
) -> None:
    path = tmp_path / "log.parquet"
    pq.write_table(log_table, path)
    ours = build_dataset(read_interactions(str(path), DEFAULT_EVENT_WEIGHTS))
    theirs = build_dataset(read_with_spark(spark, str(path), DEFAULT_EVENT_WEIGHTS))
    _same_dataset(ours, theirs)


def test_csv_with_iso_times_and_numeric_looking_ids_keeps_ids_as_text(spark: Any, tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text(
        "user_id,item_id,event_type,timestamp\n"
        "007,01,like,2024-05-01T12:00:00\n"
        "7,01,view,2024-05-02T12:00:00\n"
        "007,01,view,2024-05-03T12:00:00\n"
        "7,1,like,2024-05-04T12:00:00\n"
    )
    ours = build_dataset(read_interactions(str(path), DEFAULT_EVENT_WEIGHTS))
    theirs = build_dataset(read_with_spark(spark, str(path), DEFAULT_EVENT_WEIGHTS))
    assert theirs.user_ids.tolist() == ["007", "7"]
    _same_dataset(ours, theirs)
    assert theirs.matrix[0, 0] == pytest.approx(2.0 + 0.5)  # like + view summed into one pair


def test_unknown_event_types_get_the_same_message_and_drop_counts(
    spark: Any, log_table: pa.Table, tmp_path: Path
) -> None:
    types = log_table["event_type"].to_pylist()
    types[:7] = ["bookmark"] * 7
    path = tmp_path / "log.parquet"
    pq.write_table(
        log_table.set_column(log_table.column_names.index("event_type"), "event_type", pa.array(types)), path
    )
    with pytest.raises(UnknownEventTypesError) as ours:
        read_interactions(str(path), DEFAULT_EVENT_WEIGHTS)
    with pytest.raises(UnknownEventTypesError) as theirs:
        read_with_spark(spark, str(path), DEFAULT_EVENT_WEIGHTS)
    assert str(theirs.value) == str(ours.value)
    log = read_with_spark(spark, str(path), DEFAULT_EVENT_WEIGHTS, drop_unknown_events=True)
    assert log.dropped_unknown_events == {"bookmark": 7}


def test_a_file_without_ids_names_the_missing_columns(spark: Any, tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("member,item_id,weight\na,b,1\n")
    with pytest.raises(TrainingInputError, match="missing column.*user_id"):
        read_with_spark(spark, str(path), DEFAULT_EVENT_WEIGHTS)


def test_a_missing_file_is_one_clear_line(spark: Any, tmp_path: Path) -> None:
    with pytest.raises(TrainingInputError, match="no such file"):
        read_with_spark(spark, str(tmp_path / "nope.parquet"), DEFAULT_EVENT_WEIGHTS)


def test_jdbc_options_keep_credentials_out_of_the_url() -> None:
    options = jdbc_options("postgresql+psycopg://app:s%40cret@db.internal:6543/shop", None)
    assert options["url"] == "jdbc:postgresql://db.internal:6543/shop"
    assert (options["user"], options["password"]) == ("app", "s@cret")
    assert "UserInteraction" in options["query"]
    with pytest.raises(TrainingInputError, match="postgresql:// URLs only"):
        jdbc_options("mysql://x@h/db", None)


@pytest.fixture
def pg_log(pg_url: str, log_table: pa.Table) -> Iterator[tuple[str, str]]:
    if not DEBIAN_POSTGRES_JAR.exists():
        message = (
            f"{DEBIAN_POSTGRES_JAR} missing (apt-get install libpostgresql-jdbc-java; scripts/test.sh does)"
        )
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    from sqlalchemy import create_engine, text

    name = f"spark_log_{uuid.uuid4().hex[:8]}"
    engine = create_engine(pg_url)
    stamps = log_table["timestamp"].to_pylist()
    rows = [
        {"u": u, "i": i, "e": e, "t": t}
        for u, i, e, t in zip(
            log_table["user_id"].to_pylist(),
            log_table["item_id"].to_pylist(),
            log_table["event_type"].to_pylist(),
            stamps,
            strict=True,
        )
    ]
    with engine.begin() as conn:
        conn.execute(text(f'CREATE TABLE "{name}" (user_id text, item_id text, event_type text, ts bigint)'))
        conn.execute(text(f'INSERT INTO "{name}" VALUES (:u, :i, :e, :t)'), rows)
    try:
        yield pg_url, f'SELECT user_id, item_id, event_type, ts AS "timestamp" FROM "{name}"'
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP TABLE "{name}"'))
        engine.dispose()


def test_postgres_through_spark_jdbc_gives_the_sql_readers_dataset(
    spark: Any, pg_log: tuple[str, str]
) -> None:
    url, query = pg_log
    ours = build_dataset(read_interactions(url, DEFAULT_EVENT_WEIGHTS, query=query))
    theirs = build_dataset(read_with_spark(spark, url, DEFAULT_EVENT_WEIGHTS, query=query))
    _same_dataset(ours, theirs)


def test_csv_files_written_by_arrow_read_the_same(spark: Any, log_table: pa.Table, tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    plain = pa.table(
        {name: pc.cast(log_table[name], pa.string()) for name in ("user_id", "item_id", "event_type")}
    )
    pacsv.write_csv(plain.append_column("timestamp", log_table["timestamp"]), path)
    ours = build_dataset(read_interactions(str(path), DEFAULT_EVENT_WEIGHTS))
    theirs = build_dataset(read_with_spark(spark, str(path), DEFAULT_EVENT_WEIGHTS))
    _same_dataset(ours, theirs)


T = 1_767_225_600  # 2026-01-01T00:00:00Z


def _web_log(stamps: pa.Array, users: list[str | None] | None = None) -> pa.Table:
    n = len(stamps)
    return pa.table(
        {
            "user_id": users or [f"u{i % 3}" for i in range(n)],
            "item_id": [f"i{i % 4}" for i in range(n)],
            "event_type": ["like"] * n,
            "timestamp": stamps,
        }
    )


@pytest.mark.parametrize("unit", ["ms", "us", "ns"])
@pytest.mark.parametrize("tz", [None, "UTC"])
def test_sub_second_parquet_times_read_as_the_implicit_engine_reads_them(
    spark: Any, tmp_path: Path, unit: str, tz: str | None
) -> None:
    scale = {"ms": 10**3, "us": 10**6, "ns": 10**9}[unit]
    stamps = pa.array([(T + 5 * i) * scale + scale // 3 for i in range(12)], pa.timestamp(unit, tz=tz))
    path = tmp_path / "log.parquet"
    pq.write_table(_web_log(stamps), path)
    ours = build_dataset(read_interactions(str(path), DEFAULT_EVENT_WEIGHTS))
    theirs = build_dataset(read_with_spark(spark, str(path), DEFAULT_EVENT_WEIGHTS))
    _same_dataset(ours, theirs)


@pytest.mark.parametrize("text", [str((T + 60) * 1000), "2026-01-01T00:01:00.687321+00:00"])
def test_csv_epoch_milliseconds_and_iso_fractions_match_the_implicit_engine(
    spark: Any, tmp_path: Path, text: str
) -> None:
    path = tmp_path / "log.csv"
    path.write_text(f"user_id,item_id,event_type,timestamp\nu1,i1,like,{text}\nu2,i1,like,{text}\n")
    ours = read_interactions(str(path), DEFAULT_EVENT_WEIGHTS)
    theirs = read_with_spark(spark, str(path), DEFAULT_EVENT_WEIGHTS)
    assert ours.timestamps.tolist() == [T + 60, T + 60]
    assert sorted(theirs.timestamps.tolist()) == [T + 60, T + 60]
    assert theirs.notes == ours.notes


def test_rows_without_ids_follow_the_same_policy_in_spark(spark: Any, tmp_path: Path) -> None:
    stamps = pa.array([T + i for i in range(9)], pa.timestamp("s", tz="UTC"))
    users = [None if i % 4 == 0 else f"u{i % 3}" for i in range(9)]
    path = tmp_path / "log.parquet"
    pq.write_table(_web_log(stamps, users), path)
    with pytest.raises(TrainingInputError, match="3 of 9 rows cannot be used \\(3 without a user_id\\)"):
        read_with_spark(spark, str(path), DEFAULT_EVENT_WEIGHTS)
    ours = read_interactions(str(path), DEFAULT_EVENT_WEIGHTS, drop_invalid_rows=True)
    theirs = read_with_spark(spark, str(path), DEFAULT_EVENT_WEIGHTS, drop_invalid_rows=True)
    assert theirs.dropped_invalid_rows == ours.dropped_invalid_rows == {"without a user_id": 3}
    _same_dataset(build_dataset(ours), build_dataset(theirs))
