"""Filtered search: every plan returns the exact top-k of what the filter allows."""

from __future__ import annotations

import numpy as np
import pytest

from app.retrieval import bitmaps
from app.retrieval.catalog import VersionCatalog
from app.retrieval.filters import CompiledFilter, Filters, compile_filters, with_catalog
from app.retrieval.search import ItemIndex, Plan, SearchParams, top_k_rows
from feature_store.index_files import IndexKind, Metric, read_index_meta
from tests.app.retrieval.conftest import DIM, N_ITEMS, build_folder


def _queries(n: int = 20, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def _truth(index: ItemIndex, q: np.ndarray, k: int, allowed_rows: np.ndarray) -> set[int]:
    scores = index.vectors[allowed_rows] @ q
    return set(allowed_rows[np.argsort(-scores)[:k]].tolist())


def _random_filter(share: float, seed: int = 0) -> tuple[CompiledFilter, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(N_ITEMS, max(1, int(share * N_ITEMS)), replace=False))
    return CompiledFilter(bitmaps.from_rows(N_ITEMS, rows), np.empty(0, np.int64)), rows


@pytest.mark.parametrize("share", [0.5, 0.1, 0.01, 0.001])
def test_every_selectivity_returns_k_results_with_exact_recall(hnsw: ItemIndex, share: float) -> None:
    filt, rows = _random_filter(share)
    k = min(10, len(rows))
    recalls = []
    for q in _queries():
        result = hnsw.search(q, k, filt, params=SearchParams(exact_max_rows=200))
        assert len(result.rows) == k
        assert set(result.rows.tolist()) <= set(rows.tolist())
        recalls.append(len(set(result.rows.tolist()) & _truth(hnsw, q, k, rows)) / k)
    assert np.mean(recalls) >= 0.99
    expected = Plan.graph_filtered if len(rows) > 200 else Plan.exact_filtered
    assert result.plan is expected


def test_a_filter_with_fewer_allowed_items_than_k_returns_all_of_them(hnsw: ItemIndex) -> None:
    filt, rows = _random_filter(3 / N_ITEMS)
    result = hnsw.search(_queries(1)[0], 10, filt)
    assert sorted(result.rows.tolist()) == rows.tolist()


def test_excluded_items_never_come_back_and_k_is_still_met(hnsw: ItemIndex) -> None:
    q = _queries(1)[0]
    first = hnsw.search(q, 50)
    excluded = first.rows[:40]
    again = hnsw.search(q, 10, exclude=excluded)
    assert len(again.rows) == 10 and not set(again.rows.tolist()) & set(excluded.tolist())
    allowed = np.setdiff1d(np.arange(N_ITEMS), excluded)
    assert len(set(again.rows.tolist()) & _truth(hnsw, q, 10, allowed)) >= 9


def test_scores_are_exact_dot_products_best_first(hnsw: ItemIndex) -> None:
    q = _queries(1)[0]
    result = hnsw.search(q, 20)
    np.testing.assert_allclose(result.scores, hnsw.vectors[result.rows] @ q, rtol=1e-5)
    assert np.all(np.diff(result.scores) <= 1e-6)
    assert result.plan is Plan.graph


@pytest.mark.parametrize("metric", [Metric.ip, Metric.cosine, Metric.l2])
def test_a_flat_index_answers_exactly_in_every_metric(tmp_path, metric: Metric) -> None:
    folder = build_folder(tmp_path / "flat", IndexKind.flat, metric)
    index = ItemIndex.load(folder, read_index_meta(folder)["als"])
    x = index.vectors
    for q in _queries(5):
        if metric is Metric.ip:
            s = x @ q
        elif metric is Metric.cosine:
            s = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (q / np.linalg.norm(q))
        else:
            s = -np.sum((x - q) ** 2, axis=1)
        result = index.search(q, 10, exclude=np.array([int(np.argmax(s))]))
        assert result.plan is Plan.exact
        assert result.rows.tolist() == np.argsort(-s)[1:11].tolist()
        np.testing.assert_allclose(result.scores, s[result.rows], rtol=1e-4, atol=1e-4)


def test_attribute_filters_hold_on_every_result(hnsw: ItemIndex, attributes, item_rows, hnsw_folder) -> None:
    filters = Filters.model_validate(
        {
            "attributes": {
                "category": {"in": ["a", "b"]},
                "price": {"gte": 10, "lt": 60},
                "tags": {"not_in": ["z"]},
            },
            "deny_items": ["item1", "item2"],
        }
    )
    compiled = compile_filters(filters, attributes, item_rows)
    codes = np.load(hnsw_folder / "attr_category_codes.npy")
    price = np.load(hnsw_folder / "attr_price_numbers.npy")
    indptr = np.load(hnsw_folder / "attr_tags_indptr.npy")
    tags = np.load(hnsw_folder / "attr_tags_codes.npy")
    ok = np.isin(codes, [0, 1]) & (price >= 10) & (price < 60)
    ok &= np.array([2 not in tags[indptr[i] : indptr[i + 1]] for i in range(N_ITEMS)])
    ok[[1, 2]] = False
    for q in _queries(5):
        result = hnsw.search(q, 25, compiled)
        assert len(result.rows) == 25 and ok[result.rows].all()
        assert set(result.rows.tolist()) == _truth(hnsw, q, 25, np.flatnonzero(ok))


def test_a_rare_category_takes_the_exact_plan(hnsw: ItemIndex, attributes, item_rows) -> None:
    compiled = compile_filters(
        Filters.model_validate({"attributes": {"category": {"in": ["rare"]}}}), attributes, item_rows
    )
    result = hnsw.search(_queries(1)[0], 10, compiled)
    assert result.plan is Plan.exact_filtered and len(result.rows) == 8 and result.candidates == 8


async def test_async_search_matches_the_sync_one(hnsw: ItemIndex) -> None:
    q = _queries(1)[0]
    sync = hnsw.search(q, 10)
    assert (await hnsw.asearch(q, 10)).rows.tolist() == sync.rows.tolist()


def test_compressed_codes_are_reranked_so_scores_are_exact_and_recall_holds(ivf_pq: ItemIndex) -> None:
    assert ivf_pq.meta.kind is IndexKind.ivf_pq and ivf_pq.meta.params["rerank"] >= 100
    recalls = []
    for q in _queries():
        result = ivf_pq.search(q, 10)
        assert result.plan is Plan.graph and len(result.rows) == 10
        np.testing.assert_allclose(result.scores, ivf_pq.vectors[result.rows] @ q, rtol=1e-5)
        recalls.append(len(set(result.rows.tolist()) & _truth(ivf_pq, q, 10, np.arange(N_ITEMS))) / 10)
    assert np.mean(recalls) >= 0.95


@pytest.mark.parametrize("share", [0.5, 0.1, 0.01])
def test_filtered_searches_on_compressed_codes_are_answered_exactly(ivf_pq: ItemIndex, share: float) -> None:
    filt, rows = _random_filter(share, seed=4)
    k = min(10, len(rows))
    recalls = []
    for q in _queries():
        result = ivf_pq.search(q, k, filt, params=SearchParams(exact_max_rows=200))
        assert len(result.rows) == k and set(result.rows.tolist()) <= set(rows.tolist())
        assert result.plan is Plan.exact_filtered  # the codes under a selector fall short of 0.99
        recalls.append(len(set(result.rows.tolist()) & _truth(ivf_pq, q, k, rows)) / k)
    assert np.mean(recalls) == 1.0


def test_standardized_scores_are_z_scores_against_every_item(hnsw: ItemIndex) -> None:
    q = _queries(1)[0]
    everything = hnsw.score(q)
    rows = np.array([0, 17, 999])
    expected = (everything[rows] - everything.mean()) / everything.std()
    np.testing.assert_allclose(hnsw.standardized(q, rows), expected, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("share", [0.001, 0.01, 0.3, 0.7])
def test_rows_the_catalog_blocks_never_come_back_and_recall_holds(
    fresh_hnsw: ItemIndex, share: float
) -> None:
    """A few blocked rows are dropped after the walk, many are skipped by a selector with a
    widened beam until a compact copy is built (test_compaction.py); either way k results of the
    visible rows, as exact as unfiltered search."""
    hnsw = fresh_hnsw
    rng = np.random.default_rng(5)
    blocked = np.sort(rng.choice(N_ITEMS, max(1, int(share * N_ITEMS)), replace=False))
    visible = bitmaps.invert(bitmaps.from_rows(N_ITEMS, blocked), N_ITEMS)
    catalog = VersionCatalog(N_ITEMS, blocked, visible, {}, float("inf"))
    filt = with_catalog(CompiledFilter(None, np.empty(0, np.int64)), catalog)
    open_rows = np.setdiff1d(np.arange(N_ITEMS), blocked)
    recalls = []
    for q in _queries():
        result = hnsw.search(q, 10, filt)
        assert len(result.rows) == 10 and not set(result.rows.tolist()) & set(blocked.tolist())
        recalls.append(len(set(result.rows.tolist()) & _truth(hnsw, q, 10, open_rows)) / 10)
    assert np.mean(recalls) >= 0.95
    assert result.plan in (Plan.graph, Plan.graph_compact)


def test_blocking_the_best_matches_still_returns_k_visible_rows(hnsw: ItemIndex) -> None:
    q = _queries(1)[0]
    best = hnsw.search(q, 40).rows  # all 40 best blocked: a post-filter comes back short
    visible = bitmaps.invert(bitmaps.from_rows(N_ITEMS, best), N_ITEMS)
    catalog = VersionCatalog(N_ITEMS, np.sort(best), visible, {}, float("inf"))
    filt = with_catalog(CompiledFilter(None, np.empty(0, np.int64)), catalog)
    result = hnsw.search(q, 10, filt)
    assert len(result.rows) == 10 and not set(result.rows.tolist()) & set(best.tolist())
    rest = np.setdiff1d(np.arange(N_ITEMS), best)
    assert len(set(result.rows.tolist()) & _truth(hnsw, q, 10, rest)) >= 9


@pytest.mark.parametrize("n", [1, 49, 50, 51, 199, 800, 5_000, 20_011])
@pytest.mark.parametrize("k", [1, 10, 50, 100])
def test_top_k_rows_holds_the_k_highest_scores_masked_and_tied_ones_included(n: int, k: int) -> None:
    rng = np.random.default_rng(n * 1_000 + k)
    for shape in ("normal", "masked", "ties", "sorted"):
        scores = rng.normal(size=n).astype(np.float32)
        if shape == "masked":
            scores[rng.random(n) < 0.9] = -np.inf
        elif shape == "ties":
            scores = np.round(scores, 1)
        elif shape == "sorted":  # the block maxima all sit in the last blocks
            scores = np.sort(scores)
        rows = top_k_rows(scores, k)
        assert len(rows) == min(n, k) == len(set(rows.tolist()))
        np.testing.assert_array_equal(np.sort(scores[rows])[::-1], np.sort(scores)[::-1][: min(n, k)])


def test_top_k_rows_never_prefers_a_nan_score_to_a_number() -> None:
    for n, k in ((3_000, 600), (20_000, 50)):  # too few rows for blocks; blocks
        scores = np.arange(n, dtype=np.float32)
        scores[::2] = np.nan  # half the rows, the highest blocks included
        rows = top_k_rows(scores, k)
        assert len(rows) == k and not np.isnan(scores[rows]).any()
        assert sorted(scores[rows].tolist()) == sorted(scores[~np.isnan(scores)].tolist())[-k:]
