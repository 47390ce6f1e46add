"""Properties of filter compilation (app/retrieval/filters.py) over random item-attribute tables.

test_filters.py already checks the bitmap helpers with hypothesis; these check `compile_filters`
itself against a brute-force evaluation of the request, row by row. Tables are written with
`write_attributes` and read back with `AttributeTable.load`, as the retrieval conftest does, so
both of the table's lookups run: values held by at least 1% of the items get a dense bitmap,
rarer ones (the `rare` value, in tables over 100 items) a posting list.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from app.retrieval import bitmaps
from app.retrieval.attributes import AttributeTable
from app.retrieval.filters import CompiledFilter, Filters, compile_filters
from app.retrieval.popularity import PopularityRanking
from feature_store.item_attributes import AttributeColumn, ColumnKind, write_attributes

SETTINGS = settings(max_examples=40, deadline=None)

CATEGORIES = ["a", "b", "c", "1", "rare", "unused"]  # "1" is matched by the int 1 of a request
TAGS = ["x", "y", "z", "2"]
ASKED_CATEGORIES: list[str | int] = ["a", "b", "c", "1", 1, "rare", "unused", "zzz"]
ASKED_TAGS: list[str | int] = ["x", "y", "z", "2", 2, "zzz"]
PRICES = [-3.0, 0.0, 1.0, 2.5, 10.0]


@dataclass
class Items:
    """The raw attributes, for the brute force; `table` is what compile_filters sees."""

    category: list[int]  # code into CATEGORIES, -1 = missing
    tags: list[list[int]]  # codes into TAGS
    price: list[float]  # NaN = missing
    table: AttributeTable

    @property
    def n(self) -> int:
        return len(self.category)

    @property
    def item_rows(self) -> dict[str, int]:
        return {f"item{i}": i for i in range(self.n)}


@st.composite
def items(draw: st.DrawFn) -> Items:
    """A random table: hypothesis picks the size and the mix, numpy fills the columns (drawing
    hundreds of cells one by one through hypothesis would cost seconds per test)."""
    n = draw(st.integers(min_value=1, max_value=400))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    missing = draw(st.sampled_from([0.0, 0.1, 0.5]), label="missing share")
    category = rng.integers(0, 4, n)  # a, b, c, "1": dense bitmaps
    category[rng.random(n) < missing] = -1
    rare = draw(st.integers(0, 3), label="rare items")  # a posting list once n > 100
    category[rng.choice(n, min(rare, n), replace=False)] = CATEGORIES.index("rare")
    lengths = rng.integers(0, 4, n)
    tag_codes = rng.integers(0, len(TAGS), int(lengths.sum()))
    pool = np.array([*PRICES, math.nan, math.inf, -math.inf])
    price = np.where(rng.random(n) < 0.5, rng.choice(pool, n), rng.uniform(-20, 20, n))
    price[rng.random(n) < missing] = math.nan
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    columns = [
        AttributeColumn("category", ColumnKind.categorical, CATEGORIES, codes=category.astype(np.int32)),
        AttributeColumn("tags", ColumnKind.multi, TAGS, codes=tag_codes.astype(np.int32), indptr=indptr),
        AttributeColumn("price", ColumnKind.numeric, numbers=price.astype(np.float64)),
    ]
    with tempfile.TemporaryDirectory() as folder:
        write_attributes(Path(folder), columns)
        table = AttributeTable.load(Path(folder), n)
    tags = [tag_codes[indptr[i] : indptr[i + 1]].tolist() for i in range(n)]
    return Items(category.tolist(), tags, price.tolist(), table)


bounds = st.one_of(st.sampled_from(PRICES), st.floats(min_value=-25, max_value=25, allow_nan=False))
category_values = st.lists(st.sampled_from(ASKED_CATEGORIES), max_size=4)
tag_values = st.lists(st.sampled_from(ASKED_TAGS), max_size=3)
item_ids = st.lists(st.one_of(st.integers(0, 420).map(lambda i: f"item{i}"), st.just("ghost")), max_size=30)

# Every independent part a request can hold; a request is any subset of them.
PARTS: dict[str, st.SearchStrategy[Any]] = {
    "allow_items": item_ids,
    "category.in": category_values,
    "category.not_in": category_values,
    "tags.in": tag_values,
    "tags.not_in": tag_values,
    "price.gte": bounds,
    "price.gt": bounds,
    "price.lte": bounds,
    "price.lt": bounds,
}
EXCLUSIVE = {
    "price.gte": "price.gt",
    "price.gt": "price.gte",
    "price.lte": "price.lt",
    "price.lt": "price.lte",
}


@st.composite
def spec(draw: st.DrawFn) -> dict[str, Any]:
    """A request as {part: value}: any subset of PARTS, one bound per side."""
    chosen: dict[str, Any] = {}
    for part in PARTS:
        if EXCLUSIVE.get(part) in chosen or not draw(st.booleans()):
            continue
        chosen[part] = draw(PARTS[part])
    return chosen


def to_filters(parts: dict[str, Any], deny: list[str] | None = None) -> Filters:
    body: dict[str, Any] = {"deny_items": deny or []}
    attributes: dict[str, dict[str, Any]] = {}
    for part, value in parts.items():
        if part == "allow_items":
            body["allow_items"] = value
        else:
            name, op = part.split(".")
            attributes.setdefault(name, {})[op] = value
    body["attributes"] = attributes
    return Filters.model_validate(body)


def holds(parts: dict[str, Any], data: Items, row: int) -> bool:
    """The request's documented meaning for one item, evaluated directly."""
    category = {CATEGORIES[data.category[row]]} if data.category[row] >= 0 else set()
    tags = {TAGS[c] for c in data.tags[row]}
    price = data.price[row]
    for part, value in parts.items():
        if part == "allow_items":
            ok = f"item{row}" in value
        elif part.endswith(".in") or part.endswith(".not_in"):
            held = category if part.startswith("category") else tags
            hit = bool(held & {str(v) for v in value})
            ok = hit if part.endswith(".in") else not hit
        else:  # a bound; a missing price never matches one
            op = part.split(".")[1]
            ok = (
                not math.isnan(price)
                and {
                    "gte": price >= value,
                    "gt": price > value,
                    "lte": price <= value,
                    "lt": price < value,
                }[op]
            )
        if not ok:
            return False
    return True


