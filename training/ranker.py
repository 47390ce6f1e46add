"""The ranking stage: a LightGBM lambdarank model over the union of the retrieval models' top lists.

Training follows what the service will do. Each user's latest `label_share` of positives is held
out (what they did next); the retrieval models are fitted on the rest; for every user with
held-out items the sources' top lists are merged into candidates, featured by
feature_store/ranking_features.py (the code serving runs), and labelled 1 where the user took
the item next. The candidates themselves are the negatives. One group per user; a fifth of the
users (at random) is the validation set that stops the boosting when NDCG@10 stops rising. Groups
without a positive teach lambdarank nothing and are left out.

The model ships in LightGBM's own text format (`ranker.txt`, no pickle) with its feature list in
the manifest. It was trained on features of models fitted without the label period and serves
features of the version's models fitted on everything: the usual two-stage practice, since
refitting the ranker on features of models that saw its labels would teach it to trust them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from feature_store.ranker_cost import comparisons_per_row
from feature_store.ranking_features import (
    FEATURES,
    RANKER_FILE,
    RANKER_ITEMS_FILE,
    TIERS,
    ItemSide,
    UserSide,
    candidate_features,
    candidates,
)
from training.als import AlsParams
from training.content import content_profiles, scoring_queries, scoring_vectors
from training.evaluation import top_k
from training.model_set import ModelSet, fit_model_set
from training.settings import TrainSettings
from training.splits import Split, latest_split

Progress = Callable[[str], None]
IMPORTANCE_FILE = "ranker_importance.png"


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class RankerParams:
    per_source: int = 50  # candidates each source proposes (the union is at most 4x this)
    label_share: float = 0.1  # each user's latest positives that become labels
    validation_users: float = 0.2
    # Boosters tried: each learning rate with each (leaves, least data in a leaf). Of those within
    # `tolerance` of the best validation NDCG@10, the one cheapest to evaluate is kept.
    learning_rates: tuple[float, ...] = (0.05, 0.2)
    shapes: tuple[tuple[int, int], ...] = ((7, 100), (31, 50), (63, 20))
    tolerance: float = 0.005
    max_rounds: int = 600
    early_stopping: int = 40
    seed: int = 42


@dataclass
class RankerModel:
    text: str  # LightGBM's model format
    features: tuple[str, ...]
    best_iteration: int
    validation_ndcg: float
    importance: dict[str, float]  # total gain per feature
    tiers: tuple[str, ...] = TIERS  # where it beat every single source's order on validation
    per_source: int = 50
    info: dict[str, Any] = field(default_factory=dict)

    def manifest_entry(self) -> dict[str, Any]:
        """The manifest's `ranker` section: what serving checks before it uses the model."""
        return {
            "file": RANKER_FILE,
            "items_file": RANKER_ITEMS_FILE,
            "features": list(self.features),
            "tiers": list(self.tiers),
            "per_source": self.per_source,
            "best_iteration": self.best_iteration,
            "validation_ndcg": round(self.validation_ndcg, 5),
            "importance": {k: round(v, 5) for k, v in self.importance.items()},
        }

    def booster(self) -> Any:
        import lightgbm as lgb

        return lgb.Booster(model_str=self.text)


def item_side(models: ModelSet, matrix: sp.csr_matrix, times: np.ndarray | None) -> ItemSide:
    """The ranker's per-item arrays from a fitted model set and the data it was fitted on."""
    positive = matrix.tocsr().copy()
    positive.data = (positive.data > 0).astype(np.float32)
    counts = np.asarray(positive.sum(axis=0), np.float32).ravel()
    trend = np.asarray(models.popularity.scores, np.float32)
    trend = trend / max(float(trend.max()), 1e-12) if len(trend) else trend
    first_seen = np.full(matrix.shape[1], np.inf)
    if times is not None and matrix.nnz:
        np.minimum.at(first_seen, matrix.tocsr().indices, times.astype(np.float64))
    first_seen[np.isinf(first_seen)] = np.nan
    return ItemSide(
        als=models.als.item_factors.astype(np.float32),
        two_tower=models.two_tower.item_embeddings if models.two_tower is not None else None,
        content=models.content.vectors if models.content is not None else None,
        counts=counts,
        trend=trend.astype(np.float32),
        first_seen=first_seen,
    )


