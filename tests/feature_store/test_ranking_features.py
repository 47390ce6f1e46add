"""The ranker's features, as training and serving both compute them."""

from __future__ import annotations

import numpy as np
import pytest

from feature_store.ranking_features import (
    FEATURES,
    ItemSide,
    UserSide,
    candidate_features,
    candidates,
    feature_mismatch,
)


def _items(n: int = 6) -> ItemSide:
    rng = np.random.default_rng(0)
    return ItemSide(
        als=rng.standard_normal((n, 4)).astype(np.float32),
        two_tower=None,
        content=np.eye(n, 3, dtype=np.float32),
        counts=np.arange(n, dtype=np.float32),
        trend=np.linspace(0, 1, n).astype(np.float32),
        first_seen=np.full(n, 1_000.0),
    )


def test_candidates_are_the_union_of_the_lists_in_first_seen_order_without_padding() -> None:
    lists = {
        "als": np.array([3, 1, -1]),
        "popularity": np.array([1, 5, 0]),
        "content": np.array([], np.int64),
    }
    np.testing.assert_array_equal(candidates(lists), [3, 1, 5, 0])


def test_each_feature_reads_its_own_source_and_a_missing_model_is_nan() -> None:
    items = _items()
    user = UserSide(
        count=7, tier=1, recent=np.array([2, 4]), als=np.ones(4, np.float32), content=np.eye(3)[0]
    )
    lists = {"als": np.array([3, 1]), "popularity": np.array([1, 5])}
    rows = candidates(lists)
    x = candidate_features(rows, lists, user, items, now=1_000.0 + 2 * 86_400)
    col = {name: x[:, j] for j, name in enumerate(FEATURES)}
    assert x.shape == (3, len(FEATURES)) and x.dtype == np.float32
    np.testing.assert_allclose(col["als_score"], items.als[rows] @ np.ones(4), rtol=1e-5)
    np.testing.assert_array_equal(col["als_rank"], [0, 1, np.nan])
    z = col["als_score_z"]
    np.testing.assert_allclose([z.mean(), z.std()], [0.0, 1.0], atol=1e-5)  # within this user's candidates
    assert np.argmax(z) == np.argmax(col["als_score"])
    np.testing.assert_array_equal(col["popularity_rank"], [np.nan, 0, 1])
    np.testing.assert_array_equal(col["sources"], [1, 2, 1])
    assert np.isnan(col["two_tower_score"]).all() and np.isnan(col["content_rank"]).all()
    np.testing.assert_allclose(col["item_age_days"], 2.0)
    np.testing.assert_allclose(col["user_count_log"], np.log1p(7))
    assert (col["user_tier"] == 1).all()
    unit = items.als / np.linalg.norm(items.als, axis=1, keepdims=True)
    np.testing.assert_allclose(
        col["recent_similarity"], (unit[rows] @ unit[[2, 4]].T).mean(axis=1), rtol=1e-5
    )


def test_a_user_without_recent_items_has_no_recent_similarity() -> None:
    user = UserSide(count=0, tier=0, recent=np.empty(0, np.int64))
    x = candidate_features(np.array([0, 1]), {"popularity": np.array([0, 1])}, user, _items(), now=0.0)
    assert np.isnan(x[:, FEATURES.index("recent_similarity")]).all()


@pytest.mark.parametrize(
    ("names", "says"),
    [
        (list(FEATURES), None),
        ([*FEATURES[:-1], "weather"], "cannot compute: weather"),
        (list(FEATURES[:-1]), "lacks features"),
        ([FEATURES[1], FEATURES[0], *FEATURES[2:]], "another order"),
    ],
)
def test_a_feature_list_other_than_ours_is_named(names: list[str], says: str | None) -> None:
    problem = feature_mismatch(names)
    assert problem is None if says is None else says in (problem or "")
