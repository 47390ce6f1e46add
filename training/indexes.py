"""Building a version's Faiss index from its item vectors (the reading side is app/retrieval).

`auto` (the default) writes an exact flat index when the catalog is small enough for exact search
to be about as fast as a graph (measured in bench/index_recall.py: ML-1M's 3,706 items score
exactly in ~0.1 ms), and HNSW above that. HNSW and IVF store transformed vectors (see
feature_store/index_files.py) so inner-product search runs on a proper metric.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from feature_store.index_files import IndexKind, IndexMeta, Metric, Transform, transform_items


@dataclass(frozen=True)
class IndexParams:
    kind: IndexKind = IndexKind.auto
    metric: Metric = Metric.ip
    exact_below: int = 20_000
    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 128
    ivf_nlist: int = 0  # 0 = 4 * sqrt(items)
    ivf_nprobe: int = 32
    threads: int = 0  # 0 = all cores (build only; search uses one thread per call)


def _transform_for(kind: IndexKind, metric: Metric) -> Transform:
    if metric is Metric.cosine:
        return Transform.normalize
    if metric is Metric.ip and kind is not IndexKind.flat:
        return Transform.mips_to_l2
    return Transform.none


def build_index(
    vectors: np.ndarray, params: IndexParams, name: str, vectors_file: str
) -> tuple[Any, IndexMeta]:
    """Build (not write) the index of `vectors`; returns the faiss index and its description."""
    faiss: Any = importlib.import_module("faiss")  # its stubs do not type the index classes fully

    n, dim = vectors.shape
    kind = params.kind
    if kind is IndexKind.auto:
        kind = IndexKind.flat if n < params.exact_below else IndexKind.hnsw
    transform = _transform_for(kind, params.metric)
    norms = np.linalg.norm(np.asarray(vectors, np.float32), axis=1)
    max_norm = float(norms.max()) if n else 0.0
    data = transform_items(vectors, transform, max_norm)
    d = data.shape[1]
    if params.threads:
        faiss.omp_set_num_threads(params.threads)
    extra: dict[str, object] = {}
    faiss_metric = (
        faiss.METRIC_INNER_PRODUCT
        if transform is Transform.none and params.metric is Metric.ip
        else faiss.METRIC_L2
    )
    if kind is IndexKind.flat:
        index = faiss.IndexFlat(d, faiss_metric)
        index.add(data)
    elif kind is IndexKind.hnsw:
        index = faiss.IndexHNSWFlat(d, params.hnsw_m, faiss_metric)
        index.hnsw.efConstruction = params.ef_construction
        index.hnsw.efSearch = params.ef_search
        index.add(data)
        extra = {"m": params.hnsw_m, "ef_construction": params.ef_construction, "ef_search": params.ef_search}
    else:
        nlist = params.ivf_nlist or max(1, min(n // 39, int(4 * math.sqrt(max(n, 1)))))
        quantizer = faiss.IndexFlat(d, faiss_metric)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss_metric)
        rng = np.random.default_rng(0)
        sample = data[rng.choice(n, min(n, nlist * 256), replace=False)] if n > nlist * 256 else data
        index.train(sample)
        index.add(data)
        index.nprobe = min(params.ivf_nprobe, nlist)
        extra = {"nlist": nlist, "nprobe": index.nprobe}
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


def write_index(index: Any, folder: Path, meta: IndexMeta) -> None:
    import faiss

    faiss.write_index(index, str(folder / meta.file))
