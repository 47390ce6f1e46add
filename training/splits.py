"""Train/test splits of a user x item matrix. Pure functions: matrix in, two matrices out.

Only positive cells are ever held out (a dislike is training signal, not something to predict).
- `random`: each positive interaction goes to test with probability `test_fraction` (the usual
  "random 80/20 per interaction", as implicit's `train_test_split`).
- `user`: each user with at least two positives holds out that fraction of their own positives
  (at least one, never all), so every such user is evaluated.
- `time`: a global cut at the (1 - fraction) quantile of timestamps: train on the past, test on the
  future, as a weekly retrain lives it. Test cells of users or items unseen in training are dropped.
- `leave_one_out`: each user's latest positive (random when there are no timestamps), the NCF protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import scipy.sparse as sp


class SplitKind(StrEnum):
    random = "random"
    user = "user"
    time = "time"
    leave_one_out = "leave_one_out"


@dataclass(frozen=True)
class Split:
    train: sp.csr_matrix
    test: sp.csr_matrix  # positives only, value 1
    train_times: np.ndarray | None = None  # aligned with train.data when times were given


def _row_of_each_value(matrix: sp.csr_matrix) -> np.ndarray:
    return np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))


def _apply(matrix: sp.csr_matrix, times: np.ndarray | None, held: np.ndarray) -> Split:
    rows = _row_of_each_value(matrix)
    cols = matrix.indices
    train = sp.csr_matrix(
        (matrix.data[~held], (rows[~held], cols[~held])), shape=matrix.shape, dtype=np.float32
    )
    test = sp.csr_matrix((np.ones(int(held.sum()), np.float32), (rows[held], cols[held])), shape=matrix.shape)
    train_times = None
    if times is not None:
        # Rebuilding from sorted (row, col) pairs keeps their order, so times stay aligned.
        train_times = times[~held]
    return Split(train, test, train_times)


def split(
    matrix: sp.csr_matrix,
    kind: SplitKind,
    *,
    test_fraction: float = 0.2,
    times: np.ndarray | None = None,
    seed: int = 42,
    per_user: int = 1,
) -> Split:
    """`per_user` is how many positives leave_one_out holds out per user (the latest when `times`
    are given; always leaving the user one): more than one gives a validation more cases."""
    if not 0.0 < test_fraction < 1.0 and kind is not SplitKind.leave_one_out:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    matrix = matrix.tocsr()
    matrix.sort_indices()
    rng = np.random.default_rng(seed)
    positive = matrix.data > 0
    if kind is SplitKind.random:
        held = positive & (rng.random(matrix.nnz) < test_fraction)
    elif kind is SplitKind.user:
        held = _per_user_holdout(matrix, positive, rng, test_fraction, times=None)
    elif kind is SplitKind.leave_one_out:
        held = _per_user_holdout(matrix, positive, rng, None, times=times, per_user=per_user)
    elif kind is SplitKind.time:
        if times is None:
            raise ValueError("a time split needs timestamps; this data set has none")
        cut = np.quantile(times[positive], 1.0 - test_fraction)
        held = positive & (times > cut)
    else:  # pragma: no cover
        raise ValueError(kind)
    result = _apply(matrix, times, held)
    if kind is SplitKind.time:
        result = _drop_unseen(result)
    return result


def _per_user_holdout(
    matrix: sp.csr_matrix,
    positive: np.ndarray,
    rng: np.random.Generator,
    fraction: float | None,
    times: np.ndarray | None,
    per_user: int = 1,
) -> np.ndarray:
    """Hold out per user: `fraction` of their positives, or (fraction None) `per_user` of them,
    the latest first when `times` are given."""
    rows = _row_of_each_value(matrix)
    n_pos = np.bincount(rows[positive], minlength=matrix.shape[0])
    # Rank each user's positives: by a random key, or by time (latest first) when times are given.
    key = rng.random(matrix.nnz)
    if times is not None:
        key = -(times.astype(np.float64)) + key * 1e-3  # ties broken at random
    key = np.where(positive, key, np.inf)
    order = np.lexsort((key, rows))
    rank = np.empty(matrix.nnz, dtype=np.int64)
    starts = matrix.indptr[:-1]
    rank[order] = np.arange(matrix.nnz) - np.repeat(starts, np.diff(matrix.indptr))
    if fraction is None:
        quota = np.clip(np.minimum(per_user, n_pos - 1), 0, None)
    else:
        quota = np.where(n_pos >= 2, np.clip(np.round(n_pos * fraction), 1, n_pos - 1), 0)
    return positive & (rank < quota[rows])


def latest_split(matrix: sp.csr_matrix, times: np.ndarray | None, fraction: float, seed: int = 42) -> Split:
    """Each user's latest `fraction` of positives held out (at random without timestamps): what
    they did next, as the ranker learns from it. Users with one positive keep it."""
    matrix = matrix.tocsr()
    matrix.sort_indices()
    held = _per_user_holdout(matrix, matrix.data > 0, np.random.default_rng(seed), fraction, times)
    return _apply(matrix, times, held)


def _drop_unseen(result: Split) -> Split:
    """Users or items with no training positive cannot be ranked by a factor model: drop them."""
    train_pos = result.train.copy()
    train_pos.data = (train_pos.data > 0).astype(np.float32)
    has_user = np.asarray(train_pos.sum(axis=1)).ravel() > 0
    has_item = np.asarray(train_pos.sum(axis=0)).ravel() > 0
    test = result.test.tocoo()
    keep = has_user[test.row] & has_item[test.col]
    kept = sp.csr_matrix((test.data[keep], (test.row[keep], test.col[keep])), shape=test.shape)
    return Split(result.train, kept, result.train_times)


def validation_split(
    train: sp.csr_matrix, fraction: float = 0.1, seed: int = 7, times: np.ndarray | None = None
) -> Split:
    """Carve a validation set out of a training matrix (per user, so every user can be scored).

    With `times` (aligned with the canonical CSR data), each user holds out their latest
    positives: what they did next, as the tier split's test and a weekly retrain see it. A model
    chosen on a random holdout favours whatever fills gaps in the past, not what predicts the
    future (on the synthetic log, Two-Tower lost to ALS on a random validation and beat it on the
    latest-items test).
    """
    if times is None:
        return split(train, SplitKind.user, test_fraction=fraction, seed=seed)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    matrix = train.tocsr()
    if not matrix.has_sorted_indices:
        raise ValueError("times must align with a canonical (sorted) CSR matrix")
    held = _per_user_holdout(matrix, matrix.data > 0, np.random.default_rng(seed), fraction, times=times)
    return _apply(matrix, times, held)


def tier_split(
    matrix: sp.csr_matrix,
    times: np.ndarray | None = None,
    *,
    test_fraction: float = 0.2,
    cold_share: float = 0.15,
    warm_share: float = 0.15,
    cold_max: int = 4,
    warm_max: int = 19,
    seed: int = 42,
) -> Split:
    """A split where every tier of the service has users to evaluate, on any data set.

    Real logs often lack the short histories the cold and warm tiers serve (every ML-1M user rated
    20 films), so a random `cold_share` of users is cut back to their first 1..`cold_max` positives
    (a new user's first visits) and a `warm_share` to their first `cold_max`+1..`warm_max`; the
    rest of their positives is what they did next, the test set. Other users hold out their latest
    `test_fraction` (random order without timestamps). Non-positive cells stay in training.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if not (cold_share >= 0.0 and warm_share >= 0.0 and cold_share + warm_share <= 1.0):
        raise ValueError("cold_share and warm_share must be >= 0 and sum to at most 1")
    matrix = matrix.tocsr()
    matrix.sort_indices()
    rng = np.random.default_rng(seed)
    rows = _row_of_each_value(matrix)
    positive = matrix.data > 0
    n_pos = np.bincount(rows[positive], minlength=matrix.shape[0])
    key = rng.random(matrix.nnz)
    if times is not None:
        key = times.astype(np.float64) + key * 1e-3  # earliest first, ties at random
    key = np.where(positive, key, np.inf)
    order = np.lexsort((key, rows))
    rank = np.empty(matrix.nnz, dtype=np.int64)
    rank[order] = np.arange(matrix.nnz) - np.repeat(matrix.indptr[:-1], np.diff(matrix.indptr))
    keep = np.where(n_pos >= 2, n_pos - np.clip(np.round(n_pos * test_fraction), 1, n_pos - 1), n_pos)
    draw = rng.random(matrix.shape[0])
    cold = (draw < cold_share) & (n_pos >= cold_max + 2)
    warm = (draw >= cold_share) & (draw < cold_share + warm_share) & (n_pos >= warm_max + 2)
    keep = np.where(cold, rng.integers(1, cold_max + 1, matrix.shape[0]), keep)
    keep = np.where(warm, rng.integers(cold_max + 1, warm_max + 1, matrix.shape[0]), keep)
    held = positive & (rank >= keep[rows])
    return _apply(matrix, times, held)
