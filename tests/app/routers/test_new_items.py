"""Items added through the items API, never trained on, recommended at once by their metadata:
over HTTP on a train-all version (it has the content model) and a real Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.main import create_app
from app.retrieval.content_encoder import ContentEncoder
from feature_store.manifest import read_manifest
from feature_store.version_files import load_mapping
from feature_store.version_paths import manifest_scope
from tests.app.conftest import flush, publish, redis_settings, serve_settings, users_by_tier
from tests.app.live_server import LiveServer
from tests.builders import small_data, train_all_version

TOKEN = "new-items-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_all_version(tmp_path_factory.mktemp("train-all-new-items"))


@pytest.fixture
def client(redis_url: str, version: Path) -> Iterator[httpx.Client]:
    settings = redis_settings(redis_url, version.parent)
    publish(settings, version)
    app = create_app(serve_settings(version.parent, admin_token=TOKEN), settings)
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=10) as c:
        yield c
    flush(settings)


def _metadata() -> dict[str, dict]:
    """Each synthetic item's metadata as the items API takes it: tags as a list (training split
    them on '|'), the creation time as epoch seconds (a number column of the raw table)."""
    table = small_data().items
    out = {}
    for row in table.to_pylist():
        out[row["item_id"]] = {k: row[k] for k in ("category", "text", "price", "created_at")}
        out[row["item_id"]]["tags"] = row["tags"].split("|")
    return out


def test_the_encoder_gives_trained_items_their_training_vectors(version: Path) -> None:
    manifest = read_manifest(version)
    vectors = np.load(version / "content_vectors.npy")[:, :-1]
    with manifest_scope(version, manifest.files):
        encoder = ContentEncoder.load(version, vectors.shape[1])
    assert encoder is not None
    meta = _metadata()
    ids = load_mapping(version, "item_mapping.json")
    cosines = []
    for row, item in enumerate(ids):
        encoded = encoder.encode(meta[item])
        assert encoded is not None
        cosines.append(float(encoded @ vectors[row]))
    assert min(cosines) > 0.999, min(cosines)


def _cold_fan(client: httpx.Client, user: str, items: list[str]) -> None:
    events = [{"user_id": user, "item_id": i, "event_type": "like"} for i in items]
    assert client.post("/interactions", json={"events": events}).status_code == 200


def _ask(client: httpx.Client, user: str, **body: object) -> dict:
    response = client.post("/candidates", json={"user_id": user, "k": 20, **body})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_new_item_is_recommended_at_once_to_users_of_its_kind(client: httpx.Client, version: Path) -> None:
    meta = _metadata()
    trained = load_mapping(version, "item_mapping.json")
    by_category: dict[str, list[str]] = {}
    for item in trained:
        by_category.setdefault(meta[item]["category"], []).append(item)
    category = max(by_category, key=lambda c: len(by_category[c]))
    other = next(c for c in by_category if c != category)
    twin = meta[by_category[category][0]]  # the same metadata as an item the fan never touched
    created = client.put("/items/fresh-1", json={"attributes": twin}, headers=AUTH).json()
    assert created["recommendable"] is True and created["indexes"] == ["content_based"]
    _cold_fan(client, "fan", by_category[category][1:4])
    _cold_fan(client, "stranger", by_category[other][:3])
    fan = _ask(client, "fan", k=100)
    assert fan["method_used"] == "content_based"
    ranked = [c["item_id"] for c in fan["candidates"]]
    # Among the items of its kind (its score: its twin's cosine plus its neighbours' popularity
    # share, where a trained item has its own), and far down the list of a fan of another kind.
    assert ranked.index("fresh-1") < len(by_category[category])
    stranger = [c["item_id"] for c in _ask(client, "stranger", k=100)["candidates"]]
    assert "fresh-1" not in stranger[: len(by_category[category])]
    # Filters test its own attributes; hiding it takes it out at once.
    cheap = {"attributes": {"price": {"lte": twin["price"] - 0.01}}}
    assert "fresh-1" not in [c["item_id"] for c in _ask(client, "fan", k=100, filters=cheap)["candidates"]]
    wanted = {"attributes": {"category": {"in": [category]}}}
    assert "fresh-1" in [c["item_id"] for c in _ask(client, "fan", k=100, filters=wanted)["candidates"]]
    client.patch("/items/fresh-1", json={"hidden": True}, headers=AUTH)
    assert "fresh-1" not in [c["item_id"] for c in _ask(client, "fan", k=100)["candidates"]]


def test_a_new_items_page_gets_similar_items_by_content(client: httpx.Client, version: Path) -> None:
    meta = _metadata()
    trained = load_mapping(version, "item_mapping.json")
    source = trained[5]
    client.put("/items/fresh-2", json={"attributes": meta[source]}, headers=AUTH)
    answer = client.get("/items/fresh-2/similar", params={"k": 10}).json()
    assert answer["method_used"] == "content_based"
    got = [i["item_id"] for i in answer["items"]]
    assert "fresh-2" not in got and source in got  # its metadata twin is among the closest
    similar_categories = [meta[i]["category"] for i in got if i in meta]
    assert np.mean([c == meta[source]["category"] for c in similar_categories]) >= 0.5


@pytest.fixture
def fast_client(redis_url: str, version: Path) -> Iterator[httpx.Client]:
    """The service reading the event stream for new items' events every 0.1 s."""
    settings = redis_settings(redis_url, version.parent)
    publish(settings, version)
    app = create_app(serve_settings(version.parent, admin_token=TOKEN, new_item_poll_s=0.1), settings)
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=10) as c:
        yield c
    flush(settings)


