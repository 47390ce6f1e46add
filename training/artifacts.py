"""Writing a model version folder: everything into a temporary folder, then one rename.

A reader therefore sees either no `als_vN` or a complete one; a crash half way leaves only a
`.tmp-` folder that the next run removes. `LATEST` is switched only after the rename.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from feature_store.index_files import IndexMeta, write_index_meta
from feature_store.manifest import list_versions, parse_version, write_latest, write_manifest
from feature_store.version_files import ITEM_CONFIDENCE_WEIGHTS, ITEM_FACTORS, USER_FACTORS
from feature_store.version_names import check_version_name
from training.als import AlsResult
from training.dataset import Dataset, write_mapping
from training.indexes import IndexParams, build_index, write_index
from training.plots import plot_embeddings, plot_selection, plot_training_curve
from training.profiles import build_profiles, write_profiles

if TYPE_CHECKING:
    import pyarrow as pa

    from training.model_set import ModelSet

MODEL_FILE = "model.npz"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.json"
CURVE_FILE = "training_curve.png"
SELECTION_FILE = "selection.png"
EMBEDDINGS_FILE = "embeddings.png"
_TMP_PREFIX = ".tmp-"


def next_version(artifacts: Path, family: str) -> str:
    """The next free `family_vN`, held to the version name rule (version_names): a name training
    writes is one that publish, the stores and serving accept, and never a path."""
    numbers = [parse_version(v)[1] for v in list_versions(artifacts, family)]  # type: ignore[index]
    return check_version_name(f"{family}_v{max(numbers, default=0) + 1}")


def _clean_stale_tmp(artifacts: Path, max_age_s: float = 3600.0) -> None:
    for child in artifacts.glob(f"{_TMP_PREFIX}*"):
        if child.is_dir() and time.time() - child.stat().st_mtime > max_age_s:
            shutil.rmtree(child, ignore_errors=True)


def models_hyperparameters(models: ModelSet) -> dict[str, Any]:
    """What serving must know of the other models: prior weight, fusion, Two-Tower settings."""
    names = ["als", "popularity"] + (["content"] if models.content is not None else [])
    names += ["two_tower", "ensemble"] if models.two_tower is not None else []
    out: dict[str, Any] = {"models": names, "popularity": {"half_life_s": models.popularity.half_life_s}}
    if models.content is not None:
        out["content"] = {
            "dim": int(models.content.vectors.shape[1]),
            "popularity_prior": models.content_prior,
        }
    if models.two_tower is not None:
        out["two_tower"] = {**models.two_tower.params.as_dict(), "best_epoch": models.two_tower.best_epoch}
    if models.fusion is not None:
        out["fusion"] = models.fusion.as_dict()
    return out


_DATA_KEYS = (
    "events",
    "users",
    "items",
    "pairs",
    "removed_users",
    "removed_items",
    "dropped_invalid_rows",
    "dropped_unknown_events",
    "read_notes",
    "event_types",
    "top_user_share",
)


def _data_report(info: dict[str, Any]) -> dict[str, Any]:
    """What the version was trained on, and every row left out of it on the way."""
    return {key: info[key] for key in _DATA_KEYS if key in info}


def write_als_version(
    artifacts: Path,
    dataset: Dataset,
    result: AlsResult,
    metrics: dict[str, Any],
    extra_hyperparameters: dict[str, Any] | None = None,
    family: str = "als",
    index_params: IndexParams | None = None,
    items: pa.Table | None = None,
    recent_limit: int = 50,
    models: ModelSet | None = None,
    prebuilt_index: tuple[Any, IndexMeta] | None = None,
    ranker: Any = None,
) -> Path:
    """Write `artifacts/als_vN/` atomically and point LATEST at it. Returns the folder.

    `prebuilt_index` is the ALS index already built from `result.item_factors` (the scale bench
    times the index build apart); by default it is built here.

    Besides the factors and mappings: the item index (Faiss), the per-user profile arrays that
    publish writes to the feature store, and the item-attribute table when metadata was given.
    """
    check_version_name(f"{family}_v1", "model family")  # before any work, not after the fit is written
    artifacts.mkdir(parents=True, exist_ok=True)
    _clean_stale_tmp(artifacts)
    tmp = artifacts / f"{_TMP_PREFIX}{family}-{os.getpid()}-{time.time_ns()}"
    tmp.mkdir()
    try:
        np.save(tmp / USER_FACTORS, np.ascontiguousarray(result.user_factors, np.float32), allow_pickle=False)
        np.save(tmp / ITEM_FACTORS, np.ascontiguousarray(result.item_factors, np.float32), allow_pickle=False)
        if result.item_weights is not None:
            np.save(tmp / ITEM_CONFIDENCE_WEIGHTS, result.item_weights.astype(np.float32), allow_pickle=False)
        write_mapping(tmp / "user_mapping.json", dataset.user_ids)
        write_mapping(tmp / "item_mapping.json", dataset.item_ids)
        if result.model is not None:
            result.model.save(str(tmp / MODEL_FILE))
        write_profiles(tmp, build_profiles(dataset.matrix, dataset.times, recent_limit))
        index, meta = prebuilt_index or build_index(
            result.item_factors,
            index_params or IndexParams(),
            "als",
            ITEM_FACTORS,
            queries=result.user_factors,
        )
        write_index(index, tmp, meta)
        metas = {"als": meta}
        model_hyper: dict[str, Any] = {}
        if models is not None:
            from training.model_files import write_model_set

            metas.update(write_model_set(tmp, models, dataset.matrix, index_params or IndexParams()))
            model_hyper = models_hyperparameters(models)
            if ranker is not None:
                from training.ranker import write_ranker

                model_hyper["ranker"] = write_ranker(tmp, ranker, models, dataset.matrix, dataset.times)
        write_index_meta(tmp, metas)
        if items is not None:
            from training.item_attributes import write_item_attributes

            write_item_attributes(tmp, items, dataset.item_ids)
        metrics = {**metrics, "data": _data_report(dataset.info)}
        (tmp / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
        (tmp / HISTORY_FILE).write_text(json.dumps(result.history_dicts(), indent=2) + "\n")
        if metrics.get("selection"):
            chosen = (result.params.factors, result.params.regularization, result.params.alpha)
            metric = metrics.get("selection_metric", "validation score")
            plot_selection(metrics["selection"], metric, tmp / SELECTION_FILE, chosen)
        plot_embeddings(
            result.user_factors,
            result.item_factors,
            np.bincount(dataset.matrix.indices[dataset.matrix.data > 0], minlength=dataset.matrix.shape[1]),
            tmp / EMBEDDINGS_FILE,
        )
        hyper = {**result.params.as_dict(), "best_iteration": result.best_iteration}
        if result.loss_pairs:
            hyper["loss_estimated_on_pairs"] = result.loss_pairs
        if dataset.times is not None and len(dataset.times):
            hyper["data_until"] = int(dataset.times.max())
        if dataset.info.get("event_weights"):
            hyper["event_weights"] = dict(dataset.info["event_weights"])  # serving weighs live events alike
        hyper.update(model_hyper)
        hyper.update(extra_hyperparameters or {})
        # The version name is only known for sure at rename time; retry on a concurrent writer.
        for _ in range(100):
            version = next_version(artifacts, family)
            plot_training_curve(
                result.history,
                tmp / CURVE_FILE,
                f"{version}: ALS training",
                loss_label="training loss"
                + (f" (est. on {result.loss_pairs:,} pairs)" if result.loss_pairs else ""),
            )
            write_manifest(
                tmp,
                version=version,
                model_family=family,
                data_fingerprint=dataset.fingerprint,
                hyperparameters=hyper,
                metrics=metrics,
            )
            final = artifacts / version
            try:
                tmp.rename(final)
            except OSError:
                if final.exists():
                    continue
                raise
            write_latest(artifacts, version)
            return final
        raise RuntimeError(f"could not claim a version name in {artifacts}")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
