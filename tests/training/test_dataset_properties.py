"""Properties of event aggregation (training/dataset.py): repeated events of a (user, item) pair
are summed, net-zero pairs dropped, net-negative pairs kept as dislikes, and the same log in any
row order gives the same matrix."""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from training.dataset import Dataset, build_dataset
from training.errors import MatrixTooSparseError
from training.events import DEFAULT_EVENT_WEIGHTS
from training.interaction_log import from_table

SETTINGS = settings(max_examples=40, deadline=None)

Event = tuple[str, str, str, int]  # user, item, event type, timestamp

events = st.tuples(
    st.sampled_from([f"u{i}" for i in range(5)]),
    st.sampled_from([f"i{i}" for i in range(5)]),
    st.sampled_from(sorted(DEFAULT_EVENT_WEIGHTS)),
    st.integers(1_700_000_000, 1_700_001_000),  # plausible epoch seconds
)
logs = st.lists(events, min_size=1, max_size=40)


def build(rows: list[Event]) -> Dataset | type[MatrixTooSparseError]:
    users, items, types, stamps = zip(*rows, strict=True)
    table = pa.table({"user_id": users, "item_id": items, "event_type": types, "timestamp": stamps})
    try:
        return build_dataset(from_table(table, DEFAULT_EVENT_WEIGHTS))
    except MatrixTooSparseError:
        return MatrixTooSparseError


def cells(ds: Dataset) -> dict[tuple[str, str], tuple[float, int]]:
    coo = ds.matrix.tocoo()
    assert ds.times is not None
    # tocoo() of a canonical CSR keeps the data order, which `times` is aligned with.
    return {
        (str(ds.user_ids[u]), str(ds.item_ids[i])): (float(w), int(t))
        for u, i, w, t in zip(coo.row, coo.col, coo.data, ds.times, strict=True)
    }


@given(rows=logs, order=st.randoms(use_true_random=False))
@SETTINGS
def test_aggregation_does_not_depend_on_the_order_of_the_events(
    rows: list[Event], order: random.Random
) -> None:
    shuffled = rows.copy()
    order.shuffle(shuffled)
    first, again = build(rows), build(shuffled)
    if first is MatrixTooSparseError or again is MatrixTooSparseError:
        assert first is again
        return
    assert isinstance(first, Dataset) and isinstance(again, Dataset)
    assert first.fingerprint == again.fingerprint
    assert first.user_ids.tolist() == again.user_ids.tolist()
    assert first.item_ids.tolist() == again.item_ids.tolist()
    assert (first.matrix != again.matrix).nnz == 0
    assert first.times is not None and again.times is not None
    assert np.array_equal(first.times, again.times)


@given(rows=logs)
@SETTINGS
def test_each_cell_is_the_net_weight_and_latest_time_of_its_pair(rows: list[Event]) -> None:
    """Brute force: sum per pair, drop net zero, keep net negative (a dislike), and keep only
    users and items with at least one positive pair (min_interactions 1)."""
    net: dict[tuple[str, str], float] = defaultdict(float)
    latest: dict[tuple[str, str], int] = {}
    for user, item, kind, stamp in rows:
        net[(user, item)] += DEFAULT_EVENT_WEIGHTS[kind]
        latest[(user, item)] = max(stamp, latest.get((user, item), stamp))
    positive = [pair for pair, w in net.items() if w > 0]
    users, items = {u for u, _ in positive}, {i for _, i in positive}
    expected = {
        (u, i): (w, latest[(u, i)]) for (u, i), w in net.items() if w != 0 and u in users and i in items
    }
    ds = build(rows)
    if len(users) < 2 or len(items) < 2:
        assert ds is MatrixTooSparseError
        return
    assert isinstance(ds, Dataset)
    assert cells(ds) == expected
    assert ds.info["negative_pairs"] == sum(1 for w, _ in expected.values() if w < 0)
    assert set(ds.user_ids.tolist()) == users and set(ds.item_ids.tolist()) == items
