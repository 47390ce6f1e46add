"""Fold-in solves the same per-user problem as training: it reproduces a trained user's vector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from app.retrieval.foldin import FoldInModel, profile_interactions
from tests.builders import small_data
from training.als import AlsParams, fit_als
from training.confidence import Scaling
from training.dataset import build_dataset
from training.events import DEFAULT_EVENT_WEIGHTS
from training.interaction_log import from_table


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _fitted(
    biases: bool, discount: float = 0.0
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray, AlsParams, np.ndarray | None]:
    dataset = build_dataset(from_table(small_data(users=400).interactions, DEFAULT_EVENT_WEIGHTS))
    params = AlsParams(
        factors=16,
        regularization=2.0,
        alpha=4.0,
        iterations=12,
        scaling=Scaling.log,
        use_cg=False,
        biases=biases,
        popularity_discount=discount,
    )
    result = fit_als(dataset.matrix, params)
    return dataset.matrix.tocsr(), result.user_factors, result.item_factors, params, result.item_weights


def _fold_in_cosines(biases: bool, discount: float = 0.0, use_weights: bool = True) -> np.ndarray:
    """Cosine of each sampled user's fold-in with the vector training gave them."""
    matrix, users, items, p, weights = _fitted(biases, discount)
    assert (weights is not None) == bool(discount)
    model = FoldInModel.from_factors(
        items,
        p.regularization,
        p.alpha,
        p.scaling,
        biased=biases,
        item_weights=weights if use_weights else None,
    )
    cosines = []
    for u in range(0, matrix.shape[0], 7):
        row = matrix[u]
        cosines.append(_cosine(model.fold_in(row.indices, row.data), users[u]))
    return np.array(cosines)


def _check_reproduces_training(biases: bool, discount: float = 0.0) -> None:
    cosines = _fold_in_cosines(biases, discount)
    assert np.median(cosines) > 0.99, np.percentile(cosines, [5, 50])


def test_fold_in_of_a_training_row_reproduces_the_trained_user_vector() -> None:
    _check_reproduces_training(biases=False)


def test_fold_in_reproduces_the_biased_model_too() -> None:
    _check_reproduces_training(biases=True)


def test_fold_in_applies_the_popularity_discount_training_used() -> None:
    with_weights = _fold_in_cosines(biases=False, discount=0.5)
    without = _fold_in_cosines(biases=False, discount=0.5, use_weights=False)
    assert np.percentile(with_weights, 5) > 0.99 > np.percentile(without, 5)


def test_profile_interactions_sum_recent_weights_and_give_older_items_a_click() -> None:
    rows, weights = profile_interactions(
        seen=np.array([9, 3, 4]),
        recent_items=np.array([3, 4, 3]),
        recent_weights=np.array([1.0, 2.0, 0.5]),
        limit=10,
    )
    assert dict(zip(rows.tolist(), weights.tolist(), strict=True)) == {3: 1.5, 4: 2.0, 9: 1.0}


def test_profile_interactions_are_capped() -> None:
    rows, _ = profile_interactions(np.arange(100), np.array([5]), np.array([1.0]), limit=10)
    assert len(rows) == 10 and 5 in rows.tolist()


def test_older_seen_items_are_the_smallest_rows_not_among_the_recent_ones_duplicates_or_not() -> None:
    rng = np.random.default_rng(0)
    for _ in range(500):
        seen = rng.integers(0, 300, rng.integers(0, 60))  # duplicates included
        recent = rng.integers(0, 300, rng.integers(0, 30))
        limit = int(rng.integers(1, 80))
        rows, weights = profile_interactions(seen, recent, np.ones(len(recent)), limit)
        ranked = sorted(set(recent.tolist()))[:limit]
        older = sorted(set(seen.tolist()) - set(ranked))[: limit - len(ranked)]
        assert rows.tolist() == ranked + older
        assert weights[len(ranked) :].tolist() == [1.0] * len(older)


def test_a_version_without_hyperparameters_serves_without_fold_in(tmp_path: Path) -> None:
    from app.versions import _foldin_model
    from feature_store.manifest import Manifest

    fields = {"version": "als_v1", "created": "x", "model_family": "als", "data_fingerprint": "x"}
    manifest = Manifest.model_validate({**fields, "files": {}})

    class Index:
        vectors = np.ones((3, 2), np.float32)

    assert _foldin_model(manifest, Index(), tmp_path) is None  # type: ignore[arg-type]
