"""A real uvicorn server on a free 127.0.0.1 port, in a thread of the test process, so tests talk
HTTP to it and can still look at the app's state (which version it holds, its metrics)."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx
import uvicorn
from fastapi import FastAPI

from app.state import Services

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def services(self) -> Services:
        svc: Services = self.app.state.services
        return svc

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@contextmanager
def server_process(command: list[str], env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    """The service as users start it: a separate process (its own session, so its workers stop with
    it), yielded once /readyz answers 200; its output stays readable in `proc.stdout` afterwards.

    The output is read as it comes: a pipe nobody reads fills up (64 KiB) and then blocks the
    server's next log line, and with it the server's event loop."""
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    output = bytearray()
    drain = threading.Thread(target=_drain, args=(proc.stdout, output), daemon=True)
    drain.start()
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None:
                drain.join(timeout=5)
                raise AssertionError(output.decode(errors="replace"))
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.1)
        yield proc
    finally:
        with suppress(ProcessLookupError):  # the whole group already gone
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired as err:
            # A shutdown that hangs is a failure, but one that says what the server last wrote,
            # and leaves no process behind to hold the port and the store.
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            drain.join(timeout=5)
            tail = bytes(output[-4000:]).decode(errors="replace")
            raise AssertionError(
                f"the server did not stop within 30 s of SIGTERM; its last output:\n{tail}"
            ) from err
        drain.join(timeout=5)
        proc.stdout = io.BytesIO(bytes(output))


def _drain(stream: IO[bytes] | None, into: bytearray) -> None:
    if stream is None:
        return
    with stream:
        for chunk in iter(lambda: stream.read1(1 << 16), b""):  # type: ignore[attr-defined]
            into += chunk
