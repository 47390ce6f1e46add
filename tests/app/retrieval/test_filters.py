from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.retrieval import bitmaps
from app.retrieval.filters import FilterError, Filters, compile_filters


@given(n=st.integers(1, 300), data=st.data())
@settings(max_examples=100, deadline=None)
def test_bitmaps_round_trip_count_and_invert(n: int, data) -> None:
    rows = np.array(sorted(data.draw(st.sets(st.integers(0, n - 1)))), np.int64)
    bm = bitmaps.from_rows(n, rows)
    assert bitmaps.to_rows(bm, n).tolist() == rows.tolist()
    assert bitmaps.count(bm) == len(rows)
    assert bitmaps.count(bitmaps.invert(bm, n)) == n - len(rows)
    assert bitmaps.contains(bm, np.arange(n)).sum() == len(rows)


def test_an_unknown_attribute_names_the_field_and_the_known_ones(attributes, item_rows) -> None:
    with pytest.raises(FilterError) as err:
        compile_filters(
            Filters.model_validate({"attributes": {"colour": {"in": ["red"]}}}), attributes, item_rows
        )
    assert err.value.field == "filters.attributes.colour"
    assert "category, price, tags" in str(err.value)


def test_a_range_on_a_category_and_in_on_a_number_are_errors(attributes, item_rows) -> None:
    with pytest.raises(FilterError, match="categorical"):
        compile_filters(
            Filters.model_validate({"attributes": {"category": {"gte": 1}}}), attributes, item_rows
        )
    with pytest.raises(FilterError, match="numeric"):
        compile_filters(Filters.model_validate({"attributes": {"price": {"in": [1]}}}), attributes, item_rows)


def test_malformed_conditions_are_rejected_by_validation() -> None:
    with pytest.raises(ValidationError):
        Filters.model_validate({"attributes": {"price": {"gte": 1, "gt": 2}}})
    with pytest.raises(ValidationError):
        Filters.model_validate({"attributes": {"price": {"between": [1, 2]}}})
    with pytest.raises(ValidationError):
        Filters.model_validate({"deny_items": ["x"] * 10_001})


def test_unknown_items_and_values_match_nothing_instead_of_failing(attributes, item_rows) -> None:
    compiled = compile_filters(
        Filters.model_validate(
            {"allow_items": ["item5", "ghost"], "attributes": {"category": {"in": ["a", "zzz"]}}}
        ),
        attributes,
        item_rows,
    )
    assert compiled.allowed is not None and bitmaps.count(compiled.allowed) <= 1


def test_no_positive_condition_means_no_allowed_bitmap(attributes, item_rows) -> None:
    compiled = compile_filters(Filters.model_validate({"deny_items": ["item3"]}), attributes, item_rows)
    assert compiled.allowed is None and compiled.denied.tolist() == [3]
