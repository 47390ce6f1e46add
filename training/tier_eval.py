"""Per-tier evaluation: does each tier's routed method beat the simpler alternative?

One split (`splits.tier_split`, so every tier has users even on data where nobody is new), one
fitted model set, k=10 for every row. Users are put in a tier by their training interactions, the
count the service routes on, and every method of a tier ranks the same users' unseen items:

| tier | routed method | compared with |
|---|---|---|
| cold (1-4) | content_based | popularity (and ALS fold-in) |
| warm (5-19) | als | popularity (and content_based) |
| hot (20+) | ensemble | als alone, two_tower alone, popularity |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from training.content import ContentModel, content_profiles, scoring_queries, scoring_vectors
from training.dataset import Dataset
from training.evaluation import top_k
from training.metrics import beyond_accuracy, ranking_metrics
from training.model_set import ModelSet, Scorer, fit_model_set, fused_top_k
from training.settings import TrainSettings
from training.splits import tier_split

Progress = Callable[[str], None]

TIER_METHODS: dict[str, tuple[str, ...]] = {
    "cold": ("content_based", "popularity", "als"),
    "warm": ("als", "popularity", "content_based"),
    "hot": ("ensemble", "als", "two_tower", "popularity"),
}


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class TierRow:
    tier: str
    users: int
    method: str
    routed: bool  # the method the service answers this tier with
    precision: float
    recall: float
    ndcg: float
    coverage: float
    diversity: float  # intra-list, over the ALS item vectors for every method (one yardstick)
    gini: float
    novelty: float


@dataclass
class TierReport:
    rows: list[TierRow]
    k: int
    split: dict[str, Any]
    models: ModelSet
    missing: dict[str, str] = field(default_factory=dict)  # method -> why it has no row
    ranker: Any = None  # training.ranker.RankerModel when the ranking stage was evaluated

    def as_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "split": self.split,
            "rows": [asdict(r) for r in self.rows],
            "missing": self.missing,
            "selection": self.models.selection,
            "timings_s": {k: round(v, 2) for k, v in self.models.timings.items()},
        }

    def verdicts(self) -> dict[str, bool]:
        """Per tier: routed method beats popularity (and, hot, the ensemble beats ALS) on NDCG."""
        out: dict[str, bool] = {}
        by = {(r.tier, r.method): r for r in self.rows}
        for tier, methods in TIER_METHODS.items():
            routed, pop = by.get((tier, methods[0])), by.get((tier, "popularity"))
            if routed and pop:
                out[f"{tier}: {methods[0]} > popularity"] = routed.ndcg > pop.ndcg
        ens, als = by.get(("hot", "ensemble")), by.get(("hot", "als"))
        if ens and als:
            out["hot: ensemble > als"] = ens.ndcg > als.ndcg
        for tier in TIER_METHODS:
            ranked = by.get((tier, "ranker"))
            others = [r for r in self.rows if r.tier == tier and r.method != "ranker"]
            if ranked and others:
                best = max(others, key=lambda r: r.ndcg)
                out[f"{tier}: ranker > {best.method} (the best unranked)"] = ranked.ndcg > best.ndcg
        return out


def tier_users(
    train: sp.csr_matrix, test: sp.csr_matrix, warm_min: int, hot_min: int
) -> dict[str, np.ndarray]:
    """Users with held-out items, by the tier of their training positives."""
    counts = np.diff((train > 0).tocsr().indptr)
    tested = np.diff(test.tocsr().indptr) > 0
    return {
        "cold": np.flatnonzero(tested & (counts >= 1) & (counts < warm_min)),
        "warm": np.flatnonzero(tested & (counts >= warm_min) & (counts < hot_min)),
        "hot": np.flatnonzero(tested & (counts >= hot_min)),
    }


def _content_scoring(
    models: ModelSet, content: ContentModel, rows: sp.csr_matrix
) -> tuple[np.ndarray, np.ndarray]:
    """Content queries of these users' rows and the item vectors they score, prior included."""
    queries = scoring_queries(content_profiles(content.vectors, rows), models.content_prior)
    return queries, scoring_vectors(content.vectors, models.popularity.scores)


