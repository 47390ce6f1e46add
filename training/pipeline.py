"""The train / evaluate pipelines: what the CLI commands and benches call.

Kept apart from the CLI so a benchmark times exactly the code a user runs, and apart from the
solvers so each stage (read, dataset, select, fit, evaluate, write) can be timed on its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import scipy.sparse as sp

from training.als import AlsParams, AlsResult, IterationRecord, fit_als
from training.artifacts import write_als_version
from training.confidence import Scaling
from training.dataset import Dataset, build_dataset
from training.evaluation import evaluate_lists, evaluate_sampled, popularity_factors
from training.interaction_log import InteractionLog, from_table
from training.model_set import KeptChoices, ModelSet, fit_model_set
from training.plots import preload as preload_plotting
from training.readers import read_interactions
from training.readers.items import prepare_items
from training.readers.movielens import read_ncf
from training.settings import TrainSettings
from training.splits import split
from training.tier_eval import TierReport, evaluate_tiers
from training.tune import (
    SEARCHED,
    START_FACTORS,
    Searcher,
    Selection,
    Trial,
    auto_select,
    is_binary,
)

if TYPE_CHECKING:
    import pyarrow as pa

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def pinned_names(settings: TrainSettings) -> set[str]:
    return {name for name in SEARCHED if getattr(settings, name) is not None}


def base_params(settings: TrainSettings, matrix_is_binary: bool) -> AlsParams:
    """The starting point of the search (or the final values when everything is pinned)."""
    scaling = settings.scaling or (Scaling.binary if matrix_is_binary else Scaling.log)
    return AlsParams(
        factors=settings.factors or START_FACTORS,
        regularization=10.0 if settings.regularization is None else settings.regularization,
        alpha=4.0 if settings.alpha is None else settings.alpha,
        iterations=settings.iterations or settings.max_iterations,
        scaling=scaling,
        popularity_discount=settings.popularity_discount or 0.0,
        random_state=settings.seed,
        use_gpu=settings.use_gpu,
        biases=settings.biases,
    )


def prepared_items(items: pa.Table | None, settings: TrainSettings) -> pa.Table | None:
    """Metadata by one set of rules whoever calls (the CLI has prepared it already: a no-op)."""
    return None if items is None else prepare_items(items, settings.item_options()).table


def read_log(
    source: str,
    settings: TrainSettings,
    *,
    query: str | None = None,
    drop_unknown_events: bool = False,
    drop_items: set[str] | None = None,
) -> tuple[InteractionLog, int]:
    """The log as the settings read it, without the events of `drop_items` (deleted or expired
    through the items API, training/catalog_state.py); and how many events those were."""
    log = read_interactions(
        source,
        settings.event_weights,
        query=query,
        drop_unknown_events=drop_unknown_events,
        drop_invalid_rows=settings.drop_invalid_rows,
        timestamp_unit=settings.timestamp_unit,
    )
    if not drop_items:
        return log, 0
    from training.catalog_state import drop_items as without

    return without(log, drop_items)


def load_dataset_from(
    source: str,
    settings: TrainSettings,
    *,
    query: str | None = None,
    drop_unknown_events: bool = False,
    drop_items: set[str] | None = None,
) -> Dataset:
    """`drop_items`: ids whose events are left out (deleted or expired through the items API,
    training/catalog_state.py); how many is in `info["dropped_by_catalog"]`."""
    log, dropped = read_log(
        source, settings, query=query, drop_unknown_events=drop_unknown_events, drop_items=drop_items
    )
    data = dataset_from_log(log, settings)
    if drop_items:
        data.info["dropped_by_catalog"] = {"items": len(drop_items), "events": dropped}
    return data


def dataset_from_log(log: InteractionLog, settings: TrainSettings) -> Dataset:
    """The matrix every engine trains on, whichever engine read the log."""
    return build_dataset(
        log,
        min_interactions=settings.min_interactions,
        min_item_interactions=settings.min_item_interactions,
        event_weights=settings.event_weights,
    )


def choose_params(
    train: Any,
    settings: TrainSettings,
    progress: Progress = _quiet,
    sampled_negatives: int = 0,
    also_fit: sp.csr_matrix | None = None,
) -> Selection:
    """Pinned values are used as given; the rest are chosen on a validation holdout of `train`,
    every trial fitted on the rest of `train` and on `also_fit` (`Searcher`)."""
    binary = is_binary(train)
    base = base_params(settings, binary)
    pinned = pinned_names(settings)
    if set(SEARCHED) <= pinned or (binary and set(SEARCHED) - {"scaling"} <= pinned):
        return Selection(base)

    def report(t: Trial) -> None:
        trailing = ", stopped trailing" if t.lost_race else ""
        progress(
            f"  tried {t.row()['label']}: validation {searcher.metric_name} {t.score:.4f} "
            f"(best at iteration {t.best_iteration}{trailing}, {t.seconds:.1f}s)"
        )

    searcher = Searcher(
        train,
        seed=search_seed(settings),
        every=settings.validate_every,
        sampled_negatives=sampled_negatives,
        on_trial=report,
        budget_seconds=settings.search_seconds,
        also_fit=also_fit,
    )
    selection = auto_select(
        searcher, base, pinned=pinned, binary_data=binary, max_factors=settings.max_factors
    )
    if selection.stopped_by_budget:
        progress(
            f"  search budget of {settings.search_seconds:g}s spent after {len(selection.trials)} trials "
            f"({searcher.spent_seconds:.1f}s): keeping the best so far"
        )
    return selection


def search_seed(settings: TrainSettings) -> int:
    """The seed of the search's validation holdout, apart from the test split's."""
    return settings.seed + 1


def selection_summary(selection: Selection) -> dict[str, Any]:
    """What metrics.json says about how the parameters were chosen (nothing when all were pinned)."""
    if not selection.trials:
        return {}
    out: dict[str, Any] = {"selection_metric": f"validation {selection.metric}"}
    if selection.stopped_by_budget:
        out["selection_stopped_by_budget"] = True
    return out


class AlsEngine(Protocol):
    """Who chooses the parameters and fits ALS; everything around it (split, evaluation, the
    version folder) is the same for every engine, so their versions cannot be told apart."""

    name: str

    def select(
        self,
        train: sp.csr_matrix,
        settings: TrainSettings,
        progress: Progress,
        also_fit: sp.csr_matrix | None = None,
    ) -> Selection:
        """The parameters, validated on a holdout of `train`; `also_fit` (pairs never scored,
        such as the test part) joins the data the candidates are fitted on."""
        ...

    def fit(
        self,
        matrix: sp.csr_matrix,
        params: AlsParams,
        on_iteration: Callable[[IterationRecord], None] | None = None,
    ) -> AlsResult: ...

    def hyperparameters(self, matrix: sp.csr_matrix, params: AlsParams) -> dict[str, Any]:
        """What the engine's own solver was given, when it differs from `params` (the manifest)."""
        ...


