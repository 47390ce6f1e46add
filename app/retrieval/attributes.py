"""A version's item attributes compiled for filtering: category values as bitmaps or posting
lists, numeric columns sorted for range lookups. Built once when a version is loaded."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.retrieval import bitmaps
from feature_store.item_attributes import ColumnKind, read_attributes

# A value held by at least this share of items gets a precomputed bitmap; rarer ones a row list.
DENSE_SHARE = 0.01
MAX_DENSE_VALUES = 2_048


@dataclass
class CompiledColumn:
    name: str
    kind: ColumnKind
    value_codes: dict[str, int] = field(default_factory=dict)
    dense: dict[int, np.ndarray] = field(default_factory=dict)  # code -> bitmap
    postings_ptr: np.ndarray | None = None  # code -> slice of postings_rows
    postings_rows: np.ndarray | None = None
    numbers: np.ndarray | None = None
    order: np.ndarray | None = None  # argsort of numbers, NaN last
    sorted_numbers: np.ndarray | None = None


class AttributeTable:
    def __init__(self, n_items: int, columns: dict[str, CompiledColumn]) -> None:
        self.n_items = n_items
        self.columns = columns

    @classmethod
    def load(cls, folder: Path, n_items: int) -> AttributeTable:
        compiled: dict[str, CompiledColumn] = {}
        for name, col in read_attributes(folder).items():
            if col.kind is ColumnKind.numeric:
                assert col.numbers is not None
                numbers = np.asarray(col.numbers, np.float64)
                order = np.argsort(numbers, kind="stable")  # NaN sorts last
                compiled[name] = CompiledColumn(
                    name, col.kind, numbers=numbers, order=order, sorted_numbers=np.take(numbers, order)
                )
                continue
            assert col.codes is not None
            codes = np.asarray(col.codes, np.int64)
            if col.kind is ColumnKind.multi:
                assert col.indptr is not None
                rows = np.repeat(np.arange(n_items), np.diff(np.asarray(col.indptr)))
            else:
                rows = np.arange(n_items)
            ok = codes >= 0
            codes, rows = codes[ok], rows[ok]
            order = np.lexsort((rows, codes))
            ptr = np.searchsorted(codes[order], np.arange(len(col.values) + 1))
            postings = rows[order]
            c = CompiledColumn(
                name,
                col.kind,
                value_codes={v: i for i, v in enumerate(col.values)},
                postings_ptr=ptr,
                postings_rows=postings,
            )
            sizes = np.diff(ptr)
            frequent = np.flatnonzero(sizes >= max(1, DENSE_SHARE * n_items))
            for code in frequent[np.argsort(-sizes[frequent])][:MAX_DENSE_VALUES]:
                c.dense[int(code)] = bitmaps.from_rows(n_items, postings[ptr[code] : ptr[code + 1]])
            compiled[name] = c
        return cls(n_items, compiled)

    def row_values(self, row: int) -> dict[str, float | str | list[str] | None]:
        """One item's attributes as the version holds them (for the items API, not the hot path:
        a categorical column is searched through its postings)."""
        out: dict[str, float | str | list[str] | None] = {}
        for name, column in self.columns.items():
            if column.kind is ColumnKind.numeric:
                assert column.numbers is not None
                number = float(column.numbers[row])
                out[name] = None if np.isnan(number) else number
                continue
            assert column.postings_ptr is not None and column.postings_rows is not None
            at = np.flatnonzero(column.postings_rows == row)
            codes = np.searchsorted(column.postings_ptr, at, side="right") - 1
            names = {code: value for value, code in column.value_codes.items()}
            values = [names[int(c)] for c in codes]
            if column.kind is ColumnKind.multi:
                out[name] = values
            else:
                out[name] = values[0] if values else None
        return out

    def values_bitmap(self, column: CompiledColumn, values: list[str]) -> np.ndarray:
        """Items whose (any) value of `column` is one of `values`; unknown values match nothing."""
        acc = bitmaps.empty(self.n_items)
        sparse: list[np.ndarray] = []
        for value in values:
            code = column.value_codes.get(str(value))
            if code is None:
                continue
            if code in column.dense:
                np.bitwise_or(acc, column.dense[code], out=acc)
            else:
                assert column.postings_ptr is not None and column.postings_rows is not None
                sparse.append(column.postings_rows[column.postings_ptr[code] : column.postings_ptr[code + 1]])
        if sparse:
            np.bitwise_or(acc, bitmaps.from_rows(self.n_items, np.concatenate(sparse)), out=acc)
        return acc

    def range_bitmap(
        self, column: CompiledColumn, lo: float | None, hi: float | None, lo_open: bool, hi_open: bool
    ) -> np.ndarray:
        """Items with lo <= value <= hi (strict where open); missing values never match."""
        assert column.sorted_numbers is not None and column.order is not None
        s = column.sorted_numbers
        start = 0 if lo is None else int(np.searchsorted(s, lo, side="right" if lo_open else "left"))
        finite_end = int(np.searchsorted(s, np.inf, side="right"))  # NaN sit after +inf
        stop = finite_end if hi is None else int(np.searchsorted(s, hi, side="left" if hi_open else "right"))
        return bitmaps.from_rows(self.n_items, column.order[start : max(start, stop)])
