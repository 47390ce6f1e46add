"""New versions go live without a restart and without failed requests; a bad one is refused and
the old one keeps serving."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from feature_store.settings import StoreSettings
from tests.app.conftest import publish, redis_settings, serve_settings
from tests.app.live_server import LiveServer

TOKEN = "test-admin-token"


@pytest.fixture
def store_settings(own_store_settings: StoreSettings) -> StoreSettings:
    return own_store_settings  # als_v1 of a private copy, live under a fresh prefix


def _version(client: httpx.Client) -> str:
    return client.post("/candidates", json={"user_id": "u000001", "k": 3}).json()["model_version"]


def test_polling_picks_up_a_published_version_while_requests_keep_succeeding(
    own_artifacts: Path, store_settings: StoreSettings
) -> None:
    app = create_app(serve_settings(own_artifacts, reload_poll_s=0.05), store_settings)
    statuses: list[int] = []
    versions: set[str] = set()
    stop = threading.Event()

    def hammer(url: str) -> None:
        with httpx.Client(base_url=url, timeout=10) as c:
            while not stop.is_set():
                r = c.post("/candidates", json={"user_id": "u000002", "k": 20})
                statuses.append(r.status_code)
                versions.add(r.json().get("model_version", "?"))

    with LiveServer(app) as live:
        workers = [threading.Thread(target=hammer, args=(live.url,)) for _ in range(4)]
        for w in workers:
            w.start()
        while len(statuses) < 40:  # traffic on the old version first
            stop.wait(0.01)
        publish(store_settings, own_artifacts / "als_v2")
        with httpx.Client(base_url=live.url, timeout=10) as client:
            for _ in range(200):
                if _version(client) == "als_v2":
                    break
                stop.wait(0.05)
            assert _version(client) == "als_v2"
        stop.set()
        for w in workers:
            w.join()
    assert statuses and set(statuses) == {200}, f"{len(statuses)} requests, statuses {set(statuses)}"
    assert versions == {"als_v1", "als_v2"}


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-64])


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size: only the sha256 can tell
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "file", "reason"),
    [
        (_truncate, "item_factors.npy", "truncated"),
        (_flip_last_byte, "item_factors.npy", "sha256"),
        (_flip_last_byte, "index_als.faiss", "sha256"),
    ],
    ids=["truncated-factors", "flipped-byte-factors", "flipped-byte-index"],
)
def test_a_corrupt_version_is_refused_and_the_old_one_keeps_serving(
    own_artifacts: Path,
    store_settings: StoreSettings,
    caplog: pytest.LogCaptureFixture,
    damage: Callable[[Path], None],
    file: str,
    reason: str,
) -> None:
    app = create_app(serve_settings(own_artifacts, admin_token=TOKEN), store_settings)
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=10) as client:
        publish(store_settings, own_artifacts / "als_v2")  # verified and live in the store...
        damage(own_artifacts / "als_v2" / file)  # ...then damaged on this server's disk
        with caplog.at_level(logging.ERROR, logger="recsys.versions"):
            answer = client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        assert answer["changed"] is False and answer["model_version"] == "als_v1"
        assert file in answer["refused"]["als_v2"] and reason in answer["refused"]["als_v2"]
        assert _version(client) == "als_v1"
        ready = client.get("/readyz").json()
        # Degraded: the store names a version this server refused (the old one still answers).
        # The public reason names the file of the version, never its path or its size.
        assert ready["status"] == "degraded" and file in ready["refused_versions"]["als_v2"]
        assert "als_v2" in ready["versions_problem"] and str(own_artifacts) not in str(ready)
        assert "bytes" not in str(ready)
        assert 'recsys_version_loads_total{outcome="refused"} 1.0' in client.get("/metrics").text
        logged = [r.getMessage() for r in caplog.records if r.name == "recsys.versions"]
        assert any("als_v2 refused" in line and file in line for line in logged), logged


def test_admin_endpoints_need_the_token_and_are_off_without_one(
    own_artifacts: Path, store_settings: StoreSettings
) -> None:
    with LiveServer(create_app(serve_settings(own_artifacts), store_settings)) as live:
        assert httpx.post(f"{live.url}/admin/reload").status_code == 404
    app = create_app(serve_settings(own_artifacts, admin_token=TOKEN), store_settings)
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=10) as client:
        assert client.post("/admin/reload").status_code == 401
        assert client.post("/admin/reload", headers={"Authorization": "Bearer wrong"}).status_code == 401
        publish(store_settings, own_artifacts / "als_v2")
        ok = client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.json() == {"changed": True, "model_version": "als_v2", "refused": {}}
        rollback = client.post(
            "/admin/activate", json={"version": "als_v1"}, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert rollback.json()["model_version"] == "als_v1" and _version(client) == "als_v1"
        never_published = client.post(
            "/admin/activate", json={"version": "als_v9"}, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert never_published.status_code == 409


def test_with_nothing_published_candidates_is_a_clear_503_and_readyz_says_not_ready(
    tmp_path: Path, redis_url: str
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    settings = redis_settings(redis_url, empty)
    with (
        LiveServer(create_app(serve_settings(empty), settings)) as live,
        httpx.Client(base_url=live.url) as c,
    ):
        response = c.post("/candidates", json={"user_id": "u1"})
        assert response.status_code == 503 and "publish" in response.json()["detail"]
        assert c.get("/readyz").status_code == 503
        assert c.get("/healthz").status_code == 200
