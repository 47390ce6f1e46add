"""The serving image installs only the `serve` extra: this runs the service the way the image
does (`python -m app`, settings from RECSYS_* variables) in a process where every training-only
package fails to import, and checks that each tier is still answered by its own method."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx
import pytest

from feature_store.embedded_store import EmbeddedStore
from feature_store.publish import publish_version
from tests.app.conftest import users_by_tier
from tests.app.live_server import free_port, server_process
from tests.builders import train_all_version

ROOT = Path(__file__).resolve().parents[2]
TRAINING_ONLY = "training, torch, implicit, scipy, sklearn, pyarrow, sqlalchemy, psycopg, matplotlib, tqdm"
BOOT = f"""
import importlib.abc, runpy, sys
BLOCKED = {{name.strip() for name in "{TRAINING_ONLY}".split(",")}}
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is not in the serving image")
        return None
sys.meta_path.insert(0, Blocker())
runpy.run_module("app", run_name="__main__")
"""


@pytest.fixture(scope="module")
def version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = train_all_version(tmp_path_factory.mktemp("image"))
    asyncio.run(publish_version(folder, EmbeddedStore(folder.parent)))
    return folder


def test_the_serving_image_answers_every_tier_without_any_training_package(version: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")}
    env.update(RECSYS_ARTIFACTS=str(version.parent), RECSYS_PORT=str(port), RECSYS_WORKERS="1")
    url = f"http://127.0.0.1:{port}"
    with server_process([sys.executable, "-c", BOOT], env, port) as proc:
        tiers = users_by_tier(version)
        cold_with_events = tiers["cold"][0]
        expected = {
            "never-seen": ("cold", "popularity"),
            cold_with_events: ("cold", "content_based"),
            tiers["warm"][0]: ("warm", "als"),
            tiers["hot"][0]: ("hot", "ensemble"),
        }
        with httpx.Client(base_url=url, timeout=10) as client:
            for user, (tier, method) in expected.items():
                body = client.post("/candidates", json={"user_id": user, "k": 5}).json()
                assert (body["tier"], body["method_used"]) == (tier, method), body
            events = [{"user_id": "newcomer", "item_id": f"i{i:06d}", "event_type": "like"} for i in range(6)]
            assert client.post("/interactions", json={"events": events}).json()["stored"] == 6
            body = client.post("/candidates", json={"user_id": "newcomer", "k": 5}).json()
            assert (body["tier"], body["method_used"]) == ("warm", "als")  # fold-in, no scipy needed
    out = proc.stdout.read().decode() if proc.stdout else ""
    assert "is not in the serving image" not in out, out