def content_of(models: ModelSet, matrix: sp.csr_matrix, users: np.ndarray) -> np.ndarray | None:
    """The users' content profiles (rows aligned with `users`), None without a content model."""
    return content_profiles(models.content.vectors, matrix[users]) if models.content is not None else None


def source_lists(
    models: ModelSet, matrix: sp.csr_matrix, users: np.ndarray, depth: int, profiles: np.ndarray | None
) -> dict[str, np.ndarray]:
    """Each source's top `depth` per user (users x depth, -1 padded), never a training item;
    `profiles` from `content_of`."""
    exclude = matrix
    local = np.arange(len(users))
    out = {"als": top_k(models.als.user_factors, models.als.item_factors, users, depth, exclude=exclude)}
    if models.two_tower is not None:
        tt = models.two_tower
        out["two_tower"] = top_k(tt.user_embeddings, tt.item_embeddings, users, depth, exclude=exclude)
    if models.content is not None and profiles is not None:
        queries = scoring_queries(profiles, models.content_prior)
        items = scoring_vectors(models.content.vectors, models.popularity.scores)
        out["content"] = top_k(queries, items, local, depth, exclude=matrix[users])
    ones, pop_items = models.popularity.as_factors(matrix.shape[0])
    out["popularity"] = top_k(ones, pop_items, users, depth, exclude=exclude)
    return out


def user_sides(
    models: ModelSet,
    matrix: sp.csr_matrix,
    times: np.ndarray | None,
    users: np.ndarray,
    thresholds: tuple[int, int],
    profiles: np.ndarray | None,
) -> Iterator[UserSide]:
    """Each user as serving would see them after the data in `matrix`."""
    warm, hot = thresholds
    for i, u in enumerate(users.tolist()):
        start, end = matrix.indptr[u], matrix.indptr[u + 1]
        items, weights = matrix.indices[start:end], matrix.data[start:end]
        keep = weights > 0
        if times is not None:
            order = np.argsort(-times[start:end][keep], kind="stable")
        else:
            order = np.arange(int(keep.sum()))
        recent = items[keep][order].astype(np.int64)
        count = int(keep.sum())
        content = None
        if profiles is not None and np.any(profiles[i]):
            content = profiles[i] / float(np.linalg.norm(profiles[i]))
        yield UserSide(
            count=count,
            tier=0 if count < warm else (1 if count < hot else 2),
            recent=recent,
            als=models.als.user_factors[u],
            two_tower=models.two_tower.user_embeddings[u] if models.two_tower is not None else None,
            content=content,
        )


@dataclass
class Groups:
    features: np.ndarray  # float32 rows x len(FEATURES)
    labels: np.ndarray  # float32 per row
    sizes: np.ndarray  # int per group (user)
    users: np.ndarray  # the user of each group
    rows: list[np.ndarray]  # each group's candidate item rows


def build_groups(
    models: ModelSet,
    matrix: sp.csr_matrix,
    times: np.ndarray | None,
    users: np.ndarray,
    labels: sp.csr_matrix | None,
    params: RankerParams,
    thresholds: tuple[int, int],
    now: float,
) -> Groups:
    """Candidates and features for `users` after `matrix`; labels from `labels` (None: zeros)."""
    items = item_side(models, matrix, times)
    profiles = content_of(models, matrix, users)
    lists = source_lists(models, matrix, users, params.per_source, profiles)
    blocks, label_blocks, sizes, kept, row_blocks = [], [], [], [], []
    for i, user in enumerate(user_sides(models, matrix, times, users, thresholds, profiles)):
        own = {name: rows[i] for name, rows in lists.items()}
        rows = candidates(own)
        if not len(rows):
            continue
        blocks.append(candidate_features(rows, own, user, items, now))
        if labels is not None:
            u = users[i]
            taken = labels.indices[labels.indptr[u] : labels.indptr[u + 1]]
            label_blocks.append(np.isin(rows, taken).astype(np.float32))
        else:
            label_blocks.append(np.zeros(len(rows), np.float32))
        sizes.append(len(rows))
        kept.append(users[i])
        row_blocks.append(rows)
    width = len(FEATURES)
    return Groups(
        np.vstack(blocks) if blocks else np.empty((0, width), np.float32),
        np.concatenate(label_blocks) if label_blocks else np.empty(0, np.float32),
        np.asarray(sizes, np.int64),
        np.asarray(kept, np.int64),
        row_blocks,
    )


