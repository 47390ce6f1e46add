"""`recsys retrain` (the scheduled job: train, compare with the live version, publish only if not
worse) and `recsys history` (every retrain's record, and a PNG of the metric over runs)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from training.commands.common import (
    CatalogOpt,
    DropUnknownOpt,
    InteractionsOpt,
    ItemsOpt,
    QueryOpt,
    _catalog,
    _read_items,
    _report_read,
    _say,
    _writable_folder,
    app,
    friendly_errors,
)
from training.commands.options import ALS, MODELS, READING, RETRAIN, settings_options
from training.commands.store import PrefixOpt, RedisUrlOpt, _store_settings, run_publish
from training.settings import TrainSettings

if TYPE_CHECKING:
    from training.retrain import RetrainReport


def _print_scores(report: RetrainReport) -> None:
    candidate, live = report.candidate, report.live
    if candidate is None:
        return
    k = candidate.k
    typer.echo(f"\nfresh holdout, Recall@{k} through the serving path ({candidate.users:,} users):")
    typer.echo(f"{'tier':<8}{'users':>8}{'candidate':>11}{'live':>9}{'popularity':>12}  methods (candidate)")
    for tier, score in candidate.tiers.items():
        other = live.tiers.get(tier) if live is not None else None
        live_recall = f"{other.recall:.4f}" if other is not None else "-"
        methods = ", ".join(f"{m} {n:,}" for m, n in sorted(score.methods.items(), key=lambda x: -x[1]))
        typer.echo(
            f"{tier:<8}{score.users:>8,}{score.recall:>11.4f}{live_recall:>9}"
            f"{score.popularity_recall:>12.4f}  {methods}"
        )
    live_all = f"{live.recall:.4f}" if live is not None else "-"
    typer.echo(f"{'all':<8}{candidate.users:>8,}{candidate.recall:>11.4f}{live_all:>9}")
    if report.gate is not None:
        for check in report.gate.checks:
            typer.echo(f"  {'ok ' if check.ok else 'NO '} {check.name}: {check.detail}")


@app.command()
@friendly_errors
@settings_options(READING, "artifacts", "min_interactions", ALS, MODELS, RETRAIN, "seed")
def retrain(
    interactions: InteractionsOpt,
    items: ItemsOpt = None,
    query: QueryOpt = None,
    redis_url: RedisUrlOpt = None,
    prefix: PrefixOpt = None,
    *,
    drop_unknown_events: DropUnknownOpt = False,
    catalog: CatalogOpt = True,
    keep_params: Annotated[
        bool,
        typer.Option(
            "--keep-params",
            help="Pin the live version's ALS values (no search): the fast weekly run.",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Publish even if the data checks or the gate refuse (loudly)."),
    ] = False,
    settings: TrainSettings,
) -> None:
    """Retrain on the log plus the events recorded at run time, score the candidate and the live
    version on the newest days, and publish only if it is not worse.

    Exit status: 0 published (or nothing new to train on), 3 refused by the gate, 4 refused by
    the data checks, 5 another retrain holds the lock, 2 a usage error. Every run is recorded in
    ARTIFACTS/RETRAINS.jsonl (`recsys history`).
    """
    from training.pipeline import read_log
    from training.readers.items import prepare_items
    from training.retrain import run_retrain

    _writable_folder(settings.artifacts, "--artifacts")
    store_settings = _store_settings(settings.artifacts, redis_url, prefix)
    state = _catalog(settings, catalog)
    item_table = _read_items(items, settings, state)
    _say(f"reading {interactions}")
    log, dropped = read_log(
        interactions,
        settings,
        query=query,
        drop_unknown_events=drop_unknown_events,
        drop_items=state.dropped_ids(time.time()) if state is not None else None,
    )
    _report_read(
        {
            "read_notes": log.notes,
            "dropped_invalid_rows": log.dropped_invalid_rows,
            "dropped_unknown_events": log.dropped_unknown_events,
            "dropped_by_catalog": {"events": dropped, "items": len(state.dropped_ids(time.time()))}
            if dropped and state is not None
            else None,
        }
    )
    known = None
    if item_table is not None:
        known = {
            str(i) for i in prepare_items(item_table, settings.item_options()).table["item_id"].to_pylist()
        }
    if force:
        typer.secho("--force: publishing whatever the checks and the gate say", fg=typer.colors.RED, err=True)
    report = run_retrain(
        log,
        settings,
        store_settings,
        items=item_table,
        known_items=known,
        keep_params=keep_params,
        force=force,
        progress=_say,
        publish=lambda folder: run_publish(folder, store_settings),
    )
    _print_scores(report)
    colour = typer.colors.GREEN if report.decision in ("published", "nothing_new") else typer.colors.RED
    headline = {
        "published": f"published {report.published} (was: {report.live_version or 'none'})",
        "nothing_new": "nothing new to train on; the live version stays",
        "refused_by_gate": f"refused by the gate; {report.live_version} stays live",
        "refused_by_checks": f"refused by the data checks; {report.live_version or 'nothing'} stays live",
        "locked": "not run: another retrain holds the lock",
    }[report.decision]
    typer.secho(headline, fg=colour, bold=True)
    for reason in report.reasons:
        typer.secho(f"  - {reason}", fg=colour)
    typer.echo(
        f"recorded in {settings.artifacts / 'RETRAINS.jsonl'} ({report.record.get('total_s', 0):.0f}s)"
    )
    raise typer.Exit(report.outcome.exit_code)


@app.command()
@friendly_errors
def history(
    artifacts: Annotated[Path, typer.Option(help="Folder of model versions.")] = Path("artifacts"),
    png: Annotated[
        Path | None,
        typer.Option(help="Where to draw the metric over runs (default: ARTIFACTS/retrains.png)."),
    ] = None,
    last: Annotated[int, typer.Option(min=1, help="Show the last N retrains.")] = 20,
) -> None:
    """Every retrain: when, against which live version, what it decided and why, and its scores."""
    from training import retrain_history

    records = retrain_history.read(artifacts)
    if not records:
        typer.echo(f"no retrain recorded in {artifacts} yet (recsys retrain writes RETRAINS.jsonl)")
        return
    header = ["started (UTC)", "live", "published", "decision", "candidate", "live", "events", "why"]
    rows = retrain_history.rows(records[-last:])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    typer.echo("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    out = png or artifacts / "retrains.png"
    retrain_history.plot(records[-last:], out)
    typer.echo(f"plot: {out}")