class ImplicitEngine:
    """The `implicit` library on this machine, with the validation search of tune.py."""

    name = "implicit"

    def select(
        self,
        train: sp.csr_matrix,
        settings: TrainSettings,
        progress: Progress,
        also_fit: sp.csr_matrix | None = None,
    ) -> Selection:
        return choose_params(train, settings, progress, also_fit=also_fit)

    def fit(
        self,
        matrix: sp.csr_matrix,
        params: AlsParams,
        on_iteration: Callable[[IterationRecord], None] | None = None,
    ) -> AlsResult:
        return fit_als(matrix, params, on_iteration=on_iteration)

    def hyperparameters(self, matrix: sp.csr_matrix, params: AlsParams) -> dict[str, Any]:
        return {}


@dataclass
class TrainReport:
    dataset: Dataset
    params: AlsParams
    result: AlsResult
    metrics: dict[str, Any]
    trials: list[Trial] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    version_dir: Path | None = None


def holdout_metrics(
    dataset: Dataset,
    settings: TrainSettings,
    trials_out: list[Trial],
    progress: Progress = _quiet,
    engine: AlsEngine | None = None,
    *,
    search_fits_test: bool = False,
    keep_loss: bool = False,
) -> tuple[dict[str, Any], AlsParams, AlsResult]:
    """Split, choose parameters on the training part, fit them on it, and score ALS and
    popularity on the test part.

    By default the search never sees the test part, the clean protocol of `recsys evaluate`
    whose figure is set beside published results. With `search_fits_test` (what `train` does)
    the candidates are also fitted on the test pairs, never scored on them: the search then
    tunes for a model fitted on 90% of the log, close to the whole log `train` ships, instead
    of 72% (the values it chooses move with the amount of data, `Searcher`). The test pairs
    stay out of the validation and out of the scored model, so the figure still measures
    pairs that model never saw; the one thing they touched is the choice of six values.

    The scored model's training loss is computed only with `keep_loss` (its curve ships when
    no refit on everything follows): otherwise it is thrown away, and at 512 factors it costs
    a tenth of each sweep."""
    engine = engine or ImplicitEngine()
    parts = split(
        dataset.matrix,
        settings.split,
        test_fraction=settings.test_split,
        times=dataset.times,
        seed=settings.seed,
    )
    # The test pairs with their weights (the split's test part holds ones).
    also_fit = sp.csr_matrix(dataset.matrix.multiply(parts.test)) if search_fits_test else None
    selection = engine.select(parts.train, settings, progress, also_fit=also_fit)
    chosen = selection.params
    trials_out.extend(selection.trials)
    result = engine.fit(parts.train, chosen if keep_loss else replace(chosen, calculate_loss=False))
    reference = result.item_factors  # diversity of both lists measured in the same space
    als = evaluate_lists(result.user_factors, reference, parts.train, parts.test, reference, k=settings.k)
    pop_u, pop_i = popularity_factors(parts.train)
    pop = evaluate_lists(pop_u, pop_i, parts.train, parts.test, reference, k=settings.k)
    metrics = {
        "split": str(settings.split),
        "test_fraction": settings.test_split,
        "train_pairs": int(parts.train.nnz),
        "test_pairs": int(parts.test.nnz),
        "model_fit_pairs": int(parts.train.nnz),  # what the scored ALS model saw
        "als": als,
        "popularity": pop,
    }
    metrics.update(selection_summary(selection))
    if also_fit is not None and selection.trials:
        metrics["selection_fitted_test_pairs"] = True
    return metrics, chosen, result


