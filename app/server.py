"""Running the app under uvicorn with the fast loop and parser (uvloop, httptools).

Settings travel to worker processes as RECSYS_* environment variables (each worker builds its
own app from them), so this sets them before uvicorn starts. One worker per core is what the
bench measured best on a 2-core machine (docs/benchmarks/speed.md); more workers than cores only
adds switching.

The HTTP server's limits (head size and header count, read and idle timeouts, connections) are
enforced by `app.http_limits.LimitedHttpToolsProtocol`, httptools with what it lacks; without
httptools, uvicorn's h11 parser bounds the head's size, the idle time and the connections, but not
the header count or the read time, and that is logged as a warning.
"""

from __future__ import annotations

import asyncio
import copy
import importlib.util
import logging
import os
import tempfile
from typing import Any, Literal

from app.settings import ServeSettings

# The limits each worker reads back from the environment (app/http_limits.py builds its own
# settings there, since uvicorn, not this code, creates the protocol).
_HTTP_LIMIT_FIELDS = ("max_header_bytes", "max_headers", "read_timeout_s")


def http_protocol() -> type[asyncio.Protocol] | Literal["h11"]:
    """The HTTP protocol uvicorn runs: the class itself (uvicorn pickles it by name into spawned
    workers), or "h11" where httptools is not installed."""
    if importlib.util.find_spec("httptools") is None:
        return "h11"
    from app.http_limits import LimitedHttpToolsProtocol

    return LimitedHttpToolsProtocol


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging set-up plus the service's own `recsys.*` loggers, through the same handler:
    without it their INFO lines (a version loaded, a client that left) went nowhere."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["recsys"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config


def serve(settings: ServeSettings, env: dict[str, str] | None = None) -> None:
    import uvicorn

    os.environ.update(env or {})
    if settings.workers > 1 and not os.environ.get("RECSYS_REDIS_URL"):
        logging.getLogger("recsys.server").warning(
            "%d workers on the embedded store: each worker keeps its own run-time events "
            "(POST /interactions), so they disagree; set RECSYS_REDIS_URL for more than one worker",
            settings.workers,
        )
    if settings.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker writes its metrics to files here; /metrics merges them.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="recsys-metrics-")
    for field in _HTTP_LIMIT_FIELDS:
        os.environ[f"RECSYS_{field.upper()}"] = str(getattr(settings, field))
    http = http_protocol()
    if http == "h11":
        logging.getLogger("recsys.server").warning(
            "httptools is not installed: h11 serves without the header-count and read-time limits "
            "(RECSYS_MAX_HEADERS, RECSYS_READ_TIMEOUT_S); install httptools to enforce them"
        )
    log_level = os.environ.get("RECSYS_LOG_LEVEL", "info")
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http=http,
        access_log=False,  # per-request log lines cost more than the request; /metrics counts them
        timeout_graceful_shutdown=10,
        timeout_keep_alive=settings.keep_alive_timeout_s,
        # uvicorn refuses from the limit-th open connection on, this one included: +1 serves exactly
        # max_connections at once.
        limit_concurrency=settings.max_connections + 1,
        h11_max_incomplete_event_size=settings.max_header_bytes,
        log_config=log_config(log_level),
        log_level=log_level,
    )


def main() -> None:
    serve(ServeSettings())


if __name__ == "__main__":
    main()
