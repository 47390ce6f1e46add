"""Fusing candidate lists from several models into one (the hot tier's `ensemble`).

Weighted reciprocal rank fusion: an item at rank r (0-based) of source m earns `w_m / (c + r + 1)`,
and items are ordered by the sum. Ranks, not scores, because ALS dot products and Two-Tower cosines
live on different scales that shift with every retrain; RRF needs no calibration and only the
weights are fitted (on validation data, at training time). A pure function: training evaluates
exactly the code that serves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class FusionParams:
    weights: Mapping[str, float] = field(default_factory=lambda: {"als": 0.5, "two_tower": 0.5})
    rrf_k: float = 60.0  # c above: larger flattens the rank discount
    depth: int = 50  # each source contributes its top max(depth, 2k)

    def depth_for(self, k: int) -> int:
        return max(self.depth, 2 * k)

    def as_dict(self) -> dict[str, object]:
        return {"weights": dict(self.weights), "rrf_k": self.rrf_k, "depth": self.depth}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> FusionParams:
        weights = data.get("weights", {})
        if not isinstance(weights, Mapping) or not weights:
            raise ValueError("fusion weights must be a non-empty mapping of source to weight")
        rrf_k = data.get("rrf_k", 60.0)
        depth = data.get("depth", 50)
        if not isinstance(rrf_k, int | float) or not isinstance(depth, int):
            raise ValueError("fusion rrf_k must be a number and depth an integer")
        return cls({str(k): float(v) for k, v in weights.items()}, float(rrf_k), int(depth))


def fuse(
    lists: Sequence[tuple[str, np.ndarray]], params: FusionParams, k: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Top-k rows of the fused ranking, their fused scores, and per row the sources that
    proposed it (`als`, `two_tower` or `als+two_tower`). A row appears once."""
    names = [name for name, _ in lists]
    parts, contrib, source_bits = [], [], []
    for bit, (name, rows) in enumerate(lists):
        rows = np.asarray(rows, np.int64)
        rows = rows[rows >= 0]
        weight = float(params.weights.get(name, 0.0))
        parts.append(rows)
        contrib.append(weight / (params.rrf_k + np.arange(1, len(rows) + 1, dtype=np.float64)))
        source_bits.append(np.full(len(rows), 1 << bit, np.int64))
    if not parts or not sum(len(p) for p in parts):
        return np.empty(0, np.int64), np.empty(0, np.float32), []
    rows_all = np.concatenate(parts)
    unique, inverse = np.unique(rows_all, return_inverse=True)
    scores = np.bincount(inverse, weights=np.concatenate(contrib), minlength=len(unique))
    bits = np.zeros(len(unique), np.int64)
    np.bitwise_or.at(bits, inverse, np.concatenate(source_bits))
    order = np.lexsort((unique, -scores))[:k]  # ties: lower row first, so results are stable
    labels = {
        mask: "+".join(n for b, n in enumerate(names) if mask >> b & 1) for mask in np.unique(bits[order])
    }
    return unique[order], scores[order].astype(np.float32), [labels[m] for m in bits[order].tolist()]
