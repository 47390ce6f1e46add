"""Event times in every form a real log carries land as whole epoch seconds, or stop the run."""

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from training.errors import TrainingInputError
from training.timestamps import EpochUnit, epoch_seconds, infer_unit

T = 1_767_225_600  # 2026-01-01T00:00:00Z
NOW = T + 86_400


@pytest.mark.parametrize("unit, scale", [("s", 1), ("ms", 10**3), ("us", 10**6), ("ns", 10**9)])
@pytest.mark.parametrize("tz", [None, "UTC", "Europe/Berlin"])
def test_arrow_timestamps_of_any_unit_and_zone_floor_to_seconds(
    unit: str, scale: int, tz: str | None
) -> None:
    ticks = [T * scale + scale // 2, (T + 1) * scale]
    times = epoch_seconds(pa.array(ticks, pa.timestamp(unit, tz=tz)), now=NOW)
    assert times.seconds.tolist() == [T, T + 1]
    assert not times.invalid.any() and not times.implausible.any()
    assert any("without a time zone" in n for n in times.notes) == (tz is None)


NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}


@pytest.mark.parametrize("unit, scale", [("s", 1), ("ms", 10**3), ("us", 10**6), ("ns", 10**9)])
def test_the_unit_of_epoch_integers_is_inferred_from_their_magnitude(unit: str, scale: int) -> None:
    times = epoch_seconds(pa.array([T * scale, (T + 60) * scale + scale - 1]), now=NOW)
    assert times.seconds.tolist() == [T, T + 60]
    assert infer_unit(T * scale, now=NOW) == EpochUnit(unit)
    assert f"epoch {NAMES[unit]}" in times.notes[0]


def test_epoch_milliseconds_are_not_taken_for_seconds_fifty_thousand_years_ahead() -> None:
    times = epoch_seconds(pa.array([1767225600000, 1767225600999]), now=NOW)
    assert times.seconds.tolist() == [T, T]


def test_decimal_epoch_seconds_and_numbers_written_as_text() -> None:
    assert epoch_seconds(pa.array([T + 0.75, T + 1.5]), now=NOW).seconds.tolist() == [T, T + 1]
    assert epoch_seconds(pa.array([str(T * 1000), " ", None]), now=NOW).seconds.tolist()[0] == T


def test_iso_strings_with_fractions_offsets_and_none_mixed() -> None:
    column = pa.array(
        [
            "2026-01-01T00:00:00.687321+00:00",
            "2026-01-01T02:00:01.5+02:00",
            "2026-01-01T00:00:02Z",
            "2026-01-01 00:00:03",
            "2026-01-01",
        ]
    )
    times = epoch_seconds(column, now=NOW)
    assert times.seconds.tolist() == [T, T + 1, T + 2, T + 3, T]
    assert times.notes == ["timestamp: times without a time zone taken as UTC"]


def test_unparseable_and_missing_times_are_marked_not_guessed() -> None:
    times = epoch_seconds(pa.array(["2026-01-01T00:00:00Z", "yesterday", None, ""]), now=NOW)
    assert times.invalid.tolist() == [False, True, True, True]


def test_a_minority_of_implausible_values_is_marked_for_the_row_policy() -> None:
    times = epoch_seconds(pa.array([T, T + 5, 0, T * 1000]), now=NOW)
    assert times.implausible.tolist() == [False, False, True, True]
    assert times.seconds[~times.implausible].tolist() == [T, T + 5]


def test_values_plausible_in_no_unit_stop_with_the_option_named() -> None:
    with pytest.raises(TrainingInputError, match="--timestamp-unit") as err:
        epoch_seconds(pa.array([5, 6, 7]), now=NOW)
    assert "'timestamp'" in str(err.value) and "6" in str(err.value)


def test_a_unit_set_by_the_user_wins_over_the_inference() -> None:
    times = epoch_seconds(pa.array([T * 1000]), EpochUnit.s, now=NOW)
    assert times.implausible.tolist() == [True]  # taken as seconds: far in the future
    assert epoch_seconds(pa.array([T * 1000]), EpochUnit.ms, now=NOW).seconds.tolist() == [T]


def test_dates_before_1990_are_implausible_whatever_their_type() -> None:
    old = datetime(1970, 1, 1, tzinfo=UTC)
    times = epoch_seconds(pa.array([old, datetime(2026, 1, 1, tzinfo=UTC)]), now=NOW)
    assert times.implausible.tolist() == [True, False]
    assert np.array_equal(times.seconds, [0, T])


def test_a_column_that_is_no_time_at_all_is_refused_by_type() -> None:
    with pytest.raises(TrainingInputError, match="not a time"):
        epoch_seconds(pa.array([[1], [2]]), now=NOW)
