"""POST /candidates under load: our server vs a bare FastAPI endpoint, 1 and 2 uvicorn workers.

    python bench/serve_throughput.py                       # ml1m and 1m models, 1 and 2 workers
    python bench/serve_throughput.py --models ml1m --workers 1 --seconds 5

For each worker count: the bare 100-candidate endpoint (bench/bare_app.py), the floor of a real
answer on each model (bench/minimal_app.py: one Redis GET, the stored vector searched, 100
dicts, orjson; nothing else) and our server on each model, all on 127.0.0.1 in the same run.
Peak: wrk, closed loop (1 thread, 32 connections, --latency). Then a constant-rate open loop
(bench/_openloop.py) at half of the peak just measured, with latency counted from each request's
due time. Requests: warm-routed users (interaction count 5..19; ML-1M has none below 20, so its
users are hot and served by ALS alike), k=100, exclude_seen on, profiles read from a real Redis.
Needs `wrk` (apt-get install wrk). Models: ML-1M (../shared/data, skipped when absent) and the
synthetic 1M-item catalog (factors cached by bench/index_recall.py when present, else trained
here).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import SHARED_DATA, print_table
from _openloop import open_loop

from feature_store.publish import publish_version
from feature_store.redis_store import RedisStore
from feature_store.settings import StoreSettings
from feature_store.version_files import load_mapping

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
SYNTH_1M = (1_000_000, 1_000_000, 20_000_000)


def _version_ml1m(artifacts: Path) -> Path:
    from training.confidence import Scaling
    from training.dataset import build_dataset
    from training.pipeline import train
    from training.readers import read_interactions
    from training.settings import TrainSettings

    log = read_interactions(str(SHARED_DATA / "ml-1m"), {})
    dataset = build_dataset(log)
    settings = TrainSettings(
        artifacts=artifacts,
        factors=64,
        regularization=50.0,
        alpha=4.0,
        iterations=15,
        scaling=Scaling.binary,
        test_split=0.0,
    )
    report = train(dataset, settings)
    assert report.version_dir is not None
    return report.version_dir


def _version_1m(artifacts: Path, cache: Path) -> Path:
    from training.als import AlsParams, AlsResult, fit_als
    from training.artifacts import write_als_version
    from training.confidence import Scaling
    from training.dataset import build_dataset
    from training.events import DEFAULT_EVENT_WEIGHTS
    from training.interaction_log import from_table
    from training.synthetic import SyntheticConfig, generate

    users, items, events = SYNTH_1M
    data = generate(SyntheticConfig(users=users, items=items, interactions=events, clusters=64, seed=11))
    dataset = build_dataset(from_table(data.interactions, DEFAULT_EVENT_WEIGHTS))
    params = AlsParams(factors=64, regularization=10.0, alpha=4.0, iterations=8, scaling=Scaling.log)
    cached = cache / "factors_1m.npz"
    if cached.is_file():
        npz = np.load(cached)
        result = AlsResult(npz["users"], npz["items"], params)
        assert result.user_factors.shape[0] == dataset.matrix.shape[0], "stale factor cache"
    else:
        result = fit_als(dataset.matrix, params)
    return write_als_version(artifacts, dataset, result, {}, items=data.items)


def prepare(model: str, cache: Path) -> Path:
    artifacts = cache / f"serve-{model}"
    done = artifacts / "als_v1"
    if (done / "manifest.json").is_file():
        return artifacts
    shutil.rmtree(artifacts, ignore_errors=True)
    t0 = time.perf_counter()
    (_version_ml1m if model == "ml1m" else lambda a: _version_1m(a, cache))(artifacts)
    print(f"[{model}] version built in {time.perf_counter() - t0:.0f}s", flush=True)
    return artifacts


def publish(artifacts: Path, redis_url: str, prefix: str) -> None:
    async def go() -> None:
        settings = StoreSettings(redis_url=redis_url, redis_prefix=prefix, artifacts=artifacts)
        store = RedisStore.from_settings(settings, bulk=True)
        try:
            await store.flush_namespace()
            await publish_version(artifacts / "als_v1", store)
        finally:
            await store.close()

    asyncio.run(go())


def warm_users(folder: Path, n: int = 2_000) -> list[str]:
    counts = np.load(folder / "profile_counts.npy")
    ids = load_mapping(folder, "user_mapping.json")
    rows = np.flatnonzero((counts >= 5) & (counts < 20))
    if len(rows) == 0:
        rows = np.arange(len(ids))
    pick = np.random.default_rng(0).choice(rows, min(n, len(rows)), replace=False)
    return [ids[r] for r in pick.tolist()]


class Server:
    def __init__(self, argv: list[str], env: dict[str, str], port: int) -> None:
        self.port = port
        # A file, never an unread pipe: a chatty server would block on it. Closed in stop().
        self.log = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=self.log, start_new_session=True
        )

    def wait(self, path: str) -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=2).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(self.log.read().decode()[-4000:] or "server died")
            time.sleep(0.2)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def wrk(
    port: int,
    path: str,
    bodies: list[bytes],
    seconds: float,
    connections: int = 32,
    headers: dict[str, str] | None = None,
) -> dict[str, float]:
    sent = {"Content-Type": "application/json", **(headers or {})}
    table = "{" + ", ".join(f'["{k}"] = "{v}"' for k, v in sent.items()) + "}"
    lua = (
        "bodies = {"
        + ",".join(json.dumps(b.decode()) for b in bodies)
        + "}\n"
        + (
            "local i = 0\n"
            "request = function()\n"
            "  i = i % #bodies + 1\n"
            f'  return wrk.format("POST", "{path}", {table}, bodies[i])\n'
            "end\n"
        )
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua)
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "--latency",
            "-s",
            f.name,
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    Path(f.name).unlink()

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        return float(m[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m[2]]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {
        "rps": rps,
        "p50": ms("50"),
        "p99": ms("99"),
        "non2xx": int(non2xx[1]) if non2xx else 0,
        "socket_errors": errors[0] if errors else "",
    }


def measure(port: int, path: str, bodies: list[bytes], seconds: float) -> dict[str, float]:
    wrk(port, path, bodies, 2)  # warm-up: page cache, connection pools, first-call costs
    peak = wrk(port, path, bodies, seconds)
    rate = peak["rps"] / 2
    held = open_loop("127.0.0.1", port, path, bodies, rate, seconds)
    if held.errors:
        print(f"held-rate errors on {path}: {held.error_kinds}", flush=True)
    return {
        **peak,
        "rate": rate,
        "ol_p50": held.pct(50),
        "ol_p99": held.pct(99),
        "ol_errors": held.errors,
        "ol_rate": held.achieved_rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="ml1m,1m")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--redis-url", default=os.environ.get("RECSYS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "recsys-bench")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed for the closed-loop peak: apt-get install wrk")
    args.cache.mkdir(parents=True, exist_ok=True)
    models = [m for m in args.models.split(",") if m]
    if "ml1m" in models and not (SHARED_DATA / "ml-1m").is_dir():
        print(f"skipping ml1m: {SHARED_DATA / 'ml-1m'} not found")
        models.remove("ml1m")
    prepared: list[Target] = []
    for model in models:
        artifacts = prepare(model, args.cache)
        prefix = f"bench-serve-{model}"
        t0 = time.perf_counter()
        publish(artifacts, args.redis_url, prefix)
        print(f"[{model}] published in {time.perf_counter() - t0:.1f}s", flush=True)
        users = warm_users(artifacts / "als_v1")
        bodies = [json.dumps({"user_id": u, "k": 100}).encode() for u in users]
        prepared.append(Target(model, artifacts, prefix, bodies))

    rows = []
    base_env = _base_env()
    for workers in [int(w) for w in args.workers.split(",")]:
        port = 18_000 + workers
        flags = ["--workers", str(workers), "--loop", "uvloop", "--http", "httptools", "--no-access-log"]
        bare = Server(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "bare_app:create_app",
                "--app-dir",
                str(BENCH),
                "--port",
                str(port),
                "--log-level",
                "warning",
                *flags,
            ],
            base_env,
            port,
        )
        bare.wait("/docs")
        any_bodies = prepared[0].bodies if prepared else [b'{"user_id": "u1", "k": 100}']
        try:
            base = measure(port, "/bare", any_bodies, args.seconds)
            rows.append(_row("bare FastAPI + orjson", "-", workers, base, base["rps"]))
            print(rows[-1], flush=True)
            for target in prepared:
                rows.append(_minimal(target, workers, port + 200, flags, base, args))
                print(rows[-1], flush=True)
                rows += _ours(target, workers, port + 100, port, base, args)
        finally:
            bare.stop()
    print()
    print_table(
        [
            "endpoint",
            "model",
            "workers",
            "peak req/s",
            "vs bare",
            "p50 ms",
            "p99 ms",
            "errors",
            "held req/s",
            "held p50 ms",
            "held p99 ms",
            "held errors",
        ],
        rows,
    )


@dataclass(frozen=True)
class Target:
    """One model as the servers under test see it: its version folder, Redis prefix and bodies."""

    model: str
    artifacts: Path
    prefix: str
    bodies: list[bytes]


def _ours(
    target: Target,
    workers: int,
    port: int,
    bare_port: int,
    base: dict[str, float],
    args: argparse.Namespace,
) -> list[list[object]]:
    """Our server on one model: peak, held at half of it, and the bare endpoint (idle until
    now) held at the same rate, so the generator's own noise at that rate is visible."""
    env = {
        **_base_env(),
        "RECSYS_ARTIFACTS": str(target.artifacts),
        "RECSYS_REDIS_URL": args.redis_url,
        "RECSYS_REDIS_PREFIX": target.prefix,
        "RECSYS_WORKERS": str(workers),
        "RECSYS_PORT": str(port),
        "RECSYS_LOG_LEVEL": "warning",
    }
    ours = Server([sys.executable, "-m", "app"], env, port)
    try:
        ours.wait("/readyz")
        sample = httpx.post(
            f"http://127.0.0.1:{port}/candidates",
            content=target.bodies[0],
            headers={"content-type": "application/json"},
        ).json()
        assert sample.get("method_used") == "als" and len(sample["candidates"]) == 100, sample
        result = measure(port, "/candidates", target.bodies, args.seconds)
    finally:
        ours.stop()
    out = [_row(f"/candidates ({sample['tier']} users)", target.model, workers, result, base["rps"])]
    held = open_loop("127.0.0.1", bare_port, "/bare", target.bodies, result["rate"], args.seconds)
    control = {**base, "ol_rate": held.achieved_rate, "ol_p50": held.pct(50), "ol_p99": held.pct(99)}
    control["ol_errors"] = held.errors
    out.append(_row(f"  bare, held at the rate above ({target.model})", "-", workers, control, base["rps"]))
    for row in out:
        print(row, flush=True)
    return out


