"""The tier split gives every tier evaluable users, on data where nobody is new."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from training.splits import tier_split
from training.tier_eval import tier_users


def _heavy_users(users: int = 400, items: int = 200, per_user: int = 40) -> sp.csr_matrix:
    rng = np.random.default_rng(3)
    rows = np.repeat(np.arange(users), per_user)
    cols = np.concatenate([rng.choice(items, per_user, replace=False) for _ in range(users)])
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(users, items))


def test_every_tier_gets_users_even_when_all_histories_are_long() -> None:
    m = _heavy_users()
    parts = tier_split(m, None, cold_share=0.2, warm_share=0.2, seed=1)
    by = tier_users(parts.train, parts.test, warm_min=5, hot_min=20)
    assert len(by["cold"]) > 40 and len(by["warm"]) > 40 and len(by["hot"]) > 150
    counts = np.diff(parts.train.indptr)
    assert counts[by["cold"]].max() <= 4 and counts[by["cold"]].min() >= 1
    assert counts[by["warm"]].min() >= 5 and counts[by["warm"]].max() <= 19


def test_cells_are_partitioned_and_test_holds_only_positives() -> None:
    m = _heavy_users()
    m.data[::7] = -1.0  # some dislikes
    parts = tier_split(m, None, seed=2)
    assert parts.train.nnz + parts.test.nnz == m.nnz
    assert (parts.test.data > 0).all()
    overlap = parts.train.multiply(parts.test)
    assert overlap.nnz == 0
    assert (parts.train.data < 0).sum() == (m.data < 0).sum()


def test_with_timestamps_the_kept_items_are_the_earliest() -> None:
    m = _heavy_users(users=50)
    rng = np.random.default_rng(0)
    times = rng.integers(0, 10_000, m.nnz)
    parts = tier_split(m, times, cold_share=1.0, warm_share=0.0, seed=4)
    cell_time = {(r, c): t for r, c, t in zip(*m.nonzero(), times, strict=True)}
    for u in range(50):
        kept = [cell_time[(u, c)] for c in parts.train[u].indices]
        held = [cell_time[(u, c)] for c in parts.test[u].indices]
        assert max(kept) <= min(held)
