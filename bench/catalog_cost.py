"""What the run-time catalog costs POST /candidates, side by side in one run, and how fast the
items API writes.

    python bench/catalog_cost.py                                    # ML-1M, 1% hidden/expiring
    python bench/catalog_cost.py --model synthetic --hidden 0,1000,100000 --rounds 3
    git worktree add /tmp/base <rev before the catalog>
    python bench/catalog_cost.py --model synthetic --hidden 0,1000,100000 --baseline /tmp/base
    python bench/catalog_cost.py --in-process --hidden 0,1000,100000 --rounds 7    # the search alone
    python bench/catalog_cost.py --model synthetic --alternate --hidden 1000,100000 --rounds 5

Servers (one worker each, a real Redis, each on a fresh key prefix): the code before the catalog
existed (`--baseline`, a checkout of it), ours with the catalog empty, and ours with items hidden
through the items API: `mixed` hides 1% of the items, gives as many an availability window that
closes in an hour and re-prices 200; a count hides that many random items (POST /items, 1,000 a
call, timed: the write rate). Per round each server's closed-loop peak (wrk, 1 thread, 32
connections; warm-routed users, k=100, exclude_seen on); the order rotates from round to round,
because the second server of a round ran faster in every round when it was fixed. Models: ML-1M
(flat index, 3,706 items) or a synthetic catalog (`--synthetic users,items,events`, default
200,000 items: an HNSW index, so hidden items go through the graph search's selector, or, past
10% of the catalog, through the filtered plans). Needs wrk.
"""

from __future__ import annotations

import argparse
import asyncio
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
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SHARED_DATA, print_table
from serve_throughput import Server, _base_env, prepare, publish, warm_users, wrk

from feature_store.version_files import load_mapping

TOKEN = "bench-catalog-token"


def hide(port: int, item_ids: list[str], count: int, seed: int = 0, hidden: bool = True) -> float:
    """Hide `count` random items through POST /items, 1,000 a call (`hidden=False`: show the same
    ones again); returns items written a second."""
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(item_ids), count, replace=False)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    started = time.perf_counter()
    for start in range(0, count, 1_000):
        entries = [{"item_id": item_ids[r], "hidden": hidden} for r in picked[start : start + 1_000]]
        response = httpx.post(
            f"http://127.0.0.1:{port}/items", json={"items": entries}, headers=headers, timeout=60
        )
        response.raise_for_status()
    return count / max(time.perf_counter() - started, 1e-9)


