"""Event times from any source as int64 epoch seconds, the one type training works in.

Real logs carry times in every form: PostgreSQL `timestamptz` with microseconds, Parquet
`timestamp[ms|us|ns]` with or without a zone, ISO 8601 strings with fractions and offsets, epoch
seconds from a Unix tool, epoch milliseconds from a JavaScript tracker. Every form lands here and
leaves as whole seconds (sub-second precision is dropped on purpose: it only breaks ties within a
second, which no model here uses), never refused for its precision.

Integers carry no unit, so it is inferred from their magnitude: a plausible event time lies between
1990 and a year from now, and in those bounds seconds, milliseconds, microseconds and nanoseconds
never overlap (each is a factor 1,000 apart, the window a factor ~1.9 wide). A column whose values
fit no unit, or mix units, stops the run with an example and the option that sets the unit: a log
taken as fifty thousand years ahead would silently break every time split and decay.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.errors import TrainingInputError

PLAUSIBLE_FROM = 631_152_000  # 1990-01-01T00:00:00Z
_YEAR = 366 * 86_400
# A decimal number as text (no surrounding blanks): one pattern for times, weights and attributes.
NUMBER = r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$"


class EpochUnit(StrEnum):
    """The unit of integer or decimal epoch times: inferred from the magnitude, or set."""

    auto = "auto"
    s = "s"
    ms = "ms"
    us = "us"
    ns = "ns"


PER_SECOND = {EpochUnit.s: 1, EpochUnit.ms: 10**3, EpochUnit.us: 10**6, EpochUnit.ns: 10**9}
UNIT_NAMES = {
    EpochUnit.s: "seconds",
    EpochUnit.ms: "milliseconds",
    EpochUnit.us: "microseconds",
    EpochUnit.ns: "nanoseconds",
}
OPTION = "--timestamp-unit / RECSYS_TIMESTAMP_UNIT"


@dataclass(frozen=True)
class EventTimes:
    """Epoch seconds per row, and which rows have no usable time.

    `invalid` rows are missing or unparseable; `implausible` rows parsed but fall outside 1990 to a
    year from now (an epoch 0 default, a value in another unit than the rest of the column). The
    caller applies one policy to both: stop with an example, or drop them when asked.
    """

    seconds: np.ndarray  # int64, 0 where invalid or implausible
    invalid: np.ndarray  # bool
    implausible: np.ndarray  # bool
    notes: list[str] = field(default_factory=list)  # how the column was read, said once to the user


def plausible_until(now: float | None = None) -> int:
    return int(now if now is not None else time.time()) + _YEAR


def _day(seconds: float) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d")
    except (OverflowError, OSError, ValueError):
        return "out of range"


def infer_unit(typical: float, now: float | None = None) -> EpochUnit | None:
    """The unit under which `typical` (say, the column's median) is a plausible event time."""
    until = plausible_until(now)
    for unit, scale in PER_SECOND.items():
        if PLAUSIBLE_FROM <= typical / scale <= until:
            return unit
    return None


def no_unit_error(column: str, value: object, row: int | None, now: float | None) -> TrainingInputError:
    """A column whose typical value is no plausible time in any unit: nothing to infer."""
    where = "" if row is None else f" (row {row + 1})"
    return TrainingInputError(
        f"Column '{column}': epoch values like {value!r}{where} are not a plausible event "
        f"time in seconds, milliseconds, microseconds or nanoseconds (event times fall between "
        f"1990-01-01 and {_day(plausible_until(now))}). Set the unit with {OPTION}, or fix the column."
    )


def _from_numbers(
    values: np.ndarray, valid: np.ndarray, unit: EpochUnit, column: str, now: float | None
) -> tuple[np.ndarray, list[str]]:
    """Epoch numbers (int64 or float64) in `unit` (auto: inferred from the median) to seconds."""
    notes: list[str] = []
    present = values[valid]
    if not len(present):
        return np.zeros(len(values), np.int64), notes
    if unit is EpochUnit.auto:
        inferred = infer_unit(float(np.median(present)), now)
        if inferred is None:
            middle = int(np.flatnonzero(valid)[np.argsort(present, kind="stable")[len(present) // 2]])
            raise no_unit_error(column, values[middle].item(), middle, now)
        unit = inferred
        notes.append(
            f"{column}: epoch {UNIT_NAMES[unit]} (inferred from the magnitude; set {OPTION} to override)"
        )
    scale = PER_SECOND[unit]
    if np.issubdtype(values.dtype, np.integer):
        seconds = np.floor_divide(values.astype(np.int64), scale)
    else:
        with np.errstate(invalid="ignore", over="ignore"):
            scaled = np.floor(np.where(valid, values, 0.0) / scale)
        seconds = np.clip(scaled, -(2**62), 2**62).astype(np.int64)
    return np.where(valid, seconds, 0), notes


def _parse_iso(text: pa.ChunkedArray | pa.Array) -> tuple[pa.Array, bool]:
    """ISO 8601 strings to timestamp[us, UTC]; unparseable ones null. Returns (times, any naive).

    Arrow parses a column whose strings all carry an offset, or all carry none, in one vectorised
    cast; a column mixing both (or holding garbage) is parsed per distinct value by Python's
    `fromisoformat`, which reads fractions, `Z` and offsets alike.
    """
    utc = pa.timestamp("us", tz="UTC")
    try:
        return pc.cast(text, utc), False
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    try:
        return pc.cast(pc.cast(text, pa.timestamp("us")), utc), True
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    distinct = pc.unique(text).to_pylist()
    parsed: list[int | None] = []
    naive = False
    for value in distinct:
        try:
            stamp = datetime.fromisoformat(value.strip()) if value is not None else None
        except ValueError:
            stamp = None
        if stamp is not None and stamp.tzinfo is None:
            naive = True
            stamp = stamp.replace(tzinfo=UTC)
        parsed.append(None if stamp is None else int(stamp.timestamp() * 1_000_000))
    lookup = pa.array(parsed, pa.int64())
    index = pc.index_in(text, value_set=pa.array(distinct, pa.string()))
    return pc.cast(pc.take(lookup, index), utc), naive


def _arrow_times(col: pa.ChunkedArray | pa.Array, column: str, naive: bool) -> tuple[np.ndarray, list[str]]:
    """Arrow timestamps or dates (any unit) to floored epoch seconds; naive ones taken as UTC."""
    notes = [f"{column}: times without a time zone taken as UTC"] if naive else []
    if pa.types.is_date(col.type):
        col = pc.cast(col, pa.timestamp("s"))
    ticks = pc.fill_null(pc.cast(col, pa.int64()), 0).to_numpy(zero_copy_only=False)
    scale = PER_SECOND[EpochUnit(col.type.unit)]
    return np.floor_divide(np.asarray(ticks, np.int64), scale), notes


def _mask(array: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.is_null(array).to_numpy(zero_copy_only=False), dtype=bool)


def epoch_seconds(
    column: pa.ChunkedArray | pa.Array,
    unit: EpochUnit = EpochUnit.auto,
    *,
    name: str = "timestamp",
    now: float | None = None,
) -> EventTimes:
    """Read one time column in any supported form; see the module docstring for the rules."""
    col = column
    if pa.types.is_dictionary(col.type):
        col = pc.cast(col, col.type.value_type)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        text = pc.utf8_trim_whitespace(pc.cast(col, pa.string()))
        text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
        filled = pc.drop_null(text)
        if len(filled) and pc.all(pc.match_substring_regex(filled, NUMBER)).as_py():
            col = pc.cast(text, pa.float64())  # epoch numbers written as text (a CSV, a text column)
        else:
            parsed, naive = _parse_iso(text)
            seconds, notes = _arrow_times(parsed, name, naive)
            return _bounded(seconds, _mask(parsed), notes, now)
    kind = col.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        seconds, notes = _arrow_times(col, name, pa.types.is_timestamp(kind) and kind.tz is None)
        return _bounded(seconds, _mask(col), notes, now)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        integral = pa.types.is_integer(kind)
        numbers = pc.cast(col, pa.int64() if integral else pa.float64())
        invalid = _mask(numbers)
        values = np.asarray(pc.fill_null(numbers, 0).to_numpy(zero_copy_only=False))
        if not integral:
            invalid |= ~np.isfinite(values)
        seconds, notes = _from_numbers(values, ~invalid, unit, name, now)
        return _bounded(seconds, invalid, notes, now)
    raise TrainingInputError(
        f"Column '{name}' has the type {kind}, which is not a time: use a timestamp or date column, "
        "epoch numbers, or ISO 8601 strings (2024-05-01T12:00:00.123+02:00)."
    )


def _bounded(seconds: np.ndarray, invalid: np.ndarray, notes: list[str], now: float | None) -> EventTimes:
    """Every form is held to the same window: 1990 to a year from now."""
    implausible = ~invalid & ((seconds < PLAUSIBLE_FROM) | (seconds > plausible_until(now)))
    bad = invalid | implausible
    return EventTimes(np.where(bad, 0, seconds).astype(np.int64), invalid, implausible, notes)
