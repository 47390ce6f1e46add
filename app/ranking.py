"""The ranking stage in serving: a version's LightGBM ranker over the union of its sources' top
lists, with the features feature_store/ranking_features.py computes (the code training ran).

A version's ranker is loaded with it and checked the way every artifact is: its feature list
must be the one this code computes (else the version is refused, with the reason), the model
file is bounded in size and parsed by LightGBM itself (its text format, never a pickle), and the
per-item arrays must match the catalog.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.retrieval.search import ItemIndex
from feature_store.manifest import ArtifactError
from feature_store.ranker_cost import comparisons_per_row
from feature_store.ranking_features import (
    FEATURES,
    RANKER_FILE,
    RANKER_ITEMS_FILE,
    TIERS,
    ItemSide,
    feature_mismatch,
)
from feature_store.version_files import load_array
from feature_store.version_paths import entry_path

MAX_MODEL_BYTES = 64 << 20  # a ranker of thousands of trees is a few MB
MAX_PER_SOURCE = 1_000


class _DirectPredict:
    """LightGBM's C entry point for a dense float32 matrix (`LGBM_BoosterPredictForMat` of
    c_api.h), called on the booster's own handle.

    `Booster.predict` builds a predictor object and checks its input on every call: about a
    third of what scoring 200 candidates costs. The C call is the one it ends in, so the scores
    are the same; `checked` compares the two on probe rows when the version loads and keeps the
    public path whenever they differ or the library lacks the entry point.
    """

    def __init__(self, booster: Any, width: int) -> None:
        from lightgbm.basic import _LIB  # the library LightGBM itself loaded

        self._booster = booster  # keeps the handle alive
        self._call = _LIB.LGBM_BoosterPredictForMat
        self._handle = booster._handle
        self._width = width
        self._parameters = ctypes.c_char_p(b"num_threads=1")

    def __call__(self, features: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(features, np.float32)
        n = len(x)
        out = np.empty(n, np.float64)
        written = ctypes.c_int64(0)
        status = self._call(
            self._handle,
            x.ctypes.data_as(ctypes.c_void_p),
            ctypes.c_int(_FLOAT32),
            ctypes.c_int32(n),
            ctypes.c_int32(self._width),
            ctypes.c_int(1),  # row major
            ctypes.c_int(0),  # normal prediction
            ctypes.c_int(0),  # from the first tree
            ctypes.c_int(-1),  # to the last one saved
            self._parameters,
            ctypes.byref(written),
            out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
        )
        if status != 0 or written.value != n:
            raise RuntimeError(f"LightGBM predict failed (status {status}, {written.value} of {n} scores)")
        return out.astype(np.float32)

    @classmethod
    def checked(cls, booster: Any, width: int) -> Callable[[np.ndarray], np.ndarray] | None:
        """The direct call when it scores probe rows as `Booster.predict` does, else None."""
        try:
            direct = cls(booster, width)
            rng = np.random.default_rng(0)
            probe = rng.normal(0.0, 3.0, (64, width)).astype(np.float32)
            probe[rng.random(probe.shape) < 0.1] = np.nan
            public = np.asarray(booster.predict(probe, num_threads=1), np.float32)
            return direct if np.allclose(direct(probe), public, rtol=1e-5, atol=1e-6) else None
        except (AttributeError, ImportError, OSError, RuntimeError, TypeError, ValueError):
            return None


_FLOAT32 = 0  # C_API_DTYPE_FLOAT32


@dataclass(frozen=True)
class ServingRanker:
    booster: Any  # lightgbm.Booster
    items: ItemSide
    tiers: frozenset[str]  # the tiers where it beat every method they compare on validation
    per_source: int  # candidates each source proposes
    # The moment item ages are measured at: the end of the version's training data, as in
    # training (wall-clock ages of an old log would all lie outside what the model saw).
    as_of: float = float("nan")
    direct: Callable[[np.ndarray], np.ndarray] | None = None  # _DirectPredict.checked
    comparisons: float = float("inf")  # expected split tests a candidate (feature_store/ranker_cost.py)

    def score(self, features: np.ndarray) -> np.ndarray:
        """One thread: concurrency comes from requests, as for the Faiss searches."""
        if self.direct is not None:
            return self.direct(features)
        return np.asarray(self.booster.predict(features, num_threads=1), np.float32)


def _refuse(folder: Path, why: str) -> ArtifactError:
    return ArtifactError(f"{folder}: ranker: {why}", public=f"ranker: {why}")


def load_ranker(
    folder: Path,
    entry: Mapping[str, Any] | None,
    als: ItemIndex,
    two_tower: ItemIndex | None,
    content: ItemIndex | None,
    data_until: float | None = None,
) -> ServingRanker | None:
    """The manifest's `ranker` section made servable, None when the version has none."""
    if entry is None:
        return None
    if not isinstance(entry, Mapping):
        raise _refuse(folder, "the manifest's ranker section is not an object")
    names = entry.get("features")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _refuse(folder, "the manifest lists no features")
    problem = feature_mismatch(names)
    if problem is not None:
        raise _refuse(folder, problem)
    tiers = entry.get("tiers", list(TIERS))
    if not isinstance(tiers, list) or not set(tiers) <= set(TIERS):
        raise _refuse(folder, f"tiers must be a list of {', '.join(TIERS)}")
    per_source = entry.get("per_source", 50)
    if (
        not isinstance(per_source, int)
        or isinstance(per_source, bool)
        or not 1 <= per_source <= MAX_PER_SOURCE
    ):
        raise _refuse(folder, f"per_source must be an integer in 1..{MAX_PER_SOURCE}")
    path = entry_path(folder, RANKER_FILE)
    if not path.is_file():
        raise _refuse(folder, f"{RANKER_FILE} is missing")
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise _refuse(folder, f"{RANKER_FILE} is larger than {MAX_MODEL_BYTES >> 20} MiB")
    import lightgbm as lgb

    try:
        booster = lgb.Booster(model_str=path.read_text(encoding="utf-8"))
    except (lgb.basic.LightGBMError, UnicodeDecodeError, ValueError) as exc:
        raise _refuse(folder, f"LightGBM cannot read {RANKER_FILE} ({str(exc)[:120]})") from exc
    if booster.num_feature() != len(FEATURES) or booster.feature_name() != list(FEATURES):
        raise _refuse(folder, f"{RANKER_FILE} was trained on other features than the manifest lists")
    table = load_array(folder, RANKER_ITEMS_FILE, mmap=False)
    if table.shape != (als.n, 3) or table.dtype != np.float64:
        raise _refuse(folder, f"{RANKER_ITEMS_FILE} has shape {table.shape}, expected ({als.n}, 3) float64")
    items = ItemSide(
        als=als.vectors,
        two_tower=two_tower.vectors if two_tower is not None else None,
        content=content.vectors[:, :-1] if content is not None else None,  # the popularity column off
        counts=table[:, 0].astype(np.float32),
        trend=table[:, 1].astype(np.float32),
        first_seen=table[:, 2],
    )
    as_of = float(data_until) if data_until is not None else float("nan")
    direct = _DirectPredict.checked(booster, len(FEATURES))
    comparisons = comparisons_per_row(booster)
    return ServingRanker(booster, items, frozenset(tiers), per_source, as_of, direct, comparisons)
