"""What the items API changed at run time, carried into the next training run.

The store keeps one record per item changed through `/items` (feature_store/catalog.py). A
training run reads them so nothing is lost between run time and the retrain:
- a **deleted** item, or one whose availability ended, is dropped: its events leave the log,
  so the new version neither recommends it nor spends factors on it;
- a **hidden** item stays in training: hiding is reversible (sold out until Friday) and its
  events still say what its users like; the record keeps it out of every answer of the new
  version too, as it did of the old one;
- an item's **attributes** set at run time replace the metadata file's row, and items that exist
  only in the catalog (added through the API) join the metadata table, so filters and the
  content model see them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from feature_store.catalog import ItemRecord
from training.interaction_log import InteractionLog


@dataclass(frozen=True)
class CatalogState:
    records: dict[str, ItemRecord]
    source: str  # where they were read, for the report

    def dropped_ids(self, now: float) -> set[str]:
        """Items whose events training leaves out: deleted, or no longer available."""
        return {
            r.item_id
            for r in self.records.values()
            if r.deleted or (r.available_until is not None and r.available_until <= now)
        }


def read_catalog_state(artifacts: Path) -> CatalogState:
    """The store's records: Redis when RECSYS_REDIS_URL is set, else the artifacts folder's
    catalog file (the embedded store's). An unreachable store stops the run with its reason (a
    retrain that silently forgot the deleted items would serve them again)."""
    from feature_store.factory import open_store
    from feature_store.settings import StoreSettings

    settings = StoreSettings(artifacts=artifacts)

    async def read() -> dict[str, ItemRecord]:
        store = open_store(settings)
        try:
            return {r.item_id: r for r in (await store.catalog_changes(0)).records}
        finally:
            await store.close()

    records = asyncio.run(read())
    where = "redis" if settings.redis_url is not None else str(artifacts / "CATALOG.jsonl")
    return CatalogState(records, where)


def drop_items(log: InteractionLog, item_ids: set[str]) -> tuple[InteractionLog, int]:
    """The log without the events of `item_ids`; returns how many events left."""
    if not item_ids or not len(log):
        return log, 0
    gone = np.fromiter((i in item_ids for i in log.item_ids), bool, len(log.item_ids))
    keep = ~gone[log.item_codes]
    if keep.all():
        return log, 0
    kept = log.subset(keep)
    return kept, int((~keep).sum())


def merge_items(
    table: pa.Table | None, records: Mapping[str, ItemRecord], separator: str = "|"
) -> pa.Table | None:
    """The raw metadata table (before `prepare_items`) with run-time attributes: a record's
    attributes replace its row (every column: a PUT replaces the item whole), catalog-only items
    are appended, tags are joined with the file's list separator. An attribute the file lacks
    becomes a new column; a date column keeps its type (epoch seconds and ISO text converted)."""
    changed = {i: r.attributes for i, r in records.items() if r.attributes is not None and not r.deleted}
    if not changed:
        return table
    rows: dict[str, dict[str, Any]] = {}
    columns: list[str] = ["item_id"]
    types: dict[str, pa.DataType] = {}
    if table is not None:
        columns = list(table.column_names)
        types = {f.name: f.type for f in table.schema}
        for row in table.to_pylist():
            rows[str(row["item_id"])] = row
    for item_id, attributes in changed.items():
        row = {"item_id": item_id}
        for name, value in attributes.items():
            if name not in columns:
                columns.append(name)
            row[name] = separator.join(value) if isinstance(value, list) else value
        rows[item_id] = row
    return pa.table({c: _column([r.get(c) for r in rows.values()], types.get(c)) for c in columns})


def _column(values: list[Any], kind: pa.DataType | None) -> pa.Array:
    """One column of file values and run-time values."""
    if kind is not None and pa.types.is_timestamp(kind):
        return pa.array([_moment(v) for v in values], pa.timestamp("us", tz="UTC"))
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    return pa.array([None if v is None else str(v) for v in values], pa.string())


def _moment(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
