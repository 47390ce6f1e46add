"""Time-decayed popularity: the answer for users with nothing, and the baseline every tier must beat.

Each positive (user, item) pair counts once (distinct users, so one binge does not crown an item),
discounted by its age: `0.5 ** (age / half_life)`, age measured from the newest event of the data.
No single half-life is right (a news feed forgets in hours, a film catalog in years), so the
half-life is chosen on the data itself: train on events before a time cut, predict the events after
it, keep the half-life with the best NDCG. Without timestamps there is nothing to decay and the
model is the plain distinct-user count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from training.evaluation import evaluate_ranking

# Candidate half-lives as shares of the data's time span; None = no decay.
HALF_LIFE_SHARES: tuple[float | None, ...] = (None, 0.5, 0.125, 0.03125)
_VALIDATION_USERS = 5_000


@dataclass(frozen=True)
class PopularityModel:
    scores: np.ndarray  # float32 per item, higher = more popular now
    half_life_s: float | None  # None: no decay (or no timestamps)
    trials: dict[str, float] = field(default_factory=dict)  # half-life label -> validation NDCG@10

    def as_factors(self, n_users: int) -> tuple[np.ndarray, np.ndarray]:
        """As a one-factor model (every user 1, every item its score), for the shared evaluation."""
        return np.ones((n_users, 1), np.float32), self.scores[:, None].astype(np.float32)

    def info(self) -> dict[str, object]:
        return {"half_life_s": self.half_life_s, "validation_ndcg_by_half_life": self.trials}


def decayed_counts(
    matrix: sp.csr_matrix, times: np.ndarray | None, half_life_s: float | None, now: float | None = None
) -> np.ndarray:
    """Distinct positive users per item, each discounted by the age of the pair's latest event."""
    matrix = matrix.tocsr()
    positive = matrix.data > 0
    if times is None or half_life_s is None:
        weights = positive.astype(np.float64)
    else:
        t = times.astype(np.float64)
        ref = float(t[positive].max()) if now is None and positive.any() else float(now or 0.0)
        weights = np.where(positive, np.exp2(-np.maximum(ref - t, 0.0) / half_life_s), 0.0)
    return np.bincount(matrix.indices, weights=weights, minlength=matrix.shape[1]).astype(np.float32)


def _label(share: float | None) -> str:
    return "none" if share is None else f"{share:g} of span"


def choose_half_life(
    matrix: sp.csr_matrix, times: np.ndarray, shares: tuple[float | None, ...] = HALF_LIFE_SHARES, k: int = 10
) -> tuple[float | None, dict[str, float]]:
    """Pick the half-life that best predicts the last 10% of events (by time) from the rest."""
    matrix = matrix.tocsr()
    positive = matrix.data > 0
    cut = float(np.quantile(times[positive], 0.9))
    span = float(times[positive].max() - times[positive].min())
    later = positive & (times > cut)
    if span <= 0 or not later.any() or later.all():
        return None, {}
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    past = sp.csr_matrix(
        (matrix.data[~later], (rows[~later], matrix.indices[~later])), shape=matrix.shape, dtype=np.float32
    )
    future = sp.csr_matrix(
        (np.ones(int(later.sum()), np.float32), (rows[later], matrix.indices[later])), shape=matrix.shape
    )
    past_times = times[~later]
    # Rebuilding from sorted (row, col) pairs keeps the order, so past_times stay aligned.
    trials: dict[str, float] = {}
    best: tuple[float, float | None] = (-1.0, None)
    for share in shares:
        half = None if share is None else share * span
        scores = decayed_counts(past, past_times, half, now=cut)
        ones = np.ones((matrix.shape[0], 1), np.float32)
        ndcg = evaluate_ranking(
            ones, scores[:, None], past, future, k=k, max_users=_VALIDATION_USERS, seed=0
        ).ndcg
        trials[_label(share)] = round(ndcg, 5)
        if ndcg > best[0] + 1e-9:  # ties keep the earlier, simpler candidate (no decay first)
            best = (ndcg, half)
    return best[1], trials


def fit_popularity(matrix: sp.csr_matrix, times: np.ndarray | None) -> PopularityModel:
    if times is None or not len(times):
        return PopularityModel(decayed_counts(matrix, None, None), None)
    half_life, trials = choose_half_life(matrix, times)
    return PopularityModel(decayed_counts(matrix, times, half_life), half_life, trials)
