"""Request filters: what a caller may ask for, and their compilation into item bitmaps.

Positive constraints (an allow list, `in`, ranges) narrow the candidate set and become one
`allowed` bitmap; exclusions (a deny list, later the user's seen items) stay a short row list,
because excluding a few items is cheapest as an over-fetch, not as a filter that would push
the search onto a slower plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.retrieval import bitmaps
from app.retrieval.attributes import AttributeTable
from app.retrieval.catalog import EMPTY_CATALOG, VersionCatalog
from app.retrieval.values import labels, number
from feature_store.catalog import AttributeValue
from feature_store.item_attributes import ColumnKind

MAX_LIST = 10_000
MAX_VALUES = 1_000


class FilterError(ValueError):
    """A filter that cannot apply to this version; `field` is its path in the request."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class AttributeCondition(BaseModel):
    """One attribute's condition; all given parts must hold."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    in_: list[str | int] | None = Field(
        None, alias="in", max_length=MAX_VALUES, description="Keep items with one of these values."
    )
    not_in: list[str | int] | None = Field(
        None, max_length=MAX_VALUES, description="Drop items with any of these values."
    )
    gte: float | None = Field(
        None, allow_inf_nan=False, description="Numeric or date (epoch seconds) lower bound, inclusive."
    )
    gt: float | None = Field(None, allow_inf_nan=False, description="Lower bound, exclusive.")
    lte: float | None = Field(None, allow_inf_nan=False, description="Upper bound, inclusive.")
    lt: float | None = Field(None, allow_inf_nan=False, description="Upper bound, exclusive.")

    @model_validator(mode="after")
    def _one_bound_per_side(self) -> AttributeCondition:
        if self.gte is not None and self.gt is not None:
            raise ValueError("give gte or gt, not both")
        if self.lte is not None and self.lt is not None:
            raise ValueError("give lte or lt, not both")
        return self

    @property
    def has_range(self) -> bool:
        return any(v is not None for v in (self.gte, self.gt, self.lte, self.lt))

    def holds_for_value(self, raw: AttributeValue) -> bool:
        """The range part on one replaced value, as the attribute table's range lookup decides
        it (missing never matches)."""
        value = number(raw)
        if math.isnan(value):
            return False
        return (
            (self.gte is None or value >= self.gte)
            and (self.gt is None or value > self.gt)
            and (self.lte is None or value <= self.lte)
            and (self.lt is None or value < self.lt)
        )


class Filters(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"attributes": {"category": {"in": ["fintech", "edtech"]}, "price": {"lte": 50}}},
                {"deny_items": ["i000017"], "allow_items": None},
            ]
        },
    )

    allow_items: list[str] | None = Field(
        None, max_length=MAX_LIST, description="Only these items may be returned."
    )
    deny_items: list[str] = Field(
        default_factory=list, max_length=MAX_LIST, description="These items are never returned."
    )
    attributes: dict[str, AttributeCondition] = Field(
        default_factory=dict, max_length=32, description="Conditions on item attributes, by attribute name."
    )


@dataclass(frozen=True)
class CompiledFilter:
    allowed: np.ndarray | None  # packed bitmap of permitted rows; None = every item
    denied: np.ndarray  # rows never to return (int64)
    # The run-time catalog's blocked rows when `allowed` is None (with a filter they are cleared
    # from `allowed` instead): a row list for plans that mask scores, and the bitmap of the
    # other rows for a graph search's selector, which costs no wider beam when nearly all pass.
    hidden: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    visible: np.ndarray | None = None
    # Which of the catalog's new items (catalog.NewItems, in order) pass; None: every one.
    new_passing: np.ndarray | None = None

    @property
    def is_empty(self) -> bool:
        return self.allowed is None and len(self.denied) == 0 and not len(self.hidden)

    @property
    def passing(self) -> np.ndarray | None:
        """The bitmap a row must pass: the filter's, else the catalog's, else None."""
        return self.allowed if self.allowed is not None else self.visible


NO_FILTER = CompiledFilter(None, np.empty(0, np.int64))


def with_catalog(
    filt: CompiledFilter, catalog: VersionCatalog, new_passing: np.ndarray | None = None
) -> CompiledFilter:
    """`filt` with the catalog's blocked rows taken out, and which new items pass."""
    if not len(catalog.blocked):
        return filt if new_passing is None else replace(filt, new_passing=new_passing)
    assert catalog.visible is not None
    if filt.allowed is not None:
        return CompiledFilter(
            np.bitwise_and(filt.allowed, catalog.visible), filt.denied, new_passing=new_passing
        )
    return CompiledFilter(None, filt.denied, catalog.blocked, catalog.visible, new_passing)


