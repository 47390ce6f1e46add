"""How many users score the search's trials: sized by held-out positives, bounded by cost."""

import numpy as np
import scipy.sparse as sp

from training.tune import only_rows, validation_users


def holdout(users: int, items: int, per_user: int, seed: int = 0) -> sp.csr_matrix:
    """`per_user` held-out items for each user, as a validation split leaves them."""
    rng = np.random.default_rng(seed)
    cols = np.concatenate([rng.choice(items, per_user, replace=False) for _ in range(users)])
    rows = np.repeat(np.arange(users), per_user)
    data = np.ones(len(rows), np.float32)
    return sp.csr_matrix((data, (rows, cols)), shape=(users, items))


def test_dense_log_keeps_the_minimum_number_of_users() -> None:
    chosen = validation_users(holdout(500, 50, 10), seed=1, min_users=100, positives=300)
    assert len(chosen) == 100


def test_sparse_log_takes_users_until_the_positives_are_reached() -> None:
    matrix = holdout(2000, 50, 1)
    chosen = validation_users(matrix, seed=1, min_users=100, positives=700, max_scores=10**9)
    assert matrix[chosen].nnz == 700


def test_sample_stops_at_the_scoring_budget() -> None:
    chosen = validation_users(holdout(2000, 50, 1), seed=1, min_users=100, positives=700, max_scores=50 * 300)
    assert len(chosen) == 300


def test_budget_never_cuts_below_the_minimum() -> None:
    chosen = validation_users(holdout(2000, 50, 1), seed=1, min_users=100, positives=700, max_scores=1)
    assert len(chosen) == 100


def test_users_without_held_out_items_are_never_drawn_and_small_logs_use_everyone() -> None:
    matrix = holdout(300, 50, 1)
    matrix = only_rows(matrix, np.arange(0, 300, 2))
    chosen = validation_users(matrix, seed=1, min_users=1000, positives=10**6)
    np.testing.assert_array_equal(chosen, np.arange(0, 300, 2))


def test_the_sample_depends_on_the_seed_and_is_sorted() -> None:
    matrix = holdout(2000, 50, 1)
    a = validation_users(matrix, seed=1, min_users=100, positives=10)
    b = validation_users(matrix, seed=2, min_users=100, positives=10)
    assert not np.array_equal(a, b)
    assert np.all(np.diff(a) > 0)
    np.testing.assert_array_equal(a, validation_users(matrix, seed=1, min_users=100, positives=10))


def test_only_rows_empties_the_other_rows_and_keeps_the_shape() -> None:
    matrix = holdout(10, 20, 3)
    kept = only_rows(matrix, np.array([2, 5]))
    assert kept.shape == matrix.shape
    assert np.flatnonzero(np.diff(kept.indptr)).tolist() == [2, 5]
    assert (kept[[2, 5]] != matrix[[2, 5]]).nnz == 0
