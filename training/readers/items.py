"""Item metadata made unambiguous before any model or filter sees it.

A catalog export is read the same way whatever its format, by rules a user can predict:

- **Missing is missing**: a null, an empty cell and a blank string are one thing (no value) in
  CSV, Parquet and SQL alike; `category in [""]` never matches anything.
- **Lists** are Arrow list columns, or text columns holding the list separator (`|` by default,
  `--list-separator`): a column where any value holds it is split on it, every row. A column that
  holds the separator but is one value per item is named with `--categorical COLUMN`.
- **Numbers** are numeric columns. A text column mixing numbers and words (one `abc` in a price
  column) stops the run with counts and an example; `--numeric COLUMN` keeps the numbers (the words
  become missing, counted) and `--categorical COLUMN` keeps everything as text.
- **Ids**: rows without an `item_id` follow `--drop-invalid-rows`; an id on several rows stops the
  run unless `--item-duplicates first|last` says which row wins.

Every choice made is returned as a note, and the commands print them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.errors import TrainingInputError
from training.timestamps import NUMBER

TEXT_COLUMNS = ("text", "title", "description", "name")  # free text: read by the content model, never split


class DuplicatePolicy(StrEnum):
    """What to do with an item_id on several rows of the metadata."""

    error = "error"
    first = "first"
    last = "last"


@dataclass(frozen=True)
class ItemOptions:
    list_separator: str = "|"
    categorical: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()
    duplicates: DuplicatePolicy = DuplicatePolicy.error
    drop_invalid_rows: bool = False


@dataclass(frozen=True)
class ItemTable:
    table: pa.Table
    notes: list[str] = field(default_factory=list)


def _blank_to_null(text: pa.ChunkedArray) -> pa.ChunkedArray:
    trimmed = pc.utf8_trim_whitespace(text)
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), text)


def _clean_list(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """List values as trimmed strings without empty elements; an empty list is missing."""
    lists = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    lists = pc.cast(lists, pa.list_(pa.string()))
    flat = pc.utf8_trim_whitespace(lists.flatten())
    parents = pc.list_parent_indices(lists)
    keep = pc.fill_null(pc.not_equal(flat, ""), False)
    values = flat.filter(keep)
    counts = np.bincount(
        parents.filter(keep).to_numpy(zero_copy_only=False).astype(np.int64), minlength=len(lists)
    )
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), values, mask=pa.array(counts == 0))


def _split(text: pa.ChunkedArray, separator: str) -> pa.Array:
    return _clean_list(pc.split_pattern(text, separator))


def _ids(table: pa.Table, options: ItemOptions, source: str, notes: list[str]) -> pa.Table:
    ids = pc.utf8_trim_whitespace(pc.cast(table["item_id"], pa.string()))
    missing = np.asarray(pc.fill_null(pc.equal(ids, ""), True).to_numpy(zero_copy_only=False), bool)
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        if not options.drop_invalid_rows:
            raise TrainingInputError(
                f"{source}: {int(missing.sum()):,} of {table.num_rows:,} item rows have no item_id "
                f"(first: row {row + 1}). Fix them, or pass --drop-invalid-rows to skip them."
            )
        notes.append(f"item metadata: dropped {int(missing.sum()):,} rows without an item_id")
        table = table.filter(pa.array(~missing))
        ids = pc.filter(ids, pa.array(~missing))
    table = table.set_column(table.column_names.index("item_id"), "item_id", ids)
    counts = pc.value_counts(ids)
    repeated = counts.filter(pc.greater(counts.field("counts"), 1))
    if len(repeated):
        example = repeated[0].as_py()
        extra = int(pc.sum(repeated.field("counts")).as_py()) - len(repeated)
        if options.duplicates is DuplicatePolicy.error:
            raise TrainingInputError(
                f"{source}: {len(repeated):,} item_ids appear on more than one row ({extra:,} extra rows; "
                f"e.g. {example['values']!r} on {example['counts']} rows). Remove the duplicates, or "
                "pass --item-duplicates first|last to keep one row per item."
            )
        order = np.arange(table.num_rows)
        if options.duplicates is DuplicatePolicy.last:
            order = order[::-1]
        seen: set[str] = set()
        keep = []
        for position, item in zip(order.tolist(), ids.take(pa.array(order)).to_pylist(), strict=True):
            if item not in seen:
                seen.add(item)
                keep.append(position)
        table = table.take(pa.array(sorted(keep)))
        notes.append(
            f"item metadata: {extra:,} duplicate rows of {len(repeated):,} item_ids dropped, the "
            f"{options.duplicates.value} row of each kept (--item-duplicates)"
        )
    return table


def _text_column(
    name: str, text: pa.ChunkedArray, options: ItemOptions, source: str, notes: list[str]
) -> pa.Array | pa.ChunkedArray:
    text = _blank_to_null(text)
    if name in TEXT_COLUMNS:
        return text
    filled = pc.drop_null(text)
    if name in options.numeric:
        is_number = pc.match_substring_regex(pc.utf8_trim_whitespace(text), NUMBER)
        words = int(pc.sum(pc.invert(pc.fill_null(is_number, True))).as_py() or 0)
        if words:
            notes.append(f"item metadata: {name}: {words:,} values that are not numbers read as missing")
        kept = pc.if_else(pc.fill_null(is_number, False), pc.utf8_trim_whitespace(text), None)
        return pc.cast(kept, pa.float64())
    if name in options.categorical:
        return text
    if len(filled):
        is_number = pc.match_substring_regex(pc.utf8_trim_whitespace(filled), NUMBER)
        numbers = int(pc.sum(is_number).as_py() or 0)
        if 0 < numbers < len(filled):
            word = pc.filter(filled, pc.invert(is_number))[0].as_py()
            raise TrainingInputError(
                f"{source}: column '{name}' mixes numbers ({numbers:,} values) and text "
                f"({len(filled) - numbers:,} values, e.g. {word!r}). Pass --numeric {name} to read it as "
                f"numbers (the text becomes missing), or --categorical {name} to keep it as text."
            )
    separator = options.list_separator
    if separator and len(filled):
        several = int(pc.sum(pc.match_substring(filled, separator)).as_py() or 0)
        if several:
            notes.append(
                f"item metadata: {name}: multi-valued, split on {separator!r} ({several:,} of "
                f"{len(filled):,} values hold several; --categorical {name} keeps them whole)"
            )
            return _split(text, separator)
    return text


def prepare_items(table: pa.Table, options: ItemOptions, source: str = "item metadata") -> ItemTable:
    """The metadata table by the module's rules; idempotent (a prepared table comes back equal)."""
    names = [n.strip().lower() for n in table.column_names]
    if "item_id" not in names:
        raise TrainingInputError(f"{source}: item metadata needs an 'item_id' column; found {names}.")
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise TrainingInputError(f"{source}: column names appear twice (ignoring case): {doubled}.")
    unknown = sorted((set(options.categorical) | set(options.numeric)) - set(names))
    if unknown:
        raise TrainingInputError(
            f"{source}: --categorical/--numeric name columns it does not have: {unknown}; it has {names}."
        )
    both = sorted(set(options.categorical) & set(options.numeric))
    if both:
        raise TrainingInputError(f"--categorical and --numeric both name {both}: choose one.")
    notes: list[str] = []
    table = _ids(table.rename_columns(names), options, source, notes)
    columns: dict[str, pa.Array | pa.ChunkedArray] = {}
    for name in table.column_names:
        column = table[name]
        kind = column.type
        if pa.types.is_dictionary(kind):
            column = pc.cast(column, kind.value_type)
            kind = column.type
        if name == "item_id":
            columns[name] = column
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            columns[name] = _text_column(name, pc.cast(column, pa.string()), options, source, notes)
        elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
            columns[name] = _clean_list(column)
        elif pa.types.is_floating(kind):
            columns[name] = pc.if_else(pc.is_nan(column), pa.scalar(None, kind), column)
        elif pa.types.is_null(kind):
            continue  # a column with no value at all says nothing
        elif name in options.categorical:
            columns[name] = _blank_to_null(pc.cast(column, pa.string()))  # codes read as numbers
        else:
            columns[name] = column
    return ItemTable(pa.table(columns), notes)
