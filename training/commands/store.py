"""Store and serving commands: `recsys publish`, `recsys activate` (a rollback), `recsys serve`,
(`recsys demo` is in demo.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from tqdm import tqdm

from training.commands.common import _say, app, friendly_errors


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
    environment variables; see docs/reference/settings.md.
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
