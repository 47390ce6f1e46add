"""`recsys`: the command line. Options mirror TrainSettings (env RECSYS_<NAME>); errors the user
can fix are printed as one line (exit 2), never as a traceback."""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import TypeAdapter, ValidationError
from tqdm import tqdm

from app.experiments import ExperimentConfigError
from feature_store.base import StoreUnavailableError
from feature_store.errors import VersionNotReadyError
from feature_store.index_files import IndexKind, Metric
from feature_store.manifest import ArtifactError
from training.confidence import Scaling
from training.errors import TrainingInputError
from training.events import parse_weight_overrides
from training.readers.items import DuplicatePolicy
from training.settings import SEED_DEFAULTS, Engine, TrainSettings
from training.splits import SplitKind
from training.timestamps import EpochUnit

app = typer.Typer(
    help="Recommendation candidate service: build datasets, train and evaluate models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])
_FIELDS = TrainSettings.model_fields


def _default(name: str) -> str:
    field = _FIELDS[name]
    value = field.get_default(call_default_factory=True)
    return "auto (chosen on validation)" if value is None else str(value)


def _opt(name: str, *flags: str) -> Any:
    """A CLI option backed by a TrainSettings field: same help, the field's default shown."""
    return typer.Option(
        None,
        *(flags or (f"--{name.replace('_', '-')}",)),
        help=f"{_FIELDS[name].description} (env RECSYS_{name.upper()})",
        show_default=_default(name),
    )


def _settings_problem(exc: ValidationError) -> str:
    """One line per bad setting, named as the option and the variable that set it."""
    problems = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"])
        where = f"--{name.replace('_', '-')} / RECSYS_{name.upper()}" if name else exc.title
        got = f" (got {error['input']!r})" if "input" in error and name else ""
        problems.append(f"{where}: {error['msg']}{got}")
    return "; ".join(problems)


def friendly_errors(fn: F) -> F:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ValidationError as exc:
            typer.secho(f"Error: {_settings_problem(exc)}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None
        except (
            TrainingInputError,
            ArtifactError,
            VersionNotReadyError,
            ValueError,
            ExperimentConfigError,
        ) as exc:
            typer.secho(f"Error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None
        except StoreUnavailableError as exc:
            typer.secho(f"Error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(3) from None

    return wrapper  # type: ignore[return-value]


def _settings(
    event_weight: list[str] | None = None, seed_defaults: bool = False, **options: Any
) -> TrainSettings:
    values = {k: v for k, v in options.items() if v is not None}
    if seed_defaults:
        values = {**SEED_DEFAULTS, **values}
    settings = TrainSettings(**values)
    if event_weight:
        settings = settings.model_copy(
            update={"event_weights": {**settings.event_weights, **parse_weight_overrides(event_weight)}}
        )
    return settings


def _grid_values(text: str, name: str, kind: type[int] | type[float]) -> list[Any]:
    """A comma-separated `tune` grid, each value held to the bounds of its TrainSettings field,
    so `--factors 0` is refused before any fit (BLAS would print 96,000 lines about it)."""
    flag = f"--{name.replace('_', '-')}"
    try:
        raw = [kind(x.strip()) for x in text.split(",") if x.strip()]
    except ValueError:
        what = "whole numbers" if kind is int else "numbers"
        raise TrainingInputError(f"{flag} '{text}': expected comma-separated {what}") from None
    if not raw:
        raise TrainingInputError(f"{flag} '{text}': give at least one value")
    constrained: Any = Annotated[(kind, *_FIELDS[name].metadata)]
    adapter: TypeAdapter[Any] = TypeAdapter(constrained)
    for value in raw:
        try:
            adapter.validate_python(value)
        except ValidationError as exc:
            raise TrainingInputError(f"{flag}: {exc.errors()[0]['msg']} (got {value!r})") from None
    return raw


def _writable_folder(path: Path, option: str) -> None:
    """An output folder is checked before the work, not discovered broken after a long fit."""
    if path.exists() and not path.is_dir():
        raise TrainingInputError(
            f"{option} {path}: that is a file; give a folder (it is created if missing)."
        )
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise TrainingInputError(f"{option} {path}: {existing} is a file, so no folder can be made there.")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise TrainingInputError(f"{option} {path}: {existing} is not writable.")


def _writable_file(path: Path, option: str) -> None:
    if path.is_dir():
        raise TrainingInputError(
            f"{option} {path}: that is a folder; give a file name, e.g. {path / 'report.json'}."
        )
    _writable_folder(path.parent, option)


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _report_read(info: dict[str, Any]) -> None:
    """How the log was read, and every row left out of it: nothing is dropped without a word."""
    for note in info.get("read_notes", []):
        _say(f"read: {note}")
    if info.get("dropped_invalid_rows"):
        dropped = ", ".join(f"{n:,} {why}" for why, n in info["dropped_invalid_rows"].items())
        _say(f"dropped invalid rows (--drop-invalid-rows): {dropped}")
    if info.get("dropped_unknown_events"):
        _say(f"dropped rows with unknown event types: {info['dropped_unknown_events']}")


def _read_items(source: str | None, settings: TrainSettings) -> Any:
    """`--items` for every command that takes it: read, prepared, its choices printed."""
    if source is None:
        return None
    from training.readers import read_items

    prepared = read_items(source, settings.item_options())
    for note in prepared.notes:
        _say(f"read: {note}")
    return prepared.table


def _load(source: str, settings: TrainSettings, query: str | None = None, drop_unknown: bool = False) -> Any:
    from training.pipeline import load_dataset_from

    data = load_dataset_from(source, settings, query=query, drop_unknown_events=drop_unknown)
    _report_read(data.info)
    return data


InteractionsOpt = Annotated[
    str,
    typer.Option(
        "--interactions",
        "-i",
        help="CSV/Parquet log (user_id, item_id, weight|event_type[, timestamp]), a MovieLens "
        "folder, or a SQL URL (postgresql://...).",
    ),
]
QueryOpt = Annotated[
    str | None, typer.Option("--query", help="SQL query for a SQL URL (default: the UserInteraction table).")
]
EventWeightOpt = Annotated[
    list[str] | None,
    typer.Option("--event-weight", help="Override or add an event weight: NAME=VALUE (repeatable)."),
]
ItemsOpt = Annotated[
    str | None,
    typer.Option(
        "--items",
        help="Item metadata (CSV/Parquet with item_id, category, tags, text, numbers...; or a MovieLens "
        "folder): the version's filterable attributes and the content model's input. Read by the "
        "rules of the README's 'Item metadata' section (lists, missing values, duplicates).",
    ),
]
DropUnknownOpt = Annotated[
    bool, typer.Option("--drop-unknown-events", help="Skip rows with unknown event types (reported).")
]


@app.command()
@friendly_errors
def generate(
    out: Annotated[Path, typer.Option("--out", help="Folder for interactions + items files.")] = Path(
        "data/synthetic"
    ),
    users: Annotated[int, typer.Option(min=10, help="Number of users.")] = 20_000,
    items: Annotated[int, typer.Option(min=10, help="Number of items.")] = 5_000,
    interactions: Annotated[int, typer.Option(min=10, help="Number of events.")] = 500_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data).")] = 42,
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
) -> None:
    """Generate a synthetic marketplace log (long tails, taste clusters, events, item metadata)."""
    from training.synthetic import SyntheticConfig, write
    from training.synthetic import generate as gen

    if fmt not in ("parquet", "csv"):
        raise TrainingInputError(f"--format {fmt!r}: use parquet or csv.")
    _writable_folder(out, "--out")
    start = time.perf_counter()
    data = gen(SyntheticConfig(users=users, items=items, interactions=interactions, seed=seed))
    paths = write(data, out, fmt)
    typer.echo(
        f"wrote {data.interactions.num_rows:,} interactions and {data.items.num_rows:,} items "
        f"to {paths[0]} and {paths[1]} in {time.perf_counter() - start:.1f}s"
    )


@app.command()
@friendly_errors
def dataset(
    interactions: InteractionsOpt,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("data/dataset"),
    query: QueryOpt = None,
    timestamp_unit: EpochUnit | None = _opt("timestamp_unit"),
    drop_invalid_rows: bool | None = _opt("drop_invalid_rows"),
    event_weight: EventWeightOpt = None,
    drop_unknown_events: DropUnknownOpt = False,
    min_interactions: int | None = _opt("min_interactions"),
    min_item_interactions: int | None = _opt("min_item_interactions"),
) -> None:
    """Build the weighted user x item matrix: interactions.npz + id mappings + fingerprint."""
    from training.dataset import save_dataset

    settings = _settings(
        event_weight,
        timestamp_unit=timestamp_unit,
        drop_invalid_rows=drop_invalid_rows,
        min_interactions=min_interactions,
        min_item_interactions=min_item_interactions,
    )
    _writable_folder(out, "--out")
    data = _load(interactions, settings, query, drop_unknown_events)
    save_dataset(data, out)
    info = data.info
    typer.echo(
        f"{info['users']:,} users x {info['items']:,} items, {info['pairs']:,} pairs "
        f"({info['negative_pairs']:,} net dislikes), density {info['density']:.4%}; "
        f"removed {info['removed_users']:,} users / {info['removed_items']:,} items; "
        f"fingerprint {info['fingerprint'][:16]}; written to {out}"
    )


@app.command()
@friendly_errors
def train(
    interactions: InteractionsOpt,
    query: QueryOpt = None,
    timestamp_unit: EpochUnit | None = _opt("timestamp_unit"),
    drop_invalid_rows: bool | None = _opt("drop_invalid_rows"),
    event_weight: EventWeightOpt = None,
    drop_unknown_events: DropUnknownOpt = False,
    artifacts: Path | None = _opt("artifacts"),
    min_interactions: int | None = _opt("min_interactions"),
    min_item_interactions: int | None = _opt("min_item_interactions"),
    factors: int | None = _opt("factors"),
    regularization: float | None = _opt("regularization"),
    alpha: float | None = _opt("alpha"),
    iterations: int | None = _opt("iterations"),
    max_iterations: int | None = _opt("max_iterations"),
    scaling: Scaling | None = _opt("scaling"),
    popularity_discount: float | None = _opt("popularity_discount"),
    split: SplitKind | None = _opt("split"),
    test_split: float | None = _opt("test_split"),
    k: int | None = _opt("k"),
    seed: int | None = _opt("seed"),
    validate_every: int | None = _opt("validate_every"),
    biases: bool | None = _opt("biases", "--biases/--no-biases"),
    use_gpu: bool | None = _opt("use_gpu", "--use-gpu/--no-gpu"),
    refit: bool | None = _opt("refit", "--refit/--no-refit"),
    items: ItemsOpt = None,
    list_separator: str | None = _opt("list_separator"),
    categorical: list[str] | None = _opt("categorical"),
    numeric: list[str] | None = _opt("numeric"),
    item_duplicates: DuplicatePolicy | None = _opt("item_duplicates"),
    index_kind: IndexKind | None = _opt("index_kind"),
    index_metric: Metric | None = _opt("index_metric"),
    hnsw_m: int | None = _opt("hnsw_m"),
    ef_construction: int | None = _opt("ef_construction"),
    ef_search: int | None = _opt("ef_search"),
    engine: Engine | None = _opt("engine"),
    spark_master: str | None = _opt("spark_master", "--master", "--spark-master"),
    spark_driver_memory: str | None = _opt("spark_driver_memory"),
    spark_partitions: int | None = _opt("spark_partitions"),
    spark_reg_param: float | None = _opt("spark_reg_param"),
    seed_defaults: Annotated[
        bool,
        typer.Option(
            "--seed-defaults",
            help="The training guide's values: factors 128, "
            "regularization 0.01, iterations 20, alpha 40, linear scaling, no popularity discount.",
        ),
    ] = False,
) -> None:
    """Train ALS (implicit here, or Spark MLlib with --engine spark), evaluate it on a holdout beside
    popularity, and write artifacts/als_vN."""
    from training.pipeline import train as run_train

    settings = _settings(
        event_weight,
        seed_defaults,
        timestamp_unit=timestamp_unit,
        drop_invalid_rows=drop_invalid_rows,
        artifacts=artifacts,
        min_interactions=min_interactions,
        min_item_interactions=min_item_interactions,
        factors=factors,
        regularization=regularization,
        alpha=alpha,
        iterations=iterations,
        max_iterations=max_iterations,
        scaling=scaling,
        popularity_discount=popularity_discount,
        split=split,
        test_split=test_split,
        k=k,
        seed=seed,
        validate_every=validate_every,
        biases=biases,
        use_gpu=use_gpu,
        refit=refit,
        index_kind=index_kind,
        list_separator=list_separator,
        categorical=categorical,
        numeric=numeric,
        item_duplicates=item_duplicates,
        index_metric=index_metric,
        hnsw_m=hnsw_m,
        ef_construction=ef_construction,
        ef_search=ef_search,
        engine=engine,
        spark_master=spark_master,
        spark_driver_memory=spark_driver_memory,
        spark_partitions=spark_partitions,
        spark_reg_param=spark_reg_param,
    )
    _writable_folder(settings.artifacts, "--artifacts")
    if settings.engine is Engine.spark and settings.use_gpu:
        raise TrainingInputError("--use-gpu is for the implicit engine; Spark runs where --master points.")
    if settings.use_gpu:
        from training.als import gpu_available

        if not gpu_available():
            raise TrainingInputError(
                "--use-gpu: implicit found no CUDA device; drop the flag to train on CPU."
            )
    item_table = _read_items(items, settings)
    if settings.engine is Engine.spark:
        _train_on_spark(interactions, settings, query, drop_unknown_events, item_table)
        return
    start = time.perf_counter()
    from training.plots import preload as preload_plotting

    preload_plotting()  # the version's PNG needs matplotlib: imported while the data loads
    _say(f"reading {interactions}")
    data = _load(interactions, settings, query, drop_unknown_events)
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


def _all_settings(event_weight: list[str] | None, **options: Any) -> TrainSettings:
    return _settings(event_weight, False, **options)


def _read_for_all(
    interactions: str, items: str | None, settings: TrainSettings, query: str | None, drop: bool
) -> tuple[Any, Any]:
    item_table = _read_items(items, settings)
    _say(f"reading {interactions}")
    data = _load(interactions, settings, query, drop)
    _say(
        f"dataset: {data.info['users']:,} users x {data.info['items']:,} items, {data.info['pairs']:,} pairs"
    )
    return data, item_table


@app.command("train-all")
@friendly_errors
def train_all(
    interactions: InteractionsOpt,
    items: ItemsOpt = None,
    list_separator: str | None = _opt("list_separator"),
    categorical: list[str] | None = _opt("categorical"),
    numeric: list[str] | None = _opt("numeric"),
    item_duplicates: DuplicatePolicy | None = _opt("item_duplicates"),
    query: QueryOpt = None,
    timestamp_unit: EpochUnit | None = _opt("timestamp_unit"),
    drop_invalid_rows: bool | None = _opt("drop_invalid_rows"),
    event_weight: EventWeightOpt = None,
    drop_unknown_events: DropUnknownOpt = False,
    artifacts: Path | None = _opt("artifacts"),
    min_interactions: int | None = _opt("min_interactions"),
    factors: int | None = _opt("factors"),
    regularization: float | None = _opt("regularization"),
    alpha: float | None = _opt("alpha"),
    iterations: int | None = _opt("iterations"),
    scaling: Scaling | None = _opt("scaling"),
    popularity_discount: float | None = _opt("popularity_discount"),
    test_split: float | None = _opt("test_split"),
    k: int | None = _opt("k"),
    seed: int | None = _opt("seed"),
    content_dim: int | None = _opt("content_dim"),
    two_tower: bool | None = _opt("two_tower", "--two-tower/--no-two-tower"),
    two_tower_dim: int | None = _opt("two_tower_dim"),
    two_tower_epochs: int | None = _opt("two_tower_epochs"),
    device: str | None = _opt("device"),
    warm_min_interactions: int | None = _opt("warm_min_interactions"),
    hot_min_interactions: int | None = _opt("hot_min_interactions"),
    index_kind: IndexKind | None = _opt("index_kind"),
) -> None:
    """Every model in one version (the seed's train_all_models.sh): dataset, ALS, popularity,
    content, Two-Tower and the ensemble's fusion weights, the per-tier evaluation, one als_vN."""
    from training.pipeline import train_all as run_train_all
    from training.tier_eval import format_table

    settings = _all_settings(
        event_weight,
        timestamp_unit=timestamp_unit,
        drop_invalid_rows=drop_invalid_rows,
        artifacts=artifacts,
        min_interactions=min_interactions,
        factors=factors,
        regularization=regularization,
        alpha=alpha,
        iterations=iterations,
        scaling=scaling,
        popularity_discount=popularity_discount,
        test_split=test_split,
        k=k,
        seed=seed,
        content_dim=content_dim,
        two_tower=two_tower,
        two_tower_dim=two_tower_dim,
        two_tower_epochs=two_tower_epochs,
        device=device,
        warm_min_interactions=warm_min_interactions,
        hot_min_interactions=hot_min_interactions,
        index_kind=index_kind,
        list_separator=list_separator,
        categorical=categorical,
        numeric=numeric,
        item_duplicates=item_duplicates,
    )
    _writable_folder(settings.artifacts, "--artifacts")
    start = time.perf_counter()
    data, item_table = _read_for_all(interactions, items, settings, query, drop_unknown_events)
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
def evaluate_tiers(
    interactions: InteractionsOpt,
    items: ItemsOpt = None,
    list_separator: str | None = _opt("list_separator"),
    categorical: list[str] | None = _opt("categorical"),
    numeric: list[str] | None = _opt("numeric"),
    item_duplicates: DuplicatePolicy | None = _opt("item_duplicates"),
    query: QueryOpt = None,
    timestamp_unit: EpochUnit | None = _opt("timestamp_unit"),
    drop_invalid_rows: bool | None = _opt("drop_invalid_rows"),
    event_weight: EventWeightOpt = None,
    drop_unknown_events: DropUnknownOpt = False,
    min_interactions: int | None = _opt("min_interactions"),
    factors: int | None = _opt("factors"),
    test_split: float | None = _opt("test_split"),
    k: int | None = _opt("k"),
    seed: int | None = _opt("seed"),
    two_tower: bool | None = _opt("two_tower", "--two-tower/--no-two-tower"),
    two_tower_epochs: int | None = _opt("two_tower_epochs"),
    device: str | None = _opt("device"),
    warm_min_interactions: int | None = _opt("warm_min_interactions"),
    hot_min_interactions: int | None = _opt("hot_min_interactions"),
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the full report (rows, choices, timings) here.")
    ] = None,
) -> None:
    """The per-tier table: for each tier, its routed method against the simpler alternatives, on
    one split and one k (Precision, Recall, NDCG, coverage). Writes no version."""
    from training.tier_eval import evaluate_tiers as run_tiers
    from training.tier_eval import format_table

    settings = _all_settings(
        event_weight,
        timestamp_unit=timestamp_unit,
        drop_invalid_rows=drop_invalid_rows,
        min_interactions=min_interactions,
        factors=factors,
        test_split=test_split,
        k=k,
        seed=seed,
        two_tower=two_tower,
        two_tower_epochs=two_tower_epochs,
        device=device,
        warm_min_interactions=warm_min_interactions,
        hot_min_interactions=hot_min_interactions,
        list_separator=list_separator,
        categorical=categorical,
        numeric=numeric,
        item_duplicates=item_duplicates,
    )
    if json_out is not None:
        _writable_file(json_out, "--json")
    start = time.perf_counter()
    data, item_table = _read_for_all(interactions, items, settings, query, drop_unknown_events)
    report = run_tiers(data, settings, items=item_table, progress=_say)
    typer.echo(format_table(report, f"\nper-tier evaluation of {interactions}, k={settings.k}:"))
    for claim, ok in report.verdicts().items():
        typer.echo(f"  {'yes' if ok else 'NO '}  {claim}")
    typer.echo(f"timings: {json.dumps({k: round(v, 1) for k, v in report.models.timings.items()})}")
    typer.echo(f"total {time.perf_counter() - start:.1f}s")
    if json_out is not None:
        json_out.write_text(json.dumps(report.as_dict(), indent=2) + "\n")


def _print_train_report(report: Any, seconds: float) -> None:
    _print_holdout(report.metrics)
    typer.echo(f"parameters: {json.dumps(report.params.as_dict())}")
    if report.version_dir is not None:
        typer.echo(f"wrote {report.version_dir} in {seconds:.1f}s total")


def _print_holdout(m: dict[str, Any]) -> None:
    if "als" in m:
        k = m["als"]["k"]
        typer.echo(f"\nholdout ({m['split']} {m['test_fraction']:.0%}, {m['als']['users']:,} users), @{k}:")
        header = (
            f"{'model':<12}{'P@k':>8}{'P@k cap':>9}{'MAP@k':>8}{'NDCG@k':>8}{'R@k':>8}{'HR@k':>8}{'cover':>8}"
            f"{'divers':>8}{'gini':>7}{'novelty':>8}"
        )
        typer.echo(header)
        for name in ("als", "popularity"):
            r = m[name]
            typer.echo(
                f"{name:<12}{r['precision']:>8.4f}{r['precision_capped']:>9.4f}{r['map']:>8.4f}"
                f"{r['ndcg']:>8.4f}{r['recall']:>8.4f}{r['hit_rate']:>8.4f}{r['coverage']:>8.4f}"
                f"{r.get('diversity', 0.0):>8.3f}{r.get('gini', 0.0):>7.3f}{r.get('novelty', 0.0):>8.2f}"
            )
        typer.echo(
            "(P@k = hits/k; 'P@k cap' = implicit's precision_at_k, hits/min(k,|test|); divers = "
            "1 - mean pairwise cosine of a list's ALS item vectors; gini of exposure; novelty in bits)"
        )


@app.command()
@friendly_errors
def evaluate(
    interactions: Annotated[
        str | None, typer.Option("--interactions", "-i", help="Log to cross-validate on.")
    ] = None,
    ncf: Annotated[
        Path | None, typer.Option("--ncf", help="NCF split folder (leave-one-out, 99 negatives).")
    ] = None,
    query: QueryOpt = None,
    timestamp_unit: EpochUnit | None = _opt("timestamp_unit"),
    drop_invalid_rows: bool | None = _opt("drop_invalid_rows"),
    event_weight: EventWeightOpt = None,
    factors: int | None = _opt("factors"),
    regularization: float | None = _opt("regularization"),
    alpha: float | None = _opt("alpha"),
    iterations: int | None = _opt("iterations"),
    scaling: Scaling | None = _opt("scaling"),
    popularity_discount: float | None = _opt("popularity_discount"),
    split: SplitKind | None = _opt("split"),
    test_split: float | None = _opt("test_split"),
    k: int | None = _opt("k"),
    seed: int | None = _opt("seed"),
    biases: bool | None = _opt("biases", "--biases/--no-biases"),
    seed_defaults: Annotated[
        bool, typer.Option("--seed-defaults", help="The training guide's values.")
    ] = False,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the metrics as JSON here.")
    ] = None,
) -> None:
    """Measure a configuration under a protocol (holdout split or NCF) without writing a version."""
    from training.pipeline import evaluate_ncf, holdout_metrics

    settings = _settings(
        event_weight,
        seed_defaults,
        timestamp_unit=timestamp_unit,
        drop_invalid_rows=drop_invalid_rows,
        factors=factors,
        regularization=regularization,
        alpha=alpha,
        iterations=iterations,
        scaling=scaling,
        popularity_discount=popularity_discount,
        split=split,
        test_split=test_split,
        k=k,
        biases=biases,
        seed=seed,
    )
    if (interactions is None) == (ncf is None):
        raise TrainingInputError("give exactly one of --interactions PATH or --ncf FOLDER")
    if interactions is not None and settings.test_split <= 0:
        raise TrainingInputError("--test-split must be above 0 to evaluate")
    if json_out is not None:
        _writable_file(json_out, "--json")
    if ncf is not None:
        report = evaluate_ncf(ncf, settings, progress=_say)
        result = {
            "protocol": "ncf-leave-one-out-99-negatives",
            "params": report.params.as_dict(),
            "als": report.als,
            "popularity": report.popularity,
        }
        typer.echo(
            f"NCF leave-one-out @{settings.k}: ALS HR {report.als['hr']:.4f} NDCG "
            f"{report.als['ndcg']:.4f} | popularity HR {report.popularity['hr']:.4f} NDCG "
            f"{report.popularity['ndcg']:.4f} ({report.als['users']:,} users)"
        )
        typer.echo(f"parameters: {json.dumps(report.params.as_dict())}")
    else:
        assert interactions is not None
        data = _load(interactions, settings, query)
        metrics, params, _ = holdout_metrics(data, settings, [], _say)
        result = {"protocol": f"holdout-{settings.split}", "params": params.as_dict(), **metrics}
        _print_holdout(metrics)
        typer.echo(f"parameters: {json.dumps(params.as_dict())}")
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=2) + "\n")


