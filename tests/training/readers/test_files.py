import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from training.errors import TrainingInputError, UnknownEventTypesError
from training.events import DEFAULT_EVENT_WEIGHTS
from training.readers import read_interactions


def test_csv_ids_stay_strings_even_when_they_look_numeric(tmp_path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,weight\n007,0042,1\n7,42,2\n")
    log = read_interactions(str(path), {})
    assert sorted(log.user_ids.tolist()) == ["007", "7"]
    assert sorted(log.item_ids.tolist()) == ["0042", "42"]


def test_parquet_with_event_types_and_iso_timestamps(tmp_path) -> None:
    table = pa.table(
        {
            "user_id": ["a1b2c3d4-0000-4000-8000-000000000001"] * 2,
            "item_id": ["x", "y"],
            "event_type": ["like", "view"],
            "timestamp": ["2024-05-01T12:00:00", "2024-05-02T12:00:00"],
        }
    )
    pq.write_table(table, tmp_path / "log.parquet")
    log = read_interactions(str(tmp_path / "log.parquet"), DEFAULT_EVENT_WEIGHTS)
    assert log.weights.tolist() == [2.0, 0.5]
    assert log.timestamps.tolist() == [1714564800, 1714651200]


def test_missing_columns_are_named(tmp_path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("user,item_id,weight\n1,2,3\n")
    with pytest.raises(TrainingInputError, match="missing column.*user_id.*found user, item_id, weight"):
        read_interactions(str(path), {})


def test_a_log_without_weight_or_event_type_is_refused(tmp_path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id\n1,2\n")
    with pytest.raises(TrainingInputError, match="'weight' or an 'event_type'"):
        read_interactions(str(path), {})


def test_non_numeric_weights_are_refused(tmp_path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,weight\n1,2,lots\n")
    with pytest.raises(TrainingInputError, match="weight"):
        read_interactions(str(path), {})


def test_unknown_events_in_a_file_are_reported(tmp_path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,event_type\n1,2,view\n1,3,share\n")
    with pytest.raises(UnknownEventTypesError, match="'share' x1"):
        read_interactions(str(path), DEFAULT_EVENT_WEIGHTS)
    log = read_interactions(str(path), DEFAULT_EVENT_WEIGHTS, drop_unknown_events=True)
    assert len(log) == 1 and log.dropped_unknown_events == {"share": 1}


def test_missing_file_and_unknown_format_are_clear(tmp_path) -> None:
    with pytest.raises(TrainingInputError, match="no such file"):
        read_interactions(str(tmp_path / "nope.csv"), {})
    (tmp_path / "log.xlsx").write_text("x")
    with pytest.raises(TrainingInputError, match="unknown file type"):
        read_interactions(str(tmp_path / "log.xlsx"), {})


T = 1_767_225_600  # 2026-01-01T00:00:00Z


@pytest.mark.parametrize("unit", ["ms", "us", "ns"])
@pytest.mark.parametrize("tz", [None, "UTC"])
def test_parquet_sub_second_timestamps_are_read_not_refused(tmp_path, unit: str, tz: str | None) -> None:
    scale = {"ms": 10**3, "us": 10**6, "ns": 10**9}[unit]
    table = pa.table(
        {
            "user_id": ["u1", "u2"],
            "item_id": ["i1", "i2"],
            "event_type": ["like", "view"],
            "timestamp": pa.array([T * scale + 123, (T + 7) * scale + 999], pa.timestamp(unit, tz=tz)),
        }
    )
    pq.write_table(table, tmp_path / "log.parquet")
    log = read_interactions(str(tmp_path / "log.parquet"), DEFAULT_EVENT_WEIGHTS)
    assert log.timestamps.tolist() == [T, T + 7]
    assert any("taken as UTC" in n for n in log.notes) == (tz is None)


def test_csv_iso_times_with_fractions_and_offsets(tmp_path) -> None:
    path = tmp_path / "log.csv"
    path.write_text(
        "user_id,item_id,event_type,timestamp\n"
        "u1,i1,view,2026-01-01T00:00:01.687321+00:00\n"
        "u1,i2,like,2026-01-01T01:00:02.5+01:00\n"
    )
    assert read_interactions(str(path), DEFAULT_EVENT_WEIGHTS).timestamps.tolist() == [T + 1, T + 2]


@pytest.mark.parametrize("scale, unit", [(1, "seconds"), (1000, "milliseconds")])
def test_csv_epoch_numbers_in_seconds_or_milliseconds(tmp_path, scale: int, unit: str) -> None:
    path = tmp_path / "log.csv"
    path.write_text(f"user_id,item_id,weight,timestamp\nu1,i1,1,{T * scale}\nu2,i1,1,{(T + 3) * scale}\n")
    log = read_interactions(str(path), {})
    assert log.timestamps.tolist() == [T, T + 3]
    assert f"epoch {unit}" in log.notes[0]


def test_empty_csv_ids_stop_the_run_with_the_count_an_example_and_the_option(tmp_path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,weight\nu1,i1,1\n,i2,1\n  ,i3,1\nu2,,1\nu3,i1,\n")
    with pytest.raises(TrainingInputError) as err:
        read_interactions(str(path), {})
    message = str(err.value)
    assert "4 of 5 rows" in message and "2 without a user_id" in message
    assert "1 without an item_id" in message and "1 with an empty or non-numeric weight" in message
    assert "row 2" in message and "--drop-invalid-rows" in message


def test_invalid_rows_are_dropped_and_counted_when_asked(tmp_path) -> None:
    path = tmp_path / "log.csv"
    path.write_text(
        "user_id,item_id,weight,timestamp\nu1,i1,1,2026-01-01T00:00:00Z\n,i2,1,2026-01-01T00:00:00Z\n"
        "u2,i2,1,not a date\nu2,i1,1,1970-01-01T00:00:00Z\n"
    )
    log = read_interactions(str(path), {}, drop_invalid_rows=True)
    assert len(log) == 1 and log.user_ids.tolist() == ["u1"]
    assert log.dropped_invalid_rows == {
        "without a user_id": 1,
        "with an empty or unparseable timestamp": 1,
        "with a timestamp outside 1990 to next year": 1,
    }


def test_a_latin1_csv_is_refused_with_the_fix(tmp_path) -> None:
    path = tmp_path / "log.csv"
    path.write_bytes("user_id,item_id,weight\nJos\xe9,caf\xe9,1\n".encode("latin-1"))
    with pytest.raises(TrainingInputError, match="UTF-8"):
        read_interactions(str(path), {})


def test_unicode_ids_survive(tmp_path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,weight\nJosé,咖啡,1\nZoë 🙂,咖啡,2\n", encoding="utf-8")
    log = read_interactions(str(path), {})
    assert sorted(log.user_ids.tolist()) == ["José", "Zoë 🙂"] and log.item_ids.tolist() == ["咖啡"]
