"""A client generated from the live server's `/openapi.json` by a standard generator
(openapi-python-client) calls every operation and gets typed answers: the document is complete
(every body, every answer, the auth schemes), not just valid."""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.app.live_server import LiveServer
from tests.client.conftest import ADMIN_TOKEN

PACKAGE = "recsys_generated"


@pytest.fixture(scope="module")
def generated(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    folder = tmp_path_factory.mktemp("generated")
    spec = folder / "openapi.json"
    spec.write_bytes(httpx.get(f"{server.url}/openapi.json").content)
    generator = Path(sys.executable).with_name("openapi-python-client")
    result = subprocess.run(
        [
            str(generator),
            "generate",
            "--path",
            str(spec),
            "--output-path",
            str(folder / PACKAGE),
            "--meta",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        # Its post-generation hook runs `ruff`, which lives next to the interpreter.
        env={**os.environ, "PATH": f"{generator.parent}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning" not in (result.stdout + result.stderr).lower(), result.stdout + result.stderr
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(folder))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _operations(package: ModuleType) -> set[str]:
    api = importlib.import_module(f"{package.__name__}.api")
    found = set()
    for tag in pkgutil.iter_modules(api.__path__):
        tag_module = importlib.import_module(f"{api.__name__}.{tag.name}")
        found |= {f"{tag.name}.{op.name}" for op in pkgutil.iter_modules(tag_module.__path__)}
    return found


def test_the_generated_client_calls_every_operation_with_typed_answers(
    generated: ModuleType, server: LiveServer
) -> None:
    g = generated.__name__
    m = importlib.import_module(f"{g}.models")
    client = importlib.import_module(g).AuthenticatedClient(
        base_url=server.url, token=ADMIN_TOKEN, raise_on_unexpected_status=True
    )
    called: set[str] = set()

    def call(operation: str, *args: Any, expect: type | None = None, **kwargs: Any) -> Any:
        module = importlib.import_module(f"{g}.api.{operation}")
        response = module.sync_detailed(*args, client=client, **kwargs)
        assert response.status_code == 200, (operation, response.status_code, response.content[:300])
        if expect is not None:
            assert isinstance(response.parsed, expect), (operation, type(response.parsed))
        called.add(operation)
        return response.parsed

    user = f"gen-{uuid.uuid4().hex[:8]}"
    answer = call(
        "candidates.post_candidates_candidates_post",
        body=m.CandidatesRequest(user_id=user, k=5),
        expect=m.CandidatesResponse,
    )
    assert answer.method_used == "popularity" and len(answer.candidates) == 5
    top = answer.candidates[0].item_id
    batch = call(
        "candidates.post_candidates_batch_candidates_batch_post",
        body=m.BatchCandidatesRequest(user_ids=[user, "other"], k=2),
        expect=m.BatchCandidatesResponse,
    )
    assert [r.user_id for r in batch.results] == [user, "other"]
    event = m.InteractionEvent(user_id=user, item_id=top, event_type="click")
    recorded = call(
        "interactions.post_interactions_interactions_post",
        body=m.InteractionBatch(events=[event], request_id=f"gen-{user}"),
        expect=m.InteractionsResponse,
    )
    assert recorded.stored == 1

    item = call("items.get_item_items_item_id_get", top, expect=m.ItemOut)
    assert item.in_model
    assert call(
        "items.patch_item_items_item_id_patch", top, body=m.ItemPatch(hidden=True), expect=m.ItemOut
    ).hidden
    assert not call("items.put_item_items_item_id_put", top, body=m.ItemIn(), expect=m.ItemOut).hidden
    new_id = f"gen-item-{uuid.uuid4().hex[:6]}"
    written = call(
        "items.put_items_items_post",
        body=m.ItemBatch(items=[m.ItemBatchEntry(item_id=new_id)]),
        expect=m.ItemsWritten,
    )
    assert written.written == 1
    assert call("items.delete_item_items_item_id_delete", new_id, expect=m.ItemOut).deleted
    similar = call("items.get_similar_items_item_id_similar_get", top, k=3, expect=m.SimilarResponse)
    assert len(similar.items) == 3
    filtered = call(
        "items.post_similar_items_item_id_similar_post",
        top,
        body=m.SimilarRequest(k=3, filters=m.Filters(deny_items=[similar.items[0].item_id])),
        expect=m.SimilarResponse,
    )
    assert similar.items[0].item_id not in [s.item_id for s in filtered.items]

    assert call("operations.healthz_healthz_get", expect=m.Liveness).status == "alive"
    assert call("operations.readyz_readyz_get", expect=m.Readiness).model_version == "als_v1"
    call("operations.metrics_metrics_get")
    assert call("admin.status_admin_status_get", expect=m.AdminStatus).model_version == "als_v1"
    assert call("admin.reload_admin_reload_post", expect=m.VersionSwitch).model_version == "als_v1"
    switched = call(
        "admin.activate_admin_activate_post", body=m.ActivateRequest(version="als_v1"), expect=m.VersionSwitch
    )
    assert switched.model_version == "als_v1"

    assert called == _operations(generated)  # a new endpoint must be added here
