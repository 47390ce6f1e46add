"""A run-time attribute value (items API) read the way the attribute table reads a column, so a
changed or new item passes a filter, and lands in a content bucket, exactly as it would have had
it been in the metadata file."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from feature_store.catalog import AttributeValue


def labels(value: AttributeValue) -> set[str]:
    """A replaced attribute's values as the attribute table spells them (a whole number as
    `3`, not `3.0`); missing is the empty set."""
    if value is None:
        return set()
    if isinstance(value, list):
        return {str(v) for v in value}
    if isinstance(value, float):
        return {str(int(value)) if value.is_integer() else str(value)}
    return {value}


def number(value: AttributeValue) -> float:
    """A replaced attribute's value as a number: as given, parsed from text, or an ISO date as
    epoch seconds (how the attribute table keeps dates); NaN (missing) when it is none of these."""
    if isinstance(value, float | int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            return math.nan
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        return stamp.timestamp()
    return math.nan
