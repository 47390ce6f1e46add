"""Item fold-in solves the item half of ALS: it reproduces a trained item's vector from its
users, and the event bookkeeping behind it stays bounded whatever the stream holds."""

from __future__ import annotations

import numpy as np

from app.retrieval.foldin import solve_against
from app.retrieval.item_foldin import NewItemEvents, user_gram
from feature_store.base import StreamEntry
from tests.app.retrieval.test_foldin import _cosine, _fitted


def test_item_fold_in_reproduces_a_trained_items_vector() -> None:
    matrix, users, items, params, _ = _fitted(biases=False)
    columns = matrix.tocsc()
    gram = user_gram(users, params.regularization)
    popular = np.argsort(-np.diff(columns.indptr))[:20]
    for item in popular.tolist():
        rows = columns.indices[columns.indptr[item] : columns.indptr[item + 1]]
        weights = columns.data[columns.indptr[item] : columns.indptr[item + 1]]
        solved = solve_against(gram, users[rows], weights, params.alpha, params.scaling)
        assert _cosine(solved, items[item]) > 0.99


def _entry(n: int, user: str, item: str, weight: str = "1.0") -> StreamEntry:
    return StreamEntry(f"{n}-0", {"user_id": user, "item_id": item, "weight": weight})


def test_events_of_known_items_are_skipped_and_weights_sum_per_user() -> None:
    events = NewItemEvents()
    stream = [_entry(1, "u1", "new"), _entry(2, "u1", "new", "2.5"), _entry(3, "u2", "old")]
    changed = events.add([*stream, _entry(4, "u2", "new")], known={"old": 0})
    assert changed == {"new"} and events.after == "4-0"
    assert events.weights == {"new": {"u1": 3.5, "u2": 1.0}}
    events.add([_entry(5, "u3", "new", "-1.0")], known={})
    assert events.takers == {"new": 2}  # a dislike is no taker


def test_malformed_stream_entries_are_ignored() -> None:
    events = NewItemEvents()
    events.add([_entry(1, "u1", "x", "nan"), _entry(2, "u1", "x", "heavy"), _entry(3, "", "x")], known={})
    assert events.weights == {} and events.after == "3-0"


def test_items_and_users_per_item_are_bounded() -> None:
    events = NewItemEvents(max_users=3, max_items=2)
    events.add([_entry(i, f"u{i}", "a") for i in range(5)], known={})
    assert list(events.weights["a"]) == ["u2", "u3", "u4"]  # the newest users
    events.add([_entry(10, "u", "b"), _entry(11, "u", "c")], known={})
    assert list(events.weights) == ["b", "c"]  # the least recently active item dropped out
    assert set(events.takers) == {"b", "c"}
