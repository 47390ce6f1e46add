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
