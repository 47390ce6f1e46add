"""A redis-server of a test's own (so it can be paused, killed, password-protected or put behind
TLS without touching the shared one), on a free 127.0.0.1 port."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import redis

from tests.app.live_server import free_port


def redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("RECSYS_REQUIRE_SERVICES"):
            pytest.fail("redis-server is required (scripts/test.sh installs it)")
        pytest.skip("redis-server not installed (scripts/test.sh installs it)")
    return binary


@dataclass
class PrivateRedis:
    proc: subprocess.Popen[bytes]
    port: int
    url: str

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


@contextmanager
def private_redis(
    extra_args: Sequence[str] = (), *, port: int | None = None, url: str | None = None, **client: object
) -> Iterator[PrivateRedis]:
    """Starts redis-server with `extra_args`, waits until `url` answers a PING (client options such
    as `ssl_ca_certs` go to that check), and kills it at the end whatever state it is in."""
    port = port or free_port()
    url = url or f"redis://127.0.0.1:{port}/0"
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *extra_args]
    proc = subprocess.Popen([redis_binary(), *args], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url, **client).ping()  # type: ignore[arg-type]
            break
        except (redis.ConnectionError, OSError):
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server {' '.join(args)} exited with {proc.returncode}") from None
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    try:
        yield PrivateRedis(proc, port, url)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
        proc.wait()
