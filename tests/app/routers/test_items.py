"""The items API over HTTP: two real uvicorn servers (two workers) on one real Redis. A change
made through one is in force in the other's very next answer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.main import create_app
from feature_store.settings import StoreSettings
from feature_store.version_files import load_mapping
from tests.app.conftest import publish, serve_settings, users_by_tier
from tests.app.live_server import LiveServer

TOKEN = "items-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def pair(own_artifacts: Path, own_store_settings: StoreSettings) -> Iterator[tuple[httpx.Client, ...]]:
    """Two servers on the same store, as two workers or two replicas are."""
    one = LiveServer(create_app(serve_settings(own_artifacts, admin_token=TOKEN), own_store_settings))
    two = LiveServer(create_app(serve_settings(own_artifacts, admin_token=TOKEN), own_store_settings))
    a, b = httpx.Client(base_url=one.url, timeout=10), httpx.Client(base_url=two.url, timeout=10)
    with one, two, a, b:
        yield a, b


def _items(client: httpx.Client, user_id: str, k: int = 300, **body: object) -> list[str]:
    response = client.post("/candidates", json={"user_id": user_id, "k": k, **body})
    assert response.status_code == 200, response.text
    return [c["item_id"] for c in response.json()["candidates"]]


def _warm_user(artifacts: Path) -> str:
    return users_by_tier(artifacts / "als_v1")["warm"][0]


def test_a_hidden_item_leaves_every_answer_of_every_worker_at_once(pair, own_artifacts: Path) -> None:
    a, b = pair
    user = _warm_user(own_artifacts)
    top_als = _items(b, user, k=5)[0]
    top_popular = _items(b, "someone-new", k=5)[0]
    for item in (top_als, top_popular):
        response = a.patch(f"/items/{item}", json={"hidden": True}, headers=AUTH)
        assert response.status_code == 200, response.text
        assert response.json()["recommendable"] is False and response.json()["reason"] == "hidden"
    # The other worker's next answers, whatever the method: ALS, popularity, filtered, similar.
    assert top_als not in _items(b, user) and top_popular not in _items(b, user)
    assert top_popular not in _items(b, "someone-new") and top_als not in _items(b, "someone-new")
    category = a.get(f"/items/{top_als}", headers=AUTH).json()["attributes"]["category"]
    filtered = _items(b, user, filters={"attributes": {"category": {"in": [category]}}})
    assert filtered and top_als not in filtered
    similar = b.get(f"/items/{top_popular}/similar", params={"k": 299}).json()
    assert top_als not in [s["item_id"] for s in similar["items"]]
    # Shown again: back in the next answer.
    a.patch(f"/items/{top_als}", json={"hidden": False}, headers=AUTH)
    assert _items(b, user, k=5)[0] == top_als


def test_an_item_expires_with_no_call_at_all(pair) -> None:
    a, b = pair
    item = _items(b, "someone-new", k=1)[0]
    until = time.time() + 1.5
    response = a.patch(f"/items/{item}", json={"available_until": until}, headers=AUTH)
    assert response.json()["recommendable"] is True
    assert _items(b, "someone-new", k=1) == [item]
    time.sleep(max(0.0, until - time.time()) + 0.2)
    assert item not in _items(b, "someone-new")
    assert a.get(f"/items/{item}", headers=AUTH).json()["reason"] == "expired"


def test_a_window_that_opens_later_keeps_the_item_out_until_then(pair) -> None:
    a, b = pair
    item = _items(b, "someone-new", k=1)[0]
    start = time.time() + 1.5
    a.patch(f"/items/{item}", json={"available_from": start}, headers=AUTH)
    assert item not in _items(b, "someone-new")
    time.sleep(max(0.0, start - time.time()) + 0.2)
    assert _items(b, "someone-new", k=1) == [item]


def test_a_price_change_takes_effect_in_filters_at_once(pair, own_artifacts: Path) -> None:
    a, b = pair
    user = _warm_user(own_artifacts)
    cheap = {"attributes": {"price": {"lte": 1.0}}}
    before = _items(b, user, filters=cheap)
    expensive = next(i for i in _items(b, user) if i not in before)
    repriced = a.patch(f"/items/{expensive}", json={"attributes": {"price": 0.5}}, headers=AUTH)
    assert repriced.status_code == 200
    assert expensive in _items(b, user, filters=cheap)
    described = a.get(f"/items/{expensive}", headers=AUTH).json()
    assert described["attributes"]["price"] == 0.5 and described["attributes_from"] == "catalog"
    assert "category" in described["attributes"]  # a PATCH merges into the model's attributes
    # A new category is what `in` tests; the old one no longer matches.
    old = described["attributes"]["category"]
    a.patch(f"/items/{expensive}", json={"attributes": {"category": "brand-new"}}, headers=AUTH)
    assert _items(b, user, filters={"attributes": {"category": {"in": ["brand-new"]}}}) == [expensive]
    assert expensive not in _items(b, user, filters={"attributes": {"category": {"in": [old]}}})


def test_a_deleted_item_is_gone_until_put_again(pair) -> None:
    a, b = pair
    item = _items(b, "someone-new", k=1)[0]
    gone = a.delete(f"/items/{item}", headers=AUTH).json()
    assert gone["deleted"] is True and gone["reason"] == "deleted"
    assert item not in _items(b, "someone-new")
    assert a.patch(f"/items/{item}", json={"hidden": False}, headers=AUTH).status_code == 410
    back = a.put(f"/items/{item}", json={"attributes": {"category": "x"}}, headers=AUTH)
    assert back.status_code == 200 and back.json()["recommendable"] is True
    assert item in _items(b, "someone-new")


def test_an_item_the_model_does_not_know_is_described_honestly(pair) -> None:
    a, _ = pair
    assert a.get("/items/never-heard-of", headers=AUTH).status_code == 404
    created = a.put("/items/new-%E2%98%95", json={"attributes": {"category": "café"}}, headers=AUTH).json()
    assert created["item_id"] == "new-☕" and created["in_model"] is False
    assert created["recommendable"] is False and "not in model version als_v1" in created["reason"]
    assert a.get("/items/new-%E2%98%95/similar").status_code == 404


def test_a_batch_is_written_under_one_generation(pair) -> None:
    a, b = pair
    items = _items(b, "someone-new", k=3)
    body = {"items": [{"item_id": i, "hidden": True} for i in items]}
    written = a.post("/items", json=body, headers=AUTH).json()
    assert written["written"] == 3
    for item in items:
        assert a.get(f"/items/{item}", headers=AUTH).json()["generation"] == written["generation"]
    assert not set(items) & set(_items(b, "someone-new"))


def test_the_items_api_needs_the_admin_token(pair) -> None:
    a, _ = pair
    assert a.patch("/items/x", json={"hidden": True}).status_code == 401
    assert a.get("/items/x", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert a.get("/items/x/similar").status_code == 404  # public, and the item is unknown


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"attributes": {"price": {"nested": 1}}}, "attributes"),
        ({"available_from": 100, "available_until": 50}, "body"),
        ({"available_until": 1.7e12}, "available_until"),
        ({"hidden": "maybe"}, "hidden"),
        ({"attributes": {f"a{i}": 1 for i in range(65)}}, "attributes"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_item_bodies_get_a_422_naming_the_field(pair, body: dict, field: str) -> None:
    a, _ = pair
    response = a.put("/items/i1", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert any(field in map(str, d["loc"]) for d in response.json()["detail"]), response.text


def test_a_batch_naming_an_item_twice_is_refused(pair) -> None:
    a, _ = pair
    body = {"items": [{"item_id": "x"}, {"item_id": "x", "hidden": True}]}
    response = a.post("/items", json=body, headers=AUTH)
    assert response.status_code == 422 and "appears twice" in response.text


def test_the_catalog_survives_a_restart_and_a_version_swap(own_artifacts: Path, own_store_settings) -> None:
    settings = serve_settings(own_artifacts, admin_token=TOKEN)
    first = LiveServer(create_app(settings, own_store_settings))
    with first, httpx.Client(base_url=first.url) as a:
        item = _items(a, "someone-new", k=1)[0]
        a.patch(f"/items/{item}", json={"hidden": True}, headers=AUTH)
    restarted = LiveServer(create_app(settings, own_store_settings))
    with restarted, httpx.Client(base_url=restarted.url) as b:
        assert item not in _items(b, "someone-new")
        publish(own_store_settings, own_artifacts / "als_v2")  # trained before the change
        b.post("/admin/reload", headers=AUTH)
        answer = b.post("/candidates", json={"user_id": "someone-new", "k": 300}).json()
        assert answer["model_version"] == "als_v2"
        assert item not in [c["item_id"] for c in answer["candidates"]]


def test_similar_items_rank_by_the_models_score_and_never_hold_the_item_itself(
    pair, own_artifacts: Path
) -> None:
    _, b = pair
    ids = load_mapping(own_artifacts / "als_v1", "item_mapping.json")
    item = ids[0]
    answer = b.get(f"/items/{item}/similar", params={"k": 10}).json()
    assert answer["method_used"] == "als" and answer["model_version"] == "als_v1"
    got = [s["item_id"] for s in answer["items"]]
    assert len(got) == 10 and item not in got
    vectors = np.load(own_artifacts / "als_v1" / "item_factors.npy")
    scores = vectors @ vectors[0]
    scores[0] = -np.inf
    assert got == [ids[r] for r in np.argsort(-scores)[:10]]
    filtered = b.post(
        f"/items/{item}/similar", json={"k": 5, "filters": {"attributes": {"price": {"lte": 20}}}}
    ).json()
    assert 0 < len(filtered["items"]) <= 5
    for entry in filtered["items"]:
        assert b.get(f"/items/{entry['item_id']}", headers=AUTH).json()["attributes"]["price"] <= 20


def test_a_batch_over_the_bound_is_refused_by_field(pair) -> None:
    a, _ = pair
    body = {"items": [{"item_id": f"x{i}"} for i in range(1_001)]}
    response = a.post("/items", json=body, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "items"]


def test_a_patch_of_an_unknown_item_is_a_404_saying_put_creates_it(pair) -> None:
    a, _ = pair
    response = a.patch("/items/nobody-knows", json={"hidden": True}, headers=AUTH)
    assert response.status_code == 404 and "PUT creates it" in response.json()["detail"]
    assert a.delete("/items/nobody-knows", headers=AUTH).status_code == 404


def test_a_window_end_given_as_iso_text_is_stored_as_epoch_seconds(pair) -> None:
    a, _ = pair
    item = _items(a, "someone-new", k=1)[0]
    response = a.patch(f"/items/{item}", json={"available_until": "2030-01-01T00:00:00Z"}, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["available_until"] == 1893456000.0
    naive = a.patch(f"/items/{item}", json={"available_until": "2030-01-01T00:00:00"}, headers=AUTH)
    assert naive.json()["available_until"] == 1893456000.0  # no zone: UTC