def new_items_passing(filters: Filters, table: AttributeTable, catalog: VersionCatalog) -> np.ndarray:
    """Which new items (not in the version, so not in its bitmaps) the filters let through,
    each tested on its own attributes as `compile_filters` tests a replaced row."""
    new = catalog.new
    keep = np.ones(len(new), bool)
    if filters.allow_items is not None:
        allowed = set(filters.allow_items)
        keep &= np.array([i in allowed for i in new.ids], bool)
    if filters.deny_items:
        denied = set(filters.deny_items)
        keep &= np.array([i not in denied for i in new.ids], bool)
    for name, cond in filters.attributes.items():
        numeric = table.columns[name].kind is ColumnKind.numeric
        for at, attributes in enumerate(new.attributes):
            value = attributes.get(name)
            if cond.in_ is not None and not {str(v) for v in cond.in_} & labels(value):
                keep[at] = False
            if cond.not_in is not None and {str(v) for v in cond.not_in} & labels(value):
                keep[at] = False
            if numeric and cond.has_range and not cond.holds_for_value(value):
                keep[at] = False
    return keep


def compile_filters(
    filters: Filters | None,
    table: AttributeTable,
    item_rows: dict[str, int],
    catalog: VersionCatalog = EMPTY_CATALOG,
) -> CompiledFilter:
    """Pure: the request's filters -> allowed bitmap and denied rows, under the run-time catalog
    (blocked rows out; rows with replaced attributes tested on their new values). Unknown item
    ids are ignored (a caller's catalog can be ahead of the model); unknown attribute names are
    an error."""
    if filters is None:
        return with_catalog(NO_FILTER, catalog)
    n = table.n_items
    allowed: np.ndarray | None = None

    def narrow(bm: np.ndarray) -> None:
        nonlocal allowed
        allowed = bm if allowed is None else np.bitwise_and(allowed, bm)

    if filters.allow_items is not None:
        rows = np.array([item_rows[i] for i in filters.allow_items if i in item_rows], np.int64)
        narrow(bitmaps.from_rows(n, rows))
    for name, cond in filters.attributes.items():
        field = f"filters.attributes.{name}"
        column = table.columns.get(name)
        if column is None:
            known = ", ".join(sorted(table.columns)) or "none (the version has no item metadata)"
            raise FilterError(field, f"unknown attribute; known: {known}")
        numeric = column.kind is ColumnKind.numeric
        if numeric and (cond.in_ is not None or cond.not_in is not None):
            raise FilterError(field, "a numeric attribute takes gte/gt/lte/lt, not in/not_in")
        if not numeric and cond.has_range:
            raise FilterError(field, "a categorical attribute takes in/not_in, not a range")
        changed = np.fromiter(catalog.overrides.keys(), np.int64, len(catalog.overrides))
        values = [attrs.get(name) for attrs in catalog.overrides.values()]
        if cond.in_ is not None:
            wanted = {str(v) for v in cond.in_}
            bm = table.values_bitmap(column, list(wanted))
            narrow(_patched(bm, changed, [bool(wanted & labels(v)) for v in values]))
        if cond.not_in is not None:
            unwanted = {str(v) for v in cond.not_in}
            bm = bitmaps.invert(table.values_bitmap(column, list(unwanted)), n)
            narrow(_patched(bm, changed, [not (unwanted & labels(v)) for v in values]))
        if cond.has_range:
            lo = cond.gte if cond.gte is not None else cond.gt
            hi = cond.lte if cond.lte is not None else cond.lt
            bm = table.range_bitmap(column, lo, hi, cond.gt is not None, cond.lt is not None)
            narrow(_patched(bm, changed, [cond.holds_for_value(v) for v in values]))
    denied = np.array([item_rows[i] for i in filters.deny_items if i in item_rows], np.int64)
    passing = new_items_passing(filters, table, catalog) if len(catalog.new) else None
    return with_catalog(CompiledFilter(allowed, denied), catalog, passing)


def _patched(bm: np.ndarray, rows: np.ndarray, passes: list[bool]) -> np.ndarray:
    """`bm` with the bits of `rows` (whose attributes were replaced) set where their new value
    `passes` the condition and cleared where it does not."""
    if not len(rows):
        return bm
    keep = np.array(passes, bool)
    byte, bit = rows >> 3, (1 << (rows & 7)).astype(np.uint8)
    out = bm.copy()
    np.bitwise_and.at(out, byte[~keep], ~bit[~keep])
    np.bitwise_or.at(out, byte[keep], bit[keep])
    return out
