"""The served version is chosen by name only, validated in full before anything switches, and
what anonymous clients see names no path, host or size. Real Redis, real uvicorn.

Each case reproduces a report: a pointer set to an absolute path, to `../x` or to bytes that are
not UTF-8 (served within 5 s, or a traceback every poll and a failed restart); `..` activated on
the embedded store; malformed versions whose checksums hold (a 500 after the pointer moved);
/readyz showing paths, the Redis host:port and file sizes; a non-ASCII admin token that matched
only in Latin-1."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from app.main import create_app
from app.version_registry import INVALID_POINTER
from feature_store.embedded_store import EmbeddedStore
from feature_store.index_files import INDEX_META
from feature_store.keys import KeySchema
from feature_store.manifest import MANIFEST_NAME
from feature_store.publish import publish_version
from feature_store.redis_store import RedisStore
from feature_store.settings import StoreSettings
from tests.app.conftest import flush, publish, redis_settings, serve_settings
from tests.app.live_server import LiveServer, free_port
from tests.forge import copy_version, edit_json, edit_manifest, vouch

TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
POLL_S = 0.05


@pytest.fixture
def store_settings(own_store_settings: StoreSettings) -> StoreSettings:
    return own_store_settings  # als_v1 of a private copy, live under a fresh prefix


@pytest.fixture
def raw_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def _served(client: httpx.Client) -> str | None:
    response = client.post("/candidates", json={"user_id": "u000001", "k": 3})
    return response.json().get("model_version") if response.status_code == 200 else None


def _wait(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(POLL_S)


def _metric(client: httpx.Client, line: str) -> float:
    for row in client.get("/metrics").text.splitlines():
        if row.startswith(line + " "):
            return float(row.rsplit(" ", 1)[1])
    return 0.0


def _assert_public(text: str, *secrets: str) -> None:
    """An answer anyone can read: no path of this machine, no Redis address, none of `secrets`."""
    for secret in secrets:
        assert secret not in text, (secret, text)
    assert "127.0.0.1" not in text and "6379" not in text and "/tmp" not in text, text


INVALID_LOADS = 'recsys_version_loads_total{outcome="invalid_pointer"}'
REFUSED_LOADS = 'recsys_version_loads_total{outcome="refused"}'


@pytest.mark.parametrize("kind", ["absolute-path", "parent-path", "dot-dot", "undecodable-bytes", "meta"])
def test_an_invalid_pointer_is_never_served_and_a_restart_still_starts(
    own_artifacts: Path,
    store_settings: StoreSettings,
    raw_redis: redis.Redis,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    # A real, loadable version where each pointer leads: only the name rule can keep it out.
    elsewhere = copy_version(own_artifacts / "als_v2", tmp_path / "elsewhere" / "deep", "als_v2")
    shutil.copytree(own_artifacts / "als_v2", own_artifacts.parent / "x")
    pointer: bytes = {
        "absolute-path": str(elsewhere).encode(),
        "parent-path": b"../x",
        "dot-dot": b"..",
        "undecodable-bytes": b"\xff\xfe",
        "meta": b"{meta}",
    }[kind]
    active_key = KeySchema(store_settings.redis_prefix).active
    app = create_app(serve_settings(own_artifacts, reload_poll_s=POLL_S), store_settings)
    with (
        caplog.at_level(logging.ERROR, logger="recsys.versions"),
        LiveServer(app) as live,
        httpx.Client(base_url=live.url, timeout=10) as client,
    ):
        assert _served(client) == "als_v1"
        raw_redis.set(active_key, pointer)
        _wait(lambda: client.get("/readyz").json()["status"] == "degraded")
        time.sleep(20 * POLL_S)  # many polls: one log line and one count, not one per poll
        assert _served(client) == "als_v1"
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["versions_problem"] == INVALID_POINTER
        _assert_public(ready.text, str(tmp_path), str(elsewhere))
        assert _metric(client, INVALID_LOADS) == 1.0
    invalid = [r for r in caplog.records if "not a valid version name" in r.getMessage()]
    assert len(invalid) == 1, [r.getMessage() for r in invalid]
    assert not [r for r in caplog.records if r.exc_info], "no traceback for a bad pointer"

    # A restart with the pointer still bad: the server starts, serves nothing and says why.
    app = create_app(serve_settings(own_artifacts, reload_poll_s=POLL_S), store_settings)
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=10) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "not_ready"
        assert ready.json()["versions_problem"] == INVALID_POINTER
        assert client.post("/candidates", json={"user_id": "u000001"}).status_code == 503
        raw_redis.set(active_key, b"als_v1")  # repaired: followed by the next poll
        _wait(lambda: _served(client) == "als_v1")
        assert client.get("/readyz").json()["status"] == "ready"


def test_activating_dot_dot_on_the_embedded_store_is_a_422_naming_the_field(own_artifacts: Path) -> None:
    asyncio.run(publish_version(own_artifacts / "als_v1", EmbeddedStore(own_artifacts)))
    pointer = (own_artifacts / "ACTIVE.json").read_text()
    (own_artifacts / MANIFEST_NAME).write_text("{}")  # what `..` of a version folder would find
    settings = StoreSettings(artifacts=own_artifacts)
    app = create_app(serve_settings(own_artifacts, admin_token=TOKEN), settings)
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=10) as client:
        for name in ("..", ".", "/etc", "../artifacts/als_v2", "als_v2/..", "{meta}", "als_v2\n"):
            response = client.post("/admin/activate", json={"version": name}, headers=AUTH)
            assert response.status_code == 422, (name, response.text)
            assert response.json()["detail"][0]["loc"] == ["body", "version"]
        assert (own_artifacts / "ACTIVE.json").read_text() == pointer
        assert _served(client) == "als_v1"
        ok = client.post("/admin/activate", json={"version": "als_v2"}, headers=AUTH)
        assert ok.status_code == 200 and ok.json()["model_version"] == "als_v2"


@pytest.mark.parametrize(
    "pointer",
    ['{"active": ".."}', '{"active": 3}', '{"active": ["als_v1"]}', "[1, 2]", '{"active": "/etc"}'],
)
def test_a_garbled_embedded_pointer_file_does_not_stop_start_up(own_artifacts: Path, pointer: str) -> None:
    (own_artifacts / "ACTIVE.json").write_text(pointer + "\n")
    settings = StoreSettings(artifacts=own_artifacts)
    with LiveServer(create_app(serve_settings(own_artifacts), settings)) as live:
        ready = httpx.get(f"{live.url}/readyz")
        assert ready.status_code == 503 and ready.json()["versions_problem"] == INVALID_POINTER


def _string_rows(folder: Path) -> None:
    edit_json(folder, "item_mapping.json", lambda m: {k: str(v) for k, v in m.items()})


def _mapping_list(folder: Path) -> None:
    edit_json(folder, "item_mapping.json", lambda m: sorted(m, key=m.__getitem__))


def _weights_list(folder: Path) -> None:
    edit_manifest(folder, lambda data: data["hyperparameters"].update(event_weights=["view", 0.5]))


def _ef_search_string(folder: Path) -> None:
    def change(data: dict[str, Any]) -> dict[str, Any]:
        data["als"]["params"]["ef_search"] = "x"
        return data

    edit_json(folder, INDEX_META, change)


def _only_a_manifest(folder: Path) -> None:
    for child in folder.iterdir():
        if child.name != MANIFEST_NAME:
            child.unlink()
    edit_manifest(folder, lambda data: data.update(files={}))


MALFORMED = {
    "mapping-string-rows": _string_rows,
    "mapping-as-list": _mapping_list,
    "event-weights-list": _weights_list,
    "ef-search-string": _ef_search_string,
    "only-a-manifest": _only_a_manifest,
}


async def _mark_complete(settings: StoreSettings, version: str) -> None:
    """What a finished publish leaves in the store (its checks are the loader's to repeat)."""
    store = RedisStore.from_settings(settings)
    try:
        await store.mark_version(version, {"status": "complete", "users": 1})
    finally:
        await store.close()


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_version_is_refused_before_the_pointer_moves_and_never_a_500(
    own_artifacts: Path, store_settings: StoreSettings, raw_redis: redis.Redis, case: str
) -> None:
    bad = copy_version(own_artifacts / "als_v2", own_artifacts, "als_v3")
    MALFORMED[case](bad)
    asyncio.run(_mark_complete(store_settings, "als_v3"))
    active_key = KeySchema(store_settings.redis_prefix).active
    app = create_app(serve_settings(own_artifacts, admin_token=TOKEN, reload_poll_s=POLL_S), store_settings)
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=10) as client:
        refused = client.post("/admin/activate", json={"version": "als_v3"}, headers=AUTH)
        assert refused.status_code == 409, refused.text
        assert "als_v3 refused, nothing changed" in refused.json()["detail"]
        assert raw_redis.get(active_key) == b"als_v1"  # the pointer never moved
        assert _served(client) == "als_v1"
        assert client.get("/readyz").json()["status"] == "ready"  # nothing switched: nothing wrong
        assert _metric(client, REFUSED_LOADS) == 1.0

        # Someone with write access to the store moves the pointer anyway: refused once (not
        # re-hashed every poll), reported, and the old version keeps serving.
        raw_redis.set(active_key, b"als_v3")
        _wait(lambda: client.get("/readyz").json()["status"] == "degraded")
        time.sleep(20 * POLL_S)
        ready = client.get("/readyz")
        assert ready.status_code == 200 and "als_v3 was refused" in ready.json()["versions_problem"]
        assert "als_v3" in ready.json()["refused_versions"]
        _assert_public(ready.text, str(own_artifacts))
        assert _metric(client, REFUSED_LOADS) == 1.0
        assert _served(client) == "als_v1"

    # A restart with the pointer on it: starts, serves nothing, says so (it used to fail to start).
    app = create_app(serve_settings(own_artifacts, admin_token=TOKEN, reload_poll_s=POLL_S), store_settings)
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=10) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "als_v3" in ready.json()["refused_versions"]
        # Fixed on disk (a new manifest): the poll tries it again by itself and serves it.
        shutil.rmtree(bad)
        copy_version(own_artifacts / "als_v2", own_artifacts, "als_v3")
        _wait(lambda: _served(client) == "als_v3")
        assert client.get("/readyz").json()["status"] == "ready"


