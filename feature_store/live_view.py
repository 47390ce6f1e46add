"""Run-time events, kept once per user and folded into whichever version reads them.

An event accepted by `POST /interactions` is written once, under the user alone (never under a
model version), as `(time, weight, item id)`. Every version that serves the user afterwards, the
one live at the time, one published a second later, one rolled back to, one an A/B variant pins,
reads the same record and folds it into its own view here: it maps item ids to its own rows and
keeps the events newer than its training data (`since`, the version's `data_until`). So there is
no window in which a write lands under a version about to be replaced, and nothing to replay at
publish or at rollback: exactly once by construction, because each event is stored once (a
request id guards retries) and each view is a pure function of what is stored.

The interaction count that routes a user to a tier is one definition everywhere: **the number of
distinct items the version knows with a positive net weight**. Training counts a user's positive
pairs (`training/profiles.py`); live, an item the version knows whose summed live weight is
positive adds one unless training already counted it. Events of items the version does not know
and dislikes move no one to a warmer tier; 25 views of one item are one item.

Per user the record keeps the newest `cap` events (`RECSYS_LIVE_EVENTS_PER_USER`), so what one
request reads is bounded whatever a user or a client did; every event also goes to the stream the
next training run reads, so the cap bounds serving, not what is learnt.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from feature_store.base import UserProfile

_HEAD = struct.Struct("<df")  # event time (epoch seconds), weight; the item id follows as UTF-8


@dataclass(frozen=True)
class LiveRecord:
    """One stored run-time event, independent of any model version."""

    timestamp: float
    weight: float
    item_id: str

    def pack(self) -> bytes:
        return _HEAD.pack(self.timestamp, self.weight) + self.item_id.encode()

    @classmethod
    def unpack(cls, data: bytes) -> LiveRecord | None:
        """None for a value that is not a record (a store holding someone else's bytes)."""
        if len(data) < _HEAD.size:
            return None
        timestamp, weight = _HEAD.unpack_from(data)
        try:
            item_id = data[_HEAD.size :].decode()
        except UnicodeDecodeError:
            return None
        return cls(timestamp, weight, item_id)


@dataclass(frozen=True)
class LiveView:
    """What a version needs to fold run-time events into its view of a user."""

    item_rows: Mapping[str, int]
    since: float | None  # events at or before this time are in the version's training data


def unpack_records(values: Sequence[bytes]) -> list[LiveRecord]:
    records = (LiveRecord.unpack(v) for v in values)
    return [r for r in records if r is not None]


def fold_live(profile: UserProfile, records: Sequence[LiveRecord], view: LiveView, recent_limit: int) -> None:
    """Apply the records newer than the version's data to `profile` (published part already set).

    `live` counts those events; `seen` gains each known item once; the recent list gains every
    known event in order, trimmed to `recent_limit`; `count` gains the known items whose live net
    weight is positive and that training had not already counted (see the module docstring)."""
    fresh = [r for r in records if view.since is None or r.timestamp > view.since]
    profile.live = len(fresh)
    if not fresh:
        profile.recent_items = profile.recent_items[-recent_limit:]
        profile.recent_weights = profile.recent_weights[-recent_limit:]
        return
    net: dict[int, float] = {}
    rows: list[int] = []
    weights: list[float] = []
    for record in fresh:
        row = view.item_rows.get(record.item_id, -1)
        if row < 0:
            continue
        net[row] = net.get(row, 0.0) + record.weight
        rows.append(row)
        weights.append(record.weight)
    trained = set(np.asarray(profile.seen).tolist())
    new_items = [row for row in net if row not in trained]
    profile.count += sum(1 for row in new_items if net[row] > 0)
    if new_items:
        profile.seen = np.concatenate([np.asarray(profile.seen, np.int32), np.array(new_items, np.int32)])
    if rows:
        profile.recent_items = np.concatenate([profile.recent_items, np.array(rows, np.int32)])
        profile.recent_weights = np.concatenate([profile.recent_weights, np.array(weights, np.float32)])
    profile.recent_items = profile.recent_items[-recent_limit:]
    profile.recent_weights = profile.recent_weights[-recent_limit:]
