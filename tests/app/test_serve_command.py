"""`recsys serve` as users run it: a separate uvicorn process (two workers) on the embedded store."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import httpx

from feature_store.embedded_store import EmbeddedStore
from feature_store.publish import publish_version
from tests.app.conftest import users_by_tier
from tests.app.live_server import free_port, server_process

ROOT = Path(__file__).resolve().parents[2]


def test_recsys_serve_with_two_workers_answers_over_http_on_the_embedded_store(
    artifacts: Path, tmp_path: Path
) -> None:
    own = tmp_path / "artifacts"
    shutil.copytree(artifacts, own)
    asyncio.run(publish_version(own / "als_v1", EmbeddedStore(own)))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")}
    command = [sys.executable, "-m", "training.cli", "serve", "--port", str(port), "--workers", "2"]
    with server_process([*command, "--artifacts", str(own)], env, port):
        url = f"http://127.0.0.1:{port}"
        warm = users_by_tier(own / "als_v1")["warm"][0]
        with httpx.Client(base_url=url, timeout=10) as client:
            bodies = [client.post("/candidates", json={"user_id": warm, "k": 5}).json() for _ in range(20)]
            assert {(b["tier"], b["method_used"], b["model_version"]) for b in bodies} == {
                ("warm", "als", "als_v1")
            }
            metrics = client.get("/metrics").text
        served = [
            line for line in metrics.splitlines() if line.startswith("recsys_candidates_requests_total{")
        ]
        assert served and sum(float(line.rsplit(" ", 1)[1]) for line in served) == 20  # both workers merged
