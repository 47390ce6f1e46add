"""Top-k lists from factors: the same lists a brute-force ranking gives, training items skipped."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from training.evaluation import top_k


def brute_force(
    users: np.ndarray, items: np.ndarray, rows: np.ndarray, k: int, exclude: sp.csr_matrix
) -> np.ndarray:
    out = np.full((len(rows), k), -1, np.int64)
    for n, user in enumerate(rows):
        scores = items @ users[user]
        allowed = np.setdiff1d(np.arange(len(items)), exclude[user].indices)
        ranked = allowed[np.argsort(-scores[allowed], kind="stable")][:k]
        out[n, : len(ranked)] = ranked
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_k_skips_each_users_own_items_like_a_brute_force_ranking(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_users, n_items, k = 300, 60, 10
    users = rng.standard_normal((n_users, 8)).astype(np.float32)
    items = rng.standard_normal((n_items, 8)).astype(np.float32)
    seen = sp.random(n_users, n_items, density=0.3, format="lil", random_state=seed)
    seen[5] = 1.0  # a user who has seen the whole catalog gets an empty list
    seen[6] = 0.0
    exclude = seen.tocsr()
    exclude.eliminate_zeros()
    rows = np.sort(rng.choice(n_users, 250, replace=False))
    rows[:2] = [5, 6]
    rows.sort()
    got = top_k(users, items, rows, k, exclude=exclude)
    assert np.array_equal(got, brute_force(users, items, rows, k, exclude))
    assert (got[np.searchsorted(rows, 5)] == -1).all()


def test_top_k_pads_with_minus_one_when_k_exceeds_the_catalog() -> None:
    rng = np.random.default_rng(3)
    users = rng.standard_normal((4, 3)).astype(np.float32)
    items = rng.standard_normal((5, 3)).astype(np.float32)
    exclude = sp.csr_matrix(([1.0, 1.0], ([0, 0], [1, 2])), shape=(4, 5))
    got = top_k(users, items, np.arange(4), 8, exclude=exclude)
    assert np.array_equal(got, brute_force(users, items, np.arange(4), 8, exclude))
    assert (got[0, 3:] == -1).all() and (got[1, 5:] == -1).all()
