"""Every model a version serves, fitted on one training matrix: the order and the hand-offs.

Popularity and content need no validation of their own beyond their one knob (half-life, prior
weight), ALS chooses its hyperparameters on a validation holdout (tune.py), and the ensemble's
fusion weights are fitted on a validation holdout too, with ALS and Two-Tower models that did not
see it. The Two-Tower model early-stops on that same holdout, and since its user tower reads only
the user's history, the final user embeddings come from the full history without refitting.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from feature_store.fusion import FusionParams, ScoreMoments, fuse
from feature_store.user_tower import UserTower
from training.als import AlsParams, AlsResult, fit_als
from training.content import (
    ContentModel,
    ContentParams,
    choose_prior,
    content_profiles,
    fit_content,
    scoring_queries,
    scoring_vectors,
)
from training.evaluation import top_k
from training.metrics import ranking_metrics
from training.popularity import PopularityModel, decayed_counts, fit_popularity
from training.settings import TrainSettings
from training.splits import validation_split

if TYPE_CHECKING:
    from training.two_tower import TwoTowerResult

Progress = Callable[[str], None]

RRF_K_GRID = (10.0, 60.0)
TWO_TOWER_WEIGHT_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
CONTENT_WEIGHT_GRID = (0.0, 0.1, 0.2, 0.3, 0.4)
_FUSION_USERS = 5_000


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class KeptChoices:
    """Choices a version already made on validation, reused instead of searched again (a weekly
    retrain with `--keep-params`, the shipped refit of a retrain's candidate): the content
    model's popularity prior and the ensemble's fusion weights."""

    content_prior: float | None = None
    fusion: FusionParams | None = None

    @classmethod
    def from_hyperparameters(cls, hyper: Mapping[str, Any]) -> KeptChoices:
        """From a manifest's hyperparameters; what is missing or malformed is searched again."""
        content, fusion = hyper.get("content"), hyper.get("fusion")
        prior = content.get("popularity_prior") if isinstance(content, Mapping) else None
        kept_fusion = None
        if isinstance(fusion, Mapping):
            try:
                kept_fusion = FusionParams.from_dict(fusion)
            except (KeyError, TypeError, ValueError):
                kept_fusion = None
        valid_prior = isinstance(prior, int | float) and not isinstance(prior, bool) and prior >= 0
        return cls(float(prior) if valid_prior and prior is not None else None, kept_fusion)


@dataclass
class ModelSet:
    als: AlsResult
    als_params: AlsParams
    popularity: PopularityModel
    content: ContentModel | None = None
    content_prior: float = 0.0
    two_tower: TwoTowerResult | None = None
    fusion: FusionParams | None = None
    selection: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def encode_histories(tower: UserTower, matrix: sp.csr_matrix, users: np.ndarray) -> np.ndarray:
    """Two-Tower user vectors of `users` from their rows of `matrix`, through the serving encoder."""
    out = np.zeros((len(users), tower.dim), np.float32)
    for i, u in enumerate(users.tolist()):
        start, end = matrix.indptr[u], matrix.indptr[u + 1]
        vec = tower.encode(matrix.indices[start:end], matrix.data[start:end])
        if vec is not None:
            out[i] = vec
    return out


@dataclass(frozen=True)
class Scorer:
    """One source's vectors for `blend`: user rows aligned with the candidate lists' rows."""

    users: np.ndarray
    items: np.ndarray
    moments: ScoreMoments

    @classmethod
    def of(cls, users: np.ndarray, items: np.ndarray) -> Scorer:
        return cls(users, items, ScoreMoments.of(items))

    def standardized(self, i: int, rows: np.ndarray) -> np.ndarray:
        query = self.users[i]
        return self.moments.standardize(self.items[rows] @ query, query)


def fused_top_k(
    sources: dict[str, np.ndarray],
    params: FusionParams,
    k: int,
    scorers: Mapping[str, Scorer] | None = None,
) -> np.ndarray:
    """Row-wise `fuse` of per-source top lists (users x depth, -1 padded) -> users x k. `blend`
    needs `scorers` (inner-product sources, as ALS and Two-Tower are)."""
    n = len(next(iter(sources.values())))
    out = np.full((n, k), -1, np.int64)
    for i in range(n):
        standardized = None
        if scorers is not None:
            standardized = functools.partial(_standardized, scorers, i)
        rows, _, _ = fuse([(name, lists[i]) for name, lists in sources.items()], params, k, standardized)
        out[i, : len(rows)] = rows
    return out


def _standardized(scorers: Mapping[str, Scorer], i: int, name: str, rows: np.ndarray) -> np.ndarray:
    return scorers[name].standardized(i, rows)


def fit_fusion(
    als_users: np.ndarray,
    als_items: np.ndarray,
    tt_users: np.ndarray,
    tt_items: np.ndarray,
    train: sp.csr_matrix,
    validation: sp.csr_matrix,
    users: np.ndarray,
    k: int = 10,
    content: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[FusionParams, dict[str, float]]:
    """Fusion method and weights (and, for RRF, its constant) with the best validation NDCG@k on
    `users` (rows of the user matrices are aligned with `users`). A Two-Tower weight of 0 (ALS
    alone) is a candidate, so the ensemble is never fitted to be worse than ALS on validation.

    `content` (queries aligned with `users`, scoring item vectors) adds the content model as a
    third blended source: metadata and popularity are evidence neither collaborative model
    holds (with it, the fitted hot-tier ensemble beat ALS alone by 0.004 NDCG@10 on ML-1M and on
    the synthetic log, where RRF of ALS and Two-Tower had only tied it)."""
    depth = FusionParams().depth_for(k)
    local = np.arange(len(users))
    seen = train[users]
    lists = {
        "als": top_k(als_users, als_items, local, depth, exclude=seen),
        "two_tower": top_k(tt_users, tt_items, local, depth, exclude=seen),
    }
    scorers = {"als": Scorer.of(als_users, als_items), "two_tower": Scorer.of(tt_users, tt_items)}
    content_weights: tuple[float, ...] = (0.0,)
    if content is not None:
        lists["content"] = top_k(content[0], content[1], local, depth, exclude=seen)
        scorers["content"] = Scorer.of(*content)
        content_weights = CONTENT_WEIGHT_GRID
    truth = validation[users]
    trials: dict[str, float] = {}
    best: tuple[float, FusionParams] = (-1.0, FusionParams({"als": 1.0, "two_tower": 0.0}))
    candidates = [
        ("blend", 0.0, w, c) for c in content_weights for w in TWO_TOWER_WEIGHT_GRID if w + c <= 1.0 + 1e-9
    ]
    candidates += [("rrf", rrf_k, w, 0.0) for rrf_k in RRF_K_GRID for w in TWO_TOWER_WEIGHT_GRID]
    for method, rrf_k, w, c in candidates:
        weights = {"als": round(1.0 - w - c, 2), "two_tower": w}
        if c:
            weights["content"] = c
        params = FusionParams(weights, rrf_k=rrf_k or 60.0, method=method)
        sources = lists if c else {name: lists[name] for name in ("als", "two_tower")}
        ndcg = ranking_metrics(fused_top_k(sources, params, k, scorers), truth).ndcg
        label = (
            f"blend,two_tower={w:g},content={c:g}"
            if method == "blend"
            else f"rrf,two_tower={w:g},c={rrf_k:g}"
        )
        trials[label] = round(ndcg, 5)
        if ndcg > best[0] + 1e-9:
            best = (ndcg, params)
    return best[1], trials


def fit_model_set(
    train: sp.csr_matrix,
    times: np.ndarray | None,
    als_params: AlsParams,
    settings: TrainSettings,
    *,
    items: pa.Table | None = None,
    item_ids: np.ndarray | None = None,
    progress: Progress = _quiet,
    kept: KeptChoices | None = None,
) -> ModelSet:
    """Fit popularity, content (when `items` is given), ALS and, unless disabled, Two-Tower plus
    the fusion weights on `train`, with `als_params` already chosen; `kept` choices are used as
    they are instead of chosen on validation."""
    kept = kept or KeptChoices()
    timings: dict[str, float] = {}
    selection: dict[str, Any] = {}
    t = time.perf_counter()
    popularity = fit_popularity(train, times)
    timings["popularity"] = time.perf_counter() - t
    selection["popularity"] = popularity.info()

    content, prior = None, 0.0
    if items is not None and item_ids is not None:
        t = time.perf_counter()
        progress("content model: TF-IDF + truncated SVD over the item metadata")
        content = fit_content(items, item_ids, ContentParams(dim=settings.content_dim, seed=settings.seed))
        trials: Any
        if kept.content_prior is not None:
            prior, trials = kept.content_prior, "kept"
        else:
            prior, trials = choose_prior(content.vectors, train, times, popularity.half_life_s, settings.seed)
        selection["content"] = {**content.info, "popularity_prior": prior, "validation_ndcg_by_prior": trials}
        timings["content"] = time.perf_counter() - t

    two_tower, fusion = None, None
    if settings.two_tower:
        from training.two_tower import TwoTowerParams, fit_two_tower  # torch loads only when used

        t = time.perf_counter()
        parts = validation_split(train, fraction=0.1, seed=settings.seed + 3, times=times)
        tt_params = TwoTowerParams(
            dim=settings.two_tower_dim,
            epochs=settings.two_tower_epochs,
            seed=settings.seed,
            device=settings.device,
        )
        progress(f"Two-Tower: up to {tt_params.epochs} epochs, early-stopped on validation NDCG@10")
        two_tower = fit_two_tower(
            train,
            tt_params,
            item_features=content.vectors if content is not None else None,
            validation=parts.test,
            progress=progress,
        )
        timings["two_tower"] = time.perf_counter() - t
        t = time.perf_counter()
        if kept.fusion is not None:
            fusion = kept.fusion
            selection["fusion"] = {**fusion.as_dict(), "kept": True}
            progress(f"fusion: kept {fusion.as_dict()}")
        else:
            fusion = _fit_fusion_weights(
                als_params,
                settings,
                parts,
                two_tower,
                content,
                prior,
                popularity,
                selection,
                progress,
            )
        timings["fusion"] = time.perf_counter() - t

    t = time.perf_counter()
    progress(f"ALS on {train.nnz:,} pairs with {als_params.as_dict()}")
    als = fit_als(train, als_params)
    timings["als"] = time.perf_counter() - t
    return ModelSet(als, als_params, popularity, content, prior, two_tower, fusion, selection, timings)


def _fit_fusion_weights(
    als_params: AlsParams,
    settings: TrainSettings,
    parts: Any,
    two_tower: Any,
    content: Any,
    prior: float,
    popularity: PopularityModel,
    selection: dict[str, Any],
    progress: Progress,
) -> FusionParams:
    """The ensemble's blend (or RRF) weights, chosen on the hot users of the validation split."""
    progress("fusion: ALS without the validation cells, blend or RRF weights on validation")
    als_val = fit_als(parts.train, replace(als_params, calculate_loss=False))
    counts = np.diff(parts.train.indptr)
    eligible = np.flatnonzero((counts >= settings.hot_min_interactions) & (np.diff(parts.test.indptr) > 0))
    rng = np.random.default_rng(settings.seed)
    users = np.sort(rng.permutation(eligible)[:_FUSION_USERS])
    if len(users):
        w = two_tower.user_tower
        tower = UserTower(
            w["history_table"],
            w["w1"],
            w["b1"],
            w["w2"],
            w["b2"],
            max_history=two_tower.params.max_history,
        )
        content_source = None
        if content is not None:
            # Popularity from the validation's own training part: held-out events must not vote.
            val_popularity = decayed_counts(parts.train, parts.train_times, popularity.half_life_s)
            queries = scoring_queries(content_profiles(content.vectors, parts.train[users]), prior)
            content_source = (queries, scoring_vectors(content.vectors, val_popularity))
        fusion, trials = fit_fusion(
            als_val.user_factors[users],
            als_val.item_factors,
            encode_histories(tower, parts.train, users),
            two_tower.item_embeddings,
            parts.train,
            parts.test,
            users,
            k=settings.k,
            content=content_source,
        )
        selection["fusion"] = {**fusion.as_dict(), "users": len(users), "validation_ndcg": trials}
    else:
        fusion = FusionParams()
        selection["fusion"] = {**fusion.as_dict(), "users": 0, "note": "no hot validation users"}
    return fusion
