"""Popularity candidates: the answer for users with no history and the fallback of every tier.

Items are ranked once per version (by the time-decayed scores of a train-all version, else by
distinct users); a request walks that ranking and keeps the first k items its filter allows and its
exclusions do not name. The walk reads the ranking in growing chunks, so an unfiltered request
touches ~k items. A narrow filter (a category, an allow list) instead ranks only the rows it
allows, which the attribute table already holds as per-category posting lists: the cost follows
the filter's size, not the depth of the first allowed item in the global ranking, and k results
come back whenever k items pass.
"""

from __future__ import annotations

import numpy as np

from app.retrieval import bitmaps

_NARROW_SHARE = 16  # a filter passing at most 1/16 of the items ranks its own rows


class PopularityRanking:
    def __init__(self, scores: np.ndarray) -> None:
        scores = np.asarray(scores, np.float32)
        self.n = len(scores)
        self.order = np.argsort(-scores, kind="stable").astype(np.int64)
        top = float(scores[self.order[0]]) if self.n else 1.0
        self.top_score = top  # the most popular item's own score (users, or decayed events)
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
        ex = np.asarray(excluded, np.int64) if excluded is not None and len(excluded) else None
        if allowed is not None and bitmaps.count(allowed) * _NARROW_SHARE <= self.n:
            return self._top_of(bitmaps.to_rows(allowed, self.n), k, ex)
        picked: list[np.ndarray] = []
        found, start, chunk = 0, 0, max(4 * k, 256)
        while found < k and start < self.n:
            rows = self.order[start : start + chunk]
            if allowed is not None:
                rows = rows[bitmaps.contains(allowed, rows)]
            if ex is not None and len(rows):
                rows = rows[~np.isin(rows, ex)]
            picked.append(rows)
            found += len(rows)
            start += chunk
            chunk *= 4
        out = np.concatenate(picked)[:k] if picked else np.empty(0, np.int64)
        return out, self.scores[out]

    def _top_of(self, rows: np.ndarray, k: int, ex: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The k best of `rows` (not in `ex`), best first; ties keep the global ranking's order."""
        rows = np.asarray(rows, np.int64)
        if ex is not None and len(rows):
            rows = rows[~np.isin(rows, ex)]
        scores = self.scores[rows]
        if len(rows) > k > 0:
            # Keep every row tied with the k-th score, so ties resolve by row as in the walk.
            kth = np.partition(scores, len(scores) - k)[len(scores) - k]
            keep = scores >= kth
            rows, scores = rows[keep], scores[keep]
        order = np.lexsort((rows, -scores))[:k]
        return rows[order], scores[order]
