"""Compact copies of an index for a catalog that blocks many rows: searched once built, never
holding a blocked row in an answer, as exact as the version's own index, and built one at a time
off the search threads."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from app.retrieval import bitmaps, compaction
from app.retrieval.catalog import VersionCatalog
from app.retrieval.compaction import CompactIndex, Compactor, compact_view, stale_margin
from app.retrieval.filters import NO_FILTER, CompiledFilter, with_catalog
from app.retrieval.search import ItemIndex, Plan
from feature_store.index_files import IndexKind, read_index_meta
from tests.app.retrieval.conftest import DIM, N_ITEMS, build_folder


@pytest.fixture(scope="module")
def ivf_folder(tmp_path_factory) -> Path:
    """IVF over raw vectors: what `auto` builds for inner-product catalogs of 20,000-250,000 items."""
    return build_folder(tmp_path_factory.mktemp("ivf"), IndexKind.ivf)


def _load(folder: Path) -> ItemIndex:
    return ItemIndex.load(folder, read_index_meta(folder)["als"])


def _blocking(rows: np.ndarray) -> CompiledFilter:
    rows = np.unique(rows.astype(np.int64))
    visible = bitmaps.invert(bitmaps.from_rows(N_ITEMS, rows), N_ITEMS)
    return with_catalog(NO_FILTER, VersionCatalog(N_ITEMS, rows, visible, {}, float("inf")))


def _queries(n: int = 30, seed: int = 11) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def _recall(index: ItemIndex, filt: CompiledFilter, k: int = 10) -> tuple[float, set[Plan]]:
    open_rows = np.setdiff1d(np.arange(N_ITEMS), filt.hidden)
    hits, plans = 0, set()
    for q in _queries():
        result = index.search(q, k, filt)
        assert len(result.rows) == k
        assert not np.isin(result.rows, filt.hidden).any(), "a blocked row was answered"
        truth = open_rows[np.argsort(-index.score(q, open_rows))[:k]]
        hits += len(np.intersect1d(result.rows, truth))
        plans.add(result.plan)
    return hits / (k * len(_queries())), plans


@pytest.mark.parametrize("kind", ["hnsw", "ivf", "ivf_pq"])
def test_half_the_catalog_blocked_is_searched_in_a_compact_copy_once_built(
    kind: str, hnsw_folder: Path, ivf_folder: Path, ivf_pq_folder: Path
) -> None:
    folder = {"hnsw": hnsw_folder, "ivf": ivf_folder, "ivf_pq": ivf_pq_folder}[kind]
    index = _load(folder)
    blocked = np.random.default_rng(2).choice(N_ITEMS, N_ITEMS // 2, replace=False)
    filt = _blocking(blocked)
    with compaction._BUILDS:  # the build waits its turn until these searches are done
        before, plans = _recall(index, filt)
    assert plans == {Plan.graph}, "the first searches skip the blocked rows with a selector"
    assert index.compactor is not None
    compact = index.compactor.wait(60)
    assert compact is not None and compact.size == N_ITEMS - N_ITEMS // 2
    after, plans = _recall(index, filt)
    assert plans == {Plan.graph_compact}
    assert after >= 0.95 and after >= before - 0.03, (before, after)


def test_rows_blocked_or_shown_again_after_the_build_are_honoured_at_once(fresh_hnsw: ItemIndex) -> None:
    index = fresh_hnsw
    rng = np.random.default_rng(3)
    blocked = np.sort(rng.choice(N_ITEMS, 1_000, replace=False))
    index.search(_queries(1)[0], 10, _blocking(blocked))
    assert index.compactor is not None
    built = index.compactor.wait(60)
    assert built is not None
    q = _queries(1, seed=99)[0]
    # Show again the blocked row this query likes best, and block the visible row it likes best.
    shown = blocked[np.argmax(index.score(q, blocked))]
    open_rows = np.setdiff1d(np.arange(N_ITEMS), blocked)
    newly = open_rows[np.argmax(index.score(q, open_rows))]
    moved = np.append(blocked[blocked != shown], newly)
    filt = _blocking(moved)
    result = index.search(q, 10, filt)
    assert result.plan is Plan.graph_compact
    assert shown in result.rows and newly not in result.rows
    recall, _ = _recall(index, filt)
    assert recall >= 0.95
    assert index.compactor.wait(5) is built, "a row or two of drift is absorbed, not rebuilt for"


def test_a_catalog_that_moved_far_from_the_copy_takes_the_selector_until_rebuilt(
    fresh_hnsw: ItemIndex,
) -> None:
    index = fresh_hnsw
    rng = np.random.default_rng(4)
    first = rng.choice(N_ITEMS, 1_000, replace=False)
    index.search(_queries(1)[0], 10, _blocking(first))
    assert index.compactor is not None
    built = index.compactor.wait(60)
    assert built is not None
    compaction_wait = built.seconds + 0.5  # the next build waits as long as this one took
    other = np.setdiff1d(np.arange(N_ITEMS), first)[:1_000]  # a different thousand rows
    filt = _blocking(other)
    result = index.search(_queries(1)[0], 10, filt)
    assert result.plan is Plan.graph and not np.isin(result.rows, other).any()
    time.sleep(compaction_wait)
    index.search(_queries(1)[0], 10, filt)  # the cool-down is over: this starts the rebuild
    rebuilt = index.compactor.wait(60)
    assert rebuilt is not None and rebuilt is not built
    np.testing.assert_array_equal(rebuilt.blocked, np.sort(other))
    assert index.search(_queries(1)[0], 10, filt).plan is Plan.graph_compact


def test_a_few_blocked_rows_build_nothing(fresh_hnsw: ItemIndex) -> None:
    filt = _blocking(np.arange(int(compaction.COMPACT_ABOVE * N_ITEMS)))
    fresh_hnsw.search(_queries(1)[0], 10, filt)
    assert fresh_hnsw.compactor is not None
    assert fresh_hnsw.compactor.wait(5) is None


def test_showing_the_items_again_releases_the_copy(fresh_hnsw: ItemIndex) -> None:
    assert fresh_hnsw.compactor is not None
    fresh_hnsw.search(_queries(1)[0], 10, _blocking(np.arange(1_000)))
    assert fresh_hnsw.compactor.wait(60) is not None
    result = fresh_hnsw.search(_queries(1)[0], 10, _blocking(np.arange(5)))
    assert result.plan is Plan.graph and fresh_hnsw.compactor.wait(5) is None


class _Sized:
    """Stands for a Faiss index where only its size is read (the view is pure arithmetic)."""

    def __init__(self, ntotal: int) -> None:
        self.ntotal = ntotal


def _fake_compact(blocked: np.ndarray, size: int = 1_000) -> CompactIndex:
    return CompactIndex(_Sized(size), None, np.asarray(blocked, np.int64), 1, 0.0)


def test_the_view_counts_rows_blocked_and_shown_again_since_the_build() -> None:
    compact = _fake_compact(np.arange(0, 100), size=1_000)
    view = compact_view(compact, np.arange(5, 110))
    assert view is not None
    assert view.stale == 10  # rows 100..109, held by the copy, blocked now
    np.testing.assert_array_equal(view.extra, np.arange(0, 5))  # shown again: scored beside it
    assert stale_margin(10, view) >= 2


def test_a_view_too_far_from_the_copy_is_refused() -> None:
    compact = _fake_compact(np.arange(0, 100), size=1_000)
    assert compact_view(compact, np.arange(0, 100 + 21)) is None  # 21 stale of 1,000 held > 2%
    many = np.arange(0, compaction.MAX_EXTRA + 1)
    assert compact_view(_fake_compact(many), np.empty(0, np.int64)) is None


def test_concurrent_searches_start_one_build_and_a_failing_build_leaves_search_serving() -> None:
    started: list[int] = []
    release = threading.Event()

    def slow_failing_build(blocked: np.ndarray) -> CompactIndex:
        started.append(len(blocked))
        release.wait(5)
        raise RuntimeError("faiss ran out of memory")

    compactor = Compactor(1_000, "als", slow_failing_build)
    blocked = np.arange(500, dtype=np.int64)
    views = []
    threads = [threading.Thread(target=lambda: views.append(compactor.view(blocked))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert views == [None] * 8
    release.set()
    assert compactor.wait(5) is None
    assert started == [500], "one build for eight searches"
    assert compactor.view(blocked) is None and started == [500], "no retry before RETRY_AFTER_S"
