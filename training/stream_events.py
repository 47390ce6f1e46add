"""The events recorded at run time (`POST /interactions`), read back from the store's stream as a
log the retrain can train on.

Stream entries are bytes from the store: each field is validated, and an entry that is not a
well-formed event (a foreign writer, a torn entry) is counted and skipped, never trusted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from feature_store.base import FeatureStore, StreamEntry
from training.interaction_log import InteractionLog, from_table

MAX_ID_CHARS = 256
PAGE = 10_000


async def read_stream(store: FeatureStore) -> list[StreamEntry]:
    """Every entry the stream still holds, oldest first (it keeps the newest `stream_maxlen`)."""
    entries: list[StreamEntry] = []
    after = "0"
    while True:
        page = await store.read_events(after, PAGE)
        entries.extend(page)
        if len(page) < PAGE:
            return entries
        after = page[-1].entry_id


@dataclass(frozen=True)
class StreamLog:
    log: InteractionLog | None  # None: no usable entry newer than the cut
    used: int  # entries taken
    older: int  # entries at or before the cut (already in the training log)
    invalid: int  # entries skipped as malformed


def _event(fields: dict[str, str]) -> tuple[str, str, float, int, str | None] | None:
    try:
        user, item = fields["user_id"], fields["item_id"]
        weight, stamp = float(fields["weight"]), float(fields["timestamp"])
    except (KeyError, ValueError, TypeError):
        return None
    if not (0 < len(user) <= MAX_ID_CHARS and 0 < len(item) <= MAX_ID_CHARS):
        return None
    if not (math.isfinite(weight) and math.isfinite(stamp) and stamp > 0):
        return None
    kind = fields.get("event_type")
    return user, item, weight, int(stamp), kind[:64] if kind else None


def stream_log(entries: Sequence[StreamEntry], newer_than: int | None) -> StreamLog:
    """The entries newer than `newer_than` (the training log's newest event: older ones are taken
    to be in the log already) as a log with weights and event types."""
    rows = []
    older = invalid = 0
    for entry in entries:
        event = _event(entry.fields)
        if event is None:
            invalid += 1
        elif newer_than is not None and event[3] <= newer_than:
            older += 1
        else:
            rows.append(event)
    if not rows:
        return StreamLog(None, 0, older, invalid)
    users, items, weights, stamps, kinds = zip(*rows, strict=True)
    table = pa.table(
        {
            "user_id": pa.array(users, pa.string()),
            "item_id": pa.array(items, pa.string()),
            "weight": pa.array(weights, pa.float64()),
            "timestamp": pa.array(stamps, pa.int64()),
            "event_type": pa.array(kinds, pa.string()),
        }
    )
    return StreamLog(from_table(table, {}, source="the event stream"), len(rows), older, invalid)