_BEST_KEYS = ("factors", "regularization", "alpha", "scaling", "popularity_discount", "iterations")


@app.command()
@friendly_errors
def tune(
    interactions: InteractionsOpt,
    factors: Annotated[str, typer.Option(help="Comma-separated factors to try.")] = "64,128",
    regularization: Annotated[
        str, typer.Option(help="Comma-separated regularization values.")
    ] = "0.1,1,10,50",
    alpha: Annotated[str, typer.Option(help="Comma-separated alpha values.")] = "1,4,16,40",
    iterations: Annotated[int, typer.Option(help="Maximum iterations (best one found by validation).")] = 20,
    scaling: Annotated[str, typer.Option(help="Comma-separated scalings (linear,log,binary).")] = "auto",
    popularity_discount: Annotated[
        str,
        typer.Option(
            help="Comma-separated popularity discounts of the confidences (0 = off; train's "
            "automatic search also tries 0.5)."
        ),
    ] = "0,0.25",
    query: QueryOpt = None,
    timestamp_unit: EpochUnit | None = _opt("timestamp_unit"),
    drop_invalid_rows: bool | None = _opt("drop_invalid_rows"),
    event_weight: EventWeightOpt = None,
    seed: int | None = _opt("seed"),
    out: Annotated[
        Path, typer.Option("--out", help="Where to save the best configuration (JSON) and the plot.")
    ] = Path("tune"),
) -> None:
    """Grid search on a validation holdout; prints a table and saves the best configuration."""
    from training.als import AlsParams
    from training.plots import plot_tuning
    from training.tune import Searcher, grid, is_binary

    settings = _settings(
        event_weight, seed=seed, timestamp_unit=timestamp_unit, drop_invalid_rows=drop_invalid_rows
    )
    factor_grid = _grid_values(factors, "factors", int)
    regularization_grid = _grid_values(regularization, "regularization", float)
    alpha_grid = _grid_values(alpha, "alpha", float)
    discount_grid = _grid_values(popularity_discount, "popularity_discount", float)
    _grid_values(str(iterations), "iterations", int)
    scalings: list[Scaling] | None = None
    if scaling != "auto":
        try:
            scalings = [Scaling(s.strip()) for s in scaling.split(",")]
        except ValueError:
            raise TrainingInputError(f"--scaling '{scaling}': use linear, log, binary or auto") from None
    _writable_folder(out, "--out")
    data = _load(interactions, settings, query)
    if scalings is None:
        scalings = (
            [Scaling.binary] if is_binary(data.matrix) else [Scaling.linear, Scaling.log, Scaling.binary]
        )
    candidates = grid(
        factor_grid,
        regularization_grid,
        alpha_grid,
        [iterations],
        scalings,
        AlsParams(random_state=settings.seed),
        discount_grid,
    )
    bar = tqdm(total=len(candidates), desc="grid", file=sys.stderr, disable=None)
    searcher = Searcher(data.matrix, seed=settings.seed + 1, on_trial=lambda t: bar.update(1))
    for candidate in candidates:
        searcher.score(candidate)
    bar.close()
    rows = sorted((t.row() for t in searcher.trials), key=lambda r: -float(r["validation_ndcg"]))
    typer.echo(
        f"{'factors':>8}{'reg':>8}{'alpha':>7}{'scaling':>9}{'discount':>10}{'iters':>7}"
        f"{'val NDCG@10':>13}{'sec':>7}"
    )
    for r in rows:
        typer.echo(
            f"{r['factors']:>8}{r['regularization']:>8g}{r['alpha']:>7g}{r['scaling']:>9}"
            f"{r['popularity_discount']:>10g}{r['iterations']:>7}{r['validation_ndcg']:>13.4f}"
            f"{r['seconds']:>7.1f}"
        )
    out.mkdir(parents=True, exist_ok=True)
    best = rows[0]
    (out / "best.json").write_text(
        json.dumps(
            {k: best[k] for k in _BEST_KEYS},
            indent=2,
        )
        + "\n"
    )
    (out / "trials.json").write_text(json.dumps(rows, indent=2) + "\n")
    plot_tuning(rows, "validation_ndcg", out / "tuning.png")
    typer.echo(
        f"best: {best['label']} iterations {best['iterations']} -> {out / 'best.json'} "
        f"(train with: recsys train --factors {best['factors']} --regularization "
        f"{best['regularization']} --alpha {best['alpha']} --scaling {best['scaling']} "
        f"--popularity-discount {best['popularity_discount']:g} --iterations {best['iterations']})"
    )


