"""Indexes of the visible rows only, for a catalog that blocks many of a version's rows.

A graph search that skips blocked rows with a selector still walks them: with 100,000 of
200,000 items hidden the service ran at 0.63-0.70x its speed with none hidden, because the beam
must widen by the share blocked to reach as many visible rows. Once the catalog blocks more than
`COMPACT_ABOVE` of an index's rows, a copy of the index without them is built on a background
thread (IVF: the index file re-read and the rows removed, under a second; HNSW: a new graph of
the visible rows, tens of seconds for 100,000 items) and searched instead, at a beam checked to
recall as well as the version's own index does.

A compact index only ever makes an answer cheaper, never changes what may be in it: until one is
ready, and whenever the catalog has moved too far from the rows it was built without, searches
take the selector path. Small moves are absorbed: rows blocked since the build are dropped after a
slightly deeper search, rows shown again since are scored exactly beside it. Builds run one at a
time per process and each waits as long after the previous one as that one took, so rebuilding
while a shop hides items batch after batch takes at most half a core.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger("recsys.compaction")

COMPACT_ABOVE = 0.02  # blocked share of an index's rows from which a compact copy pays
STALE_SHARE = 0.02  # rows blocked since the build, as a share of the rows it holds, it absorbs
MAX_EXTRA = 2_000  # rows shown again since the build it scores exactly beside the search
RETRY_AFTER_S = 60.0  # a build that failed is tried again after this long


@dataclass(frozen=True)
class CompactIndex:
    """A copy of one index without the rows blocked when it was built."""

    index: Any  # a Faiss index of the same kind and metric
    ids: np.ndarray | None  # the version row of each of its ids; None: its ids are the rows (IVF)
    blocked: np.ndarray  # the rows it was built without (sorted int64)
    beam: int  # efSearch or nprobe that recalls as well as the version's index at its own beam
    seconds: float  # how long the build took

    @property
    def size(self) -> int:
        return int(self.index.ntotal)


@dataclass(frozen=True)
class CompactView:
    """A compact index against the rows the catalog blocks now."""

    compact: CompactIndex
    stale: int  # rows it holds that are blocked now (dropped after the search)
    extra: np.ndarray  # rows visible now that it lacks (scored exactly beside it)


def compact_view(compact: CompactIndex, blocked: np.ndarray) -> CompactView | None:
    """Pure: how `compact` serves the catalog's blocked rows now, or None when it has drifted
    too far (too many rows blocked or shown again since it was built)."""
    stale = np.setdiff1d(blocked, compact.blocked, assume_unique=True)
    if len(stale) > STALE_SHARE * max(compact.size, 1):
        return None
    extra = np.setdiff1d(compact.blocked, blocked, assume_unique=True)
    if len(extra) > MAX_EXTRA:
        return None
    return CompactView(compact, len(stale), extra)


def stale_margin(k: int, view: CompactView) -> int:
    """Results to fetch beyond k so the stale rows among them can be dropped: three times the
    number expected among k + 2 (as search.py does for a few blocked rows)."""
    if not view.stale:
        return 0
    return min(view.stale, math.ceil(3 * k * view.stale / max(view.compact.size, 1)) + 2)


def _drifted(view: CompactView) -> bool:
    """Far enough from the copy to rebuild it ahead of need: a quarter of what a view absorbs.
    A hide now and then costs nothing but a slightly deeper search; each rebuild costs seconds
    of a core (the calibration's exact scoring, the graph's construction)."""
    return view.stale > STALE_SHARE / 4 * view.compact.size or len(view.extra) > MAX_EXTRA / 4


Build = Callable[[np.ndarray], CompactIndex]

# One build at a time in a process: they compete with serving for the same cores.
_BUILDS = threading.Lock()


class Compactor:
    """One index's compact copy: the current one, its view of the last blocked set seen, and at
    most one build in flight. `view` is called on search threads; it never blocks on a build."""

    def __init__(self, n: int, name: str, build: Build) -> None:
        self.n = n
        self.name = name
        self._build = build
        self._current: CompactIndex | None = None
        # The last blocked array seen (by identity: a catalog view keeps one per generation),
        # the compact index its view was computed from, and that view.
        self._seen: tuple[np.ndarray, CompactIndex | None, CompactView | None] | None = None
        self._building = False
        self._not_before = 0.0  # monotonic time before which no new build starts
        self._lock = threading.Lock()

    def view(self, blocked: np.ndarray) -> CompactView | None:
        """The compact index to search for this blocked set, if one fits it; starts a build when
        none fits or the one that fits has drifted."""
        if len(blocked) <= COMPACT_ABOVE * self.n:
            return None
        current = self._current
        seen = self._seen
        if seen is not None and seen[0] is blocked and seen[1] is current:
            view = seen[2]
        else:
            view = None if current is None else compact_view(current, blocked)
            self._seen = (blocked, current, view)
        if view is None or _drifted(view):
            self._start(blocked)
        return view

    def release(self, blocked: int) -> None:
        """The catalog blocks only `blocked` rows now (items shown again, say): a copy is no
        longer searched, and it holds as much memory as the index. Called by unfiltered searches,
        which see the catalog's whole blocked set (a filtered one folds it into its bitmap)."""
        if self._current is not None and blocked <= COMPACT_ABOVE * self.n:
            self._current = None
            self._seen = None

    def _start(self, blocked: np.ndarray) -> None:
        with self._lock:
            if self._building or time.monotonic() < self._not_before:
                return
            self._building = True
        threading.Thread(target=self._run, args=(blocked,), name=f"compact-{self.name}", daemon=True).start()

    def _run(self, blocked: np.ndarray) -> None:
        started = time.monotonic()
        try:
            with _BUILDS:
                built = self._build(blocked)
        except Exception:  # whatever failed, the selector path goes on serving
            log.exception("compact index %s: build failed; searches keep skipping blocked rows", self.name)
            with self._lock:
                self._building = False
                self._not_before = time.monotonic() + RETRY_AFTER_S
            return
        self._current = built
        log.info(
            "compact index %s: %d of %d rows (%d blocked), beam %d, built in %.1fs",
            self.name,
            built.size,
            self.n,
            len(blocked),
            built.beam,
            built.seconds,
        )
        with self._lock:
            self._building = False
            self._not_before = time.monotonic() + (time.monotonic() - started)

    def wait(self, timeout_s: float) -> CompactIndex | None:
        """For tests and benches: the compact index once no build is in flight."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if not self._building:
                    return self._current
            time.sleep(0.01)
        return None