def test_readyz_and_503_bodies_carry_no_paths_hosts_or_sizes(
    own_artifacts: Path, store_settings: StoreSettings, raw_redis: redis.Redis, tmp_path: Path
) -> None:
    # A version whose manifest gives a wrong size for a file of its own, one whose entry is a file
    # outside the folder with a wrong size, and (below) a store that cannot be reached.
    wrong_size = copy_version(own_artifacts / "als_v2", own_artifacts, "als_v3")
    edit_manifest(wrong_size, lambda data: data["files"]["item_factors.npy"].update(bytes=987_654_321))
    outside = copy_version(own_artifacts / "als_v2", own_artifacts, "als_v4")
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"x" * 4242)
    vouch(outside, {"../../secret.bin": secret})
    edit_manifest(outside, lambda data: data["files"]["../../secret.bin"].update(bytes=31_337))
    for name in ("als_v3", "als_v4"):
        asyncio.run(_mark_complete(store_settings, name))
    active_key = KeySchema(store_settings.redis_prefix).active
    app = create_app(serve_settings(own_artifacts, admin_token=TOKEN), store_settings)
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=10) as client:
        for name in ("als_v3", "als_v4"):
            raw_redis.set(active_key, name.encode())
            client.post("/admin/reload", headers=AUTH)
            text = client.get("/readyz").text
            _assert_public(text, str(own_artifacts), str(tmp_path), "987654321", "4242", "31337")
            assert name in json.loads(text)["refused_versions"]
        # The token holder gets the details.
        status = client.get("/admin/status", headers=AUTH).json()
        assert (
            "987654321" in status["refused"]["als_v3"] and str(own_artifacts) in status["refused"]["als_v3"]
        )
        assert "not a plain file name" in status["refused"]["als_v4"]
        assert client.get("/admin/status").status_code == 401

    closed = StoreSettings(
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        artifacts=own_artifacts,
        redis_timeout_s=0.2,
        redis_connect_timeout_s=0.2,
    )
    app = create_app(serve_settings(own_artifacts, store_timeout_s=0.2, admin_token=TOKEN), closed)
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=10) as client:
        ready = client.get("/readyz")
        assert ready.json()["store"]["ok"] is False
        assert ready.json()["store"]["reason"] in (
            "the feature store is unreachable or failing",
            "the feature store did not answer in time",
        )
        _assert_public(ready.text, str(own_artifacts), str(closed.redis_url.get_secret_value()))
        status = client.get("/admin/status", headers=AUTH).json()
        assert status["store"]["ok"] is False and status["store"]["reason"]  # the client's own words

    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = redis_settings(store_settings.redis_url.get_secret_value(), empty)
    with LiveServer(create_app(serve_settings(empty), nothing)) as live, httpx.Client(base_url=live.url) as c:
        for response in (c.get("/readyz"), c.post("/candidates", json={"user_id": "u1"})):
            assert response.status_code == 503
            _assert_public(response.text, str(empty))


