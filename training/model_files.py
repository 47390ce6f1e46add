"""Writing the non-ALS models of a version: popularity, content vectors, Two-Tower, their indexes.

Called by `artifacts.write_als_version` inside its temporary folder, so these files are hashed into
the same manifest and appear with the version or not at all.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from feature_store.index_files import IndexMeta, Metric
from feature_store.version_files import (
    CONTENT_COMPONENTS,
    CONTENT_ENCODER,
    CONTENT_IDF,
    CONTENT_VECTORS,
    POPULARITY_SCORES,
    TWO_TOWER_ITEMS,
    TWO_TOWER_USER_TOWER,
    TWO_TOWER_USERS,
)
from training.als import IterationRecord
from training.content import content_profiles, scoring_queries, scoring_vectors
from training.indexes import IndexParams, build_index, write_index
from training.model_set import ModelSet
from training.plots import plot_training_curve
from training.two_tower import save_user_tower

TWO_TOWER_HISTORY = "two_tower_history.json"
TWO_TOWER_CURVE = "two_tower_curve.png"
_CALIBRATION_USERS = 2_000


def _save(folder: Path, name: str, array: np.ndarray) -> None:
    np.save(folder / name, np.ascontiguousarray(array, np.float32), allow_pickle=False)


def write_model_set(
    folder: Path, models: ModelSet, matrix: sp.csr_matrix, index_params: IndexParams
) -> dict[str, IndexMeta]:
    """Write every model of `models` but ALS into `folder`; return the indexes it built."""
    metas: dict[str, IndexMeta] = {}
    _save(folder, POPULARITY_SCORES, models.popularity.scores)
    rng = np.random.default_rng(0)
    sample = np.sort(rng.permutation(matrix.shape[0])[:_CALIBRATION_USERS])
    ip = replace(index_params, metric=Metric.ip)
    if models.content is not None:
        vectors = scoring_vectors(models.content.vectors, models.popularity.scores)
        _save(folder, CONTENT_VECTORS, vectors)
        queries = scoring_queries(
            content_profiles(models.content.vectors, matrix[sample]), models.content_prior
        )
        index, meta = build_index(vectors, ip, "content", CONTENT_VECTORS, queries=queries)
        write_index(index, folder, meta)
        metas["content"] = meta
        encoder = models.content.encoder
        if encoder is not None:
            (folder / CONTENT_ENCODER).write_text(json.dumps(encoder.as_json(), ensure_ascii=False) + "\n")
            _save(folder, CONTENT_IDF, encoder.idf)
            if encoder.components is not None:
                _save(folder, CONTENT_COMPONENTS, encoder.components)
    tt = models.two_tower
    if tt is not None:
        _save(folder, TWO_TOWER_ITEMS, tt.item_embeddings)
        _save(folder, TWO_TOWER_USERS, tt.user_embeddings)
        save_user_tower(tt, folder / TWO_TOWER_USER_TOWER)
        index, meta = build_index(
            tt.item_embeddings, ip, "two_tower", TWO_TOWER_ITEMS, queries=tt.user_embeddings[sample]
        )
        write_index(index, folder, meta)
        metas["two_tower"] = meta
        (folder / TWO_TOWER_HISTORY).write_text(json.dumps(tt.history, indent=2) + "\n")
        records = [
            IterationRecord(
                int(h["epoch"]), float(h.get("seconds", 0.0)), h.get("loss"), h.get("validation_ndcg")
            )
            for h in tt.history
        ]
        plot_training_curve(
            records, folder / TWO_TOWER_CURVE, "Two-Tower training", validation_label="validation NDCG@10"
        )
    return metas