def train(
    dataset: Dataset,
    settings: TrainSettings,
    *,
    progress: Progress = _quiet,
    on_iteration: Callable[[IterationRecord], None] | None = None,
    write: bool = True,
    items: pa.Table | None = None,
    engine: AlsEngine | None = None,
) -> TrainReport:
    engine = engine or ImplicitEngine()
    items = prepared_items(items, settings)
    if write:
        preload_plotting()  # the version's PNG needs matplotlib: import it while the model fits
    timings: dict[str, float] = {}
    trials: list[Trial] = []
    metrics: dict[str, Any] = {}
    t0 = time.perf_counter()
    if settings.test_split > 0:
        progress(f"evaluating on a {settings.split} {settings.test_split:.0%} holdout")
        metrics, params, result = holdout_metrics(
            dataset, settings, trials, progress, engine, search_fits_test=True, keep_loss=not settings.refit
        )
        timings["holdout"] = time.perf_counter() - t0
    else:
        selection = engine.select(dataset.matrix, settings, progress)
        params, trials = selection.params, selection.trials
        metrics.update(selection_summary(selection))
        result = None
        timings["select"] = time.perf_counter() - t0
    if result is None or settings.refit:
        t1 = time.perf_counter()
        progress(f"fitting on all {dataset.matrix.nnz:,} pairs with {params.as_dict()}")
        result = engine.fit(dataset.matrix, params, on_iteration=on_iteration)
        timings["fit"] = time.perf_counter() - t1
    metrics["engine"] = engine.name
    metrics["trained_on"] = "all" if (settings.test_split == 0 or settings.refit) else "holdout-train"
    if trials:
        metrics["selection"] = [t.row() for t in trials]
    report = TrainReport(dataset, params, result, metrics, trials, timings)
    if write:
        t2 = time.perf_counter()
        report.version_dir = write_als_version(
            settings.artifacts,
            dataset,
            result,
            metrics,
            extra_hyperparameters={
                "engine": engine.name,
                **engine.hyperparameters(dataset.matrix, params),
                "chosen_on_validation": sorted(set(SEARCHED) - pinned_names(settings)) if trials else [],
            },
            index_params=settings.index_params(),
            items=items,
            recent_limit=settings.recent_limit,
        )
        timings["write"] = time.perf_counter() - t2
    return report


@dataclass
class TrainAllReport:
    dataset: Dataset
    models: ModelSet
    metrics: dict[str, Any]
    tiers: TierReport | None = None
    timings: dict[str, float] = field(default_factory=dict)
    version_dir: Path | None = None