def allowed_rows(compiled: CompiledFilter, n: int) -> set[int]:
    if compiled.allowed is None:
        return set(range(n))
    return set(bitmaps.to_rows(compiled.allowed, n).tolist())


@given(data=items(), parts=spec(), deny=item_ids)
@SETTINGS
def test_the_allowed_set_is_the_brute_force_evaluation_of_every_condition_and_deny_is_kept_apart(
    data: Items, parts: dict[str, Any], deny: list[str]
) -> None:
    compiled = compile_filters(to_filters(parts, deny), data.table, data.item_rows)
    assert allowed_rows(compiled, data.n) == {row for row in range(data.n) if holds(parts, data, row)}
    # The deny list stays a row list, the known denied items whatever else is asked.
    assert set(compiled.denied.tolist()) == {data.item_rows[i] for i in deny if i in data.item_rows}
    assert (compiled.allowed is None) == (not parts)
    if compiled.allowed is not None:
        assert len(compiled.allowed) == (data.n + 7) // 8
        assert bitmaps.count(compiled.allowed) == len(allowed_rows(compiled, data.n))


@given(data=items(), parts=spec(), both=item_ids, seed=st.integers(0, 2**32 - 1))
@SETTINGS
def test_deny_wins_over_allow_in_what_popularity_returns(
    data: Items, parts: dict[str, Any], both: list[str], seed: int
) -> None:
    """An item both allowed (by id, and by its attributes) and denied is never returned."""
    parts = {**parts, "allow_items": [*parts.get("allow_items", []), *both]}
    compiled = compile_filters(to_filters(parts, both), data.table, data.item_rows)
    ranking = PopularityRanking(np.random.default_rng(seed).random(data.n))
    rows, _ = ranking.top(data.n, compiled.allowed, compiled.denied)
    denied = set(compiled.denied.tolist())
    assert set(rows.tolist()) == allowed_rows(compiled, data.n) - denied


@given(data=items(), parts=spec(), more=spec())
@SETTINGS
def test_adding_a_condition_never_enlarges_the_allowed_set(
    data: Items, parts: dict[str, Any], more: dict[str, Any]
) -> None:
    extra = {
        part: value for part, value in more.items() if part not in parts and EXCLUSIVE.get(part) not in parts
    }
    narrower = compile_filters(to_filters({**parts, **extra}), data.table, data.item_rows)
    wider = compile_filters(to_filters(parts), data.table, data.item_rows)
    assert allowed_rows(narrower, data.n) <= allowed_rows(wider, data.n)


@given(data=items(), column=st.sampled_from(["category", "tags"]), values=st.data())
@SETTINGS
def test_in_and_not_in_the_same_values_are_complements(
    data: Items, column: str, values: st.DataObject
) -> None:
    asked = values.draw(category_values if column == "category" else tag_values, label="values")
    kept = compile_filters(to_filters({f"{column}.in": asked}), data.table, data.item_rows)
    dropped = compile_filters(to_filters({f"{column}.not_in": asked}), data.table, data.item_rows)
    kept_rows, other_rows = allowed_rows(kept, data.n), allowed_rows(dropped, data.n)
    assert kept_rows.isdisjoint(other_rows)
    assert kept_rows | other_rows == set(range(data.n))
    both = compile_filters(
        to_filters({f"{column}.in": asked, f"{column}.not_in": asked}), data.table, data.item_rows
    )
    assert allowed_rows(both, data.n) == set()


@given(data=items(), bound=bounds)
@SETTINGS
def test_an_inclusive_bound_adds_exactly_the_items_equal_to_it(data: Items, bound: float) -> None:
    at = {row for row in range(data.n) if data.price[row] == bound}
    for inclusive, strict in (("gte", "gt"), ("lte", "lt")):
        wide = compile_filters(to_filters({f"price.{inclusive}": bound}), data.table, data.item_rows)
        narrow = compile_filters(to_filters({f"price.{strict}": bound}), data.table, data.item_rows)
        assert allowed_rows(wide, data.n) - allowed_rows(narrow, data.n) == at
        assert allowed_rows(narrow, data.n) <= allowed_rows(wide, data.n)
