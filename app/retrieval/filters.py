"""Request filters: what a caller may ask for, and their compilation into item bitmaps.

Positive constraints (an allow list, `in`, ranges) narrow the candidate set and become one
`allowed` bitmap; exclusions (a deny list, later the user's seen items) stay a short row list,
because excluding a few items is cheapest as an over-fetch, not as a filter that would push
the search onto a slower plan.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.retrieval import bitmaps
from app.retrieval.attributes import AttributeTable
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

    @property
    def is_empty(self) -> bool:
        return self.allowed is None and len(self.denied) == 0


NO_FILTER = CompiledFilter(None, np.empty(0, np.int64))


def compile_filters(
    filters: Filters | None, table: AttributeTable, item_rows: dict[str, int]
) -> CompiledFilter:
    """Pure: the request's filters -> allowed bitmap and denied rows. Unknown item ids are ignored
    (a caller's catalog can be ahead of the model); unknown attribute names are an error."""
    if filters is None:
        return NO_FILTER
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
        if cond.in_ is not None:
            narrow(table.values_bitmap(column, [str(v) for v in cond.in_]))
        if cond.not_in is not None:
            narrow(bitmaps.invert(table.values_bitmap(column, [str(v) for v in cond.not_in]), n))
        if cond.has_range:
            lo = cond.gte if cond.gte is not None else cond.gt
            hi = cond.lte if cond.lte is not None else cond.lt
            narrow(table.range_bitmap(column, lo, hi, cond.gt is not None, cond.lt is not None))
    denied = np.array([item_rows[i] for i in filters.deny_items if i in item_rows], np.int64)
    return CompiledFilter(allowed, denied)