def _minimal(
    target: Target,
    workers: int,
    port: int,
    flags: list[str],
    base: dict[str, float],
    args: argparse.Namespace,
) -> list[object]:
    """The floor on the same model and store: what any answer from it costs at the least."""
    env = {
        **_base_env(),
        "PYTHONPATH": str(ROOT),
        "MINIMAL_VERSION_DIR": str(target.artifacts / "als_v1"),
        "MINIMAL_REDIS_URL": args.redis_url,
        "MINIMAL_REDIS_PREFIX": target.prefix,
    }
    argv = [sys.executable, "-m", "uvicorn", "--factory", "minimal_app:create_app", "--app-dir", str(BENCH)]
    server = Server([*argv, "--port", str(port), "--log-level", "warning", *flags], env, port)
    try:
        server.wait("/docs")
        result = measure(port, "/minimal", target.bodies, args.seconds)
    finally:
        server.stop()
    return _row("minimal GET + search + orjson", target.model, workers, result, base["rps"])


def _base_env() -> dict[str, str]:
    """This process's environment without the service's own settings (each server gets its own)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("RECSYS_", "PROMETHEUS_"))}


def _row(name: str, model: str, workers: int, r: dict[str, float], bare_rps: float) -> list[object]:
    return [
        name,
        model,
        workers,
        f"{r['rps']:,.0f}",
        f"{r['rps'] / bare_rps:.2f}x",
        f"{r['p50']:.2f}",
        f"{r['p99']:.2f}",
        int(r["non2xx"]) + (1 if r["socket_errors"] else 0),
        f"{r['ol_rate']:,.0f}",
        f"{r['ol_p50']:.2f}",
        f"{r['ol_p99']:.2f}",
        int(r["ol_errors"]),
    ]


if __name__ == "__main__":
    main()
