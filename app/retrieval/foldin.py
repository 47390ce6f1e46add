"""ALS fold-in: a user's vector solved against a version's fixed item factors.

This is the per-user half step of the ALS solver (what implicit's `recalculate_user` does), so a
user who crossed into the warm tier through `POST /interactions`, or a known user with new
events, is scored without a retrain. For a confidence `c_i = alpha * scale(w_i) * d_i` on the
user's items (negative = dislike: preference 0 with confidence |c_i|; d_i is the item's
popularity discount when the version was fitted with one, else 1) and 1 everywhere else:

    (YᵀY + Σ_i (c_i - 1) y_i y_iᵀ + λI) x = Σ_i [c_i p_i] y_i

Biased versions (training's own solver) store items as [y, 1, b_i] and users as [x, b_u, 1]: the
user solves for [x, b_u] against [y, 1] with b_i as a fixed offset, and gets the 1 appended.
YᵀY (and Yᵀb for biases) are computed once per version, so a fold-in costs
O(n_items_of_user · f² + f³): about 0.1 ms for 20 items at f=128.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from feature_store.confidence import Scaling, scale_values


@dataclass(frozen=True)
class FoldInModel:
    design: np.ndarray  # items x d (float32 view): Y, or [Y, 1] for a biased version
    offset: np.ndarray | None  # item biases b_i (biased versions), else None
    gram: np.ndarray  # d x d: designᵀdesign + λI
    offset_term: np.ndarray  # d: -designᵀb over all items (zeros without biases)
    alpha: float
    scaling: Scaling
    biased: bool
    item_weights: np.ndarray | None = None  # the popularity discount d_i per item

    @classmethod
    def from_factors(
        cls,
        item_factors: np.ndarray,
        regularization: float,
        alpha: float,
        scaling: Scaling | str,
        biased: bool,
        item_weights: np.ndarray | None = None,
    ) -> FoldInModel:
        items = np.asarray(item_factors)
        # Views, not copies: a 1M-item version must not cost each worker another 500 MB.
        design, offset = (items[:, :-1], items[:, -1]) if biased else (items, None)
        d = design.shape[1]
        gram = np.zeros((d, d))
        offset_term = np.zeros(d)
        for start in range(0, len(design), 65_536):  # accumulate in float64, chunk by chunk
            chunk = design[start : start + 65_536].astype(np.float64)
            gram += chunk.T @ chunk
            if offset is not None:
                offset_term -= chunk.T @ offset[start : start + 65_536].astype(np.float64)
        gram += regularization * np.eye(d)
        return cls(design, offset, gram, offset_term, float(alpha), Scaling(scaling), biased, item_weights)

    def fold_in(self, rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The user vector (float32, as stored in the version) for items `rows` with aggregated
        raw event weights `weights` (summed per item, as training aggregates a pair)."""
        rows = np.asarray(rows, np.int64)
        weights = np.asarray(weights, np.float64)
        if len(rows):
            rows, inverse = np.unique(rows, return_inverse=True)
            weights = np.bincount(inverse, weights=weights, minlength=len(rows))
        keep = weights != 0
        rows, weights = rows[keep], weights[keep]
        conf = np.abs(scale_values(weights, self.scaling)).astype(np.float64) * self.alpha
        if self.item_weights is not None:
            conf *= self.item_weights[rows]
        pref = (weights > 0).astype(np.float64)
        z = self.design[rows].astype(np.float64)
        a = self.gram + (z.T * (conf - 1.0)) @ z
        target = conf * pref
        b = self.offset_term.copy()
        if self.offset is not None:
            o = self.offset[rows].astype(np.float64)
            target = conf * (pref - o) + o  # observed cells replace their (0 - o) term of offset_term
        b += z.T @ target
        x = np.linalg.solve(a, b)
        if self.biased:
            x = np.append(x, 1.0)
        return x.astype(np.float32)


def solve_against(
    gram: np.ndarray, fixed: np.ndarray, weights: np.ndarray, alpha: float, scaling: Scaling
) -> np.ndarray:
    """One unbiased ALS half step for any row, against the other side's fixed vectors `fixed`
    (one per interaction, aggregated weights `weights`) and that side's `gram` (VᵀV + λI)."""
    weights = np.asarray(weights, np.float64)
    conf = np.abs(scale_values(weights, scaling)).astype(np.float64) * alpha
    pref = (weights > 0).astype(np.float64)
    z = np.asarray(fixed, np.float64)
    a = gram + (z.T * (conf - 1.0)) @ z
    return np.linalg.solve(a, z.T @ (conf * pref)).astype(np.float32)


def profile_interactions(
    seen: np.ndarray,
    recent_items: np.ndarray,
    recent_weights: np.ndarray,
    limit: int,
    default_weight: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The (rows, aggregated weights) a fold-in uses, from what the store keeps per user.

    Recent items carry their weights (published pairs aggregated, run-time events one by one, so
    summing them per row is the training aggregation); older seen items kept no weight and count
    as `default_weight` (a click). At most `limit` rows, recent ones first, bound the cost.
    """
    rows, inverse = np.unique(np.asarray(recent_items, np.int64), return_inverse=True)
    weights = np.bincount(inverse, weights=np.asarray(recent_weights, np.float64), minlength=len(rows))
    rows, weights = rows[:limit], weights[:limit]
    room = limit - len(rows)
    if room > 0 and len(seen):
        older = _sorted_unique(np.asarray(seen, np.int64))
        if len(rows):
            # `rows` is sorted: a binary search per seen row is the set difference without the
            # sorts np.setdiff1d repeats (it cost more than the rest of a ranked request's
            # profile work).
            at = np.minimum(np.searchsorted(rows, older), len(rows) - 1)
            older = older[rows[at] != older]
        older = older[:room]
        rows = np.concatenate([rows, older])
        weights = np.concatenate([weights, np.full(len(older), default_weight)])
    return rows, weights


def _sorted_unique(rows: np.ndarray) -> np.ndarray:
    """`np.unique` for the store's seen rows, which come unique already: a sort and one check."""
    rows = np.sort(rows)
    return np.unique(rows) if len(rows) > 1 and bool(np.any(rows[1:] == rows[:-1])) else rows
