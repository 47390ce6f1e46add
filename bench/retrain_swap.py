"""A weekly retrain against a live service under load: the new version swaps in without a failed
request, and the events the service recorded since the log was exported are in it.

    python bench/retrain_swap.py --redis-url redis://127.0.0.1:6379/0

A synthetic marketplace of 187 days ending now: the live version is `train-all` on the first 180
days, published to Redis (a fresh key prefix, removed afterwards) and served by `recsys serve`
(2 workers). New users' events go in through `POST /interactions`; then, while 16 requests are in
flight all the time, `recsys retrain` runs on the whole log and publishes. The table counts every
answer by status and by the version that gave it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import print_table
from recsys_client import AsyncRecsysClient, RecsysClient

from training.synthetic import SyntheticConfig, generate

RECSYS = str(Path(sys.executable).with_name("recsys"))
DAY = 86_400


async def _load(url: str, users: list[str], stop: asyncio.Event, counts: Counter[str]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:

        async def worker(offset: int) -> None:
            i = offset
            while not stop.is_set():
                try:
                    answer = await http.post("/candidates", json={"user_id": users[i % len(users)], "k": 20})
                    version = answer.json().get("model_version") if answer.status_code == 200 else None
                    counts[f"{answer.status_code} {version}"] += 1
                except httpx.HTTPError as exc:
                    counts[f"transport error {type(exc).__name__}"] += 1
                i += 16

        await asyncio.gather(*(worker(n) for n in range(16)))


async def _record(url: str, users: int) -> int:
    async with AsyncRecsysClient(url) as client:
        events = [
            {
                "user_id": f"joined-after-export-{u}",
                "item_id": f"i{(u * 13 + j) % 1500:06d}",
                "event_type": "like",
            }
            for u in range(users)
            for j in range(8)
        ]
        stored = await client.record(events)
        return stored.stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()
    prefix = f"bench-retrain-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")}
    env.update(RECSYS_REDIS_URL=args.redis_url, RECSYS_REDIS_PREFIX=prefix, RECSYS_RELOAD_POLL_S="1")
    with tempfile.TemporaryDirectory(prefix="bench-swap-") as tmp:
        work = Path(tmp)
        start_epoch = int(time.time()) - 187 * DAY
        data = generate(
            SyntheticConfig(users=5_000, items=1_500, interactions=150_000, days=187, start_epoch=start_epoch)
        )
        table = data.interactions
        pq.write_table(
            table.filter(pc.less(table["timestamp"], start_epoch + 180 * DAY)), work / "week0.parquet"
        )
        pq.write_table(table, work / "week1.parquet")
        pq.write_table(data.items, work / "items.parquet")
        artifacts = work / "artifacts"
        base = ["--items", str(work / "items.parquet"), "--artifacts", str(artifacts)]
        subprocess.run(
            [RECSYS, "train-all", "-i", str(work / "week0.parquet"), *base, "--test-split", "0"],
            env=env,
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [RECSYS, "publish", "--artifacts", str(artifacts)], env=env, check=True, capture_output=True
        )
        server = subprocess.Popen(
            [RECSYS, "serve", "--port", str(args.port), "--workers", "2", "--artifacts", str(artifacts)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{args.port}"
        try:
            with RecsysClient(url) as client:
                client.wait_ready(timeout_s=60)
            recorded = asyncio.run(_record(url, 40))
            counts: Counter[str] = Counter()

            async def run() -> tuple[int, float]:
                stop = asyncio.Event()
                load = asyncio.create_task(_load(url, [f"u{i:06d}" for i in range(5_000)], stop, counts))
                started = time.perf_counter()
                retrain = await asyncio.create_subprocess_exec(
                    RECSYS,
                    "retrain",
                    "-i",
                    str(work / "week1.parquet"),
                    *base,
                    env=env,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                code = await retrain.wait()
                while httpx.get(f"{url}/readyz").json().get("model_version") != "als_v2" and code == 0:
                    await asyncio.sleep(0.2)
                await asyncio.sleep(3)  # answers from the new version, still under load
                stop.set()
                await load
                return code, time.perf_counter() - started

            code, seconds = asyncio.run(run())
        finally:
            server.terminate()
            server.wait(timeout=30)
            _flush(args.redis_url, prefix)
        record = [json.loads(line) for line in (artifacts / "RETRAINS.jsonl").read_text().splitlines()][-1]
        users = json.loads((artifacts / "als_v2" / "user_mapping.json").read_text()) if code == 0 else []
        events = (
            json.loads((artifacts / "als_v2" / "metrics.json").read_text())["data"]["events"]
            if code == 0
            else 0
        )
    print(f"retrain exit {code} ({record['decision']}) in {seconds:.0f}s under load")
    rows = [[what, n] for what, n in sorted(counts.items())]
    rows.append(["events recorded through POST /interactions before the retrain", recorded])
    rows.append(["stream events the retrain added", record["data"]["stream_events_added"]])
    rows.append(
        ["log rows + stream events = events in als_v2", f"{table.num_rows:,} + {recorded} = {events:,}"]
    )
    rows.append(
        ["new users from the stream in als_v2", sum(u.startswith("joined-after-export-") for u in users)]
    )
    print_table(["answers by status and version / counts", "n"], rows)


def _flush(redis_url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=10_000))
    for start in range(0, len(keys), 5_000):
        client.unlink(*keys[start : start + 5_000])


if __name__ == "__main__":
    main()