def train_all(
    dataset: Dataset,
    settings: TrainSettings,
    *,
    items: pa.Table | None = None,
    progress: Progress = _quiet,
    write: bool = True,
    kept: KeptChoices | None = None,
) -> TrainAllReport:
    """Every model of DESIGN.md's tier table in one version: the per-tier evaluation on a holdout
    (unless `test_split` is 0), then all models refitted on all the data and written together."""
    timings: dict[str, float] = {}
    metrics: dict[str, Any] = {}
    tiers = None
    items = prepared_items(items, settings)
    if items is None:
        progress("no item metadata: the content model is skipped (cold users with events get ALS fold-in)")
    if settings.test_split > 0:
        t0 = time.perf_counter()
        progress("per-tier evaluation on a holdout")
        tiers = evaluate_tiers(dataset, settings, items=items, progress=progress, ranker=settings.ranker)
        metrics["tiers"] = tiers.as_dict()
        timings["evaluation"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    selection = choose_params(dataset.matrix, settings, progress)
    params = selection.params
    if selection.trials:
        metrics["selection"] = [t.row() for t in selection.trials]
    metrics.update(selection_summary(selection))
    models = fit_model_set(
        dataset.matrix,
        dataset.times,
        params,
        settings,
        items=items,
        item_ids=dataset.item_ids,
        progress=progress,
        kept=kept,
    )
    metrics["models"] = {
        "selection": models.selection,
        "timings_s": {k: round(v, 2) for k, v in models.timings.items()},
    }
    metrics["trained_on"] = "all"
    timings["fit"] = time.perf_counter() - t1
    ranker = None
    if settings.ranker:
        from training.ranker import fit_ranker

        t_rank = time.perf_counter()
        progress("ranking stage: LightGBM lambdarank on each user's latest events")
        ranker = fit_ranker(
            dataset.matrix,
            dataset.times,
            params,
            settings,
            items=items,
            item_ids=dataset.item_ids,
            progress=progress,
        )
        metrics["ranker"] = {**ranker.manifest_entry(), **ranker.info}
        timings["ranker"] = time.perf_counter() - t_rank
    report = TrainAllReport(dataset, models, metrics, tiers, timings)
    if write:
        t2 = time.perf_counter()
        report.version_dir = write_als_version(
            settings.artifacts,
            dataset,
            models.als,
            metrics,
            index_params=settings.index_params(),
            items=items,
            recent_limit=settings.recent_limit,
            models=models,
            ranker=ranker,
        )
        timings["write"] = time.perf_counter() - t2
    return report


@dataclass(frozen=True)
class NcfReport:
    params: AlsParams
    als: dict[str, Any]
    popularity: dict[str, Any]
    trials: list[Trial]


def evaluate_ncf(folder: Path, settings: TrainSettings, progress: Progress = _quiet) -> NcfReport:
    """HR@10 / NDCG@10 on the NCF leave-one-out split (held-out item vs its 99 negatives)."""
    data = read_ncf(folder)
    log = from_table(data.train, {})
    dataset = build_dataset(log)
    # Validation mirrors the protocol: a held-out training item per user against 99 negatives.
    width = max(len(n) for n in data.negatives)
    selection = choose_params(dataset.matrix, settings, progress, sampled_negatives=width)
    params, trials = selection.params, selection.trials
    result = fit_als(dataset.matrix, replace(params, calculate_loss=False))
    users_idx, items_idx = dataset.user_index(), dataset.item_index()
    # An item absent from training (2 test items here) maps to an all-zero row: it scores 0,
    # like any item the model never saw, instead of its user being silently dropped.
    unseen = len(items_idx)
    users = np.array([users_idx[u] for u in data.test_users])
    positives = np.array([items_idx.get(i, unseen) for i in data.test_items])
    negatives = np.full((len(users), width), -1, dtype=np.int64)
    for row, negs in enumerate(data.negatives):
        negatives[row, : len(negs)] = [items_idx.get(n, unseen) for n in negs]

    def with_unseen(items: np.ndarray) -> np.ndarray:
        return np.vstack([items, np.zeros((1, items.shape[1]), items.dtype)])

    als = evaluate_sampled(
        result.user_factors, with_unseen(result.item_factors), users, positives, negatives, settings.k
    )
    pop_u, pop_i = popularity_factors(dataset.matrix)
    pop = evaluate_sampled(pop_u, with_unseen(pop_i), users, positives, negatives, settings.k)
    return NcfReport(params, als.as_dict(), pop.as_dict(), trials)
