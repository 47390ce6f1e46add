"""Properties of event weighting (training/events.py): labels to weights, unknown labels counted."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.errors import UnknownEventTypesError
from training.events import DEFAULT_EVENT_WEIGHTS, event_weights_for

SETTINGS = settings(max_examples=50, deadline=None)

UNKNOWN = ["share", "purchase", "", "views"]


@st.composite
def labels(draw: st.DrawFn) -> str | None:
    """A seed event type in any case with surrounding blanks, an unknown one, or a null."""
    kind = draw(st.sampled_from([*sorted(DEFAULT_EVENT_WEIGHTS), *UNKNOWN, None]))
    if kind is None:
        return None
    cased = "".join(c.upper() if draw(st.booleans()) else c for c in kind)
    blank = st.text(alphabet=" \t", max_size=2)
    return draw(blank) + cased + draw(blank)


def expected_weight(label: str | None) -> float:
    return DEFAULT_EVENT_WEIGHTS.get(label.strip().lower(), np.nan) if label is not None else np.nan


@given(column=st.lists(labels(), min_size=1, max_size=40))
@SETTINGS
def test_each_label_gets_its_table_weight_and_unknown_ones_are_counted(column: list[str | None]) -> None:
    weights, unknown = event_weights_for(
        pa.array(column, pa.string()), DEFAULT_EVENT_WEIGHTS, drop_unknown=True
    )
    expected = np.array([expected_weight(label) for label in column], np.float32)
    assert weights.dtype == np.float32
    np.testing.assert_array_equal(weights, expected)
    assert sum(unknown.values()) == int(np.isnan(expected).sum())
    assert unknown.get("<missing>", 0) == column.count(None)


@given(column=st.lists(labels(), min_size=1, max_size=40))
@SETTINGS
def test_unknown_labels_raise_unless_dropped(column: list[str | None]) -> None:
    if any(np.isnan(expected_weight(label)) for label in column):
        with pytest.raises(UnknownEventTypesError, match="Unknown event types"):
            event_weights_for(pa.array(column, pa.string()), DEFAULT_EVENT_WEIGHTS)
    else:
        weights, unknown = event_weights_for(pa.array(column, pa.string()), DEFAULT_EVENT_WEIGHTS)
        assert unknown == {} and not np.isnan(weights).any()
