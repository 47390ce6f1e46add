"""Event types and their weights (the seed's table), and turning event labels into weights."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from feature_store.confidence import DEFAULT_EVENT_WEIGHTS
from training.errors import UnknownEventTypesError

__all__ = ["DEFAULT_EVENT_WEIGHTS", "event_weights_for"]


def event_weights_for(
    event_types: pa.Array | pa.ChunkedArray,
    weights: dict[str, float],
    *,
    drop_unknown: bool = False,
) -> tuple[np.ndarray, dict[str, int]]:
    """Map each event label to its weight.

    Returns `(weights, unknown_counts)`. Unknown labels raise `UnknownEventTypesError` with their
    counts, unless `drop_unknown` is set, in which case their rows get NaN (the caller removes
    them) and the counts are returned so the drop is reported, never silent.
    """
    labels = pc.utf8_lower(pc.utf8_trim_whitespace(pc.cast(event_types, pa.string())))
    encoded = pc.dictionary_encode(labels)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    vocab = encoded.dictionary.to_pylist()
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    lookup = np.array([weights.get(label, np.nan) for label in vocab] + [np.nan], dtype=np.float64)
    values = lookup[codes]  # code -1 (null) hits the trailing NaN
    unknown = np.isnan(values)
    counts: dict[str, int] = {}
    if unknown.any():
        bad_codes, bad_counts = np.unique(codes[unknown], return_counts=True)
        for code, count in zip(bad_codes.tolist(), bad_counts.tolist(), strict=True):
            counts["<missing>" if code < 0 else vocab[code]] = int(count)
        if not drop_unknown:
            raise unknown_events_error(counts, weights)
    return values.astype(np.float32), counts


def unknown_events_error(counts: dict[str, int], weights: dict[str, float]) -> UnknownEventTypesError:
    """The one message for unknown event labels, whichever engine read them."""
    listed = ", ".join(f"'{k}' x{v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
    known = ", ".join(f"{k}={v:g}" for k, v in weights.items())
    return UnknownEventTypesError(
        f"Unknown event types: {listed}. Known weights: {known}. Give them a weight with "
        "--event-weight NAME=VALUE, or pass --drop-unknown-events to skip those rows."
    )


def parse_weight_overrides(pairs: list[str] | None) -> dict[str, float]:
    """`["like=3", "share=1.5"]` -> {"like": 3.0, "share": 1.5}, with a clear error otherwise."""
    result: dict[str, float] = {}
    for raw in pairs or []:
        name, sep, value = raw.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            result[name.strip().lower()] = float(value)
        except ValueError:
            raise UnknownEventTypesError(
                f"--event-weight '{raw}': expected NAME=NUMBER, e.g. --event-weight share=1.5"
            ) from None
    return result