def recommend(
    models: ModelSet, method: str, users: np.ndarray, train: sp.csr_matrix, k: int
) -> np.ndarray | None:
    """Top-k rows per user by `method`, never an item of the user's training row; None when the
    model set has no such model."""
    exclude = train
    if method == "popularity":
        ones, items = models.popularity.as_factors(train.shape[0])
        return top_k(ones, items, users, k, exclude=exclude)
    if method == "als":
        return top_k(models.als.user_factors, models.als.item_factors, users, k, exclude=exclude)
    if method == "content_based":
        if models.content is None:
            return None
        queries, items = _content_scoring(models, models.content, train[users])
        return top_k(queries, items, np.arange(len(users)), k, exclude=train[users])
    tt = models.two_tower
    if method == "two_tower":
        if tt is None:
            return None
        return top_k(tt.user_embeddings, tt.item_embeddings, users, k, exclude=exclude)
    if method == "ensemble":
        if tt is None or models.fusion is None:
            return None
        depth = models.fusion.depth_for(k)
        als_users, tt_users = models.als.user_factors[users], tt.user_embeddings[users]
        local = np.arange(len(users))
        lists = {
            "als": top_k(als_users, models.als.item_factors, local, depth, exclude=exclude[users]),
            "two_tower": top_k(tt_users, tt.item_embeddings, local, depth, exclude=exclude[users]),
        }
        scorers = {
            "als": Scorer.of(als_users, models.als.item_factors),
            "two_tower": Scorer.of(tt_users, tt.item_embeddings),
        }
        if models.content is not None and models.fusion.weights.get("content", 0.0) > 0:
            queries, items = _content_scoring(models, models.content, train[users])
            lists["content"] = top_k(queries, items, local, depth, exclude=exclude[users])
            scorers["content"] = Scorer.of(queries, items)
        return fused_top_k(lists, models.fusion, k, scorers)
    raise ValueError(f"unknown method {method!r}")


def evaluate_tiers(
    dataset: Dataset,
    settings: TrainSettings,
    *,
    items: pa.Table | None = None,
    progress: Progress = _quiet,
    ranker: bool = False,
) -> TierReport:
    """`ranker`: also fit the ranking stage on the training part (training/ranker.py) and add a
    `ranker` row per tier: the merged candidates of every source, ordered by it."""
    from training.pipeline import choose_params, prepared_items

    items = prepared_items(items, settings)
    fraction = settings.test_split if settings.test_split > 0 else 0.2
    parts = tier_split(dataset.matrix, dataset.times, test_fraction=fraction, seed=settings.seed)
    progress(f"tier split: {parts.train.nnz:,} training and {parts.test.nnz:,} held-out pairs")
    als_params = choose_params(parts.train, settings, progress).params
    models = fit_model_set(
        parts.train,
        parts.train_times,
        als_params,
        settings,
        items=items,
        item_ids=dataset.item_ids,
        progress=progress,
    )
    by_tier = tier_users(
        parts.train, parts.test, settings.warm_min_interactions, settings.hot_min_interactions
    )
    thresholds = (settings.warm_min_interactions, settings.hot_min_interactions)
    fitted_ranker = None
    if ranker:
        from training.ranker import fit_ranker

        fitted_ranker = fit_ranker(
            parts.train,
            parts.train_times,
            als_params,
            settings,
            items=items,
            item_ids=dataset.item_ids,
            progress=progress,
        )
    rows: list[TierRow] = []
    missing: dict[str, str] = {}
    n_items = dataset.matrix.shape[1]
    for tier, methods in TIER_METHODS.items():
        users = by_tier[tier]
        if not len(users):
            missing[tier] = "no users of this tier have held-out items"
            continue
        for method in (*methods, "ranker") if fitted_ranker is not None else methods:
            recs: np.ndarray | None
            if method == "ranker":
                from training.ranker import ranked_top_k

                assert fitted_ranker is not None
                recs = ranked_top_k(
                    models, fitted_ranker, parts.train, parts.train_times, users, settings.k, thresholds
                )
            else:
                recs = recommend(models, method, users, parts.train, settings.k)
            if recs is None:
                missing[method] = "no item metadata" if method == "content_based" else "Two-Tower disabled"
                continue
            m = ranking_metrics(recs, parts.test[users], n_items=n_items)
            beyond = beyond_accuracy(recs, models.als.item_factors, parts.train, n_items=n_items)
            rows.append(
                TierRow(
                    tier,
                    m.users,
                    method,
                    method == methods[0],
                    m.precision,
                    m.recall,
                    m.ndcg,
                    m.coverage,
                    beyond.diversity,
                    beyond.gini,
                    beyond.novelty,
                )
            )
    split_info = {
        "kind": "tier",
        "train_pairs": int(parts.train.nnz),
        "test_pairs": int(parts.test.nnz),
        "users_by_tier": {t: len(u) for t, u in by_tier.items()},
    }
    report = TierReport(rows, settings.k, split_info, models, missing)
    report.ranker = fitted_ranker
    return report


def format_table(report: TierReport, title: str = "") -> str:
    k = report.k
    head = f"| tier | users | method | P@{k} | R@{k} | NDCG@{k} | coverage | diversity | Gini | novelty |"
    lines = [title] if title else []
    lines += [head, "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report.rows:
        name = f"**{r.method}**" if r.routed else r.method
        lines.append(
            f"| {r.tier} | {r.users:,} | {name} | {r.precision:.4f} | {r.recall:.4f} | "
            f"{r.ndcg:.4f} | {r.coverage:.4f} | {r.diversity:.3f} | {r.gini:.3f} | {r.novelty:.2f} |"
        )
    for what, why in report.missing.items():
        lines.append(f"| {what}: not evaluated ({why}) ||||||||||")
    return "\n".join(lines)
