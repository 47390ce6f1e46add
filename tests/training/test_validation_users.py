"""How many users score the search's trials: as many as a fixed cost per checkpoint allows, more
where they hold too few held-out items, never past a ceiling."""

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


def test_sample_is_as_large_as_the_scoring_budget_allows() -> None:
    chosen = validation_users(holdout(2000, 50, 1), seed=1, min_users=100, max_scores=50 * 300, min_items=0)
    assert len(chosen) == 300


def test_budget_never_cuts_below_the_minimum() -> None:
    chosen = validation_users(holdout(2000, 50, 1), seed=1, min_users=100, max_scores=1, min_items=0)
    assert len(chosen) == 100


def test_a_larger_catalog_gets_fewer_users_for_the_same_budget() -> None:
    few_items = validation_users(holdout(2000, 50, 1), seed=1, min_users=10, max_scores=20_000, min_items=0)
    many_items = validation_users(holdout(2000, 200, 1), seed=1, min_users=10, max_scores=20_000, min_items=0)
    assert (len(few_items), len(many_items)) == (400, 100)


def test_a_sparse_log_gets_users_until_they_hold_enough_held_out_items() -> None:
    one_each = validation_users(
        holdout(2000, 50, 1), seed=1, min_users=10, max_scores=50 * 100, min_items=600
    )
    three_each = validation_users(
        holdout(2000, 50, 3), seed=1, min_users=10, max_scores=50 * 100, min_items=600
    )
    assert (len(one_each), len(three_each)) == (600, 200)


def test_the_held_out_items_never_push_the_sample_past_the_ceiling() -> None:
    chosen = validation_users(
        holdout(2000, 50, 1),
        seed=1,
        min_users=10,
        max_scores=50 * 100,
        min_items=1500,
        ceiling_scores=50 * 800,
    )
    assert len(chosen) == 800


def test_a_larger_sample_extends_the_smaller_one() -> None:
    matrix = holdout(2000, 50, 1)
    small = validation_users(matrix, seed=3, min_users=10, max_scores=50 * 100, min_items=0)
    large = validation_users(matrix, seed=3, min_users=10, max_scores=50 * 100, min_items=700)
    assert len(large) == 700 and set(small) <= set(large)


def test_users_without_held_out_items_are_never_drawn_and_small_logs_use_everyone() -> None:
    matrix = holdout(300, 50, 1)
    matrix = only_rows(matrix, np.arange(0, 300, 2))
    chosen = validation_users(matrix, seed=1, min_users=1000)
    np.testing.assert_array_equal(chosen, np.arange(0, 300, 2))


def test_the_sample_depends_on_the_seed_and_is_sorted() -> None:
    matrix = holdout(2000, 50, 1)
    a = validation_users(matrix, seed=1, min_users=100, max_scores=1, min_items=0)
    b = validation_users(matrix, seed=2, min_users=100, max_scores=1, min_items=0)
    assert not np.array_equal(a, b)
    assert np.all(np.diff(a) > 0)
    np.testing.assert_array_equal(
        a, validation_users(matrix, seed=1, min_users=100, max_scores=1, min_items=0)
    )


def test_only_rows_empties_the_other_rows_and_keeps_the_shape() -> None:
    matrix = holdout(10, 20, 3)
    kept = only_rows(matrix, np.array([2, 5]))
    assert kept.shape == matrix.shape
    assert np.flatnonzero(np.diff(kept.indptr)).tolist() == [2, 5]
    assert (kept[[2, 5]] != matrix[[2, 5]]).nnz == 0