def _store_settings(artifacts: Path | None, redis_url: str | None, prefix: str | None) -> Any:
    from feature_store.settings import StoreSettings

    values: dict[str, Any] = {}
    if artifacts is not None:
        values["artifacts"] = artifacts
    if redis_url is not None:
        values["redis_url"] = redis_url
    if prefix is not None:
        values["redis_prefix"] = prefix
    return StoreSettings(**values)


RedisUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--redis-url",
        help="redis://[:password@]host:port/db or rediss://; unset = the embedded store "
        "(env RECSYS_REDIS_URL).",
    ),
]
PrefixOpt = Annotated[
    str | None, typer.Option("--prefix", help="Redis key prefix (env RECSYS_REDIS_PREFIX).")
]


def run_publish(folder: Path, store_settings: Any) -> Any:
    """Publish one version folder to the configured store, with a progress bar over users."""
    import asyncio

    from feature_store.factory import open_store
    from feature_store.publish import publish_version

    async def go() -> Any:
        store = open_store(store_settings, bulk=True)
        bar = tqdm(total=None, desc="publish", unit="user", unit_scale=True, file=sys.stderr, disable=None)
        try:
            return await publish_version(folder, store, say=_say, progress=bar.update)
        finally:
            bar.close()
            await store.close()

    return asyncio.run(go())


