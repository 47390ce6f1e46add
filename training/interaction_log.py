"""The columnar interaction log every reader produces: `(user_id, item_id, weight, timestamp)`.

Ids are strings end to end (UUIDs in real life); internally they are dictionary-encoded once, so
10 million rows cost two int32 code arrays plus the distinct ids, not 20 million Python strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.errors import NoInteractionsError, TrainingInputError
from training.events import event_weights_for
from training.timestamps import NUMBER, EpochUnit, epoch_seconds

REQUIRED = ("user_id", "item_id")


@dataclass(frozen=True)
class InteractionLog:
    """One row per event. `weight` is already the numeric weight of the event."""

    user_codes: np.ndarray  # int32, index into user_ids
    item_codes: np.ndarray  # int32, index into item_ids
    user_ids: np.ndarray  # object array of str, distinct
    item_ids: np.ndarray  # object array of str, distinct
    weights: np.ndarray  # float32
    timestamps: np.ndarray | None  # int64 epoch seconds, or None when the source has none
    dropped_unknown_events: dict[str, int]
    dropped_invalid_rows: dict[str, int] = field(default_factory=dict)  # reason -> rows dropped
    notes: tuple[str, ...] = ()  # how the source was read (a time unit inferred, naive times as UTC)
    # Each row's event type (an index into event_types; -1 none), where the source named them:
    # the retrain's data checks compare their shares over time.
    event_codes: np.ndarray | None = None
    event_types: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.user_codes.shape[0])

    def subset(self, keep: np.ndarray) -> InteractionLog:
        """The rows where `keep` (a boolean mask) is true; the id vocabularies stay whole."""
        return replace(
            self,
            user_codes=self.user_codes[keep],
            item_codes=self.item_codes[keep],
            weights=self.weights[keep],
            timestamps=None if self.timestamps is None else self.timestamps[keep],
            event_codes=None if self.event_codes is None else self.event_codes[keep],
        )

    def event_type_counts(self) -> dict[str, int]:
        if self.event_codes is None:
            return {}
        counts = np.bincount(self.event_codes[self.event_codes >= 0], minlength=len(self.event_types))
        return {name: int(n) for name, n in zip(self.event_types, counts.tolist(), strict=True) if n}


def _encode(column: pa.ChunkedArray | pa.Array, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes and the distinct ids, in order of first appearance.

    One hash table over all chunks (unique, then index_in): dictionary-encoding each Parquet row
    group and unifying the dictionaries took 2.7x the memory (5.2 vs 1.9 GB for 20M rows of 5M
    users) and was what ran a 100M-event log out of 24 GB.
    """
    as_text = pc.cast(column, pa.string())
    if as_text.null_count:
        raise TrainingInputError(f"Column '{name}' has {as_text.null_count} empty values; ids are required.")
    distinct = pc.unique(as_text)
    indices = pc.index_in(as_text, value_set=distinct)
    chunks = indices.chunks if isinstance(indices, pa.ChunkedArray) else [indices]
    codes = (
        np.concatenate([chunk.to_numpy(zero_copy_only=False) for chunk in chunks]).astype(
            np.int32, copy=False
        )
        if chunks
        else np.empty(0, np.int32)
    )
    vocab = np.asarray(distinct.to_pylist(), dtype=object)
    return codes, vocab


DROP_OPTION = "--drop-invalid-rows (RECSYS_DROP_INVALID_ROWS=true)"
NO_USER, NO_ITEM, BAD_WEIGHT = (
    "without a user_id",
    "without an item_id",
    "with an empty or non-numeric weight",
)
UNPARSEABLE, OUT_OF_RANGE = (
    "with an empty or unparseable timestamp",
    "with a timestamp outside 1990 to next year",
)


def _missing_id(column: pa.ChunkedArray) -> np.ndarray:
    """Null, empty or blank ids: the same for a SQL NULL, an empty CSV cell and a Parquet null."""
    text = pc.utf8_trim_whitespace(pc.cast(column, pa.string()))
    blank = pc.fill_null(pc.equal(text, ""), True)
    return np.asarray(blank.to_numpy(zero_copy_only=False), dtype=bool)


