"""Popularity candidates: the answer for users with no history and the fallback of every tier.

Items are ranked once per version; a request walks that ranking and keeps the first k items its
filter allows and its exclusions do not name. The walk reads the ranking in growing chunks, so an
unfiltered request touches ~k items and a 1%-selective one ~100k, never a full sort.
"""

from __future__ import annotations

import numpy as np

from app.retrieval import bitmaps


class PopularityRanking:
    def __init__(self, scores: np.ndarray) -> None:
        scores = np.asarray(scores, np.float32)
        self.n = len(scores)
        self.order = np.argsort(-scores, kind="stable").astype(np.int64)
        top = float(scores[self.order[0]]) if self.n else 1.0
        # Scores on a 0..1 scale (share of the most popular item's score), so they read the same
        # whatever the version's data size.
        self.scores = (scores / top if top > 0 else scores).astype(np.float32)

    @classmethod
    def from_seen_items(cls, seen_items: np.ndarray, n_items: int) -> PopularityRanking:
        """Distinct users per item, from the version's seen lists (what evaluation calls popularity)."""
        return cls(np.bincount(np.asarray(seen_items, np.int64), minlength=n_items)[:n_items])

    def top(
        self, k: int, allowed: np.ndarray | None = None, excluded: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k most popular rows passing `allowed` (packed bitmap) and not in `excluded`."""
        k = max(0, min(k, self.n))
        ex = np.unique(excluded) if excluded is not None and len(excluded) else None
        picked: list[np.ndarray] = []
        found, start, chunk = 0, 0, max(4 * k, 256)
        while found < k and start < self.n:
            rows = self.order[start : start + chunk]
            if allowed is not None:
                rows = rows[bitmaps.contains(allowed, rows)]
            if ex is not None and len(rows):
                rows = rows[~np.isin(rows, ex, assume_unique=False)]
            picked.append(rows)
            found += len(rows)
            start += chunk
            chunk *= 4
        out = np.concatenate(picked)[:k] if picked else np.empty(0, np.int64)
        return out, self.scores[out]