@app.command()
@friendly_errors
def publish(
    version: Annotated[
        str | None, typer.Argument(help="Version folder name, e.g. als_v3 (default: LATEST).")
    ] = None,
    artifacts: Annotated[Path | None, typer.Option(help="Folder of model versions.")] = None,
    redis_url: RedisUrlOpt = None,
    prefix: PrefixOpt = None,
) -> None:
    """Verify a version, write its users to the feature store, then make it live atomically.

    Safe to re-run: an interrupted publish leaves the previous version live and is completed by
    running the same command again.
    """
    from feature_store.manifest import resolve_version

    store_settings = _store_settings(artifacts, redis_url, prefix)
    folder = resolve_version(store_settings.artifacts, version)
    report = run_publish(folder, store_settings)
    typer.echo(
        f"published {report.version}: {report.users:,} users in {report.write_seconds:.2f}s "
        f"({report.users_per_second:,.0f} users/s), {report.total_seconds:.2f}s in all; "
        f"previous: {report.previous or 'none'}"
    )


@app.command()
@friendly_errors
def activate(
    version: Annotated[str, typer.Argument(help="A completely published version (e.g. the previous one).")],
    artifacts: Annotated[Path | None, typer.Option(help="Folder of model versions.")] = None,
    redis_url: RedisUrlOpt = None,
    prefix: PrefixOpt = None,
) -> None:
    """Switch the live version (a rollback): only to a version that was completely published."""
    import asyncio

    from feature_store.factory import open_store

    async def go() -> str | None:
        store = open_store(_store_settings(artifacts, redis_url, prefix))
        try:
            return await store.activate(version)
        finally:
            await store.close()

    old = asyncio.run(go())
    typer.echo(f"{version} is live (was: {old or 'none'})")


