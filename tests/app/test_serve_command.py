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


def test_an_item_hidden_through_one_worker_is_out_of_every_workers_answers_on_the_embedded_store(
    artifacts: Path, tmp_path: Path
) -> None:
    """Two workers of `recsys serve` share the artifacts folder's catalog file: whichever worker
    took the PATCH, the next answer of either leaves the item out, and so does a restarted server."""
    own = tmp_path / "artifacts"
    shutil.copytree(artifacts, own)
    asyncio.run(publish_version(own / "als_v1", EmbeddedStore(own)))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")}
    env["RECSYS_ADMIN_TOKEN"] = "embedded-items-token"
    auth = {"Authorization": "Bearer embedded-items-token"}
    command = [sys.executable, "-m", "training.cli", "serve", "--port", str(port), "--workers", "2"]
    url = f"http://127.0.0.1:{port}"
    with server_process([*command, "--artifacts", str(own)], env, port), httpx.Client(base_url=url) as client:
        top = client.post("/candidates", json={"user_id": "new-user", "k": 1}).json()["candidates"][0]
        hidden = client.patch(f"/items/{top['item_id']}", json={"hidden": True}, headers=auth)
        assert hidden.status_code == 200, hidden.text
        # New connections each time: the kernel spreads them over both workers.
        for _ in range(20):
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as fresh:
                answer = fresh.post("/candidates", json={"user_id": "new-user", "k": 50}).json()
            assert top["item_id"] not in [c["item_id"] for c in answer["candidates"]]
    assert (own / "CATALOG.jsonl").is_file()
    with server_process([*command, "--artifacts", str(own)], env, port), httpx.Client(base_url=url) as client:
        answer = client.post("/candidates", json={"user_id": "new-user", "k": 50}).json()
        assert top["item_id"] not in [c["item_id"] for c in answer["candidates"]]
        item = client.get(f"/items/{top['item_id']}", headers=auth).json()
        assert item["hidden"] is True and item["recommendable"] is False
