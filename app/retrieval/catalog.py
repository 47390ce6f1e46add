"""The run-time catalog as one version sees it: which of its rows may not be recommended now,
and which rows answer filters with changed attributes.

`CatalogState` is what a worker holds of the store's item records (feature_store/catalog.py),
brought up to date whenever a profile read shows a newer generation. `VersionCatalog` is a pure
function of those records, one version's item mapping and the clock: the blocked rows (hidden,
deleted, not yet or no longer available) as a sorted row list and as a bitmap of the visible
rows, the rows whose attributes were replaced, and until when this holds (the next availability
boundary, so an expiry takes effect with no write at all).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from app.retrieval import bitmaps
from feature_store.base import FeatureStore
from feature_store.catalog import AttributeValue, CatalogChanges, ItemRecord


@dataclass(frozen=True)
class VersionCatalog:
    """One version's view of the catalog records at one moment."""

    n_items: int
    blocked: np.ndarray  # rows that may not be recommended now (sorted int64)
    visible: np.ndarray | None  # packed bitmap of the other rows; None when nothing is blocked
    overrides: Mapping[int, Mapping[str, AttributeValue]]  # row -> its attributes now
    valid_until: float  # the first moment an availability window opens or closes

    @property
    def is_empty(self) -> bool:
        return not len(self.blocked) and not self.overrides


EMPTY_CATALOG = VersionCatalog(0, np.empty(0, np.int64), None, {}, math.inf)


def version_catalog(
    records: Mapping[str, ItemRecord], item_rows: Mapping[str, int], n_items: int, now: float
) -> VersionCatalog:
    """Pure: the records applied to one version's rows at `now`. Records of items the version
    does not know change nothing here (they matter to the next training run)."""
    blocked: list[int] = []
    overrides: dict[int, Mapping[str, AttributeValue]] = {}
    valid_until = math.inf
    for item_id, record in records.items():
        row = item_rows.get(item_id)
        if row is None:
            continue
        if record.blocked_reason(now) is not None:
            blocked.append(row)
        if record.attributes is not None:
            overrides[row] = record.attributes
        valid_until = min(valid_until, record.next_change(now))
    rows = np.unique(np.asarray(blocked, np.int64))
    visible = bitmaps.invert(bitmaps.from_rows(n_items, rows), n_items) if len(rows) else None
    return VersionCatalog(n_items, rows, visible, overrides, valid_until)


@dataclass
class CatalogState:
    """The store's catalog records as this worker last read them, and each served version's
    view of them (rebuilt when the records change or the clock passes a window's boundary)."""

    generation: int = 0
    records: dict[str, ItemRecord] = field(default_factory=dict)
    _views: dict[str, tuple[int, VersionCatalog]] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def apply(self, changes: CatalogChanges) -> None:
        for record in changes.records:
            held = self.records.get(record.item_id)
            if held is None or record.seq >= held.seq:
                self.records[record.item_id] = record
        self.generation = max(self.generation, changes.generation)

    async def sync(self, store: FeatureStore, generation: int | None, timeout_s: float) -> None:
        """Read the records written since what this worker holds, when `generation` (from a
        profile read) is newer. Concurrent requests share one read. A store that fails leaves
        the state as it was: serving goes on with the catalog it knows."""
        if generation is None or generation <= self.generation:
            return
        async with self._lock:
            if generation <= self.generation:
                return
            async with asyncio.timeout(timeout_s):
                self.apply(await store.catalog_changes(self.generation))

    def view(self, version: str, item_rows: Mapping[str, int], n_items: int) -> VersionCatalog:
        now = time.time()
        held = self._views.get(version)
        if held is not None and held[0] == self.generation and now < held[1].valid_until:
            return held[1]
        view = version_catalog(self.records, item_rows, n_items, now) if self.records else EMPTY_CATALOG
        if len(self._views) > 16:  # versions come and go; a worker serves a handful at most
            self._views.clear()
        self._views[version] = (self.generation, view)
        return view