def _numeric_weights(column: pa.ChunkedArray, source: str) -> np.ndarray:
    """The `weight` column as float32, NaN where a cell is empty or not a number."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        text = pc.utf8_trim_whitespace(column)
        number = pc.match_substring_regex(text, NUMBER)
        column = pc.cast(pc.if_else(pc.fill_null(number, False), text, None), pa.float64())
    try:
        values = pc.cast(column, pa.float32()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise TrainingInputError(f"{source}: column 'weight' must be numeric.") from None
    return np.asarray(values, dtype=np.float32)


def _row_example(table: pa.Table, row: int) -> str:
    values = table.slice(row, 1).to_pylist()[0]
    shown = ", ".join(
        f"{k}={v!r}" if v is None or isinstance(v, str) else f"{k}={v}"
        for k, v in values.items()
        if k in _SHOWN
    )
    return f"row {row + 1}: {shown}"


_SHOWN = ("user_id", "item_id", "event_type", "weight", "timestamp")


def _invalid_rows(
    table: pa.Table, reasons: dict[str, np.ndarray], *, drop: bool, source: str
) -> tuple[np.ndarray | None, dict[str, int]]:
    """One policy for every source: rows without ids, weights or usable times stop the run with
    counts and an example, or are dropped (and counted) when the user asked for it."""
    counts = {reason: int(mask.sum()) for reason, mask in reasons.items() if mask.any()}
    if not counts:
        return None, {}
    bad = np.logical_or.reduce(list(reasons.values()))
    if drop:
        return bad, counts
    raise invalid_rows_error(
        source, int(bad.sum()), table.num_rows, counts, _row_example(table, int(np.flatnonzero(bad)[0]))
    )


def invalid_rows_error(
    source: str, bad: int, rows: int, counts: dict[str, int], example: str
) -> TrainingInputError:
    """The one message for unusable rows, whichever engine read them."""
    listed = ", ".join(f"{n:,} {reason}" for reason, n in counts.items())
    hint = (
        " If the times are epoch numbers in another unit, set --timestamp-unit."
        if OUT_OF_RANGE in counts
        else ""
    )
    return TrainingInputError(
        f"{source}: {bad:,} of {rows:,} rows cannot be used ({listed}); first {example}. Fix them at "
        f"the source, or pass {DROP_OPTION} to skip them (counted in the report).{hint}"
    )


def from_table(
    table: pa.Table,
    event_weights: dict[str, float],
    *,
    drop_unknown_events: bool = False,
    drop_invalid_rows: bool = False,
    timestamp_unit: EpochUnit = EpochUnit.auto,
    source: str = "input",
) -> InteractionLog:
    """Validate a table with `user_id, item_id` and `weight` or `event_type` (+ optional `timestamp`)."""
    names = [n.lower() for n in table.column_names]
    table = table.rename_columns(names)
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise TrainingInputError(
            f"{source}: missing column(s) {', '.join(missing)}; found {', '.join(names) or 'none'}. "
            "Expected user_id, item_id and weight or event_type (timestamp optional)."
        )
    if "weight" not in names and "event_type" not in names:
        raise TrainingInputError(
            f"{source}: needs a 'weight' or an 'event_type' column; found {', '.join(names)}."
        )
    if table.num_rows == 0:
        raise NoInteractionsError(
            f"No interactions found in {source}. Record some events (views, likes, ...) first."
        )
    reasons = {
        NO_USER: _missing_id(table["user_id"]),
        NO_ITEM: _missing_id(table["item_id"]),
    }
    weights: np.ndarray | None = None
    if "weight" in names:
        weights = _numeric_weights(table["weight"], source)
        reasons[BAD_WEIGHT] = np.isnan(weights)
    notes: tuple[str, ...] = ()
    stamps = None
    if "timestamp" in names:
        times = epoch_seconds(table["timestamp"], timestamp_unit)
        reasons[UNPARSEABLE] = times.invalid
        reasons[OUT_OF_RANGE] = times.implausible
        stamps, notes = times.seconds, tuple(times.notes)
    bad, dropped_invalid = _invalid_rows(table, reasons, drop=drop_invalid_rows, source=source)
    if bad is not None:
        keep = ~bad
        if not keep.any():
            raise NoInteractionsError(f"No interactions found in {source}: every row was invalid.")
        table = table.filter(pa.array(keep))
        weights = None if weights is None else weights[keep]
        stamps = None if stamps is None else stamps[keep]
    dropped: dict[str, int] = {}
    if weights is None:
        weights, dropped = event_weights_for(
            table["event_type"], event_weights, drop_unknown=drop_unknown_events
        )
    event_codes, event_types = _event_codes(table["event_type"]) if "event_type" in names else (None, ())
    user_codes, user_ids = _encode(table["user_id"], "user_id")
    item_codes, item_ids = _encode(table["item_id"], "item_id")
    log = InteractionLog(
        user_codes,
        item_codes,
        user_ids,
        item_ids,
        weights,
        stamps,
        dropped,
        dropped_invalid,
        notes,
        event_codes,
        event_types,
    )
    return _without_rows(log, np.isnan(weights)) if dropped else log


def _event_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Event types as small codes, spelled as the weights read them (trimmed, lower case)."""
    labels = pc.utf8_lower(pc.utf8_trim_whitespace(pc.cast(column, pa.string())))
    encoded = pc.dictionary_encode(labels).combine_chunks()
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int16)
    return codes, tuple(str(v) for v in encoded.dictionary.to_pylist())