def _with_positives(groups: Groups) -> Groups:
    """Only the groups holding at least one positive (the others give lambdarank no pairs)."""
    bounds = np.concatenate([[0], np.cumsum(groups.sizes)])
    keep = [g for g in range(len(groups.sizes)) if groups.labels[bounds[g] : bounds[g + 1]].any()]
    if not keep:
        return Groups(groups.features[:0], groups.labels[:0], groups.sizes[:0], groups.users[:0], [])
    rows = np.concatenate([np.arange(bounds[g], bounds[g + 1]) for g in keep])
    return Groups(
        groups.features[rows],
        groups.labels[rows],
        groups.sizes[keep],
        groups.users[keep],
        [groups.rows[g] for g in keep],
    )


def _end_time(times: np.ndarray | None) -> float:
    return float(times.max()) if times is not None and len(times) else time.time()


def fit_ranker(
    train: sp.csr_matrix,
    times: np.ndarray | None,
    als_params: AlsParams,
    settings: TrainSettings,
    *,
    items: pa.Table | None = None,
    item_ids: np.ndarray | None = None,
    params: RankerParams | None = None,
    progress: Progress = _quiet,
) -> RankerModel:
    """Hold out each user's latest positives, fit the retrieval models on the rest, and learn to
    rank their merged candidates by what the users did next."""
    import lightgbm as lgb

    params = params or RankerParams()
    started = time.perf_counter()
    parts = latest_split(train, times, params.label_share, params.seed)
    progress(f"ranker: retrieval models on {parts.train.nnz:,} pairs, {parts.test.nnz:,} held out as labels")
    base = fit_model_set(
        parts.train,
        parts.train_times,
        als_params,
        settings,
        items=items,
        item_ids=item_ids,
        progress=progress,
    )
    labelled = np.flatnonzero(np.diff(parts.test.indptr) > 0)
    thresholds = (settings.warm_min_interactions, settings.hot_min_interactions)
    now = _end_time(parts.train_times)
    everyone = build_groups(
        base, parts.train, parts.train_times, labelled, parts.test, params, thresholds, now
    )
    # Validation users are drawn before groups without a positive are dropped, so the tier
    # decision below sees them all (a user whose items no source proposed counts against both).
    rng = np.random.default_rng(params.seed)
    valid_all = rng.random(len(everyone.sizes)) < params.validation_users
    fit = _with_positives(_subset(everyone, ~valid_all))
    stop = _with_positives(_subset(everyone, valid_all))
    if len(fit.sizes) < 20 or len(stop.sizes) < 5:
        raise ValueError(
            f"only {len(fit.sizes) + len(stop.sizes)} users have a held-out item among their candidates: "
            "too few to learn a ranking from"
        )
    train_set = lgb.Dataset(
        fit.features,
        fit.labels,
        group=fit.sizes,
        feature_name=list(FEATURES),
        free_raw_data=False,
        params={"feature_pre_filter": False},  # one dataset for every tree shape tried
    )
    valid_set = lgb.Dataset(
        stop.features,
        stop.labels,
        group=stop.sizes,
        reference=train_set,
        params={"feature_pre_filter": False},
    )
    # Tree size by validation: small logs (a few thousand groups, one positive each) overfit a
    # 31-leaf tree within a dozen rounds, large ones want more leaves. Serving cost by the same
    # validation: scoring 200 candidates costs about 20 ns a tree and row, and on the synthetic
    # log a learning rate of 0.2 reached in 55 trees the NDCG@10 that 0.05 reached in 152 (0.4917
    # both). A fit takes seconds next to the candidate generation, so every booster is tried.
    trials: list[BoosterTrial] = []
    for learning_rate in params.learning_rates:
        for leaves, min_leaf in params.shapes:
            booster_params = {
                "objective": "lambdarank",
                "metric": "ndcg",
                "eval_at": [10],
                "learning_rate": learning_rate,
                "num_leaves": leaves,
                "min_data_in_leaf": min_leaf,
                "lambda_l2": 1.0,
                "feature_fraction": 0.9,
                "bagging_fraction": 0.8,
                "bagging_freq": 1,
                "lambdarank_truncation_level": 20,
                "seed": params.seed,
                "deterministic": True,
                "num_threads": 0,
                "verbosity": -1,
            }
            tried = lgb.train(
                booster_params,
                train_set,
                num_boost_round=params.max_rounds,
                valid_sets=[valid_set],
                valid_names=["validation"],
                callbacks=[lgb.early_stopping(params.early_stopping, verbose=False)],
            )
            value = float(tried.best_score["validation"]["ndcg@10"]) if tried.best_score else -1.0
            trees = int(tried.best_iteration or tried.current_iteration())
            label = f"rate {learning_rate:g}, leaves {leaves}, min leaf {min_leaf}, {trees} trees"
            trials.append(BoosterTrial(label, value, tried, comparisons_per_row(tried, trees)))
    chosen = cheapest_near_best(trials, params.tolerance)
    booster = chosen.booster
    progress(
        "ranker: boosters on validation NDCG@10 (comparisons a candidate): "
        + "; ".join(f"{t.label}: {t.ndcg:.4f} ({t.comparisons:,.0f})" for t in trials)
        + f"; kept {chosen.label}"
    )
    best = int(booster.best_iteration or booster.current_iteration())
    judged = _subset(everyone, valid_all)
    scores = (
        np.asarray(booster.predict(judged.features, num_iteration=best)) if len(judged.features) else None
    )
    tiers, by_tier = _tiers_it_wins(base, judged, scores, parts, thresholds)
    score = float(booster.best_score["validation"]["ndcg@10"]) if booster.best_score else math.nan
    gains = booster.feature_importance("gain", iteration=best)
    total = float(gains.sum()) or 1.0
    progress(f"ranker: {best} trees, validation NDCG@10 {score:.4f} on {len(stop.sizes):,} users")
    progress(f"ranker: serves {', '.join(tiers) or 'no tier'}; validation NDCG@10 by tier {by_tier}")
    return RankerModel(
        text=booster.model_to_string(num_iteration=best),
        features=FEATURES,
        best_iteration=best,
        validation_ndcg=score,
        importance={name: float(g) / total for name, g in zip(FEATURES, gains, strict=True)},
        tiers=tiers,
        per_source=params.per_source,
        info={
            "validation_ndcg_by_tier": by_tier,
            "train_users": len(fit.sizes),
            "validation_users": len(stop.sizes),
            "candidates_per_user": round(float(np.mean(everyone.sizes)), 1),
            "positives_per_user": round(float(fit.labels.sum() / len(fit.sizes)), 2),
            "label_pairs": int(parts.test.nnz),
            "seconds": round(time.perf_counter() - started, 1),
            "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(params).items()},
            "boosters_tried": {
                t.label: {"ndcg": round(t.ndcg, 5), "comparisons": round(t.comparisons)} for t in trials
            },
            "kept": chosen.label,
        },
    )


