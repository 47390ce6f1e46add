"""The scale run: every stage from a synthetic log to served requests, with its time and peak memory.

    python bench/scale_run.py                                   # 10M users x 1M items x 100M events
    python bench/scale_run.py --users 1000000 --items 100000 --interactions 10000000 --spark
    python bench/scale_run.py --stages publish,serve --work /tmp/recsys-scale   # resume later stages

Each stage runs in a child process of its own, so its peak resident memory (ru_maxrss from wait4)
is that stage's alone, and stages hand over through files in --work as `recsys` does:
generate (synthetic parquet) -> dataset (read + aggregate + filter, saved) -> als (implicit, pinned
parameters, no holdout) -> index (Faiss, calibrated to recall 0.99) -> version (profiles, mappings,
manifest) -> publish (to a private redis-server of this run) -> serve (the real service on that
version and Redis; latency of /candidates from one client, sequential, then 8 concurrent).
`--spark` adds the Spark engine's read-and-aggregate and ALS fit on the same log (local mode here).
The table goes to stdout and, with every number, to <work>/scale_run.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import print_table

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["generate", "dataset", "als", "index", "version", "publish", "serve"]
SPARK_STAGES = ["spark_read", "spark_als"]


# -- the stages (each runs in its own process and prints one JSON line of facts) -------------------


def stage_generate(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from training.synthetic import SyntheticConfig, generate, write

    data = generate(
        SyntheticConfig(users=args.users, items=args.items, interactions=args.interactions, seed=7)
    )
    write(data, work / "data")
    return {"rows": data.interactions.num_rows, "bytes_on_disk": _size(work / "data")}


def stage_dataset(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from training.dataset import save_dataset
    from training.pipeline import load_dataset_from
    from training.settings import TrainSettings

    dataset = load_dataset_from(str(work / "data" / "interactions.parquet"), TrainSettings())
    save_dataset(dataset, work / "dataset")
    return {k: dataset.info[k] for k in ("users", "items", "pairs")}


def _params(args: argparse.Namespace) -> Any:
    from training.als import AlsParams
    from training.confidence import Scaling

    return AlsParams(
        factors=args.factors,
        regularization=args.regularization,
        alpha=args.alpha,
        iterations=args.iterations,
        scaling=Scaling.log,
        calculate_loss=False,
    )


def stage_als(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from training.als import fit_als
    from training.dataset import load_dataset

    dataset = load_dataset(work / "dataset")
    result = fit_als(dataset.matrix, _params(args))
    (work / "factors").mkdir(exist_ok=True)
    np.save(work / "factors" / "users.npy", result.user_factors)
    np.save(work / "factors" / "items.npy", result.item_factors)
    return {
        "fit_s": round(result.fit_seconds, 1),
        "s_per_iteration": round(result.fit_seconds / args.iterations, 1),
        "nnz": int(dataset.matrix.nnz),
    }


def stage_index(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from training.indexes import IndexParams, build_index, write_index

    items = np.load(work / "factors" / "items.npy")
    users = np.load(work / "factors" / "users.npy", mmap_mode="r")
    sample = np.asarray(users[np.random.default_rng(0).choice(len(users), 20_000, replace=False)])
    index, meta = build_index(items, IndexParams(), "als", "item_factors.npy", queries=sample)
    (work / "index").mkdir(exist_ok=True)
    write_index(index, work / "index", meta)
    (work / "index" / "meta.json").write_text(meta.model_dump_json())
    calibration = meta.params.get("calibration", {})
    beam = "nprobe" if "nprobe" in meta.params else "ef_search"
    return {
        "kind": str(meta.kind),
        "ntotal": meta.ntotal,
        beam: meta.params.get(beam),
        "recall_at_100": calibration.get("recall_by_beam", {}).get(str(meta.params.get(beam))),
    }


def stage_version(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from feature_store.index_files import IndexMeta, open_faiss_index
    from training.als import AlsResult
    from training.artifacts import write_als_version
    from training.dataset import load_dataset

    dataset = load_dataset(work / "dataset")
    meta = IndexMeta.model_validate_json((work / "index" / "meta.json").read_text())
    index = open_faiss_index(work / "index", meta, mmap=False)
    result = AlsResult(
        user_factors=np.load(work / "factors" / "users.npy"),
        item_factors=np.load(work / "factors" / "items.npy"),
        params=_params(args),
    )
    shutil.rmtree(work / "artifacts", ignore_errors=True)
    folder = write_als_version(
        work / "artifacts", dataset, result, {"scale_run": True}, prebuilt_index=(index, meta)
    )
    return {"version": folder.name, "bytes_on_disk": _size(folder)}


def stage_publish(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from feature_store.settings import StoreSettings
    from training.cli import run_publish

    settings = StoreSettings(redis_url=args.redis_url, artifacts=work / "artifacts")
    version = (work / "artifacts" / "LATEST").read_text().strip()
    report = run_publish(work / "artifacts" / version, settings)
    return {"users": report.users, "users_per_s": round(report.users_per_second), "version": version}


def stage_serve(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import asyncio

    import httpx

    from feature_store.version_files import load_mapping

    version = (work / "artifacts" / "LATEST").read_text().strip()
    users = load_mapping(work / "artifacts" / version, "user_mapping.json")
    rng = np.random.default_rng(1)
    picks = [str(users[i]) for i in rng.integers(0, len(users), 3_000)]
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")}
    env.update(
        RECSYS_ARTIFACTS=str(work / "artifacts"),
        RECSYS_REDIS_URL=args.redis_url,
        RECSYS_PORT=str(port),
        RECSYS_LOG_LEVEL="warning",
    )
    start = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "app"], cwd=ROOT, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None:
                raise RuntimeError("the server exited before it was ready")
            time.sleep(0.2)
        ready_s = time.perf_counter() - start
        methods: dict[str, int] = {}

        async def one(client: httpx.AsyncClient, user: str, out: list[float]) -> None:
            t = time.perf_counter()
            answer = await client.post("/candidates", json={"user_id": user, "k": 100})
            out.append((time.perf_counter() - t) * 1000)
            answer.raise_for_status()
            method = answer.json()["method_used"]
            methods[method] = methods.get(method, 0) + 1

        async def run(concurrency: int, batch: list[str]) -> list[float]:
            out: list[float] = []
            limits = httpx.Limits(max_connections=concurrency)
            async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as client:
                for user in batch[:100]:  # warm-up: page in the index and the connection pool
                    await one(client, user, [])
                queue = list(batch[100:])

                async def worker() -> None:
                    while queue:
                        await one(client, queue.pop(), out)

                await asyncio.gather(*(worker() for _ in range(concurrency)))
            return out

        sequential = asyncio.run(run(1, picks[:1_500]))
        t0 = time.perf_counter()
        concurrent = asyncio.run(run(8, picks[1_500:]))
        concurrent_s = time.perf_counter() - t0
        rss_mb = _rss_mb(server.pid)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)

    def pct(values: list[float]) -> dict[str, float]:
        return {f"p{p}": round(float(np.percentile(values, p)), 2) for p in (50, 95, 99)}

    return {
        "ready_s": round(ready_s, 1),
        "sequential_ms": pct(sequential),
        "concurrent8_ms": pct(concurrent),
        "concurrent8_rps": round(len(concurrent) / concurrent_s, 1),
        "methods": methods,
        "server_rss_mb": rss_mb,
    }


def stage_spark_read(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from training.dataset import build_dataset
    from training.events import DEFAULT_EVENT_WEIGHTS
    from training.settings import TrainSettings
    from training.spark.reader import read_with_spark
    from training.spark.session import spark_session

    settings = TrainSettings(spark_master="local[*]", spark_driver_memory=args.spark_memory)
    with spark_session(settings) as spark:
        log = read_with_spark(spark, str(work / "data" / "interactions.parquet"), DEFAULT_EVENT_WEIGHTS)
    dataset = build_dataset(log)
    return {k: dataset.info[k] for k in ("users", "items", "pairs")} | {
        "fingerprint": dataset.fingerprint[:16]
    }


def stage_spark_als(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from training.dataset import load_dataset
    from training.settings import TrainSettings
    from training.spark.als import fit_spark_als
    from training.spark.session import spark_session

    dataset = load_dataset(work / "dataset")
    settings = TrainSettings(spark_master="local[*]", spark_driver_memory=args.spark_memory)
    with spark_session(settings) as spark:
        result = fit_spark_als(spark, dataset.matrix, _params(args), None)
    return {
        "fit_s": round(result.fit_seconds, 1),
        "s_per_iteration": round(result.fit_seconds / args.iterations, 1),
    }


# -- the driver ---------------------------------------------------------------------------------


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb(pid: int) -> float:
    """Peak resident memory of a running process (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _run_stage(name: str, argv: list[str], work: Path) -> dict[str, Any]:
    """Run one stage in a child; its wall time, peak RSS and the facts it printed."""
    facts_file = work / f".facts-{name}.json"
    facts_file.unlink(missing_ok=True)
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, __file__, *argv, "--stage", name, "--facts", str(facts_file)])
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    ok = child.returncode == 0 and facts_file.is_file()
    return {
        "stage": name,
        "ok": ok,
        "seconds": round(seconds, 1),
        "peak_rss_gb": round(usage.ru_maxrss / 1024**2, 2),
        "facts": json.loads(facts_file.read_text()) if ok else {"exit_code": child.returncode},
    }


