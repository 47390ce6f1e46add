"""A constant-rate (open-loop) HTTP load generator on raw asyncio streams.

Request i is due at t0 + i / rate whatever happened to earlier ones; its latency is counted from
that due time, so a server that falls behind shows its queueing in the percentiles instead of
silently slowing the generator down (the "coordinated omission" a closed loop like wrk has).
Bodies are pre-encoded; connections are HTTP/1.1 keep-alive, opened as needed.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np


@dataclass
class OpenLoopResult:
    rate: float
    sent: int
    ok: int
    errors: int
    latencies_ms: np.ndarray
    achieved_rate: float
    error_kinds: dict[str, int]

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else float("nan")


def _request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def _run(
    host: str, port: int, path: str, bodies: list[bytes], rate: float, seconds: float, headers: dict[str, str]
) -> OpenLoopResult:
    requests = [_request(host, port, path, b, headers) for b in bodies]
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    latencies: list[float] = []
    errors = 0
    kinds: dict[str, int] = {}
    total = int(rate * seconds)
    t0 = time.perf_counter() + 0.05

    async def exchange(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], i: int) -> int:
        conn[1].write(requests[i % len(requests)])
        return await _read_response(conn[0])

    async def one(i: int, due: float) -> None:
        nonlocal errors
        reused = bool(idle)
        conn = idle.pop() if idle else await asyncio.open_connection(host, port)
        try:
            try:
                status = await exchange(conn, i)
            except (ConnectionResetError, asyncio.IncompleteReadError) as exc:
                # The server closed this kept-alive connection while it sat idle in our pool
                # (uvicorn's keep-alive timeout): an HTTP client sends again on a new one, as
                # httpx does. Only a connection that got no byte of an answer is retried.
                if not reused or (isinstance(exc, asyncio.IncompleteReadError) and exc.partial):
                    raise
                conn[1].close()
                conn = await asyncio.open_connection(host, port)
                status = await exchange(conn, i)
            latencies.append((time.perf_counter() - due) * 1000)
            if status != 200:
                errors += 1
                kinds[f"HTTP {status}"] = kinds.get(f"HTTP {status}", 0) + 1
            idle.append(conn)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            errors += 1
            kinds[type(exc).__name__] = kinds.get(type(exc).__name__, 0) + 1
            conn[1].close()

    tasks = []
    for i in range(total):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - t0
    for _, writer in idle:
        writer.close()
    ok = len(latencies) - errors
    return OpenLoopResult(rate, total, ok, errors, np.array(latencies), total / elapsed, kinds)


def open_loop(
    host: str,
    port: int,
    path: str,
    bodies: list[bytes],
    rate: float,
    seconds: float,
    headers: dict[str, str] | None = None,
) -> OpenLoopResult:
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is in the serve extra
        runner = asyncio.run
    return runner(_run(host, port, path, bodies, rate, seconds, headers or {}))
