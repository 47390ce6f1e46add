"""Hiding a large share of a graph-indexed catalog at once, over HTTP: `python -m app` with two
workers on a real Redis, a load generator running before, during and after the compact copy of
the index is built in each worker. No answer sent after the hide returned holds a hidden item,
the workers end up searching the compact copy, and showing the items again brings them back."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from feature_store.index_files import IndexKind
from feature_store.version_files import load_mapping
from tests.app.conftest import flush, publish, redis_settings, users_by_tier
from tests.app.live_server import free_port, server_process
from tests.builders import train_versions

TOKEN = "compaction-load-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def graph_version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small version behind an HNSW graph (auto would pick exact search for 300 items)."""
    artifacts = tmp_path_factory.mktemp("graph") / "artifacts"
    return train_versions(artifacts, index_kind=IndexKind.hnsw)[0]


def _compact_searches(client: httpx.Client) -> float:
    total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("recsys_index_search_seconds_count{") and 'plan="graph_compact"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_hiding_40_percent_of_a_graph_catalog_under_load_never_serves_a_hidden_item(
    graph_version: Path, redis_url: str
) -> None:
    artifacts = graph_version.parent
    store = redis_settings(redis_url, artifacts)
    publish(store, graph_version)
    assert store.redis_url is not None
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECSYS_", "PROMETHEUS_"))}
    env.update(
        {
            "RECSYS_REDIS_URL": store.redis_url.get_secret_value(),
            "RECSYS_REDIS_PREFIX": store.redis_prefix,
            "RECSYS_ARTIFACTS": str(artifacts),
            "RECSYS_ADMIN_TOKEN": TOKEN,
            "RECSYS_WORKERS": "2",
            "RECSYS_PORT": str(port),
            "RECSYS_LOG_LEVEL": "warning",
        }
    )
    tiers = users_by_tier(graph_version)
    users = [*tiers["warm"][:40], *tiers["hot"][:20]]  # both answer by the ALS graph
    items = load_mapping(graph_version, "item_mapping.json")
    hidden = set(np.random.default_rng(4).choice(items, int(0.4 * len(items)), replace=False).tolist())
    url = f"http://127.0.0.1:{port}"
    answers: list[tuple[float, set[str]]] = []
    stop = threading.Event()

    def load(offset: int) -> None:
        i = offset
        while not stop.is_set():
            with httpx.Client(base_url=url, timeout=10) as client:  # new connections: both workers
                for _ in range(40):
                    sent = time.time()
                    body = client.post("/candidates", json={"user_id": users[i % len(users)], "k": 30}).json()
                    i += 7
                    answers.append((sent, {c["item_id"] for c in body["candidates"]}))

    try:
        with server_process([sys.executable, "-m", "app"], env, port), httpx.Client(base_url=url) as http:
            threads = [threading.Thread(target=load, args=(k,), daemon=True) for k in range(3)]
            for t in threads:
                t.start()
            time.sleep(1.0)
            entries = [{"item_id": item, "hidden": True} for item in sorted(hidden)]
            assert http.post("/items", json={"items": entries}, headers=AUTH, timeout=30).status_code == 200
            hidden_at = time.time()
            deadline = time.monotonic() + 60
            while _compact_searches(http) < 50 and time.monotonic() < deadline:
                time.sleep(0.2)
            compacted = _compact_searches(http)
            time.sleep(2.5)
            shown = [{"item_id": item, "hidden": False} for item in sorted(hidden)]
            assert http.post("/items", json={"items": shown}, headers=AUTH, timeout=30).status_code == 200
            shown_at = time.time()
            time.sleep(1.5)
            stop.set()
            for t in threads:
                t.join(timeout=30)
    finally:
        flush(store)
    while_hidden = [got for sent, got in answers if hidden_at < sent < shown_at - 1.0]
    after = [got for sent, got in answers if sent > shown_at + 0.5]
    checks = sum(len(got) for got in while_hidden)
    print(f"{len(while_hidden)} answers ({checks} items) while hidden, {compacted:.0f} compact searches")
    assert len(while_hidden) > 100, len(while_hidden)
    assert not [got & hidden for got in while_hidden if got & hidden], "a hidden item was answered"
    assert compacted >= 50, "the workers never searched the compact copy"
    assert after and any(got & hidden for got in after), "shown again, the items never came back"