def _brief(facts: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in facts.items())[:160]


def _redis_memory_gb(url: str) -> float:
    import redis

    return round(int(redis.Redis.from_url(url).info("memory")["used_memory"]) / 1024**3, 2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=10_000_000)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--interactions", type=int, default=100_000_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--regularization", type=float, default=10.0)
    parser.add_argument("--alpha", type=float, default=4.0)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "recsys-scale")
    parser.add_argument("--stages", default=",".join(STAGES), help="Comma-separated stages to run.")
    parser.add_argument("--spark", action="store_true", help="Also run the Spark engine's stages.")
    parser.add_argument("--spark-memory", default="8g", help="Spark driver heap for --spark.")
    parser.add_argument("--redis-url", default=None, help="Publish here instead of a private redis-server.")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--facts", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.stage:  # a child: run one stage, write its facts
        facts = globals()[f"stage_{args.stage}"](args, args.work)
        Path(args.facts).write_text(json.dumps(facts, default=str))
        return

    args.work.mkdir(parents=True, exist_ok=True)
    wanted = [s for s in args.stages.split(",") if s]
    if args.spark:
        wanted += [s for s in SPARK_STAGES if s not in wanted]
    redis_proc = None
    if args.redis_url is None and {"publish", "serve"} & set(wanted):
        port = _free_port()
        args.redis_url = f"redis://127.0.0.1:{port}/0"
        redis_proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        time.sleep(0.5)
    passed = [
        *(f"--{k}={getattr(args, k)}" for k in ("users", "items", "interactions", "factors", "iterations")),
        *(f"--{k}={getattr(args, k)}" for k in ("regularization", "alpha")),
        f"--work={args.work}",
        f"--spark-memory={args.spark_memory}",
        *([f"--redis-url={args.redis_url}"] if args.redis_url else []),
    ]
    shape = f"{args.users:,} users x {args.items:,} items x {args.interactions:,} events"
    print(f"scale run: {shape} in {args.work}")
    rows: list[dict[str, Any]] = []
    try:
        order = [s for s in [*STAGES, *SPARK_STAGES] if s in wanted]
        if "serve" in order and "publish" not in order and redis_proc is not None:
            order.insert(order.index("serve"), "publish")  # a fresh Redis has nothing to serve
        for name in order:
            print(f"== {name}", flush=True)
            row = _run_stage(name, passed, args.work)
            if name == "publish" and args.redis_url:
                row["facts"]["redis_used_memory_gb"] = _redis_memory_gb(args.redis_url)
            rows.append(row)
            print(json.dumps(row), flush=True)
            if not row["ok"]:
                break
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait()
    results = {
        "shape": {"users": args.users, "items": args.items, "interactions": args.interactions},
        "params": {k: getattr(args, k) for k in ("factors", "iterations", "regularization", "alpha")},
        "cores": os.cpu_count(),
        "stages": rows,
    }
    (args.work / "scale_run.json").write_text(json.dumps(results, indent=2) + "\n")
    print_table(
        ["stage", "ok", "seconds", "peak RSS GB", "facts"],
        [
            [
                r["stage"],
                "yes" if r["ok"] else "FAILED",
                f"{r['seconds']:.1f}",
                f"{r['peak_rss_gb']:.2f}",
                _brief(r["facts"]),
            ]
            for r in rows
        ],
    )


if __name__ == "__main__":
    main()
