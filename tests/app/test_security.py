"""API keys on the public routes (rotation with two live keys), constant-time secret checks, and no
pickle anywhere a model file is read."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from app.main import create_app
from app.security import header_bytes, matches_any
from feature_store.settings import StoreSettings
from tests.app.conftest import serve_settings
from tests.app.live_server import LiveServer

ROOT = Path(__file__).resolve().parents[2]
KEYS = ["key-2026-old", "key-2026-new"]


@pytest.fixture(scope="module")
def keyed(artifacts: Path, store_settings: StoreSettings) -> Iterator[httpx.Client]:
    settings = serve_settings(artifacts, api_keys=KEYS, admin_token="admin-secret")
    with LiveServer(create_app(settings, store_settings)) as live, httpx.Client(base_url=live.url) as client:
        yield client


@pytest.mark.parametrize("path", ["/candidates", "/interactions"])
def test_public_routes_refuse_a_missing_or_wrong_api_key(keyed: httpx.Client, path: str) -> None:
    body = (
        {"user_id": "u1", "item_id": "i1", "event_type": "view"}
        if path == "/interactions"
        else {"user_id": "u1"}
    )
    for headers in ({}, {"X-API-Key": "key-2026"}, {"X-API-Key": KEYS[0] + "x"}, {"X-API-Key": ""}):
        response = keyed.post(path, json=body, headers=headers)
        assert response.status_code == 401, headers
        assert response.json() == {"detail": "missing or wrong X-API-Key"}
        assert response.headers["www-authenticate"] == "X-API-Key"


def test_either_live_key_is_accepted_so_a_key_rotates_without_failed_requests(keyed: httpx.Client) -> None:
    for key in KEYS:
        response = keyed.post("/candidates", json={"user_id": "u1", "k": 3}, headers={"X-API-Key": key})
        assert response.status_code == 200 and len(response.json()["candidates"]) == 3


def test_probes_and_metrics_stay_open_and_admin_wants_its_own_token_not_an_api_key(
    keyed: httpx.Client,
) -> None:
    assert keyed.get("/healthz").status_code == 200
    assert keyed.get("/readyz").status_code == 200
    assert keyed.get("/metrics").status_code == 200
    assert keyed.post("/admin/reload", headers={"Authorization": f"Bearer {KEYS[0]}"}).status_code == 401
    assert keyed.post("/admin/reload", headers={"X-API-Key": KEYS[0]}).status_code == 401
    assert keyed.post("/admin/reload", headers={"Authorization": "Bearer admin-secret"}).status_code == 200


def test_without_configured_keys_the_public_routes_are_open(client: httpx.Client) -> None:
    assert client.post("/candidates", json={"user_id": "u1", "k": 1}).status_code == 200


def test_openapi_declares_the_api_key_and_bearer_schemes(keyed: httpx.Client) -> None:
    spec = keyed.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["APIKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "One of RECSYS_API_KEYS; not needed when none is configured.",
    }
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
    assert "401" in spec["paths"]["/candidates"]["post"]["responses"]


def test_matches_any_compares_every_key() -> None:
    keys = [SecretStr("alpha"), SecretStr("beta")]
    assert matches_any("beta", keys) and matches_any("alpha", keys)
    assert not matches_any("alph", keys) and not matches_any("", keys) and not matches_any("beta", [])


def test_secrets_are_compared_as_the_utf8_bytes_the_client_sent() -> None:
    """Starlette hands a header over decoded as Latin-1; header_bytes undoes that, so a token sent
    as UTF-8 matches and the same text sent in Latin-1 does not."""
    token = [SecretStr("pässwörd")]
    as_received_utf8 = "pässwörd".encode().decode("latin-1")  # what the app sees for UTF-8 bytes
    as_received_latin1 = "pässwörd"  # what it sees for Latin-1 bytes
    assert matches_any(header_bytes(as_received_utf8), token)
    assert not matches_any(header_bytes(as_received_latin1), token)
    assert matches_any("pässwörd", token)  # text given directly is its UTF-8
    assert header_bytes("€") == "€".encode()  # not from the wire: no Latin-1 form exists


def _calls(tree: ast.AST) -> Iterator[tuple[str, ast.Call]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield ast.unparse(node.func), node


@pytest.mark.parametrize("package", ["app", "feature_store", "training"])
def test_no_code_path_can_unpickle(package: str) -> None:
    """pickle (and numpy's or torch's use of it) runs code from the file it loads: an artifact is
    data only. Every np.load says allow_pickle=False, and nothing imports pickle or calls torch.load."""
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not {"pickle", "cPickle", "dill", "joblib", "cloudpickle"} & set(names), path
        for name, call in _calls(tree):
            assert name not in {"torch.load", "pickle.load", "pickle.loads"}, f"{path}: {name}"
            if name in {"np.load", "numpy.load"}:
                flags = {k.arg: ast.unparse(k.value) for k in call.keywords}
                assert flags.get("allow_pickle") == "False", (
                    f"{path}:{call.lineno} np.load without allow_pickle=False"
                )
