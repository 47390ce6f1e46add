"""Index building: every kind and metric finds what exact search finds."""

from __future__ import annotations

import numpy as np
import pytest

from feature_store.index_files import IndexKind, Metric, Transform, transform_items, transform_queries
from training.indexes import IndexParams, build_index, resolve_kind


def _vectors(n: int = 3_000, d: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # ALS-like: clustered directions, norms spread over an order of magnitude
    centres = rng.standard_normal((12, d))
    x = centres[rng.integers(0, 12, n)] + 0.4 * rng.standard_normal((n, d))
    return (x * rng.lognormal(0, 0.6, (n, 1))).astype(np.float32)


def _exact(x: np.ndarray, q: np.ndarray, metric: Metric, k: int) -> np.ndarray:
    if metric is Metric.ip:
        s = x @ q
    elif metric is Metric.cosine:
        s = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ q
    else:
        s = -np.linalg.norm(x - q, axis=1)
    return np.argsort(-s)[:k]


def test_the_mips_transform_turns_inner_product_into_nearest_neighbour_order() -> None:
    x = _vectors(500)
    q = np.random.default_rng(1).standard_normal(16).astype(np.float32)
    max_norm = float(np.linalg.norm(x, axis=1).max())
    tx = transform_items(x, Transform.mips_to_l2, max_norm)
    tq = transform_queries(q, Transform.mips_to_l2)[0]
    by_l2 = np.argsort(np.linalg.norm(tx - tq, axis=1))[:20]
    np.testing.assert_array_equal(by_l2, np.argsort(-(x @ q))[:20])


@pytest.mark.parametrize("kind", [IndexKind.flat, IndexKind.hnsw, IndexKind.ivf])
@pytest.mark.parametrize("metric", [Metric.ip, Metric.cosine, Metric.l2])
def test_every_kind_and_metric_recalls_the_exact_top_10(kind: IndexKind, metric: Metric) -> None:
    x = _vectors()
    calibration = np.random.default_rng(9).standard_normal((200, 16)).astype(np.float32)
    index, meta = build_index(x, IndexParams(kind=kind, metric=metric), "als", "v.npy", queries=calibration)
    assert meta.kind is kind and meta.ntotal == len(x) and meta.dim == x.shape[1]
    rng = np.random.default_rng(2)
    hits = 0
    for _ in range(30):
        q = rng.standard_normal(16).astype(np.float32)  # like the calibration queries, not the same
        tq = transform_queries(q, meta.transform)
        _, labels = index.search(tq, 10)
        hits += len(set(labels[0].tolist()) & set(_exact(x, q, metric, 10).tolist()))
    assert hits / 300 >= (1.0 if kind is IndexKind.flat else 0.9)


def test_auto_picks_exact_search_for_a_small_catalog_and_ivf_for_a_large_one() -> None:
    small = build_index(_vectors(500), IndexParams(exact_below=1_000), "als", "v.npy")[1]
    assert resolve_kind(IndexParams(), 1_000_000) is IndexKind.ivf_pq
    large = build_index(_vectors(1_500), IndexParams(exact_below=1_000), "als", "v.npy")[1]
    assert small.kind is IndexKind.flat and large.kind is IndexKind.ivf
    curve = large.params["calibration"]["recall_by_beam"]
    assert curve[str(large.params["nprobe"])] >= 0.95 or large.params["nprobe"] == large.params["nlist"]
    cosine = build_index(
        _vectors(1_500), IndexParams(exact_below=1_000, metric=Metric.cosine), "als", "v.npy"
    )[1]
    assert cosine.kind is IndexKind.hnsw and cosine.transform is Transform.normalize


def test_auto_compresses_a_large_inner_product_catalog_and_calibrates_with_exact_reranking() -> None:
    x = _vectors(4_000)
    calibration = np.random.default_rng(9).standard_normal((200, 16)).astype(np.float32)
    params = IndexParams(exact_below=1_000, pq_above=3_000, pq_rerank=500, calibration_k=10)
    index, meta = build_index(x, params, "als", "v.npy", queries=calibration)
    assert meta.kind is IndexKind.ivf_pq and meta.params["rerank"] == 500 and meta.params["pq_m"] == 4
    curve = meta.params["calibration"]["recall_by_beam"]
    assert curve[str(meta.params["nprobe"])] >= 0.96 or meta.params["nprobe"] == meta.params["nlist"]
    # the codes alone rank worse than the calibrated recall: the exact re-ranking is what holds it
    q = np.random.default_rng(5).standard_normal((50, 16)).astype(np.float32)
    index.nprobe = meta.params["nprobe"]
    _, labels = index.search(q, 10)
    truth = [set(_exact(x, v, Metric.ip, 10).tolist()) for v in q]
    codes_only = np.mean([len(set(lab.tolist()) & t) / 10 for lab, t in zip(labels, truth, strict=True)])
    _, deep = index.search(q, 500)
    reranked = [row[np.argsort(-(x[row] @ v))[:10]] for row, v in zip(deep, q, strict=True)]
    exact_after = np.mean([len(set(r.tolist()) & t) / 10 for r, t in zip(reranked, truth, strict=True)])
    assert exact_after >= 0.93 and exact_after > codes_only + 0.05


def test_an_inner_product_hnsw_keeps_the_better_of_two_graphs_measured_on_a_sample() -> None:
    meta = build_index(_vectors(1_500), IndexParams(kind=IndexKind.hnsw), "als", "v.npy")[1]
    trial = meta.params["ip_graph_trial"]
    assert set(trial) == {"none", "mips_to_l2"}
    assert meta.transform is (Transform.mips_to_l2 if trial["mips_to_l2"] > trial["none"] else Transform.none)
