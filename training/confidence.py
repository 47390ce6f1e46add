"""Confidence scaling: from aggregated event weights to the confidences ALS is fitted on.

implicit fits `alpha * value` as the confidence of an observed cell (unobserved cells weigh 1),
so a raw count of 5,000 plays times alpha 40 is not a confidence, it is a 200,000x imbalance.
These functions bound that. The sign is kept: a negative value is an explicit dislike, which
implicit reads as preference 0 with confidence |value|.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from feature_store.confidence import Scaling, scale_values

__all__ = [
    "Scaling",
    "choose_default_scaling",
    "confidence_matrix",
    "popularity_weights",
    "scale_matrix",
    "scale_values",
]


def popularity_weights(matrix: sp.csr_matrix, discount: float) -> np.ndarray:
    """Per item, `(positive pairs of the item / their mean over items) ** -discount` (float32).

    With `discount` > 0 a pair with a popular item is less evidence of taste than a pair with a
    niche one (everyone has seen the blockbuster), so its confidence shrinks, and a niche pair's
    grows, with the mean item unchanged. This is the propensity idea of popularity-debiased
    recommenders applied to ALS confidences. Items without positive pairs keep weight 1.
    """
    counts = np.bincount(matrix.indices[matrix.data > 0], minlength=matrix.shape[1]).astype(np.float64)
    weights = np.ones(matrix.shape[1], np.float64)
    seen = counts > 0
    if discount and seen.any():
        weights[seen] = (counts[seen] / counts[seen].mean()) ** -discount
    return weights.astype(np.float32)


def scale_matrix(
    matrix: sp.csr_matrix, scaling: Scaling, item_weights: np.ndarray | None = None
) -> sp.csr_matrix:
    """The same sparsity pattern with scaled values, times each item's weight when given (the
    input is not modified)."""
    out = matrix.copy()
    out.data = scale_values(matrix.data, scaling)
    if item_weights is not None:
        out.data *= item_weights[out.indices]
    return out


def choose_default_scaling(values: np.ndarray) -> Scaling:
    """Without guidance: binary for 0/1 data, log when weights span a wide range, else linear.

    "Wide" is a 99th-percentile / median ratio above 20, which event weights from the seed's
    table (0.5..3.5, summed over one or two events per pair) do not reach but play counts do.
    "0/1 data" means the smallest and largest weight agree to float32 precision, a test that does
    not depend on the order of the weights.
    """
    positive = np.abs(values[values != 0])
    if positive.size == 0 or np.isclose(positive.min(), positive.max(), rtol=1e-5, atol=0.0):
        return Scaling.binary
    ratio = float(np.percentile(positive, 99) / max(np.median(positive), 1e-12))
    return Scaling.log if ratio > 20 else Scaling.linear


def confidence_matrix(
    matrix: sp.csr_matrix, scaling: Scaling, discount: float
) -> tuple[sp.csr_matrix, np.ndarray | None]:
    """What every ALS engine fits: the scaled values with the popularity discount applied, and
    the per-item weights the version must carry for fold-in (None without a discount)."""
    weights = popularity_weights(matrix, discount) if discount else None
    return scale_matrix(matrix, scaling, weights), weights