def _serve_env(
    artifacts: Path | None, redis_url: str | None, prefix: str | None, **options: Any
) -> dict[str, str]:
    """Options as RECSYS_* variables: uvicorn's workers build their apps from the environment."""
    env = {f"RECSYS_{k.upper()}": str(v) for k, v in options.items() if v is not None}
    if artifacts is not None:
        env["RECSYS_ARTIFACTS"] = str(artifacts)
    if redis_url is not None:
        env["RECSYS_REDIS_URL"] = redis_url
    if prefix is not None:
        env["RECSYS_REDIS_PREFIX"] = prefix
    return env


@app.command()
@friendly_errors
def serve(
    host: Annotated[
        str | None, typer.Option(help="Bind address (env RECSYS_HOST; default 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (env RECSYS_PORT; default 8000).")] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="uvicorn worker processes, one per core (env RECSYS_WORKERS; default 1)."),
    ] = None,
    artifacts: Annotated[Path | None, typer.Option(help="Folder of model versions.")] = None,
    redis_url: RedisUrlOpt = None,
    prefix: PrefixOpt = None,
    ab_config: Annotated[
        Path | None, typer.Option(help="A/B variants file, TOML or JSON (env RECSYS_AB_CONFIG).")
    ] = None,
) -> None:
    """Serve POST /candidates and POST /interactions (docs at /docs) with uvicorn.

    Everything else (max_k, tier thresholds, timeouts, RECSYS_ADMIN_TOKEN) comes from RECSYS_*
    environment variables; see the README's settings table.
    """
    from app.experiments import load_experiment
    from app.server import serve as run_server
    from app.settings import ServeSettings

    env = _serve_env(artifacts, redis_url, prefix, host=host, port=port, workers=workers, ab_config=ab_config)
    import os

    os.environ.update(env)
    settings = ServeSettings()
    load_experiment(settings.ab_config)  # a bad A/B file: one clear line now, not per worker
    typer.echo(
        f"serving on http://{settings.host}:{settings.port} (docs: /docs), {settings.workers} worker(s)"
    )
    run_server(settings)


