"""Time-decayed popularity: the decay, the half-life chosen on the data, and the no-timestamp case."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from training.popularity import decayed_counts, fit_popularity

DAY = 86_400.0


def _matrix(rows: list[int], cols: list[int], shape: tuple[int, int]) -> sp.csr_matrix:
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)


def test_recent_item_outranks_an_item_with_more_but_older_users() -> None:
    # item 0: three users a year ago; item 1: two users today.
    m = _matrix([0, 1, 2, 3, 4], [0, 0, 0, 1, 1], (5, 2))
    times = np.array([0, 0, 0, 365 * DAY, 365 * DAY], np.int64)
    plain = decayed_counts(m, times, None)
    decayed = decayed_counts(m, times, 30 * DAY)
    assert plain.tolist() == [3.0, 2.0]
    assert decayed[1] > decayed[0]
    assert decayed[1] == 2.0  # age zero keeps full weight


def test_dislikes_do_not_count_as_popularity() -> None:
    m = sp.csr_matrix(np.array([[1.0, -1.0], [0.0, -1.0], [0.0, -1.0]], np.float32))
    assert decayed_counts(m, None, None).tolist() == [1.0, 0.0]


def test_without_timestamps_the_model_is_the_distinct_user_count() -> None:
    m = _matrix([0, 1, 1], [0, 0, 1], (2, 2))
    model = fit_popularity(m, None)
    assert model.half_life_s is None
    assert model.scores.tolist() == [2.0, 1.0]


def test_half_life_is_chosen_where_tastes_drift() -> None:
    """Old favourites fade and new ones rise: predicting the last events needs a decay."""
    rng = np.random.default_rng(0)
    users, items, horizon = 3_000, 40, 1_000 * DAY
    rows, cols, times = [], [], []
    for u in range(users):
        t = rng.uniform(0, horizon)
        # Early on items 0-19 are in fashion, later items 20-39.
        base = 0 if t < 0.7 * horizon else 20
        for item in rng.choice(20, 3, replace=False) + base:
            rows.append(u)
            cols.append(item)
            times.append(t)
    order = np.lexsort((cols, rows))
    m = sp.csr_matrix(
        (np.ones(len(rows), np.float32), (np.array(rows)[order], np.array(cols)[order])), shape=(users, items)
    )
    model = fit_popularity(m, np.array(times, np.int64)[order])
    assert model.half_life_s is not None
    assert set(model.trials) >= {"none"}
    assert model.trials[min(model.trials, key=lambda k: -model.trials[k])] > model.trials["none"]
    # The fashionable items (20-39) now lead the ranking.
    assert np.argsort(-model.scores)[:10].min() >= 20
