"""Publish throughput to Redis: our bulk write against the ceilings measured in the same run.

    python bench/publish_speed.py --users 1000000

Starts a private redis-server on a spare port (nothing persisted), builds a synthetic profile
table (64-dim ALS vector, ~10 seen and recent items per user: ~430 bytes a value), and writes the
same keys and values four ways: redis-py one SET per key (pipelined), redis-py MSET batches of
1,000, `redis-cli --pipe` of a raw RESP file (the server's ceiling), and RedisStore.write_version
(what `recsys publish` runs).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import print_table

from feature_store.bulk_pack import pack_rows
from feature_store.keys import KeySchema
from feature_store.redis_store import RedisStore
from feature_store.settings import StoreSettings
from feature_store.version_files import ProfileTable

PORT = 56399


def make_table(n: int, dim: int = 64, seed: int = 0) -> ProfileTable:
    rng = np.random.default_rng(seed)
    lengths = np.minimum(rng.lognormal(1.8, 0.8, n).astype(np.int64) + 1, 200)
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    seen = rng.integers(0, 100_000, indptr[-1]).astype(np.int32)
    return ProfileTable(
        user_ids=[f"{i:08x}-5eed-4c0d-9a11-{i:012x}" for i in range(n)],  # UUID-shaped ids
        counts=lengths.astype(np.int32),
        embeddings={"als": rng.standard_normal((n, dim)).astype(np.float32)},
        seen_indptr=indptr,
        seen_items=seen,
        recent_indptr=indptr,
        recent_items=seen,
        recent_weights=rng.uniform(0.5, 3.5, len(seen)).astype(np.float32),
    )


def start_redis(workdir: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(PORT),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=PORT)
    for _ in range(100):
        try:
            client.ping()
            return proc
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def resp(*parts: bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for p in parts:
        out += [b"$%d\r\n" % len(p), p, b"\r\n"]
    return b"".join(out)


async def per_key_set(keys: list[str], values: list[bytes]) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis(port=PORT)
    for start in range(0, len(keys), 10_000):
        pipe = client.pipeline(transaction=False)
        for k, v in zip(keys[start : start + 10_000], values[start : start + 10_000], strict=True):
            pipe.set(k, v)
        await pipe.execute()
    await client.aclose()


async def mset_batches(keys: list[str], values: list[bytes]) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis(port=PORT)
    for start in range(0, len(keys), 1_000):
        await client.mset(dict(zip(keys[start : start + 1_000], values[start : start + 1_000], strict=True)))
    await client.aclose()


async def ours(table: ProfileTable) -> None:
    store = RedisStore.from_settings(StoreSettings(redis_url=f"redis://127.0.0.1:{PORT}/0"), bulk=True)
    await store.write_version("als_v1", table)
    await store.close()


def dbsize() -> int:
    import redis

    return int(redis.Redis(port=PORT).dbsize())


def flush() -> None:
    import redis

    redis.Redis(port=PORT).flushall()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=1_000_000)
    args = ap.parse_args()
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        sys.exit("redis-server and redis-cli are needed (apt-get install redis-server)")
    workdir = Path(tempfile.mkdtemp(prefix="publish-bench-"))
    proc = start_redis(workdir)
    try:
        table = make_table(args.users)
        keys = [KeySchema().profile("als_v1", u) for u in table.user_ids]
        t0 = time.perf_counter()
        values = [
            v
            for s in range(0, args.users, 10_000)
            for v in pack_rows(table, s, min(s + 10_000, args.users), 50)
        ]
        pack_s = time.perf_counter() - t0
        mean_bytes = float(np.mean([len(v) for v in values[:10_000]]))
        resp_file = workdir / "load.resp"
        with resp_file.open("wb") as fh:
            for k, v in zip(keys, values, strict=True):
                fh.write(resp(b"SET", k.encode(), v))
        results: list[tuple[str, float]] = []

        def timed(label: str, fn) -> None:
            flush()
            t0 = time.perf_counter()
            fn()
            seconds = time.perf_counter() - t0
            assert dbsize() == args.users, f"{label}: wrote {dbsize()} keys"
            results.append((label, seconds))
            print(f"{label}: {seconds:.2f}s", flush=True)

        timed(
            "redis-cli --pipe (raw RESP SET file; ceiling)",
            lambda: subprocess.run(
                f"redis-cli -p {PORT} --pipe < {resp_file}", shell=True, check=True, stdout=subprocess.DEVNULL
            ),
        )
        timed("redis-py: one SET per key, pipelined 10k", lambda: asyncio.run(per_key_set(keys, values)))
        timed("redis-py: MSET batches of 1,000", lambda: asyncio.run(mset_batches(keys, values)))
        timed("RedisStore.write_version (recsys publish)", lambda: asyncio.run(ours(table)))
        ceiling = args.users / results[0][1]
        rows = [
            [
                label,
                f"{args.users / s:,.0f}",
                f"{args.users * mean_bytes / s / 2**20:.0f}",
                f"{args.users / s / ceiling:.2f}",
            ]
            for label, s in results
        ]
        pack_rate = args.users / pack_s
        print(f"\n{args.users:,} users, {mean_bytes:.0f} bytes per value (packing: {pack_rate:,.0f}/s)")
        print_table(["method", "users/s", "MB/s", "vs --pipe"], rows)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
