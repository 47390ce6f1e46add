"""Popularity answers: the k most popular allowed, non-excluded items, always k when k exist."""

from __future__ import annotations

import numpy as np
import pytest

from app.retrieval import bitmaps
from app.retrieval.popularity import PopularityRanking


def test_unfiltered_popularity_is_the_top_of_the_ranking_scaled_to_one() -> None:
    ranking = PopularityRanking(np.array([5, 50, 20, 0, 10], np.float32))
    rows, scores = ranking.top(3)
    assert rows.tolist() == [1, 2, 4]
    assert scores.tolist() == pytest.approx([1.0, 0.4, 0.2])


def test_a_sparse_filter_and_exclusions_still_give_k_results() -> None:
    n = 100_000
    ranking = PopularityRanking(np.random.default_rng(0).pareto(1.2, n).astype(np.float32))
    allowed_rows = np.arange(0, n, 1000)  # 0.1% of items
    allowed = bitmaps.from_rows(n, allowed_rows)
    excluded = allowed_rows[:30]
    rows, scores = ranking.top(50, allowed, excluded)
    assert len(rows) == 50
    assert set(rows.tolist()) <= set(allowed_rows[30:].tolist())
    assert np.all(np.diff(scores) <= 0)
    expected = allowed_rows[30:][np.argsort(-ranking.scores[allowed_rows[30:]], kind="stable")][:50]
    assert rows.tolist() == expected.tolist()


def test_fewer_allowed_items_than_k_returns_all_of_them() -> None:
    ranking = PopularityRanking(np.arange(10, dtype=np.float32))
    rows, _ = ranking.top(5, bitmaps.from_rows(10, np.array([1, 2])))
    assert sorted(rows.tolist()) == [1, 2]


@pytest.mark.parametrize("share", [0.001, 0.03, 0.2, 0.9])
def test_narrow_and_wide_filters_agree_with_a_brute_force_ranking(share: float) -> None:
    """Narrow filters rank their own rows, wide ones walk the global ranking: same answers."""
    rng = np.random.default_rng(7)
    n = 20_000
    ranking = PopularityRanking(rng.integers(0, 500, n).astype(np.float32))  # many ties
    allowed_rows = np.flatnonzero(rng.random(n) < share)
    excluded = rng.choice(allowed_rows, len(allowed_rows) // 10, replace=False)
    rows, _ = ranking.top(40, bitmaps.from_rows(n, allowed_rows), excluded)
    keep = np.setdiff1d(allowed_rows, excluded)
    expected = keep[np.lexsort((keep, -ranking.scores[keep]))][:40]
    assert rows.tolist() == expected.tolist()
