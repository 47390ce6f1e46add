"""Top-k item search for one query vector under a filter, choosing the plan by selectivity.

Plans (named in every result, so callers and metrics can see them):
- `exact`: score every item (flat indexes, small catalogs) with one matrix-vector product;
- `graph`: the ANN index (HNSW, IVF, or IVF over PQ codes), over-fetching enough to drop
  excluded items (and, for PQ codes, the calibrated re-ranking depth);
- `exact_filtered`: score only the allowed items, when few pass (graph search with a selector
  loses recall there: 9% at 1% selectivity was measured on this machine);
- `graph_filtered`: the ANN index with a bitmap selector and a wider beam, when many pass;
- `graph_compact`: a copy of the ANN index without the rows the run-time catalog blocks, built
  in the background once it blocks many of them (compaction.py).
Whatever the index returns is re-scored exactly from the item vectors, so scores mean the same
under every plan, and a graph plan that comes back short falls back to an exact one: k results
are returned whenever k allowed items exist.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import math
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from app.retrieval import bitmaps
from app.retrieval.compaction import CompactIndex, Compactor, CompactView, stale_margin
from app.retrieval.filters import NO_FILTER, CompiledFilter
from feature_store.fusion import ScoreMoments
from feature_store.index_files import (
    IVF_KINDS,
    IndexKind,
    IndexMeta,
    Metric,
    open_faiss_index,
    transform_items,
    transform_queries,
)
from feature_store.version_files import load_array


class Plan(StrEnum):
    exact = "exact"
    graph = "graph"
    exact_filtered = "exact_filtered"
    graph_filtered = "graph_filtered"
    graph_compact = "graph_compact"


@dataclass(frozen=True)
class SearchParams:
    ef_search: int | None = None  # HNSW efSearch or IVF nprobe; None: the calibrated value
    oversample: float = 1.0  # graph plans fetch k * oversample before exact re-scoring
    exact_max_rows: int = 20_000  # at most this many allowed items: score them exactly
    inline_max_work: int = 1_000_000  # rows x dim below which a search runs on the event loop
    filtered_boost: float = 4.0  # graph_filtered widens the beam by this / selectivity


@dataclass(frozen=True)
class SearchResult:
    rows: np.ndarray  # item rows, best first
    scores: np.ndarray  # exact scores in the index metric (higher is better; l2 is negated)
    plan: Plan
    candidates: int  # items the filter allowed (before exclusions)


_NEG_INF = np.float32(-np.inf)
_FEW_HIDDEN = 0.02  # blocked rows up to this share are dropped after the walk, not during it
_GRAPHS = (IndexKind.hnsw, *IVF_KINDS)


_BLOCKS_PER_K = 4  # top_k_rows: blocks per wanted row


def top_k_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """The rows of the k highest scores (any order; which of several rows tied at the k-th
    score is kept is unspecified).

    Over a long vector, the k-th highest of the maxima of `_BLOCKS_PER_K * k` equal blocks is a
    floor the k-th highest score cannot be under (k blocks each hold a score at least that high),
    so only the rows at or above it, typically under 2k, go into the partition. On 5,000 scores
    and k=50 that took a third of the time of np.argpartition over all of them, which an exact
    search pays once per source and request.
    """
    n = len(scores)
    if n <= k:
        return np.arange(n)
    blocks = _BLOCKS_PER_K * k
    width = n // blocks
    if width >= 4:
        maxima = scores[: blocks * width].reshape(blocks, width).max(axis=1)
        floor = np.partition(maxima, blocks - k)[blocks - k]
        rows = np.flatnonzero(scores >= floor)
        if len(rows) > k:
            return rows[np.argpartition(scores[rows], len(rows) - k)[len(rows) - k :]]
        if len(rows) == k:
            return rows
    return np.argpartition(-scores, k - 1)[:k]  # NaN sorts last here, so it is never picked first


class ItemIndex:
    """One version's item vectors with their Faiss index, ready to answer filtered top-k."""

    def __init__(self, meta: IndexMeta, index: Any, vectors: np.ndarray, folder: Path | None = None) -> None:
        self.meta = meta
        self.folder = folder
        self.index = index
        self.n = meta.ntotal
        self.dim = meta.dim
        self._raw = vectors
        if meta.metric is Metric.cosine:
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            self._vectors = np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), np.float32)
        else:
            self._vectors = np.ascontiguousarray(vectors, np.float32)
        self._sq_norms = (
            np.einsum("ij,ij->i", self._vectors, self._vectors) if meta.metric is Metric.l2 else None
        )
        self._default_ef = int(meta.params.get("ef_search", 64))
        self.compactor = Compactor(self.n, meta.name, self._build_compact) if meta.kind in _GRAPHS else None

    @classmethod
    def load(cls, folder: Path, meta: IndexMeta, mmap: bool = True) -> ItemIndex:
        import faiss

        faiss.omp_set_num_threads(1)  # one thread per search; concurrency comes from requests
        index = open_faiss_index(folder, meta, mmap=mmap)
        vectors = load_array(folder, meta.vectors, mmap=False)
        if vectors.shape != (meta.ntotal, meta.dim):
            from feature_store.manifest import ArtifactError

            raise ArtifactError(f"{folder / meta.vectors}: shape {vectors.shape} does not match the index.")
        return cls(meta, index, vectors, folder)

    @property
    def vectors(self) -> np.ndarray:
        """The raw item vectors (what DESIGN.md's dot-product scores are computed from)."""
        return self._raw

    # -- exact scoring ------------------------------------------------------------------------

    def _query(self, query: np.ndarray) -> np.ndarray:
        q = np.asarray(query, np.float32).reshape(-1)
        if self.meta.metric is Metric.cosine:
            q = q / max(float(np.linalg.norm(q)), 1e-12)
        return q

    def score(self, query: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Exact scores of `rows` (all items when None); higher is better in every metric."""
        q = self._query(query)
        vecs = self._vectors if rows is None else self._vectors[rows]
        dots = vecs @ q
        if self.meta.metric is Metric.l2:
            assert self._sq_norms is not None
            sq = self._sq_norms if rows is None else self._sq_norms[rows]
            return -(sq - 2 * dots + float(q @ q))
        return dots

    @functools.cached_property
    def moments(self) -> ScoreMoments:
        """The item vectors' moments in this index's scoring space (computed once: a version whose
        ensemble blends computes it while loading)."""
        return ScoreMoments.of(self._vectors, l2=self.meta.metric is Metric.l2)

    def standardize(self, query: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Scores computed elsewhere for this query (new items' vectors, catalog.py) as z-scores
        on the same scale as `standardized`."""
        return self.moments.standardize(scores, self._query(query))

    def standardized(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact scores of `rows` as z-scores against the query's scores over every item (for
        blending models whose raw scores live on different scales)."""
        return self.moments.standardize(self.score(query, rows), self._query(query))

    @staticmethod
    def _top(rows: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if len(scores) > k:
            part = np.argpartition(-scores, k - 1)[:k]
            rows, scores = rows[part], scores[part]
        order = np.argsort(-scores, kind="stable")
        return rows[order], scores[order]

    @staticmethod
    def _top_masked(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of a full score vector where masked rows are -inf, without compacting it first."""
        part = top_k_rows(scores, k)
        rows = part[np.argsort(-scores[part], kind="stable")]
        top = scores[rows]
        keep = np.isfinite(top)  # fewer than k unmasked rows: drop the masked ones that filled in
        return rows[keep], top[keep]

    def _exact(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None, excluded: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k over the allowed rows (`excluded` already cleared from them), or over
        every row but the excluded ones when nothing narrows the set."""
        if allowed is None:
            scores = self.score(query)
            scores[excluded] = _NEG_INF
            return self._top_masked(scores, k)
        if bitmaps.count(allowed) * 8 > self.n:
            # Many rows pass: one product over every item and a mask beats gathering the rows.
            scores = self.score(query)
            scores[~np.unpackbits(allowed, count=self.n, bitorder="little").astype(bool)] = _NEG_INF
            return self._top_masked(scores, k)
        rows = bitmaps.to_rows(allowed, self.n)
        return self._top(rows, self.score(query, rows), k)

    # -- the planner --------------------------------------------------------------------------

    def plan(self, filt: CompiledFilter, params: SearchParams) -> tuple[Plan, int]:
        """Which plan a query with this filter takes, and how many items the filter allows."""
        allowed = self.n if filt.allowed is None else bitmaps.count(filt.allowed)
        graph = self.meta.kind in _GRAPHS
        if filt.allowed is None:
            return (Plan.graph if graph else Plan.exact), allowed
        if not graph or allowed <= params.exact_max_rows:
            return Plan.exact_filtered, allowed
        if self.meta.kind is IndexKind.ivf_pq:
            # Under a selector the 4-bit codes rank the allowed items too coarsely: recall@100
            # 0.92-0.95 at 10-50% selectivity with every list probed and 2,000 re-ranked
            # (978,120 ALS items), below the 0.99 a filtered answer is held to.
            return Plan.exact_filtered, allowed
        if self.meta.kind in IVF_KINDS:
            # Compare work: the widened IVF probe walks its lists' entries (selector checked on
            # each), exact scoring gathers and scores only the allowed rows (~1.5x per row).
            nlist = int(self.index.nlist)
            probes = min(nlist, self._filtered_beam(params, allowed))
            if probes / nlist * self.n >= 1.5 * allowed:
                return Plan.exact_filtered, allowed
        return Plan.graph_filtered, allowed

    def _filtered_beam(self, params: SearchParams, allowed: int) -> int:
        base = params.ef_search or int(self.meta.params.get("nprobe", self._default_ef))
        share = max(allowed / self.n, 1e-6)
        return min(int(base * params.filtered_boost / share), 64 * base)

    def work(self, plan: Plan, allowed: int) -> int:
        """Rough cost in rows x dim, to decide whether a search may run on the event loop."""
        if plan in (Plan.exact, Plan.exact_filtered):
            return allowed * self.dim
        return 1 << 62  # graph searches always leave the loop (they take 0.1 ms and more)

    def search(
        self,
        query: np.ndarray,
        k: int,
        filt: CompiledFilter = NO_FILTER,
        exclude: np.ndarray | None = None,
        params: SearchParams = SearchParams(),
        planned: tuple[Plan, int] | None = None,
    ) -> SearchResult:
        """Top-k rows for `query`: allowed by `filt`, never in its deny list nor in `exclude`.
        `planned` is `self.plan(filt, params)` when the caller already has it."""
        excluded = (
            filt.denied if exclude is None or not len(exclude) else np.concatenate([filt.denied, exclude])
        )
        if len(excluded):  # duplicates are harmless below; sorting them out would cost more
            excluded = excluded[(excluded >= 0) & (excluded < self.n)]
        plan, allowed_count = planned or self.plan(filt, params)
        k = max(0, min(k, self.n))
        if k == 0:
            return SearchResult(np.empty(0, np.int64), np.empty(0, np.float32), plan, allowed_count)
        allowed = filt.allowed
        if len(excluded) and allowed is not None:
            allowed = allowed.copy()
            np.bitwise_and.at(allowed, excluded >> 3, ~(1 << (excluded & 7)).astype(np.uint8))
        # Rows the run-time catalog blocks (a filter already took them out of `allowed`): exact
        # plans mask their scores, graph plans drop them (_graph_visible).
        visible = filt.visible if allowed is None else None
        if self.compactor is not None and filt.allowed is None:
            self.compactor.release(len(filt.hidden))

        def exact() -> tuple[np.ndarray, np.ndarray]:
            # Joined only here: copying 100,000 blocked rows on every graph search cost 13% of
            # a server's time with half the catalog hidden.
            masked = np.concatenate([excluded, filt.hidden]) if visible is not None else excluded
            return self._exact(query, k, allowed, masked)

        if plan in (Plan.exact, Plan.exact_filtered):
            rows, scores = exact()
        else:
            if visible is not None:
                rows, scores, plan = self._graph_visible(query, k, excluded, params, filt.hidden, visible)
            else:
                rows, scores = self._graph(query, k, allowed, excluded, allowed_count, params)
            if len(rows) < k:  # the graph came back short: answer exactly instead
                rows, scores = exact()
                plan = Plan.exact_filtered if filt.allowed is not None else Plan.exact
        return SearchResult(rows.astype(np.int64), scores.astype(np.float32), plan, allowed_count)

    def _graph_visible(
        self,
        query: np.ndarray,
        k: int,
        excluded: np.ndarray,
        params: SearchParams,
        hidden: np.ndarray,
        visible: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, Plan]:
        """The unfiltered graph search with the catalog's blocked rows taken out. A few blocked
        rows are dropped after fetching a few more results (a selector slowed every search of a
        200,000-item HNSW index by about 10%, measured, with 0.5% of the rows blocked; a margin of
        k/4 by 15-20%: the walk's depth is the cost). More are left out of a compact copy of the
        index once one is built (compaction.py). Otherwise, or if that comes back short, the walk
        skips them with a selector and a beam widened by the share blocked."""
        share_hidden = len(hidden) / self.n
        if share_hidden <= _FEW_HIDDEN:
            # Enough to cover three times the blocked rows expected among k + 2; a walk that
            # still comes back short (the blocked ones were the best matches) takes the selector.
            margin = min(len(hidden), math.ceil(3 * k * share_hidden) + 2)
            rows, scores = self._graph(query, k + margin, None, excluded, self.n, params)
            keep = bitmaps.contains(visible, rows)  # a bit per row: no search of `hidden`
            if keep.sum() >= k:
                return rows[keep][:k], scores[keep][:k], Plan.graph
        view = self.compactor.view(hidden) if self.compactor is not None else None
        if view is not None:
            rows, scores = self._compact(query, k, excluded, params, view, visible)
            if len(rows) >= k:
                return rows, scores, Plan.graph_compact
        share = 1.0 - len(hidden) / self.n
        rows, scores = self._graph(query, k, None, excluded, self.n, params, visible, share)
        return rows, scores, Plan.graph

    def _compact(
        self,
        query: np.ndarray,
        k: int,
        excluded: np.ndarray,
        params: SearchParams,
        view: CompactView,
        visible: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k from the compact index: rows blocked since it was built dropped after a search
        deep enough to cover them, rows shown again since scored exactly beside it."""
        compact = view.compact
        depth = max(math.ceil(k * params.oversample), int(self.meta.params.get("rerank", 0)))
        fetch = min(compact.size, depth + stale_margin(k, view) + len(excluded))
        beam = max(params.ef_search or compact.beam, fetch if self.meta.kind is IndexKind.hnsw else 0)
        _, labels = compact.index.search(
            transform_queries(query, self.meta.transform), fetch, params=self._beam_params(beam)
        )
        found = labels[0]
        found = found[found >= 0]
        rows = found if compact.ids is None else compact.ids[found]
        if view.stale:
            rows = rows[bitmaps.contains(visible, rows)]
        if len(view.extra):
            rows = np.concatenate([rows, view.extra])
        if len(excluded):
            rows = rows[~np.isin(rows, excluded)]
        return self._top(rows, self.score(query, rows), k)

    def _beam_params(self, beam: int, selector: Any = None) -> Any:
        faiss: Any = importlib.import_module("faiss")  # its stubs miss the search-parameter classes
        if self.meta.kind is IndexKind.hnsw:
            return faiss.SearchParametersHNSW(efSearch=beam, sel=selector)
        return faiss.SearchParametersIVF(sel=selector, nprobe=min(beam, self.index.nlist))

    # -- compaction (run on a background thread by compaction.Compactor) -------------------------

    def _build_compact(self, blocked: np.ndarray) -> CompactIndex:
        """A copy of this index without `blocked`. IVF: the file re-read into memory (the served
        copy is memory-mapped read-only) and the rows removed from their lists, which keeps the
        row ids and the lists the version calibrated its probe count on. HNSW cannot remove rows:
        a new graph of the visible rows with the version's parameters."""
        faiss: Any = importlib.import_module("faiss")
        started = time.perf_counter()
        ids: np.ndarray | None = None
        if self.meta.kind in IVF_KINDS:
            index = (
                open_faiss_index(self.folder, self.meta, mmap=False)
                if self.folder
                else faiss.clone_index(self.index)
            )
            gone = bitmaps.from_rows(self.n, blocked)
            index.remove_ids(faiss.IDSelectorBitmap(self.n, faiss.swig_ptr(gone)))
            own_beam = int(self.meta.params.get("nprobe", 32))
        else:
            ids = np.setdiff1d(np.arange(self.n, dtype=np.int64), blocked, assume_unique=True)
            data = transform_items(self._raw[ids], self.meta.transform, self.meta.max_norm)
            index = faiss.IndexHNSWFlat(
                data.shape[1], int(self.meta.params.get("m", 32)), self.index.metric_type
            )
            index.hnsw.efConstruction = int(self.meta.params.get("ef_construction", 200))
            index.add(data)
            own_beam = self._default_ef
        beam = self._compact_beam(index, ids, blocked, own_beam)
        return CompactIndex(index, ids, blocked, beam, time.perf_counter() - started)

    def _compact_beam(
        self, index: Any, ids: np.ndarray | None, blocked: np.ndarray, own_beam: int, queries: int = 200
    ) -> int:
        """The smallest beam from the version's own at which the compact index recalls the
        exact top-k of the visible rows at least as well as the version's index recalls the exact
        top-k of all rows at its beam, on the same queries (visible items' vectors)."""
        visible_rows = np.setdiff1d(np.arange(self.n, dtype=np.int64), blocked, assume_unique=True)
        rng = np.random.default_rng(0)
        sample = self._raw[rng.choice(visible_rows, min(queries, len(visible_rows)), replace=False)]
        k = min(100, len(visible_rows))

        def truth(rows: np.ndarray) -> list[np.ndarray]:
            out = []
            for q in sample:
                scores = self.score(q, rows)
                out.append(rows[np.argpartition(-scores, k - 1)[:k]] if len(rows) > k else rows)
            return out

        def recall(searched: Any, beam: int, mapped: np.ndarray | None, expected: list[np.ndarray]) -> float:
            hits = 0
            for q, best in zip(sample, expected, strict=True):
                _, labels = searched.search(
                    transform_queries(q, self.meta.transform), k, params=self._beam_params(beam)
                )
                found = labels[0][labels[0] >= 0]
                hits += len(np.intersect1d(found if mapped is None else mapped[found], best))
            return hits / (k * len(sample))

        target = recall(self.index, own_beam, None, truth(np.arange(self.n, dtype=np.int64)))
        expected = truth(visible_rows)
        beam = own_beam
        limit = own_beam * 8 if self.meta.kind is IndexKind.hnsw else int(self.index.nlist)
        while recall(index, beam, ids, expected) < target - 0.005 and beam < limit:
            beam = min(limit, max(beam + 1, int(beam * 1.5)))
        return beam

    def _graph(
        self,
        query: np.ndarray,
        k: int,
        allowed: np.ndarray | None,
        excluded: np.ndarray,
        allowed_count: int,
        params: SearchParams,
        visible: np.ndarray | None = None,
        visible_share: float = 1.0,
    ) -> tuple[np.ndarray, np.ndarray]:
        faiss: Any = importlib.import_module("faiss")  # its stubs miss the search-parameter classes
        # ivf_pq ranks by compressed codes: its calibrated `rerank` candidates are fetched and
        # re-scored exactly below, whatever k is.
        depth = max(math.ceil(k * params.oversample), int(self.meta.params.get("rerank", 0)))
        fetch = min(self.n, depth + (0 if allowed is not None else len(excluded)))
        ef = max(params.ef_search or self._default_ef, fetch)
        q = transform_queries(query, self.meta.transform)
        nprobe = params.ef_search or int(self.meta.params.get("nprobe", 32))
        selector = None
        if allowed is not None:
            selector = faiss.IDSelectorBitmap(self.n, faiss.swig_ptr(allowed))
            share = max(allowed_count / self.n, 1e-6)
            # A sparser filter needs a wider beam (more inverted lists), and a filtered answer is
            # held to a higher recall (0.99) than the unfiltered calibration target.
            ef = min(int(ef * params.filtered_boost / share), 64 * ef)
            nprobe = self._filtered_beam(params, allowed_count)
        elif visible is not None:
            # Most rows pass (the catalog blocks some): the walk is the unfiltered one, widened
            # by the share blocked so as many visible rows are reached.
            selector = faiss.IDSelectorBitmap(self.n, faiss.swig_ptr(visible))
            widen = 1.0 / max(visible_share, 1e-3)
            ef = min(int(ef * widen), 64 * ef)
            nprobe = min(int(nprobe * widen), 64 * nprobe)
        beam = ef if self.meta.kind is IndexKind.hnsw else nprobe
        _, labels = self.index.search(q, fetch, params=self._beam_params(beam, selector))
        rows = labels[0]
        rows = rows[rows >= 0]
        if len(excluded) and allowed is None:
            rows = rows[~np.isin(rows, excluded)]
        return self._top(rows, self.score(query, rows), k)

    async def asearch(
        self,
        query: np.ndarray,
        k: int,
        filt: CompiledFilter = NO_FILTER,
        exclude: np.ndarray | None = None,
        params: SearchParams = SearchParams(),
        executor: Executor | None = None,
    ) -> SearchResult:
        """`search` for the event loop: small exact searches inline, anything bigger on a thread
        of `executor` (the loop's default one when None; Faiss and numpy release the GIL while
        they compute)."""
        planned = self.plan(filt, params)
        if self.work(*planned) <= params.inline_max_work:
            return self.search(query, k, filt, exclude, params, planned)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            executor, functools.partial(self.search, query, k, filt, exclude, params, planned)
        )
