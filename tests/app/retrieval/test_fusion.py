"""Reciprocal rank fusion: order, weights, de-duplication and sources."""

from __future__ import annotations

import numpy as np
import pytest

from app.retrieval.fusion import FusionParams, fuse


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
