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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from app.retrieval import bitmaps
from app.retrieval.content_encoder import ContentEncoder
from feature_store.base import FeatureStore
from feature_store.catalog import AttributeValue, CatalogChanges, ItemRecord


@dataclass(frozen=True)
class NewItems:
    """Items added through the items API that the version was not trained on and that may be
    recommended now: by their content vector (from the version's content encoder) at once, by an
    ALS vector once their events are folded in (item_foldin.py). Their rows continue the
    version's: row `n_items + i` is `ids[i]`."""

    ids: list[str]
    attributes: list[Mapping[str, AttributeValue]]
    content: np.ndarray  # float32 len(ids) x (dim + 1): as the content index's rows (placed_row)
    has_content: np.ndarray  # bool per item: its metadata had a term the content model knows

    def __len__(self) -> int:
        return len(self.ids)


NO_NEW_ITEMS = NewItems([], [], np.empty((0, 0), np.float32), np.empty(0, bool))


@dataclass(frozen=True)
class VersionCatalog:
    """One version's view of the catalog records at one moment."""

    n_items: int
    blocked: np.ndarray  # rows that may not be recommended now (sorted int64)
    visible: np.ndarray | None  # packed bitmap of the other rows; None when nothing is blocked
    overrides: Mapping[int, Mapping[str, AttributeValue]]  # row -> its attributes now
    valid_until: float  # the first moment an availability window opens or closes
    new: NewItems = NO_NEW_ITEMS

    def item_id(self, row: int, item_ids: list[str]) -> str:
        return item_ids[row] if row < self.n_items else self.new.ids[row - self.n_items]


EMPTY_CATALOG = VersionCatalog(0, np.empty(0, np.int64), None, {}, math.inf)


NEIGHBOURS = 10  # trained items whose popularity a new item's prior borrows


def placed_row(vector: np.ndarray, content: np.ndarray) -> np.ndarray:
    """A new item's row of the content index: its unit content vector, and as its popularity
    share the mean share of its `NEIGHBOURS` nearest trained items by content. A share of 0 (it
    has no events yet) would bury it under any version whose validation chose a popularity
    prior; its neighbours' share is the best guess of how popular an item of its kind becomes."""
    cosine = content[:, :-1] @ vector
    near = np.argpartition(-cosine, NEIGHBOURS - 1)[:NEIGHBOURS] if len(cosine) > NEIGHBOURS else slice(None)
    share = float(np.mean(content[near, -1])) if len(cosine) else 0.0
    return np.append(vector, np.float32(share)).astype(np.float32)


Place = Callable[[ItemRecord], "np.ndarray | None"]  # a new item's content-index row, or None


def version_catalog(
    records: Mapping[str, ItemRecord],
    item_rows: Mapping[str, int],
    n_items: int,
    now: float,
    place: Place | None = None,
) -> VersionCatalog:
    """Pure: the records applied to one version's rows at `now`. Items the version does not
    know join as new items when `place` gives them a row of the content index (the version has
    a content model and their metadata a term it knows)."""
    blocked: list[int] = []
    overrides: dict[int, Mapping[str, AttributeValue]] = {}
    valid_until = math.inf
    new_ids: list[str] = []
    new_attributes: list[Mapping[str, AttributeValue]] = []
    new_vectors: list[np.ndarray | None] = []
    for item_id, record in records.items():
        valid_until = min(valid_until, record.next_change(now))
        row = item_rows.get(item_id)
        if row is None:
            if record.attributes is None or record.blocked_reason(now) is not None:
                continue
            new_ids.append(item_id)
            new_attributes.append(record.attributes)
            new_vectors.append(None if place is None else place(record))
            continue
        if record.blocked_reason(now) is not None:
            blocked.append(row)
        if record.attributes is not None:
            overrides[row] = record.attributes
    rows = np.unique(np.asarray(blocked, np.int64))
    visible = bitmaps.invert(bitmaps.from_rows(n_items, rows), n_items) if len(rows) else None
    new = NO_NEW_ITEMS
    if new_ids:
        width = next((len(v) for v in new_vectors if v is not None), 1)
        blank = np.zeros(width, np.float32)  # scores 0 against any query: never a content pick
        content = np.vstack([blank if v is None else v for v in new_vectors]).astype(np.float32)
        has_content = np.array([v is not None for v in new_vectors], bool)
        new = NewItems(new_ids, new_attributes, content, has_content)
    return VersionCatalog(n_items, rows, visible, overrides, valid_until, new)


@dataclass
class CatalogState:
    """The store's catalog records as this worker last read them, and each served version's
    view of them (rebuilt when the records change or the clock passes a window's boundary)."""

    generation: int = 0
    records: dict[str, ItemRecord] = field(default_factory=dict)
    _views: dict[str, tuple[int, VersionCatalog]] = field(default_factory=dict)
    # Per version, each new item's content row by (item id, record seq): encoded once.
    _placed: dict[str, dict[tuple[str, int], np.ndarray | None]] = field(default_factory=dict)
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

    def view(
        self,
        version: str,
        item_rows: Mapping[str, int],
        n_items: int,
        encoder: ContentEncoder | None = None,
        content: np.ndarray | None = None,
    ) -> VersionCatalog:
        """`content`: the version's content-index rows, which place new items (placed_row)."""
        now = time.time()
        held = self._views.get(version)
        if held is not None and held[0] == self.generation and now < held[1].valid_until:
            return held[1]
        place = None
        if encoder is not None and content is not None:
            cache = self._placed.setdefault(version, {})

            def place(record: ItemRecord) -> np.ndarray | None:
                key = (record.item_id, record.seq)
                if key not in cache:
                    assert encoder is not None and content is not None and record.attributes is not None
                    vector = encoder.encode(record.attributes)
                    cache[key] = None if vector is None else placed_row(vector, content)
                return cache[key]

        view = (
            version_catalog(self.records, item_rows, n_items, now, place)
            if self.records
            else replace(EMPTY_CATALOG, n_items=n_items)
        )
        if len(self._views) > 16:  # versions come and go; a worker serves a handful at most
            self._views.clear()
            self._placed = {version: self._placed.get(version, {})}
        self._views[version] = (self.generation, view)
        return view
