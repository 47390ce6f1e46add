"""Turning an item metadata table (pyarrow) into the version's attribute columns for filters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from feature_store.item_attributes import AttributeColumn, ColumnKind, write_attributes

_SKIPPED = {"item_id", "text", "title", "description"}
MAX_CATEGORIES = 100_000


def _aligned(table: pa.Table, item_ids: np.ndarray) -> tuple[pa.Table, np.ndarray]:
    """Rows of `table` in the version's item order; `present` marks items that have metadata."""
    ids = pc.cast(table["item_id"], pa.string())
    position = pc.index_in(pa.array(item_ids.astype(str)), value_set=ids)
    present = position.is_valid().to_numpy(zero_copy_only=False)
    rows = position.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    return table.take(pa.array(rows)), present


def _categorical(name: str, array: pa.ChunkedArray, present: np.ndarray) -> AttributeColumn | None:
    encoded = pc.dictionary_encode(pc.cast(array, pa.string())).combine_chunks()
    values = [str(v) for v in encoded.dictionary.to_pylist()]
    if len(values) > MAX_CATEGORIES:
        return None
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)
    codes[~present] = -1
    return AttributeColumn(name, ColumnKind.categorical, values, codes=codes)


def _multi(name: str, array: pa.ChunkedArray, present: np.ndarray) -> AttributeColumn:
    lists = array.combine_chunks()
    lengths = pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    lengths[~present] = 0
    flat = pc.list_flatten(lists)
    keep = np.repeat(present, pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False))
    flat = flat.filter(pa.array(keep))
    encoded = pc.dictionary_encode(pc.cast(flat, pa.string()))
    values = [str(v) for v in encoded.dictionary.to_pylist()]
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return AttributeColumn(name, ColumnKind.multi, values, codes=codes, indptr=indptr)


def _numeric(name: str, array: pa.ChunkedArray, present: np.ndarray) -> AttributeColumn:
    if pa.types.is_timestamp(array.type) or pa.types.is_date(array.type):
        array = pc.cast(pc.cast(array, pa.timestamp("s")), pa.int64())
    numbers = pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
    numbers[~present] = np.nan
    return AttributeColumn(name, ColumnKind.numeric, numbers=numbers)


def build_attributes(items: pa.Table, item_ids: np.ndarray) -> list[AttributeColumn]:
    """Every filterable column of `items` (prepared by `readers.items.prepare_items`, which decides
    what is a list): strings become categories, lists multi-valued categories, numbers and dates
    numeric. Free text columns are left to the content model."""
    table, present = _aligned(items, item_ids)
    columns: list[AttributeColumn] = []
    for name in table.column_names:
        if name in _SKIPPED:
            continue
        array = table[name]
        kind = array.type
        if pa.types.is_list(kind) or pa.types.is_large_list(kind):
            columns.append(_multi(name, array, present))
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_dictionary(kind):
            col = _categorical(name, pc.cast(array, pa.string()), present)
            if col is not None:
                columns.append(col)
        elif pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_temporal(kind):
            columns.append(_numeric(name, array, present))
    return columns


def write_item_attributes(folder: Path, items: pa.Table, item_ids: np.ndarray) -> int:
    columns = build_attributes(items, item_ids)
    write_attributes(folder, columns)
    return len(columns)
