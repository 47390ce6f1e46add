"""What the ranking stage costs POST /candidates: the same server, the same users, the ranker on
against off through two A/B variants (`ranker: false` in one), side by side in each round.

    python bench/ranker_latency.py                  # synthetic log, train-all --ranker (cached)
    python bench/ranker_latency.py --rounds 5 --seconds 10

One server (one worker, a real Redis, the version published under a fresh key prefix), warm and
hot users (the tiers the ranker serves when it won them on validation), k=100, exclude_seen on.
Per round and variant: the closed-loop peak (wrk, 1 thread, 32 connections) and the server's
CPU time per answer; then latency with both held at half the slower variant's peak (open loop,
so queueing shows). The variants alternate which goes first. Needs wrk.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_table
from _openloop import open_loop
from catalog_cost import flush, group_cpu_s
from serve_throughput import Server, _base_env, publish, wrk

from feature_store.version_files import load_mapping

VARIANTS = {"ranked": True, "unranked": False}


def ranked_version(cache: Path, users: int, items: int, events: int) -> Path:
    """A train-all version with a ranker on a synthetic log (cached between runs)."""
    artifacts = cache / f"ranker-synthetic-{users}-{items}-{events}"
    if (artifacts / "als_v1" / "manifest.json").is_file():
        return artifacts
    shutil.rmtree(artifacts, ignore_errors=True)
    from training.synthetic import SyntheticConfig, generate, write

    data_dir = cache / f"ranker-data-{users}-{items}-{events}"
    inter, meta = write(
        generate(SyntheticConfig(users=users, items=items, interactions=events, clusters=32, seed=3)),
        data_dir,
    )
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "training.cli",
            "train-all",
            "-i",
            str(inter),
            "--items",
            str(meta),
            "--artifacts",
            str(artifacts),
            "--ranker",
            "--test-split",
            "0",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    print(f"[ranker] version built in {time.perf_counter() - started:.0f}s", flush=True)
    return artifacts


def ranked_users(folder: Path, tiers: list[str], n: int = 2_000) -> list[str]:
    counts = np.load(folder / "profile_counts.npy")
    ids = load_mapping(folder, "user_mapping.json")
    ok = np.zeros(len(counts), bool)
    if "warm" in tiers:
        ok |= (counts >= 5) & (counts < 20)
    if "hot" in tiers:
        ok |= counts >= 20
    if "cold" in tiers:
        ok |= counts < 5
    rows = np.flatnonzero(ok)
    pick = np.random.default_rng(0).choice(rows, min(n, len(rows)), replace=False)
    return [ids[r] for r in pick.tolist()]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--synthetic", default="20000,5000,500000", help="users,items,events")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument(
        "--redis-url", default=os.environ.get("RECSYS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "recsys-bench")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed for the closed-loop peak: apt-get install wrk")
    args.cache.mkdir(parents=True, exist_ok=True)
    users, items, events = (int(x) for x in args.synthetic.split(","))
    artifacts = ranked_version(args.cache, users, items, events)
    folder = artifacts / "als_v1"
    entry = json.loads((folder / "manifest.json").read_text())["hyperparameters"]["ranker"]
    print(f"ranker serves tiers {entry['tiers']}, {entry['per_source']} candidates a source", flush=True)
    bodies = [json.dumps({"user_id": u, "k": 100}).encode() for u in ranked_users(folder, entry["tiers"])]
    ab = args.cache / "ranker-ab.json"
    ab.write_text(
        json.dumps(
            {
                "salt": "bench",
                "variants": [{"name": n, "traffic": 0.5, "ranker": on} for n, on in VARIANTS.items()],
            }
        )
    )
    prefix = f"bench-ranker-{uuid.uuid4().hex[:8]}"
    publish(artifacts, args.redis_url, prefix)
    port = 18_470
    env = {
        **_base_env(),
        "RECSYS_ARTIFACTS": str(artifacts),
        "RECSYS_REDIS_URL": args.redis_url,
        "RECSYS_REDIS_PREFIX": prefix,
        "RECSYS_WORKERS": "1",
        "RECSYS_PORT": str(port),
        "RECSYS_LOG_LEVEL": "warning",
        "RECSYS_AB_CONFIG": str(ab),
    }
    server = Server([sys.executable, "-m", "app"], env, port)
    rows: list[list[object]] = []
    held: dict[str, list[tuple[float, float]]] = {n: [] for n in VARIANTS}
    peaks: dict[str, list[float]] = {n: [] for n in VARIANTS}
    cpus: dict[str, list[float]] = {n: [] for n in VARIANTS}
    try:
        server.wait("/readyz")
        for name in VARIANTS:  # each variant's method_used, as a user would check it
            reply = httpx.post(
                f"http://127.0.0.1:{port}/candidates",
                content=bodies[0],
                headers={"X-AB-Variant": name, "content-type": "application/json"},
                timeout=30,
            ).json()
            print(f"{name}: method_used {reply['method_used']}", flush=True)
        for round_no in range(1, args.rounds + 1):
            order = list(VARIANTS) if round_no % 2 else list(reversed(VARIANTS))
            peak: dict[str, dict[str, float]] = {}
            for name in order:
                headers = {"X-AB-Variant": name}
                wrk(port, "/candidates", bodies, 2, headers=headers)  # warm-up
                cpu = group_cpu_s(server.proc.pid)
                peak[name] = wrk(port, "/candidates", bodies, args.seconds, headers=headers)
                cpus[name].append(
                    1e6 * (group_cpu_s(server.proc.pid) - cpu) / (peak[name]["rps"] * args.seconds)
                )
                peaks[name].append(peak[name]["rps"])
            rate = min(p["rps"] for p in peak.values()) / 2  # both held at half the slower one's peak
            for name in order:
                result = open_loop(
                    "127.0.0.1", port, "/candidates", bodies, rate, args.seconds, {"X-AB-Variant": name}
                )
                held[name].append((result.pct(50), result.pct(99)))
                rows.append(
                    [
                        round_no,
                        name,
                        round(peak[name]["rps"]),
                        round(cpus[name][-1]),
                        round(rate),
                        round(result.pct(50), 2),
                        round(result.pct(99), 2),
                        result.errors,
                    ]
                )
                print(rows[-1], flush=True)
    finally:
        server.stop()
        flush(args.redis_url, prefix)
    print()
    print_table(
        ["round", "variant", "peak req/s", "server CPU µs/answer", "held rate", "p50 ms", "p99 ms", "errors"],
        rows,
    )
    ratio = [r / u for r, u in zip(peaks["ranked"], peaks["unranked"], strict=True)]
    cpu_ratio = [r / u for r, u in zip(cpus["ranked"], cpus["unranked"], strict=True)]
    p99 = [r[1] - u[1] for r, u in zip(held["ranked"], held["unranked"], strict=True)]
    p50 = [r[0] - u[0] for r, u in zip(held["ranked"], held["unranked"], strict=True)]
    print(
        f"\nranked / unranked peak: median {statistics.median(ratio):.3f} "
        f"({', '.join(f'{r:.3f}' for r in ratio)})"
    )
    print(f"ranked / unranked CPU per answer: median {statistics.median(cpu_ratio):.3f}")
    print(
        f"ranked - unranked at the held rate: p50 {statistics.median(p50):+.2f} ms, "
        f"p99 {statistics.median(p99):+.2f} ms (rounds: {', '.join(f'{d:+.2f}' for d in p99)})"
    )


if __name__ == "__main__":
    main()
