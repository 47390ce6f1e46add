"""What the run-time catalog costs POST /candidates: the same server with an empty catalog and
with hidden, expiring and re-priced items, side by side, peaks alternated to cancel drift.

    python bench/catalog_cost.py                          # ML-1M model, 1 worker, 4 rounds
    python bench/catalog_cost.py --hidden 0.01 --rounds 5 --seconds 8
    git worktree add /tmp/base <rev before the catalog> && python bench/catalog_cost.py --baseline /tmp/base

Per round: wrk's closed-loop peak (1 thread, 32 connections) of two servers, one with the
catalog empty, one with it populated through the items API (a share of the items hidden, as many
again with an availability window that closes in an hour, 200 attribute changes), the order
alternating from round to round, each on a fresh key prefix. Requests: warm-routed users, k=100,
exclude_seen on, a real Redis. The table gives each round's peaks and latencies, and the ratio
populated / empty. Needs wrk and ../shared/data/ml-1m.
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

from _common import SHARED_DATA, print_table
from serve_throughput import Server, _base_env, prepare, publish, warm_users, wrk

from feature_store.version_files import load_mapping

TOKEN = "bench-catalog-token"


def populate(port: int, item_ids: list[str], share: float, seed: int = 0) -> int:
    """Hide `share` of the items, give as many an expiry an hour ahead, re-price 200."""
    rng = np.random.default_rng(seed)
    n = max(1, int(share * len(item_ids)))
    picked = rng.choice(len(item_ids), 2 * n + 200, replace=False)
    entries: list[dict[str, object]] = [{"item_id": item_ids[r], "hidden": True} for r in picked[:n]]
    until = time.time() + 3600
    entries += [{"item_id": item_ids[r], "available_until": until} for r in picked[n : 2 * n]]
    entries += [{"item_id": item_ids[r], "attributes": {"price": float(r % 97)}} for r in picked[2 * n :]]
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for start in range(0, len(entries), 1_000):
        response = httpx.post(
            f"http://127.0.0.1:{port}/items",
            json={"items": entries[start : start + 1_000]},
            headers=headers,
            timeout=30,
        )
        response.raise_for_status()
    return n


class TreeServer(Server):
    """Our server run from another checkout (the baseline: the code before the catalog)."""

    def __init__(self, argv: list[str], env: dict[str, str], port: int, tree: Path) -> None:
        self.port = port
        self.log = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen(
            argv, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=self.log, start_new_session=True
        )


def serve(artifacts: Path, redis_url: str, prefix: str, port: int, tree: Path | None = None) -> Server:
    env = {
        **_base_env(),
        "RECSYS_ARTIFACTS": str(artifacts),
        "RECSYS_REDIS_URL": redis_url,
        "RECSYS_REDIS_PREFIX": prefix,
        "RECSYS_WORKERS": "1",
        "RECSYS_PORT": str(port),
        "RECSYS_LOG_LEVEL": "warning",
        "RECSYS_ADMIN_TOKEN": TOKEN,
    }
    argv = [sys.executable, "-m", "app"]
    server = Server(argv, env, port) if tree is None else TreeServer(argv, env, port, tree)
    server.wait("/readyz")
    return server


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hidden", type=float, default=0.01, help="share of the items hidden (and expiring)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument(
        "--redis-url", default=os.environ.get("RECSYS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="a checkout of the code before the catalog (git worktree add /tmp/base <rev>): its "
        "server joins each round as a third row",
    )
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "recsys-bench")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed for the closed-loop peak: apt-get install wrk")
    if not (SHARED_DATA / "ml-1m").is_dir():
        sys.exit(f"{SHARED_DATA / 'ml-1m'} not found")
    args.cache.mkdir(parents=True, exist_ok=True)
    artifacts = prepare("ml1m", args.cache)
    folder = artifacts / "als_v1"
    bodies = [json.dumps({"user_id": u, "k": 100}).encode() for u in warm_users(folder)]
    item_ids = load_mapping(folder, "item_mapping.json")
    rows, ratios, against = [], [], []
    for round_no in range(1, args.rounds + 1):
        peaks = {}
        # Alternate which goes first: the second server of a round ran faster in every round
        # when the order was fixed (warmer caches), whichever catalog it had.
        order = ["empty", "populated"] if round_no % 2 else ["populated", "empty"]
        if args.baseline is not None:
            order.insert(round_no % 3, "baseline")
        for state in order:
            prefix = f"bench-catalog-{uuid.uuid4().hex[:8]}"
            publish(artifacts, args.redis_url, prefix)
            port = 18_400 + round_no
            tree = args.baseline if state == "baseline" else None
            server = serve(artifacts, args.redis_url, prefix, port, tree)
            try:
                hidden = populate(port, item_ids, args.hidden) if state == "populated" else 0
                wrk(port, "/candidates", bodies, 2)  # warm-up
                peak = wrk(port, "/candidates", bodies, args.seconds)
            finally:
                server.stop()
            peaks[state] = peak["rps"]
            rows.append(
                [round_no, state, hidden, round(peak["rps"]), peak["p50"], peak["p99"], peak["non2xx"]]
            )
            print(rows[-1], flush=True)
        ratios.append(peaks["populated"] / peaks["empty"])
        if args.baseline is not None:
            against.append(peaks["populated"] / peaks["baseline"])
    print()
    print_table(["round", "catalog", "items hidden", "peak req/s", "p50 ms", "p99 ms", "non-2xx"], rows)
    print(
        f"\npopulated / empty peak: median {statistics.median(ratios):.3f} "
        f"(rounds: {', '.join(f'{r:.3f}' for r in ratios)})"
    )
    if against:
        print(
            f"populated / baseline peak: median {statistics.median(against):.3f} "
            f"(rounds: {', '.join(f'{r:.3f}' for r in against)})"
        )


if __name__ == "__main__":
    main()
