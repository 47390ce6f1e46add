"""Top-k lists from factors: the same lists a brute-force ranking gives, training items skipped."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from training.evaluation import RANKS_UP_TO, evaluate_ranking, evaluate_recall_ndcg, held_out_ranks, top_k


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


def brute_force_ranks(
    users: np.ndarray, items: np.ndarray, rows: np.ndarray, exclude: sp.csr_matrix, held_out: sp.csr_matrix
) -> np.ndarray:
    out = []
    for user in rows:
        scores = items @ users[user]
        allowed = np.setdiff1d(np.arange(len(items)), exclude[user].indices)
        for item in held_out[user].indices:
            out.append(int((scores[allowed] >= scores[item]).sum()) - 1)
    return np.asarray(out, np.int64)


def held_out_pairs(
    seed: int, n_users: int, n_items: int, per_user: float
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """A training matrix and a held-out matrix with no pair in common."""
    seen = sp.random(n_users, n_items, density=0.2, format="csr", random_state=seed)
    held = sp.random(n_users, n_items, density=per_user / n_items, format="csr", random_state=seed + 1)
    held = sp.csr_matrix(held - held.multiply(seen > 0))
    held.eliminate_zeros()
    held.data[:] = 1.0
    return seen, held


@pytest.mark.parametrize("per_user", [1.0, 4.0])
def test_held_out_ranks_count_the_unseen_items_scoring_higher_like_a_brute_force(per_user: float) -> None:
    rng = np.random.default_rng(4)
    users = rng.standard_normal((200, 8)).astype(np.float32)
    items = rng.standard_normal((90, 8)).astype(np.float32)
    exclude, held = held_out_pairs(4, 200, 90, per_user)
    rows = np.flatnonzero(np.diff(held.indptr) > 0)[::2]
    got = held_out_ranks(users, items, rows, exclude, held)
    assert np.array_equal(got, brute_force_ranks(users, items, rows, exclude, held))


def test_ties_and_broken_scores_rank_a_held_out_item_last() -> None:
    """A collapsed model (every score equal) ranks nothing first; NaN factors rank last."""
    exclude, held = held_out_pairs(5, 50, 40, 1.0)
    rows = np.flatnonzero(np.diff(held.indptr) > 0)
    flat = held_out_ranks(np.zeros((50, 4), np.float32), np.zeros((40, 4), np.float32), rows, exclude, held)
    unseen = 40 - np.diff(exclude.indptr)[rows]
    assert np.array_equal(flat, np.repeat(unseen, np.diff(held[rows].indptr)) - 1)
    broken = np.full((50, 4), np.nan, np.float32)
    assert (held_out_ranks(broken, np.ones((40, 4), np.float32), rows, exclude, held) == 40).all()


@pytest.mark.parametrize("per_user", [1.0, RANKS_UP_TO + 3.0])
def test_recall_and_ndcg_from_ranks_equal_those_of_the_top_k_lists(per_user: float) -> None:
    """Both sides of the cost rule (ranks for few held-out items a user, lists for many) give
    `evaluate_ranking`'s figures, on all users and on a sample of them."""
    rng = np.random.default_rng(6)
    users = rng.standard_normal((400, 16)).astype(np.float32)
    items = rng.standard_normal((120, 16)).astype(np.float32)
    exclude, held = held_out_pairs(6, 400, 120, per_user)
    for max_users in (None, 150):
        lists = evaluate_ranking(users, items, exclude, held, k=20, max_users=max_users)
        ranked = evaluate_recall_ndcg(users, items, exclude, held, k=20, max_users=max_users)
        assert ranked.users == lists.users
        assert ranked.recall == pytest.approx(lists.recall, abs=1e-12)
        assert ranked.ndcg == pytest.approx(lists.ndcg, abs=1e-12)
        assert 0.0 < ranked.recall < 1.0
