"""Evaluation commands: `recsys evaluate` (a configuration under a protocol, no version written)
and `recsys tune` (a grid search on a validation holdout)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import TypeAdapter, ValidationError
from tqdm import tqdm

from training.commands.common import (
    InteractionsOpt,
    QueryOpt,
    _load,
    _print_holdout,
    _say,
    _writable_file,
    _writable_folder,
    app,
    friendly_errors,
)
from training.commands.options import ALS, HOLDOUT, READING, settings_options
from training.confidence import Scaling
from training.errors import TrainingInputError
from training.settings import TrainSettings

_FIELDS = TrainSettings.model_fields


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


@app.command()
@friendly_errors
@settings_options(READING, ALS, "split", HOLDOUT, "biases", "seed_defaults")
def evaluate(
    interactions: Annotated[
        str | None, typer.Option("--interactions", "-i", help="Log to cross-validate on.")
    ] = None,
    ncf: Annotated[
        Path | None, typer.Option("--ncf", help="NCF split folder (leave-one-out, 99 negatives).")
    ] = None,
    query: QueryOpt = None,
    *,
    settings: TrainSettings,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the metrics as JSON here.")
    ] = None,
) -> None:
    """Measure a configuration under a protocol (holdout split or NCF) without writing a version."""
    from training.pipeline import evaluate_ncf, holdout_metrics

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
@settings_options(READING, "seed")
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
    *,
    settings: TrainSettings,
    out: Annotated[
        Path, typer.Option("--out", help="Where to save the best configuration (JSON) and the plot.")
    ] = Path("tune"),
) -> None:
    """Grid search on a validation holdout; prints a table and saves the best configuration."""
    from training.als import AlsParams
    from training.plots import plot_tuning
    from training.tune import Searcher, grid, is_binary

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
    rows = sorted((t.row() for t in searcher.trials), key=lambda r: -float(r["validation_score"]))
    typer.echo(
        f"{'factors':>8}{'reg':>8}{'alpha':>7}{'scaling':>9}{'discount':>10}{'iters':>7}"
        f"{'val ' + searcher.metric_name:>13}{'sec':>7}"
    )
    for r in rows:
        typer.echo(
            f"{r['factors']:>8}{r['regularization']:>8g}{r['alpha']:>7g}{r['scaling']:>9}"
            f"{r['popularity_discount']:>10g}{r['iterations']:>7}{r['validation_score']:>13.4f}"
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
    plot_tuning(rows, "validation_score", out / "tuning.png")
    typer.echo(
        f"best: {best['label']} iterations {best['iterations']} -> {out / 'best.json'} "
        f"(train with: recsys train --factors {best['factors']} --regularization "
        f"{best['regularization']} --alpha {best['alpha']} --scaling {best['scaling']} "
        f"--popularity-discount {best['popularity_discount']:g} --iterations {best['iterations']})"
    )
