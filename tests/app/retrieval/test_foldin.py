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


def _fitted(biases: bool) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray, AlsParams]:
    dataset = build_dataset(from_table(small_data(users=400).interactions, DEFAULT_EVENT_WEIGHTS))
    params = AlsParams(
        factors=16,
        regularization=2.0,
        alpha=4.0,
        iterations=12,
        scaling=Scaling.log,
        use_cg=False,
        biases=biases,
    )
    result = fit_als(dataset.matrix, params)
    return dataset.matrix.tocsr(), result.user_factors, result.item_factors, params


def _check_reproduces_training(biases: bool) -> None:
    matrix, users, items, p = _fitted(biases)
    model = FoldInModel.from_factors(items, p.regularization, p.alpha, p.scaling, biased=biases)
    cosines = []
    for u in range(0, matrix.shape[0], 7):
        row = matrix[u]
        folded = model.fold_in(row.indices, row.data)
        cosines.append(_cosine(folded, users[u]))
    assert np.median(cosines) > 0.99, np.percentile(cosines, [5, 50])


def test_fold_in_of_a_training_row_reproduces_the_trained_user_vector() -> None:
    _check_reproduces_training(biases=False)


def test_fold_in_reproduces_the_biased_model_too() -> None:
    _check_reproduces_training(biases=True)


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


def test_a_version_without_hyperparameters_serves_without_fold_in(tmp_path: Path) -> None:
    from app.versions import _foldin_model
    from feature_store.manifest import Manifest

    fields = {"version": "als_v1", "created": "x", "model_family": "als", "data_fingerprint": "x"}
    manifest = Manifest.model_validate({**fields, "files": {}})

    class Index:
        vectors = np.ones((3, 2), np.float32)

    assert _foldin_model(manifest, Index()) is None  # type: ignore[arg-type]