def patches_per_second(port: int, item_ids: list[str], calls: int = 300) -> float:
    """Single-item PATCH calls back to back (one connection): a shop's hide button."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as client:
        started = time.perf_counter()
        for i in range(calls):
            client.patch(f"/items/{item_ids[i]}", json={"attributes": {"price": float(i)}}).raise_for_status()
        return calls / (time.perf_counter() - started)


def group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) used so far by every process of a server's process group.
    Peak requests/s on this 2-core machine swing by 15% between identical servers (wrk, Redis
    and the server share the cores); CPU time per answer is what the server itself spends."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we read
        if int(fields[2]) == pgid:  # fields[2] is the process group (the 5th field of stat)
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def _plan_counts(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("recsys_index_search_seconds_count{"):
            plan = line.split('plan="', 1)[1].split('"', 1)[0]
            counts[plan] = counts.get(plan, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def wait_compact(port: int, bodies: list[bytes], timeout_s: float = 300.0) -> float | None:
    """Seconds until the server answers from a compact copy of its index (app/retrieval/
    compaction.py builds one in the background once the catalog blocks more than 2% of the
    rows), or None if it does not within `timeout_s`; the bench measures the state a shop lives
    in, not the build."""
    started = time.perf_counter()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        while time.perf_counter() - started < timeout_s:
            before = _plan_counts(port)
            for body in bodies[:20]:
                client.post("/candidates", content=body, headers={"content-type": "application/json"})
            after = _plan_counts(port)
            compact = after.get("graph_compact", 0.0) - before.get("graph_compact", 0.0)
            if compact >= 15:
                return time.perf_counter() - started
            time.sleep(0.5)
    return None


def synthetic_version(cache: Path, users: int, items: int, events: int) -> Path:
    """A synthetic catalog big enough for graph search (cached between runs)."""
    artifacts = cache / f"catalog-synthetic-{items}"
    if (artifacts / "als_v1" / "manifest.json").is_file():
        return artifacts
    from training.als import AlsParams, fit_als
    from training.artifacts import write_als_version
    from training.confidence import Scaling
    from training.dataset import build_dataset
    from training.events import DEFAULT_EVENT_WEIGHTS
    from training.interaction_log import from_table
    from training.synthetic import SyntheticConfig, generate

    started = time.perf_counter()
    data = generate(SyntheticConfig(users=users, items=items, interactions=events, clusters=64, seed=11))
    dataset = build_dataset(from_table(data.interactions, DEFAULT_EVENT_WEIGHTS))
    params = AlsParams(factors=64, regularization=10.0, alpha=4.0, iterations=8, scaling=Scaling.log)
    write_als_version(artifacts, dataset, fit_als(dataset.matrix, params), {})
    print(f"[synthetic] version built in {time.perf_counter() - started:.0f}s", flush=True)
    return artifacts


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


def flush(redis_url: str, prefix: str) -> None:
    from feature_store.redis_store import RedisStore
    from feature_store.settings import StoreSettings

    async def go() -> None:
        store = RedisStore.from_settings(StoreSettings(redis_url=redis_url, redis_prefix=prefix))
        try:
            await store.flush_namespace()
        finally:
            await store.close()

    asyncio.run(go())


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


def in_process(folder: Path, counts: list[int], rounds: int, queries: int = 2_000) -> None:
    """The search alone, without HTTP: `ItemIndex.search` for the same user vectors (k=100) with
    each count of rows blocked (the compact copy built first where it applies), the counts
    taking turns within each round. The servers' peaks swing by 15% on this shared machine; this
    isolates what blocking rows costs the search itself."""
    from app.retrieval import bitmaps
    from app.retrieval.catalog import VersionCatalog
    from app.retrieval.filters import NO_FILTER, with_catalog
    from app.retrieval.search import ItemIndex
    from feature_store.index_files import read_index_meta

    index = ItemIndex.load(folder, read_index_meta(folder)["als"])
    rng = np.random.default_rng(0)
    users = np.load(folder / "user_factors.npy", mmap_mode="r")
    qs = np.asarray(users[np.sort(rng.choice(len(users), queries, replace=False))], np.float32)
    filters = {}
    for count in counts:
        if count == 0:
            filters[count] = NO_FILTER
            continue
        blocked = np.sort(rng.choice(index.n, count, replace=False)).astype(np.int64)
        visible = bitmaps.invert(bitmaps.from_rows(index.n, blocked), index.n)
        filters[count] = with_catalog(NO_FILTER, VersionCatalog(index.n, blocked, visible, {}, float("inf")))
        plan = index.search(qs[0], 100, filters[count]).plan
        if index.compactor is not None and index.compactor.wait(600) is not None:
            plan = index.search(qs[0], 100, filters[count]).plan
        print(f"{count:,} blocked: plan {plan.value}", flush=True)
    times: dict[int, list[float]] = {c: [] for c in counts}
    for round_no in range(rounds):
        order = counts[round_no % len(counts) :] + counts[: round_no % len(counts)]
        for count in order:
            started = time.perf_counter()
            for q in qs:
                index.search(q, 100, filters[count])
            times[count].append(1e6 * (time.perf_counter() - started) / len(qs))
    rows = []
    for count in counts:
        ratios = [t / r for t, r in zip(times[count], times[counts[0]], strict=True)]
        rows.append(
            [f"{count:,}", round(statistics.median(times[count])), f"{statistics.median(ratios):.3f}"]
        )
    print_table(["rows blocked", "µs per search (median of rounds)", f"ratio to {counts[0]:,}"], rows)


def alternate(
    artifacts: Path, bodies: list[bytes], item_ids: list[str], counts: list[int], args: Any
) -> None:
    """One server; per round, each count of items hidden and then shown again, measured in turn
    with nothing hidden between: the same process, memory and connections for every state, so
    what differs between two neighbouring measurements is the catalog alone."""
    prefix = f"bench-catalog-{uuid.uuid4().hex[:8]}"
    publish(artifacts, args.redis_url, prefix)
    port = 18_450
    server = serve(artifacts, args.redis_url, prefix, port)
    peaks: dict[int, list[float]] = {c: [] for c in [0, *counts]}
    cpus: dict[int, list[float]] = {c: [] for c in [0, *counts]}
    rows: list[list[object]] = []
    try:
        wrk(port, "/candidates", bodies, 3)  # warm-up
        for round_no in range(1, args.rounds + 1):
            for count in counts:
                for state in (0, count):
                    if state:
                        hide(port, item_ids, count, seed=round_no)
                        if count > 0.02 * len(item_ids):
                            wait_compact(port, bodies)
                    wrk(port, "/candidates", bodies, 1)
                    cpu = group_cpu_s(server.proc.pid)
                    peak = wrk(port, "/candidates", bodies, args.seconds)
                    cpu_us = 1e6 * (group_cpu_s(server.proc.pid) - cpu) / max(peak["rps"] * args.seconds, 1.0)
                    if state:
                        hide(port, item_ids, count, seed=round_no, hidden=False)
                    peaks[state].append(peak["rps"])
                    cpus[state].append(cpu_us)
                    rows.append(
                        [round_no, state, round(peak["rps"]), round(cpu_us), peak["p50"], peak["p99"]]
                    )
                    print(rows[-1], flush=True)
    finally:
        server.stop()
        flush(args.redis_url, prefix)
    print_table(["round", "items hidden", "peak req/s", "server CPU µs/answer", "p50 ms", "p99 ms"], rows)
    print("\neach hidden state against the nothing-hidden measurement just before it:")
    for i, count in enumerate(counts):
        before = peaks[0][i :: len(counts)]
        cpu_before = cpus[0][i :: len(counts)]
        ratio = [h / b for h, b in zip(peaks[count], before, strict=True)]
        cpu_ratio = [h / b for h, b in zip(cpus[count], cpu_before, strict=True)]
        print(
            f"  {count:,} hidden: peak {statistics.median(ratio):.3f} "
            f"({', '.join(f'{r:.3f}' for r in ratio)}); CPU per answer {statistics.median(cpu_ratio):.3f} "
            f"({', '.join(f'{r:.3f}' for r in cpu_ratio)})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=("ml1m", "synthetic"), default="ml1m")
    parser.add_argument(
        "--hidden",
        default="mixed",
        help="'mixed': 1%% of the items hidden, as many expiring, 200 re-priced; or counts of hidden "
        "items to compare, e.g. 0,1000,100000",
    )
    parser.add_argument("--synthetic", default="200000,200000,4000000", help="users,items,events")
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
        "server joins each round as one more row",
    )
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "recsys-bench")
    parser.add_argument(
        "--in-process", action="store_true", help="time ItemIndex.search alone (no servers, no wrk)"
    )
    parser.add_argument(
        "--alternate",
        action="store_true",
        help="one server: hide each count, measure, show them again, measure, round after round",
    )
    args = parser.parse_args()
    if args.in_process:
        users, items, events = (int(x) for x in args.synthetic.split(","))
        folder = synthetic_version(args.cache, users, items, events) / "als_v1"
        counts = (
            [0, *[int(c) for c in args.hidden.split(",") if int(c)]] if args.hidden != "mixed" else [0, 1000]
        )
        in_process(folder, counts, args.rounds)
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed for the closed-loop peak: apt-get install wrk")
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.model == "ml1m":
        if not (SHARED_DATA / "ml-1m").is_dir():
            sys.exit(f"{SHARED_DATA / 'ml-1m'} not found")
        artifacts = prepare("ml1m", args.cache)
    else:
        users, items, events = (int(x) for x in args.synthetic.split(","))
        artifacts = synthetic_version(args.cache, users, items, events)
    folder = artifacts / "als_v1"
    bodies = [json.dumps({"user_id": u, "k": 100}).encode() for u in warm_users(folder)]
    item_ids = load_mapping(folder, "item_mapping.json")
    if args.alternate:
        alternate(artifacts, bodies, item_ids, [int(c) for c in args.hidden.split(",") if int(c)], args)
        return
    states = ["mixed"] if args.hidden == "mixed" else [str(int(c)) for c in args.hidden.split(",")]
    states = ["empty", *[s for s in states if s != "0"]]
    if args.baseline is not None:
        states.insert(0, "baseline")
    rows: list[list[object]] = []
    peaks: dict[str, list[float]] = {s: [] for s in states}
    cpus: dict[str, list[float]] = {s: [] for s in states}
    writes: list[float] = []
    patches: list[float] = []
    for round_no in range(1, args.rounds + 1):
        shift = round_no % len(states)
        order = states[shift:] + states[:shift]  # each state takes each place in turn
        for state in order:
            prefix = f"bench-catalog-{uuid.uuid4().hex[:8]}"
            publish(artifacts, args.redis_url, prefix)
            port = 18_400 + round_no
            tree = args.baseline if state == "baseline" else None
            server = serve(artifacts, args.redis_url, prefix, port, tree)
            try:
                hidden = 0
                if state == "mixed":
                    hidden = populate(port, item_ids, 0.01)
                elif state not in ("empty", "baseline"):
                    hidden = int(state)
                    writes.append(hide(port, item_ids, hidden))
                    if round_no == 1:
                        patches.append(patches_per_second(port, item_ids))
                    if hidden > 0.02 * len(item_ids) and args.model == "synthetic":
                        ready = wait_compact(port, bodies)
                        print(
                            f"  compact index answering {ready:.1f}s after the hide"
                            if ready
                            else "  no compact index within 300 s",
                            flush=True,
                        )
                wrk(port, "/candidates", bodies, 2)  # warm-up
                cpu = group_cpu_s(server.proc.pid)
                peak = wrk(port, "/candidates", bodies, args.seconds)
                cpu = group_cpu_s(server.proc.pid) - cpu
                peak["cpu_us"] = 1e6 * cpu / max(peak["rps"] * args.seconds, 1.0)
            finally:
                server.stop()
                flush(args.redis_url, prefix)  # millions of keys left behind slow every SCAN
            peaks[state].append(peak["rps"])
            cpus[state].append(peak["cpu_us"])
            rows.append(
                [
                    round_no,
                    state,
                    hidden,
                    round(peak["rps"]),
                    round(peak["cpu_us"]),
                    peak["p50"],
                    peak["p99"],
                    peak["non2xx"],
                ]
            )
            print(rows[-1], flush=True)
    print()
    print_table(
        [
            "round",
            "catalog",
            "items hidden",
            "peak req/s",
            "server CPU µs/answer",
            "p50 ms",
            "p99 ms",
            "non-2xx",
        ],
        rows,
    )
    reference = "baseline" if args.baseline is not None else "empty"
    print(f"\nmedian peak against the {reference} server of the same round:")
    for state in states:
        if state == reference:
            continue
        ratios = [p / r for p, r in zip(peaks[state], peaks[reference], strict=True)]
        print(f"  {state}: {statistics.median(ratios):.3f} (rounds: {', '.join(f'{r:.3f}' for r in ratios)})")
    print(f"\nmedian server CPU per answer against the {reference} server of the same round:")
    for state in states:
        if state == reference:
            continue
        ratios = [c / r for c, r in zip(cpus[state], cpus[reference], strict=True)]
        print(f"  {state}: {statistics.median(ratios):.3f} (rounds: {', '.join(f'{r:.3f}' for r in ratios)})")
    if writes:
        print(f"items API: {statistics.median(writes):,.0f} items/s hidden in batches of 1,000", end="")
        print(f"; {statistics.median(patches):,.0f} single PATCH calls/s" if patches else "")


if __name__ == "__main__":
    main()
