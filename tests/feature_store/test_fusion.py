"""Fusion (reciprocal ranks, or a blend of standardized scores): order, weights, de-duplication
and sources."""

from __future__ import annotations

import numpy as np
import pytest

from feature_store.fusion import FusionParams, ScoreMoments, fuse


def test_items_both_models_rank_high_come_first_and_appear_once() -> None:
    params = FusionParams({"als": 0.5, "two_tower": 0.5}, rrf_k=60)
    rows, scores, sources = fuse(
        [("als", np.array([1, 2, 3])), ("two_tower", np.array([2, 4, 1]))], params, 10
    )
    assert rows.tolist()[:2] == [2, 1]
    assert len(set(rows.tolist())) == len(rows) == 4
    assert sources[rows.tolist().index(2)] == "als+two_tower"
    assert sources[rows.tolist().index(4)] == "two_tower"
    assert sources[rows.tolist().index(3)] == "als"
    assert np.all(np.diff(scores) <= 0)


def test_zero_weight_source_only_breaks_no_order() -> None:
    """With the Two-Tower weight at 0 the fused order is ALS's order."""
    als = np.array([5, 3, 9, 1])
    rows, _, _ = fuse(
        [("als", als), ("two_tower", np.array([1, 9, 7]))], FusionParams({"als": 1.0, "two_tower": 0.0}), 4
    )
    assert rows.tolist() == als.tolist()


def test_k_truncates_and_padding_is_ignored() -> None:
    rows, scores, sources = fuse(
        [("als", np.array([4, -1, -1])), ("two_tower", np.array([-1]))], FusionParams(), 5
    )
    assert rows.tolist() == [4] and len(scores) == 1 and sources == ["als"]
    rows, _, _ = fuse([("als", np.arange(50)), ("two_tower", np.arange(50, 100))], FusionParams(), 7)
    assert len(rows) == 7


def test_empty_lists_give_an_empty_answer() -> None:
    rows, scores, sources = fuse([("als", np.array([], np.int64))], FusionParams(), 5)
    assert len(rows) == 0 and len(scores) == 0 and sources == []


def test_params_round_trip_through_a_manifest_dict_and_reject_garbage() -> None:
    params = FusionParams({"als": 0.7, "two_tower": 0.3}, rrf_k=10, depth=80)
    assert FusionParams.from_dict(params.as_dict()) == params
    with pytest.raises(ValueError, match="weights"):
        FusionParams.from_dict({"weights": {}})
    with pytest.raises(ValueError, match="rrf_k"):
        FusionParams.from_dict({"weights": {"als": 1.0}, "rrf_k": "x"})
    blend = FusionParams({"als": 0.6, "two_tower": 0.4}, method="blend")
    assert FusionParams.from_dict(blend.as_dict()) == blend
    assert FusionParams.from_dict({"weights": {"als": 1.0}}).method == "rrf"  # older versions
    with pytest.raises(ValueError, match="method"):
        FusionParams.from_dict({"weights": {"als": 1.0}, "method": "average"})


@pytest.mark.parametrize("l2", [False, True])
def test_moments_give_the_mean_and_spread_of_a_query_over_the_whole_catalog(l2: bool) -> None:
    rng = np.random.default_rng(0)
    items = (rng.standard_normal((5_000, 8)) * rng.lognormal(0, 0.5, (5_000, 1)) + 0.3).astype(np.float32)
    query = rng.standard_normal(8).astype(np.float32)
    scores = -np.sum((items - query) ** 2, axis=1) if l2 else items @ query
    z = ScoreMoments.of(items, l2=l2).standardize(scores, query)
    np.testing.assert_allclose(z, (scores - scores.mean()) / scores.std(), rtol=1e-3, atol=1e-3)


def test_a_blend_ranks_by_weighted_standardized_scores_whatever_each_model_scale() -> None:
    """ALS scores in the hundreds, Two-Tower cosines under 1: standardized, neither drowns."""
    als_z = {1: 2.0, 2: 1.0, 3: 0.0, 4: -1.0}
    tt_z = {1: -1.0, 2: 1.5, 3: 3.0, 4: 0.0}
    table = {"als": als_z, "two_tower": tt_z}

    def standardized(name: str, rows: np.ndarray) -> np.ndarray:
        return np.array([table[name][r] for r in rows.tolist()], np.float32)

    lists = [("als", np.array([1, 2])), ("two_tower", np.array([3, 2, 4]))]
    params = FusionParams({"als": 0.5, "two_tower": 0.5}, method="blend")
    rows, scores, sources = fuse(lists, params, 4, standardized)
    assert rows.tolist() == [3, 2, 1, 4]
    np.testing.assert_allclose(scores, [1.5, 1.25, 0.5, -0.5])
    assert sources == ["two_tower", "als+two_tower", "als", "two_tower"]
    als_only = fuse(lists, FusionParams({"als": 1.0, "two_tower": 0.0}, method="blend"), 4, standardized)[0]
    assert als_only.tolist() == [1, 2]  # a source weighted 0 proposes nothing to a blend
    tt_only = FusionParams({"als": 0.0, "two_tower": 1.0}, method="blend")
    rows, _, sources = fuse(lists, tt_only, 4, standardized)
    assert rows.tolist() == [3, 2, 4] and sources == ["two_tower"] * 3
    with pytest.raises(ValueError, match="standardized"):
        fuse(lists, FusionParams(method="blend"), 4)
