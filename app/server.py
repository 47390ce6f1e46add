"""Running the app under uvicorn with the fast loop and parser (uvloop, httptools).

Settings travel to worker processes as RECSYS_* environment variables (each worker builds its
own app from them), so this sets them before uvicorn starts. One worker per core is what the
bench measured best on a 2-core machine (README); more workers than cores only adds switching.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import tempfile

from app.settings import ServeSettings


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
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        access_log=False,  # per-request log lines cost more than the request; /metrics counts them
        timeout_graceful_shutdown=10,
        log_level=os.environ.get("RECSYS_LOG_LEVEL", "info"),
    )


def main() -> None:
    serve(ServeSettings())


if __name__ == "__main__":
    main()