def concat_logs(first: InteractionLog, second: InteractionLog) -> InteractionLog:
    """Both logs' rows in one (the training log and the events recorded at run time): ids and
    event types united by value, timestamps kept where both have them."""
    user_ids, second_users = _united(first.user_ids, second.user_ids)
    item_ids, second_items = _united(first.item_ids, second.item_ids)
    event_codes = None
    event_types: tuple[str, ...] = ()
    if first.event_codes is not None or second.event_codes is not None:
        event_types = tuple(dict.fromkeys((*first.event_types, *second.event_types)))
        position = {name: i for i, name in enumerate(event_types)}

        def recoded(log: InteractionLog) -> np.ndarray:
            if log.event_codes is None:
                return np.full(len(log), -1, np.int16)
            table = np.array([position[t] for t in log.event_types] + [-1], np.int16)
            return table[log.event_codes]  # code -1 hits the trailing -1

        event_codes = np.concatenate([recoded(first), recoded(second)])
    both_timed = first.timestamps is not None and second.timestamps is not None
    return InteractionLog(
        np.concatenate([first.user_codes, second_users[second.user_codes]]).astype(np.int32),
        np.concatenate([first.item_codes, second_items[second.item_codes]]).astype(np.int32),
        user_ids,
        item_ids,
        np.concatenate([first.weights, second.weights]).astype(np.float32),
        np.concatenate([first.timestamps, second.timestamps]) if both_timed else None,
        {**first.dropped_unknown_events, **second.dropped_unknown_events},
        {**first.dropped_invalid_rows, **second.dropped_invalid_rows},
        (*first.notes, *second.notes),
        event_codes,
        event_types,
    )


def _united(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`first` then the ids of `second` it lacks, and where each id of `second` sits in it."""
    found = pc.index_in(pa.array(second.astype(str)), value_set=pa.array(first.astype(str)))
    where = pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    new = where < 0
    where[new] = len(first) + np.arange(int(new.sum()))
    return np.concatenate([first, second[new]]).astype(object), where


def _without_rows(log: InteractionLog, drop: np.ndarray) -> InteractionLog:
    keep = ~drop
    if not keep.any():
        raise NoInteractionsError("No interactions found: every row had an unknown event type.")
    return log.subset(keep)


def from_arrays(
    user_ids: np.ndarray | list[str],
    item_ids: np.ndarray | list[str],
    weights: np.ndarray | None = None,
    timestamps: np.ndarray | None = None,
) -> InteractionLog:
    """Build a log from plain arrays (tests, loaders of fixed formats)."""
    columns: dict[str, pa.Array] = {
        "user_id": pa.array(np.asarray(user_ids).astype(str)),
        "item_id": pa.array(np.asarray(item_ids).astype(str)),
        "weight": pa.array(
            np.ones(len(user_ids), np.float32) if weights is None else np.asarray(weights, np.float32)
        ),
    }
    if timestamps is not None:
        columns["timestamp"] = pa.array(np.asarray(timestamps, dtype=np.int64))
    return from_table(pa.table(columns), {}, timestamp_unit=EpochUnit.s)
