"""Training commands: `recsys train` (ALS, here or on Spark), `recsys train-all` (every model in
one version) and `recsys evaluate-tiers` (the per-tier table)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from tqdm import tqdm

from training.commands.common import (
    CatalogOpt,
    DropUnknownOpt,
    InteractionsOpt,
    ItemsOpt,
    QueryOpt,
    _catalog,
    _load,
    _print_holdout,
    _read_items,
    _report_read,
    _say,
    _writable_file,
    _writable_folder,
    app,
    friendly_errors,
)
from training.commands.options import (
    ALS,
    ALS_FIT,
    FILTERS,
    HOLDOUT,
    INDEX,
    ITEMS,
    MODELS,
    READING,
    SPARK,
    TIERS,
    settings_options,
)
from training.errors import TrainingInputError
from training.settings import Engine, TrainSettings


@app.command()
@friendly_errors
@settings_options(
    READING,
    "artifacts",
    FILTERS,
    ALS,
    ALS_FIT,
    "split",
    HOLDOUT,
    ITEMS,
    INDEX,
    SPARK,
    "seed_defaults",
)
def train(
    interactions: InteractionsOpt,
    query: QueryOpt = None,
    *,
    drop_unknown_events: DropUnknownOpt = False,
    items: ItemsOpt = None,
    catalog: CatalogOpt = True,
    settings: TrainSettings,
) -> None:
    """Train ALS (implicit here, or Spark MLlib with --engine spark), evaluate it on a holdout beside
    popularity, and write artifacts/als_vN."""
    from training.pipeline import train as run_train

    _writable_folder(settings.artifacts, "--artifacts")
    if settings.engine is Engine.spark and settings.use_gpu:
        raise TrainingInputError("--use-gpu is for the implicit engine; Spark runs where --master points.")
    if settings.use_gpu:
        from training.als import gpu_available

        if not gpu_available():
            raise TrainingInputError(
                "--use-gpu: implicit found no CUDA device; drop the flag to train on CPU."
            )
    state = _catalog(settings, catalog)
    item_table = _read_items(items, settings, state)
    if settings.engine is Engine.spark:
        if state is not None and state.dropped_ids(time.time()):
            _say("note: --engine spark keeps the events of deleted items (their attributes are merged)")
        _train_on_spark(interactions, settings, query, drop_unknown_events, item_table)
        return
    start = time.perf_counter()
    from training.plots import preload as preload_plotting

    preload_plotting()  # the version's PNG needs matplotlib: imported while the data loads
    _say(f"reading {interactions}")
    data = _load(interactions, settings, query, drop_unknown_events, state)
    _say(
        f"dataset: {data.info['users']:,} users x {data.info['items']:,} items, {data.info['pairs']:,} pairs"
    )
    bar = tqdm(total=None, desc="final fit", unit="it", file=sys.stderr, disable=None)

    def tick(record: Any) -> None:
        bar.update(1)
        if record.loss is not None:
            bar.set_postfix(loss=f"{record.loss:.5f}")

    report = run_train(data, settings, progress=_say, on_iteration=tick, items=item_table)
    bar.close()
    _print_train_report(report, time.perf_counter() - start)


def _train_on_spark(
    interactions: str,
    settings: TrainSettings,
    query: str | None,
    drop_unknown_events: bool,
    item_table: Any,
) -> None:
    """`train --engine spark`: Spark reads, aggregates and fits; the version folder is the same."""
    from training.pipeline import dataset_from_log
    from training.pipeline import train as run_train
    from training.spark.engine import SparkEngine
    from training.spark.reader import read_with_spark
    from training.spark.session import spark_session

    start = time.perf_counter()
    _say(f"starting Spark ({settings.spark_master})")
    with spark_session(settings) as spark:
        _say(f"reading {interactions} in Spark")
        log = read_with_spark(
            spark,
            interactions,
            settings.event_weights,
            query=query,
            drop_unknown_events=drop_unknown_events,
            drop_invalid_rows=settings.drop_invalid_rows,
            timestamp_unit=settings.timestamp_unit,
        )
        data = dataset_from_log(log, settings)
        _report_read(data.info)
        _say(
            f"dataset: {data.info['users']:,} users x {data.info['items']:,} items, "
            f"{data.info['pairs']:,} pairs"
        )
        report = run_train(
            data, settings, progress=_say, items=item_table, engine=SparkEngine(spark, settings)
        )
    _print_train_report(report, time.perf_counter() - start)


def _read_for_all(
    interactions: str,
    items: str | None,
    settings: TrainSettings,
    query: str | None,
    drop: bool,
    catalog: bool = False,
) -> tuple[Any, Any]:
    state = _catalog(settings, catalog)
    item_table = _read_items(items, settings, state)
    _say(f"reading {interactions}")
    data = _load(interactions, settings, query, drop, state)
    _say(
        f"dataset: {data.info['users']:,} users x {data.info['items']:,} items, {data.info['pairs']:,} pairs"
    )
    return data, item_table


@app.command("train-all")
@friendly_errors
@settings_options(READING, "artifacts", "min_interactions", ALS, HOLDOUT, MODELS, TIERS, "index_kind", ITEMS)
def train_all(
    interactions: InteractionsOpt,
    items: ItemsOpt = None,
    query: QueryOpt = None,
    *,
    drop_unknown_events: DropUnknownOpt = False,
    catalog: CatalogOpt = True,
    settings: TrainSettings,
) -> None:
    """Every model in one version (the seed's train_all_models.sh): dataset, ALS, popularity,
    content, Two-Tower and the ensemble's fusion weights, the per-tier evaluation, one als_vN."""
    from training.pipeline import train_all as run_train_all
    from training.tier_eval import format_table

    _writable_folder(settings.artifacts, "--artifacts")
    start = time.perf_counter()
    data, item_table = _read_for_all(interactions, items, settings, query, drop_unknown_events, catalog)
    report = run_train_all(data, settings, items=item_table, progress=_say)
    if report.tiers is not None:
        typer.echo(format_table(report.tiers, f"\nper-tier holdout, k={settings.k} (routed method in bold):"))
        for claim, ok in report.tiers.verdicts().items():
            typer.echo(f"  {'yes' if ok else 'NO '}  {claim}")
    typer.echo(f"timings: {json.dumps({k: round(v, 1) for k, v in report.models.timings.items()})}")
    if report.version_dir is not None:
        typer.echo(f"wrote {report.version_dir} in {time.perf_counter() - start:.1f}s total")


@app.command("evaluate-tiers")
@friendly_errors
@settings_options(
    READING,
    "min_interactions",
    "factors",
    HOLDOUT,
    "two_tower",
    "two_tower_epochs",
    "device",
    "ranker",
    TIERS,
    ITEMS,
)
def evaluate_tiers(
    interactions: InteractionsOpt,
    items: ItemsOpt = None,
    query: QueryOpt = None,
    *,
    drop_unknown_events: DropUnknownOpt = False,
    settings: TrainSettings,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the full report (rows, choices, timings) here.")
    ] = None,
) -> None:
    """The per-tier table: for each tier, its routed method against the simpler alternatives, on
    one split and one k (Precision, Recall, NDCG, coverage). Writes no version."""
    from training.tier_eval import evaluate_tiers as run_tiers
    from training.tier_eval import format_table

    if json_out is not None:
        _writable_file(json_out, "--json")
    start = time.perf_counter()
    data, item_table = _read_for_all(interactions, items, settings, query, drop_unknown_events)
    report = run_tiers(data, settings, items=item_table, progress=_say, ranker=settings.ranker)
    if report.ranker is not None:
        _print_ranker(report.ranker)
    typer.echo(format_table(report, f"\nper-tier evaluation of {interactions}, k={settings.k}:"))
    for claim, ok in report.verdicts().items():
        typer.echo(f"  {'yes' if ok else 'NO '}  {claim}")
    typer.echo(f"timings: {json.dumps({k: round(v, 1) for k, v in report.models.timings.items()})}")
    typer.echo(f"total {time.perf_counter() - start:.1f}s")
    if json_out is not None:
        json_out.write_text(json.dumps(report.as_dict(), indent=2) + "\n")


def _print_ranker(ranker: Any) -> None:
    top = sorted(ranker.importance.items(), key=lambda kv: -kv[1])[:6]
    typer.echo(
        f"ranker: {ranker.best_iteration} trees, validation NDCG@10 {ranker.validation_ndcg:.4f}, "
        f"serves tiers {', '.join(ranker.tiers) or 'none'}; top features by gain: "
        + ", ".join(f"{name} {share:.0%}" for name, share in top)
    )


def _print_train_report(report: Any, seconds: float) -> None:
    _print_holdout(report.metrics)
    typer.echo(f"parameters: {json.dumps(report.params.as_dict())}")
    if report.version_dir is not None:
        typer.echo(f"wrote {report.version_dir} in {seconds:.1f}s total")
