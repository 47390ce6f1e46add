"""Building a version's Faiss index from its item vectors (the reading side is app/retrieval).

`auto` (the default) writes an exact flat index when the catalog is small enough for exact search
to be about as fast as a graph (measured in bench/index_recall.py: ML-1M's 3,706 items score
exactly in ~0.1 ms), and HNSW above that. HNSW and IVF store transformed vectors (see
feature_store/index_files.py) only for cosine (unit vectors); inner product uses Faiss' own
inner-product graph, which recalled far better on ALS factors than the MIPS-to-L2 reduction.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from feature_store.index_files import (
    IVF_KINDS,
    IndexKind,
    IndexMeta,
    Metric,
    Transform,
    transform_items,
    transform_queries,
)


@dataclass(frozen=True)
class IndexParams:
    kind: IndexKind = IndexKind.auto
    metric: Metric = Metric.ip
    exact_below: int = 20_000
    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 64  # the lowest beam tried; calibration raises it until the target recall
    ivf_nlist: int = 0  # 0 = 4 * sqrt(items)
    ivf_nprobe: int = 16
    # auto: inner-product catalogs of at least this many items get IVF over 4-bit PQ fast-scan
    # codes, whose candidates are re-ranked exactly. Measured on 978,120 ALS items (64 factors,
    # bench/index_recall.py): recall@100 0.956 at 1.29 ms against 0.959 at 2.79 ms for IVF over
    # raw vectors, calibrated in the same run.
    pq_above: int = 250_000
    pq_rerank: int = 1_000  # candidates an ivf_pq search fetches and re-scores exactly
    threads: int = 0  # 0 = all cores (build only; search uses one thread per call)
    # Inner product through HNSW's own inner-product graph or through the MIPS-to-L2 reduction?
    # Neither wins everywhere (measured: 0.95 vs 0.43 recall@10 on one data set, 0.88 vs 0.94 on
    # another), so None tries both on a sample of the catalog and keeps the better one.
    mips_to_l2: bool | None = None
    target_recall: float = 0.96  # calibration: smallest beam reaching this recall@calibration_k
    calibration_k: int = 100
    calibration_queries: int = 500
    max_ef_search: int = 4_096


def _build_raw(data: np.ndarray, kind: IndexKind, faiss_metric: int, params: IndexParams) -> Any:
    faiss: Any = importlib.import_module("faiss")  # its stubs do not type the index classes fully
    n, d = data.shape
    if kind is IndexKind.flat:
        index = faiss.IndexFlat(d, faiss_metric)
    elif kind is IndexKind.hnsw:
        index = faiss.IndexHNSWFlat(d, params.hnsw_m, faiss_metric)
        index.hnsw.efConstruction = params.ef_construction
        index.hnsw.efSearch = params.ef_search
    else:
        nlist = params.ivf_nlist or max(1, min(n // 39, int(4 * math.sqrt(max(n, 1)))))
        quantizer = faiss.IndexFlat(d, faiss_metric)
        # k-means on a sample: minutes saved at 1M items. The compressed index gets a 4x larger
        # sample: on 978,120 ALS items its recall@100 at nprobe 512 rose from 0.946 to 0.958
        # (lists more even, so no slower), for 67 s more of training.
        per_centroid = 64
        if kind is IndexKind.ivf_pq:
            index = faiss.IndexIVFPQFastScan(quantizer, d, nlist, pq_subquantizers(d), 4, faiss_metric)
            per_centroid = 256
        else:
            index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss_metric)
        index.cp.niter = 12
        index.cp.max_points_per_centroid = per_centroid
        rng = np.random.default_rng(0)
        sample = nlist * per_centroid
        index.train(data[rng.choice(n, sample, replace=False)] if n > sample else data)
        index.nprobe = min(params.ivf_nprobe, nlist)
    index.add(data)
    return index


def _set_beam(index: Any, kind: IndexKind, beam: int, k: int) -> None:
    if kind is IndexKind.hnsw:
        index.hnsw.efSearch = max(beam, k)
    elif kind in IVF_KINDS:
        index.nprobe = min(beam, index.nlist)


def pq_subquantizers(dim: int) -> int:
    """Four dimensions per 4-bit sub-quantizer: on ALS factors it recalled as well as two per
    sub-quantizer once 1,000 candidates are re-ranked, and scanned twice as fast."""
    return max(m for m in range(1, max(1, dim // 4) + 1) if dim % m == 0)


def _recall(
    index: Any,
    queries: np.ndarray,
    transform: Transform,
    k: int,
    truth: np.ndarray,
    rerank: tuple[np.ndarray, Metric, int] | None = None,
) -> float:
    """Share of the exact top-k that a search returns: the index asked for k, or, with `rerank`
    (vectors, metric, depth), asked for depth candidates that are then re-scored exactly, as
    app/retrieval does for ivf_pq."""
    depth = k if rerank is None else max(k, rerank[2])
    _, labels = index.search(transform_queries(queries, transform), depth)
    hits = 0
    for i, found in enumerate(labels):
        found = found[found >= 0]
        if rerank is not None and len(found) > k:
            vectors, metric, _ = rerank
            scores = _exact_scores(vectors[found], queries[i], metric)
            found = found[np.argpartition(-scores, k - 1)[:k]]
        hits += len(np.intersect1d(found, truth[i]))
    return hits / truth.size


def _exact_scores(vectors: np.ndarray, query: np.ndarray, metric: Metric) -> np.ndarray:
    """Higher is better in every metric (the ordering app/retrieval re-ranks with)."""
    if metric is Metric.cosine:
        norms = np.maximum(np.linalg.norm(vectors, axis=1), 1e-12)
        return (vectors @ query) / norms
    if metric is Metric.l2:
        return -np.linalg.norm(vectors - query, axis=1)
    return vectors @ query


def _exact_top(vectors: np.ndarray, queries: np.ndarray, metric: Metric, k: int) -> np.ndarray:
    x = np.asarray(vectors, np.float32)
    if metric is Metric.cosine:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    scores = queries @ x.T
    if metric is Metric.l2:
        scores = 2 * scores - np.einsum("ij,ij->i", x, x)[None, :]
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return top


def _faiss_metric(transform: Transform, metric: Metric) -> int:
    faiss: Any = importlib.import_module("faiss")
    return (
        faiss.METRIC_INNER_PRODUCT if transform is Transform.none and metric is Metric.ip else faiss.METRIC_L2
    )


def resolve_kind(params: IndexParams, n: int) -> IndexKind:
    """`auto`: exact below `exact_below` items; above, IVF for inner product and HNSW otherwise.

    ALS item factors have very skewed norms (rarely seen items sit near zero), and HNSW's inner-
    product graph stalled at recall@100 0.70-0.75 on such factors whatever the beam
    (bench/index_recall.py, 100k synthetic items), while IVF over inner product reached 0.96 at
    0.3 ms. Cosine and L2 are true metrics, where HNSW is the better graph. Large inner-product
    catalogs (`pq_above`) get compressed IVF codes with exact re-ranking (see IndexParams).
    """
    if params.kind is not IndexKind.auto:
        return params.kind
    if n < params.exact_below:
        return IndexKind.flat
    if params.metric is not Metric.ip:
        return IndexKind.hnsw
    return IndexKind.ivf_pq if n >= params.pq_above else IndexKind.ivf


def build_index(
    vectors: np.ndarray,
    params: IndexParams,
    name: str,
    vectors_file: str,
    queries: np.ndarray | None = None,
) -> tuple[Any, IndexMeta]:
    """Build (not write) the index of `vectors` and calibrate its search beam on `queries`
    (e.g. a sample of user vectors; item vectors when None) to reach `target_recall`."""
    faiss: Any = importlib.import_module("faiss")
    if params.threads:
        faiss.omp_set_num_threads(params.threads)
    x = np.ascontiguousarray(vectors, np.float32)
    n, dim = x.shape
    kind = resolve_kind(params, n)
    max_norm = float(np.linalg.norm(x, axis=1).max()) if n else 0.0
    rng = np.random.default_rng(0)
    if queries is None or not len(queries):
        queries = x[rng.choice(n, min(n, params.calibration_queries), replace=False)] if n else x
    q = np.ascontiguousarray(queries[rng.permutation(len(queries))[: params.calibration_queries]], np.float32)
    extra: dict[str, Any] = {}
    transform = Transform.normalize if params.metric is Metric.cosine else Transform.none
    graph = kind is IndexKind.hnsw or kind in IVF_KINDS
    if kind is IndexKind.hnsw and params.metric is Metric.ip:
        use_mips = params.mips_to_l2
        if use_mips is None:
            use_mips, trial = _choose_ip_graph(x, q, kind, params, max_norm)
            extra["ip_graph_trial"] = trial
        transform = Transform.mips_to_l2 if use_mips else Transform.none
    index = _build_raw(
        transform_items(x, transform, max_norm), kind, _faiss_metric(transform, params.metric), params
    )
    if kind is IndexKind.hnsw:
        extra.update(m=params.hnsw_m, ef_construction=params.ef_construction)
    if graph and n:
        k = min(params.calibration_k, n)
        truth = _exact_top(x, q, params.metric, k)
        beam = params.ef_search if kind is IndexKind.hnsw else params.ivf_nprobe
        rerank = (x, params.metric, params.pq_rerank) if kind is IndexKind.ivf_pq else None
        curve: dict[str, float] = {}
        while True:
            _set_beam(index, kind, beam, k)
            curve[str(beam)] = round(_recall(index, q, transform, k, truth, rerank), 4)
            if curve[str(beam)] >= params.target_recall or beam >= params.max_ef_search:
                break
            if kind in IVF_KINDS and beam >= index.nlist:
                beam = index.nlist
                break
            beam = max(beam + 1, int(beam * 1.5))  # a fine ladder: latency grows with the beam
        extra["ef_search" if kind is IndexKind.hnsw else "nprobe"] = beam
        extra["calibration"] = {"k": k, "queries": len(q), "recall_by_beam": curve}
        if kind in IVF_KINDS:
            extra["nlist"] = index.nlist
        if kind is IndexKind.ivf_pq:
            extra.update(pq_m=index.pq.M, rerank=params.pq_rerank)
    meta = IndexMeta(
        name=name,
        file=f"index_{name}.faiss",
        vectors=vectors_file,
        kind=kind,
        metric=params.metric,
        transform=transform,
        dim=dim,
        ntotal=n,
        max_norm=max_norm,
        params=extra,
    )
    return index, meta


def _choose_ip_graph(
    x: np.ndarray, q: np.ndarray, kind: IndexKind, params: IndexParams, max_norm: float, sample: int = 50_000
) -> tuple[bool, dict[str, float]]:
    """Build both inner-product graphs on a sample of the items; keep the one with better recall."""
    rng = np.random.default_rng(1)
    sub = x[np.sort(rng.choice(len(x), sample, replace=False))] if len(x) > sample else x
    k = min(params.calibration_k, len(sub))
    truth = _exact_top(sub, q, Metric.ip, k)
    scores = {}
    for transform in (Transform.none, Transform.mips_to_l2):
        index = _build_raw(
            transform_items(sub, transform, max_norm), kind, _faiss_metric(transform, Metric.ip), params
        )
        _set_beam(index, kind, params.ef_search if kind is IndexKind.hnsw else params.ivf_nprobe, k)
        scores[transform.value] = round(_recall(index, q, transform, k, truth), 4)
    return scores["mips_to_l2"] > scores["none"], scores


def write_index(index: Any, folder: Path, meta: IndexMeta) -> None:
    import faiss

    faiss.write_index(index, str(folder / meta.file))