@app.command()
@friendly_errors
def demo(
    workdir: Annotated[Path, typer.Option(help="Folder for the synthetic data and artifacts.")] = Path(),
    users: Annotated[int, typer.Option(help="Synthetic users.")] = 20_000,
    items: Annotated[int, typer.Option(help="Synthetic items.")] = 5_000,
    interactions: Annotated[int, typer.Option(help="Synthetic events.")] = 500_000,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Start the service on the new version afterwards.")
    ] = True,
    port: Annotated[int, typer.Option(help="Port of the service.")] = 8000,
    two_tower: bool | None = _opt("two_tower", "--two-tower/--no-two-tower"),
) -> None:
    """Generate synthetic data, train every model (train-all) with its per-tier evaluation,
    publish, and serve: the whole job in one go."""
    from training.pipeline import train_all as run_train_all
    from training.synthetic import SyntheticConfig, write
    from training.synthetic import generate as gen
    from training.tier_eval import format_table

    _writable_folder(workdir, "--workdir")
    start = time.perf_counter()
    data_dir = workdir / "data" / "synthetic"
    inter_path, items_path = write(
        gen(SyntheticConfig(users=users, items=items, interactions=interactions)), data_dir
    )
    _say(f"generated {interactions:,} synthetic events in {data_dir}")
    settings = _settings(artifacts=workdir / "artifacts", two_tower=two_tower)
    data = _load(str(inter_path), settings)
    report = run_train_all(data, settings, progress=_say, items=_read_items(str(items_path), settings))
    if report.tiers is not None:
        typer.echo(format_table(report.tiers, "\nper-tier holdout, k=10 (routed method in bold):"))
    assert report.version_dir is not None
    typer.echo(f"wrote {report.version_dir} in {time.perf_counter() - start:.1f}s total")
    published = run_publish(report.version_dir, _store_settings(settings.artifacts, None, None))
    _say(f"published {published.version} ({published.users:,} users) to the {published.store} store")
    if serve_after:
        serve(
            host=None,
            port=port,
            workers=None,
            artifacts=settings.artifacts,
            redis_url=None,
            prefix=None,
            ab_config=None,
        )


def main() -> None:
    """The `recsys` entry point. When the command is done, every live object is moved out of
    the cycle collector's reach (`gc.freeze`): the interpreter's shutdown collections otherwise
    walk all of matplotlib, pydantic and the data (0.3 s of a `recsys train` on ML-1M, against
    0.04 s frozen). Objects are still released; files are closed by the commands themselves."""
    try:
        app()
    finally:
        gc.freeze()


if __name__ == "__main__":
    main()