@dataclass(frozen=True)
class BoosterTrial:
    label: str
    ndcg: float  # validation NDCG@10 at the best iteration
    booster: Any
    comparisons: float  # expected split tests to score one candidate (serving cost)


def cheapest_near_best(trials: list[BoosterTrial], tolerance: float) -> BoosterTrial:
    """The cheapest booster whose validation NDCG@10 is within `tolerance` (a share) of the best:
    differences that small are validation noise, and serving pays for every tree."""
    top = max(t.ndcg for t in trials)
    near = [t for t in trials if t.ndcg >= top * (1.0 - tolerance)]
    return min(near, key=lambda t: (t.comparisons, -t.ndcg))


def _tiers_it_wins(
    base: ModelSet,
    judged: Groups,
    scores: np.ndarray | None,
    parts: Split,
    thresholds: tuple[int, int],
) -> tuple[tuple[str, ...], dict[str, dict[str, float]]]:
    """Per tier, on the validation users: NDCG@10 of the ranker's top 10 and of every method
    the per-tier table compares in that tier (the routed one included), each against everything
    the user did next. The service ranks a tier only where the ranker beats the best of them by
    more than twice the standard error of the paired per-user difference: a tie, or a tier where
    a routed model (the ensemble, say) does as well, keeps its routed model."""
    from training.metrics import per_user_ndcg
    from training.tier_eval import TIER_METHODS, recommend

    by_tier: dict[str, dict[str, float]] = {}
    if scores is None or not len(judged.users):
        return (), by_tier
    tier_of = judged.features[
        np.concatenate([[0], np.cumsum(judged.sizes)[:-1]]), FEATURES.index("user_tier")
    ]
    bounds = np.concatenate([[0], np.cumsum(judged.sizes)])
    wins = []
    for code, tier in enumerate(TIERS):
        at = np.flatnonzero(tier_of == code)
        if len(at) < 10:
            continue
        users = judged.users[at]
        ranked = np.full((len(at), 10), -1, np.int64)
        for i, g in enumerate(at.tolist()):
            block = scores[bounds[g] : bounds[g + 1]]
            best = judged.rows[g][np.argsort(-block, kind="stable")[:10]]
            ranked[i, : len(best)] = best
        truth = parts.test[users]
        ours = per_user_ndcg(ranked, truth)
        theirs = {}
        for method in TIER_METHODS[tier]:
            recs = recommend(base, method, users, parts.train, 10)
            if recs is not None:
                theirs[method] = per_user_ndcg(recs, truth)
        rival = max(theirs, key=lambda m: float(theirs[m].mean()))
        diff = ours - theirs[rival]
        margin = 2.0 * float(diff.std(ddof=1)) / float(np.sqrt(len(diff))) if len(diff) > 1 else float("inf")
        by_tier[tier] = {
            "ranker": round(float(ours.mean()), 4),
            **{m: round(float(v.mean()), 4) for m, v in theirs.items()},
            "gain_over_best": round(float(diff.mean()), 4),
            "two_standard_errors": round(margin, 4),
        }
        if float(diff.mean()) > margin:
            wins.append(tier)
    return tuple(wins), by_tier