NON_ASCII_TOKEN = "pässwörd-ß-token"
NON_ASCII_KEY = "schlüssel-key"


@pytest.fixture(scope="module")
def non_ascii(artifacts: Path, redis_url: str) -> Iterator[httpx.Client]:
    settings = StoreSettings(
        redis_url=redis_url, redis_prefix=f"test-{uuid.uuid4().hex[:12]}", artifacts=artifacts
    )
    publish(settings, artifacts / "als_v1")
    app = create_app(
        serve_settings(artifacts, admin_token=NON_ASCII_TOKEN, api_keys=[NON_ASCII_KEY]), settings
    )
    try:
        with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=10) as client:
            yield client
    finally:
        flush(settings)


def test_a_non_ascii_admin_token_matches_as_utf8_and_not_as_latin1(non_ascii: httpx.Client) -> None:
    utf8 = {"Authorization": b"Bearer " + NON_ASCII_TOKEN.encode("utf-8")}
    latin1 = {"Authorization": b"Bearer " + NON_ASCII_TOKEN.encode("latin-1")}
    assert non_ascii.post("/admin/reload", headers=utf8).status_code == 200
    assert non_ascii.post("/admin/reload", headers=latin1).status_code == 401
    assert non_ascii.get("/admin/status", headers=utf8).status_code == 200


def test_a_non_ascii_api_key_matches_as_utf8_and_not_as_latin1(non_ascii: httpx.Client) -> None:
    body = {"user_id": "u000001", "k": 2}
    ok = non_ascii.post("/candidates", json=body, headers={"X-API-Key": NON_ASCII_KEY.encode("utf-8")})
    assert ok.status_code == 200
    bad = non_ascii.post("/candidates", json=body, headers={"X-API-Key": NON_ASCII_KEY.encode("latin-1")})
    assert bad.status_code == 401
