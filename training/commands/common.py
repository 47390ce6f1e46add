"""What every command module shares: the Typer app, one-line errors, the readers of `--interactions`
and `--items`, output checks, and the options that are not training settings."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from pydantic import ValidationError

from app.experiments import ExperimentConfigError
from feature_store.base import StoreUnavailableError
from feature_store.errors import VersionNotReadyError
from feature_store.manifest import ArtifactError
from training.errors import TrainingInputError
from training.settings import TrainSettings

if TYPE_CHECKING:
    from training.catalog_state import CatalogState

app = typer.Typer(
    help="Recommendation candidate service: build datasets, train and evaluate models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


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
    if info.get("dropped_by_catalog"):
        gone = info["dropped_by_catalog"]
        _say(
            f"dropped {gone['events']:,} events of {gone['items']:,} items deleted or expired through "
            "the items API (--no-catalog keeps them)"
        )
    if info.get("dropped_unknown_events"):
        _say(f"dropped rows with unknown event types: {info['dropped_unknown_events']}")


def _catalog(settings: TrainSettings, use: bool) -> CatalogState | None:
    """The items API's run-time changes, for a run that applies them (`--catalog`)."""
    if not use:
        return None
    from training.catalog_state import read_catalog_state

    try:
        state = read_catalog_state(settings.artifacts)
    except StoreUnavailableError as exc:
        raise TrainingInputError(
            f"the run-time catalog could not be read ({exc}); start the store, or pass --no-catalog "
            "to train without the items API's changes"
        ) from exc
    if state.records:
        _say(f"catalog: {len(state.records):,} items changed through the items API ({state.source})")
    return state


def _read_items(source: str | None, settings: TrainSettings, catalog: CatalogState | None = None) -> Any:
    """`--items` for every command that takes it: read, prepared, its choices printed; with the
    run-time catalog's attributes merged in."""
    overrides = {i: r for i, r in catalog.records.items() if r.attributes is not None} if catalog else {}
    if source is None and not overrides:
        return None
    from training.readers import read_items

    prepared = read_items(source, settings.item_options(), overrides)
    for note in prepared.notes:
        _say(f"read: {note}")
    return prepared.table


def _load(
    source: str,
    settings: TrainSettings,
    query: str | None = None,
    drop_unknown: bool = False,
    catalog: CatalogState | None = None,
) -> Any:
    from training.pipeline import load_dataset_from

    drop = catalog.dropped_ids(time.time()) if catalog else None
    data = load_dataset_from(
        source, settings, query=query, drop_unknown_events=drop_unknown, drop_items=drop or None
    )
    _report_read(data.info)
    return data


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


# -- options that are not training settings, declared once each ------------------------------------
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
CatalogOpt = Annotated[
    bool,
    typer.Option(
        "--catalog/--no-catalog",
        help="Apply the items API's run-time changes, read from RECSYS_REDIS_URL's store (else the "
        "artifacts folder's CATALOG.jsonl): events of deleted and expired items dropped, attributes "
        "set at run time merged into the item metadata. Hidden items are kept (hiding is reversible; "
        "the catalog keeps them out of answers).",
    ),
]

ItemsOpt = Annotated[
    str | None,
    typer.Option(
        "--items",
        help="Item metadata (CSV/Parquet with item_id, category, tags, text, numbers...; or a MovieLens "
        "folder): the version's filterable attributes and the content model's input. Read by the "
        "rules of docs/feature-store.md's 'Item metadata' paragraph (lists, missing values, duplicates).",
    ),
]
DropUnknownOpt = Annotated[
    bool, typer.Option("--drop-unknown-events", help="Skip rows with unknown event types (reported).")
]
