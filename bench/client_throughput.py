"""The Python client's cost, and the batch endpoint's gain, against one real server in one run.

    python bench/client_throughput.py                 # 3 rounds of 4 s per row
    python bench/client_throughput.py --seconds 2 --users 20000

Trains a synthetic version (recsys generate + train), publishes it to the embedded store, serves
it with `recsys serve` (1 worker) and measures, taking turns over three rounds (medians):

- POST /candidates (k=20) with raw `httpx.AsyncClient`, 32 requests in flight, then one at a time;
- the same through `AsyncRecsysClient` (typed models, retry policy);
- users per second through `POST /candidates/batch` (500 users a call, 2 calls in flight)
  against single calls through the async client.

Client and server share this machine's cores, so the ratios are the result, not the absolute
numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import print_table
from recsys_client import AsyncRecsysClient, RecsysClient

RECSYS = str(Path(sys.executable).with_name("recsys"))
IN_FLIGHT = 32


def _run(*args: str) -> None:
    subprocess.run([RECSYS, *args], check=True, stdout=subprocess.DEVNULL)


async def _loop(seconds: float, in_flight: int, one: Callable[[int], Awaitable[int]]) -> float:
    """Units per second (a unit: a request, or a user of a batch) over `seconds`."""
    done = 0
    deadline = time.perf_counter() + seconds
    counter = iter(range(10**12))

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            units = await one(next(counter))  # awaited first: `done += await ...` reads `done` early
            done += units

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return done / (time.perf_counter() - started)


async def measure(url: str, users: list[str], seconds: float, rounds: int = 3) -> list[list[object]]:
    """Raw httpx and the client take turns, `rounds` times, and each rate is the median of its
    rounds: the machine's drift (a neighbour's load) lands on both sides of the ratio."""
    n = len(users)
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    rates: dict[str, list[float]] = {"raw": [], "client": [], "raw1": [], "client1": [], "batch": []}
    async with (
        httpx.AsyncClient(base_url=url, limits=limits, timeout=10) as raw,
        AsyncRecsysClient(url, max_connections=IN_FLIGHT) as client,
    ):

        async def raw_one(i: int) -> int:
            response = await raw.post("/candidates", json={"user_id": users[i % n], "k": 20})
            response.raise_for_status()
            response.json()
            return 1

        async def client_one(i: int) -> int:
            await client.candidates(users[i % n], k=20)
            return 1

        async def batch_one(i: int) -> int:
            start = (i * 500) % n
            answers = await client.candidates_batch(users[start : start + 500] or users[:500], k=20)
            return len(answers)

        await _loop(1, IN_FLIGHT, raw_one)  # warm up both pools
        await _loop(1, IN_FLIGHT, client_one)
        for _ in range(rounds):
            rates["raw"].append(await _loop(seconds, IN_FLIGHT, raw_one))
            rates["client"].append(await _loop(seconds, IN_FLIGHT, client_one))
            rates["raw1"].append(await _loop(seconds, 1, raw_one))
            rates["client1"].append(await _loop(seconds, 1, client_one))
            rates["batch"].append(await _loop(seconds, 2, batch_one))
    raw_rps, client_rps, raw1, client1, batch_ups = (statistics.median(r) for r in rates.values())
    return [
        ["POST /candidates, raw httpx (1 in flight)", f"{raw1:,.0f} req/s", "1.00"],
        [
            "POST /candidates, AsyncRecsysClient (1 in flight)",
            f"{client1:,.0f} req/s",
            f"{client1 / raw1:.2f}",
        ],
        ["POST /candidates, raw httpx (32 in flight)", f"{raw_rps:,.0f} req/s", "1.00"],
        [
            "POST /candidates, AsyncRecsysClient (32 in flight)",
            f"{client_rps:,.0f} req/s",
            f"{client_rps / raw_rps:.2f}",
        ],
        ["users/s, single calls through the client", f"{client_rps:,.0f} users/s", "1.00"],
        [
            "users/s, POST /candidates/batch (500 a call, 2 in flight)",
            f"{batch_ups:,.0f} users/s",
            f"{batch_ups / client_rps:.2f}",
        ],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="per round; 3 rounds")
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _run(
            "generate",
            "--out",
            str(work / "data"),
            "--users",
            str(args.users),
            "--items",
            "5000",
            "--interactions",
            str(args.users * 25),
        )
        _run(
            "train", "-i", str(work / "data" / "interactions.parquet"), "--artifacts", str(work / "artifacts")
        )
        _run("publish", "--artifacts", str(work / "artifacts"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")}
        server = subprocess.Popen(
            [
                RECSYS,
                "serve",
                "--port",
                str(args.port),
                "--workers",
                "1",
                "--artifacts",
                str(work / "artifacts"),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{args.port}"
        try:
            with RecsysClient(url) as client:
                client.wait_ready(timeout_s=60)
            users = [f"u{i:06d}" for i in range(args.users)]
            rows = asyncio.run(measure(url, users, args.seconds))
        finally:
            server.terminate()
            server.wait(timeout=30)
    print_table(["what", "rate", "ratio"], rows)


if __name__ == "__main__":
    main()