def _subset(groups: Groups, keep: np.ndarray) -> Groups:
    """The groups where `keep` (one flag per group) is set."""
    owner = np.repeat(np.arange(len(groups.sizes)), groups.sizes)
    return Groups(
        groups.features[keep[owner]],
        groups.labels[keep[owner]],
        groups.sizes[keep],
        groups.users[keep],
        [rows for rows, k in zip(groups.rows, keep.tolist(), strict=True) if k],
    )


def write_ranker(
    folder: Path, ranker: RankerModel, models: ModelSet, matrix: sp.csr_matrix, times: np.ndarray | None
) -> dict[str, Any]:
    """Write the model and the per-item arrays its features read (from the models the version
    ships); returns the manifest's `ranker` section."""
    side = item_side(models, matrix, times)
    (folder / RANKER_FILE).write_text(ranker.text)
    table = np.column_stack([side.counts, side.trend, side.first_seen]).astype(np.float64)
    np.save(folder / RANKER_ITEMS_FILE, table, allow_pickle=False)
    from training.plots import plot_importance

    plot_importance(ranker.importance, folder / IMPORTANCE_FILE, f"ranker: {ranker.best_iteration} trees")
    return ranker.manifest_entry()


def ranked_top_k(
    models: ModelSet,
    ranker: RankerModel,
    matrix: sp.csr_matrix,
    times: np.ndarray | None,
    users: np.ndarray,
    k: int,
    thresholds: tuple[int, int],
    params: RankerParams | None = None,
) -> np.ndarray:
    """Top-k rows per user (users x k, -1 padded): the candidates ordered by the ranker."""
    params = params or RankerParams()
    booster = ranker.booster()
    groups = build_groups(models, matrix, times, users, None, params, thresholds, _end_time(times))
    out = np.full((len(users), k), -1, np.int64)
    position = {int(u): i for i, u in enumerate(users.tolist())}
    scores = booster.predict(groups.features, num_threads=0) if len(groups.features) else np.empty(0)
    start = 0
    for user, rows, size in zip(groups.users.tolist(), groups.rows, groups.sizes.tolist(), strict=True):
        block = scores[start : start + size]
        start += size
        best = rows[np.argsort(-block, kind="stable")[:k]]
        out[position[user], : len(best)] = best
    return out
