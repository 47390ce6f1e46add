"""Data commands: `recsys generate` (a synthetic log) and `recsys dataset` (the weighted matrix)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from training.commands.common import (
    DropUnknownOpt,
    InteractionsOpt,
    QueryOpt,
    _load,
    _writable_folder,
    app,
    friendly_errors,
)
from training.commands.options import FILTERS, READING, settings_options
from training.errors import TrainingInputError
from training.settings import TrainSettings


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
@settings_options(READING, FILTERS)
def dataset(
    interactions: InteractionsOpt,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("data/dataset"),
    query: QueryOpt = None,
    *,
    settings: TrainSettings,
    drop_unknown_events: DropUnknownOpt = False,
) -> None:
    """Build the weighted user x item matrix: interactions.npz + id mappings + fingerprint."""
    from training.dataset import save_dataset

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
