"""`recsys demo`, the main job: a first answer within about a minute, the full version after.

Training every tier's model with its per-tier holdout takes minutes on a small machine, and a
newcomer should not wait that long for a first `/candidates` answer. So the demo works in two steps:

1. a *quick* version: ALS at the search's starting values (no parameter search, no holdout) plus the
   popularity list, published and served at once;
2. the *full* version (`train-all`: parameters chosen on validation, every tier's model, the per-tier
   evaluation), published when ready. The running service picks it up through its normal hot reload
   (it polls the active-version pointer every `RECSYS_RELOAD_POLL_S` seconds); no restart, no
   dropped request.

The service runs as a child process (`recsys serve`), so training and serving do not share one
interpreter's lock, and Ctrl-C stops both.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer

from training.commands.common import _load, _read_items, _say, _writable_folder, app, friendly_errors
from training.commands.options import settings_options
from training.commands.store import _store_settings, run_publish
from training.errors import TrainingInputError
from training.settings import TrainSettings

QUICK_ITERATIONS = 10


def quick_settings(settings: TrainSettings) -> TrainSettings:
    """The quick version's settings: every searched value pinned at the search's starting point, and
    no holdout; what the search would have chosen comes with the full version."""
    from training.pipeline import base_params

    start = base_params(settings, matrix_is_binary=False)
    return settings.model_copy(
        update={
            "factors": settings.factors or start.factors,
            "regularization": start.regularization,
            "alpha": start.alpha,
            "scaling": settings.scaling or start.scaling,
            "iterations": settings.iterations or QUICK_ITERATIONS,
            "popularity_discount": start.popularity_discount,
            "test_split": 0.0,
        }
    )


def _start_service(artifacts: Path, port: int) -> subprocess.Popen[bytes]:
    """`recsys serve` in a child process, in its own process group (Ctrl-C is handled here)."""
    env = {**os.environ, "RECSYS_RELOAD_POLL_S": os.environ.get("RECSYS_RELOAD_POLL_S", "2")}
    command = [
        sys.executable,
        "-m",
        "training.cli",
        "serve",
        "--artifacts",
        str(artifacts),
        "--port",
        str(port),
    ]
    return subprocess.Popen(command, env=env, start_new_session=True)


def _wait_ready(service: subprocess.Popen[bytes], base: str, version: str, timeout_s: float) -> None:
    """Until `/readyz` answers with `version` live: the demo only says "serving" when it is true."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if service.poll() is not None:
            raise TrainingInputError(
                f"the service exited with status {service.returncode}; see its log above"
            )
        try:
            answer = httpx.get(f"{base}/readyz", timeout=2.0)
            if answer.status_code == 200 and answer.json().get("model_version") == version:
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.25)
    raise TrainingInputError(f"the service did not serve {version} within {timeout_s:.0f}s")


def _stop(service: subprocess.Popen[bytes]) -> None:
    if service.poll() is None:
        os.killpg(service.pid, signal.SIGTERM)
        try:
            service.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(service.pid, signal.SIGKILL)
            service.wait()


def _example(base: str, user: str) -> str:
    return (
        f"  curl -s {base}/candidates -H 'content-type: application/json' "
        f'-d \'{{"user_id": "{user}", "k": 5}}\''
    )


@app.command()
@friendly_errors
@settings_options("two_tower")
def demo(
    workdir: Annotated[Path, typer.Option(help="Folder for the synthetic data and artifacts.")] = Path(),
    users: Annotated[int, typer.Option(help="Synthetic users.")] = 20_000,
    items: Annotated[int, typer.Option(help="Synthetic items.")] = 5_000,
    interactions: Annotated[int, typer.Option(help="Synthetic events.")] = 500_000,
    serve_after: Annotated[
        bool,
        typer.Option(
            "--serve/--no-serve",
            help="Serve a quick version at once and the full one when ready (--no-serve: only train "
            "and publish the full version).",
        ),
    ] = True,
    port: Annotated[int, typer.Option(help="Port of the service.")] = 8000,
    *,
    settings: TrainSettings,
) -> None:
    """Generate synthetic data, serve a quick version (popularity and ALS) within about a minute,
    then train every model (train-all, with its per-tier evaluation) and swap it in live."""
    from training.pipeline import train, train_all
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
    settings = settings.model_copy(update={"artifacts": workdir / "artifacts"})
    data = _load(str(inter_path), settings)
    catalog = _read_items(str(items_path), settings)
    store_settings = _store_settings(settings.artifacts, None, None)
    base = f"http://127.0.0.1:{port}"
    service: subprocess.Popen[bytes] | None = None
    try:
        if serve_after:
            _say("step 1/2: a quick version (ALS at the search's starting values, popularity), no search")
            quick = train(data, quick_settings(settings), progress=_say, items=catalog)
            assert quick.version_dir is not None
            run_publish(quick.version_dir, store_settings)
            service = _start_service(settings.artifacts, port)
            _wait_ready(service, base, quick.version_dir.name, timeout_s=120)
            typer.secho(
                f"\nserving {quick.version_dir.name} on {base} (docs: {base}/docs), "
                f"{time.perf_counter() - start:.0f}s after the start. Try:\n"
                f"{_example(base, str(data.user_ids[0]))}\n"
                "The full version (every tier's model, parameters chosen on validation) is training "
                "now and replaces it live when ready.\n",
                fg=typer.colors.GREEN,
                err=True,
            )
            _say("step 2/2: the full version (train-all)")
        report = train_all(data, settings, progress=_say, items=catalog)
        if report.tiers is not None:
            typer.echo(format_table(report.tiers, "\nper-tier holdout, k=10 (routed method in bold):"))
        assert report.version_dir is not None
        published = run_publish(report.version_dir, store_settings)
        _say(f"published {published.version} ({published.users:,} users) to the {published.store} store")
        if service is None:
            typer.echo(f"wrote {report.version_dir} in {time.perf_counter() - start:.1f}s total")
            return
        _wait_ready(service, base, published.version, timeout_s=120)
        typer.secho(
            f"\n{published.version} (every tier's model) is live on {base}, "
            f"{time.perf_counter() - start:.0f}s after the start; Ctrl-C stops the service.",
            fg=typer.colors.GREEN,
            err=True,
        )
        service.wait()
    except KeyboardInterrupt:
        _say("stopping")
    finally:
        if service is not None:
            _stop(service)