def test_a_new_item_gets_an_als_vector_from_its_events_and_reaches_warm_users(
    fast_client: httpx.Client, version: Path
) -> None:
    data = small_data()
    users = [str(u) for u in data.all_user_ids]
    cluster_of = dict(zip(users, data.user_clusters.tolist(), strict=True))
    warm = users_by_tier(version)["warm"]
    cluster = cluster_of[warm[0]]
    mine = [u for u in warm if cluster_of[u] == cluster]
    others = [u for u in warm if cluster_of[u] != cluster]
    meta = _metadata()
    item_of = dict(zip(data.items["item_id"].to_pylist(), data.item_clusters.tolist(), strict=True))
    twin = next(i for i, c in item_of.items() if c == cluster)
    fast_client.put("/items/fresh-als", json={"attributes": meta[twin]}, headers=AUTH)
    takers, askers = mine[: len(mine) // 2], mine[len(mine) // 2 :]
    events = [{"user_id": u, "item_id": "fresh-als", "event_type": "like"} for u in takers]
    assert fast_client.post("/interactions", json={"events": events}).status_code == 200

    def reached(group: list[str]) -> float:
        hits = 0
        for user in group:
            body = fast_client.post("/candidates", json={"user_id": user, "k": 30}).json()
            assert body["method_used"] == "als"
            hits += "fresh-als" in [c["item_id"] for c in body["candidates"]]
        return hits / len(group)

    deadline = time.monotonic() + 10
    while reached(askers[:3]) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    mine_share, others_share = reached(askers), reached(others[:40])
    # Half the warm users of its cluster took it; the other half now get it in their top 30
    # (ALS, no retrain), warm users of other clusters much less often.
    assert mine_share >= 0.5 and others_share <= mine_share / 3, (mine_share, others_share)
    # Hot users of its cluster (the ensemble: ALS and Two-Tower fused) get it through ALS too.
    hot = [u for u in users_by_tier(version)["hot"] if cluster_of[u] == cluster and u not in takers][:20]
    hot_answers = [fast_client.post("/candidates", json={"user_id": u, "k": 100}).json() for u in hot]
    assert {a["method_used"] for a in hot_answers} == {"ensemble"}
    hot_share = np.mean([any(c["item_id"] == "fresh-als" for c in a["candidates"]) for a in hot_answers])
    assert hot_share >= 0.25, (hot_share, len(hot))
    # Popularity's new-arrivals side: ranked by its takers, on the trained items' scale.
    top = float(np.load(version / "popularity_scores.npy").max())
    body = fast_client.post("/candidates", json={"user_id": "nobody-at-all", "k": 300}).json()
    assert body["method_used"] == "popularity"
    scores = {c["item_id"]: c["score"] for c in body["candidates"]}
    assert scores["fresh-als"] == pytest.approx(min(1.0, len(takers) / top), rel=1e-5)
