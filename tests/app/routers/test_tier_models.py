"""Every tier answered by its own model over HTTP, on a train-all version: content-based for
cold users with events, the ensemble for hot users (Two-Tower + ALS, fused, with sources), and
the weights a variant overrides."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.main import create_app
from feature_store.manifest import read_manifest
from feature_store.version_files import load_mapping
from tests.app.conftest import flush, publish, redis_settings, seen_items, serve_settings, users_by_tier
from tests.app.live_server import LiveServer
from tests.builders import small_data, train_all_version

AB_FILE = """
salt = "tiers"
[[variants]]
name = "control"
traffic = 0.4
[[variants]]
name = "als-only"
traffic = 0.4
ensemble_weights = {als = 1.0, two_tower = 0.0}
[[variants]]
name = "with-content"
traffic = 0.2
ensemble_weights = {als = 0.4, two_tower = 0.2, content = 0.4}
"""


@pytest.fixture(scope="module")
def version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_all_version(tmp_path_factory.mktemp("train-all"))


@pytest.fixture(scope="module")
def client(redis_url: str, version: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    ab = tmp_path_factory.mktemp("ab") / "ab.toml"
    ab.write_text(AB_FILE)
    settings = redis_settings(redis_url, version.parent)
    publish(settings, version)
    app = create_app(serve_settings(version.parent, ab_config=ab), settings)
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=10) as c:
        yield c
    flush(settings)


def _events(user: str, items: list[str], event_type: str = "like") -> dict:
    return {"events": [{"user_id": user, "item_id": i, "event_type": event_type} for i in items]}


def test_the_version_holds_every_model_and_the_fitted_fusion(version: Path) -> None:
    hyper = read_manifest(version).hyperparameters
    assert hyper["models"] == ["als", "popularity", "content", "two_tower", "ensemble"]
    assert {"als", "two_tower"} <= set(hyper["fusion"]["weights"]) <= {"als", "two_tower", "content"}
    assert hyper["fusion"]["method"] in ("rrf", "blend")
    assert hyper["content"]["popularity_prior"] >= 0.0
    for name in (
        "content_vectors.npy",
        "two_tower_item_embeddings.npy",
        "two_tower_user_tower.npz",
        "index_content.faiss",
        "index_two_tower.faiss",
        "popularity_scores.npy",
        "two_tower_curve.png",
    ):
        assert (version / name).is_file(), name


def test_cold_user_with_three_events_gets_content_based(client: httpx.Client, version: Path) -> None:
    items = load_mapping(version, "item_mapping.json")
    touched = items[10:13]
    assert client.post("/interactions", json=_events("new-cold-user", touched)).status_code == 200
    body = client.post("/candidates", json={"user_id": "new-cold-user", "k": 20}).json()
    assert (body["tier"], body["method_used"]) == ("cold", "content_based")
    got = [c["item_id"] for c in body["candidates"]]
    assert len(got) == 20 and not set(got) & set(touched)
    assert {c["source"] for c in body["candidates"]} == {"content_based"}


def test_content_based_is_built_from_the_touched_items(client: httpx.Client, version: Path) -> None:
    """Two users who touched different categories get different, category-leaning candidates."""
    table = small_data().items
    by_cat: dict[str, list[str]] = {}
    for item, cat in zip(table["item_id"].to_pylist(), table["category"].to_pylist(), strict=True):
        by_cat.setdefault(cat, []).append(item)
    cats = sorted(by_cat, key=lambda c: -len(by_cat[c]))[:2]
    answers = {}
    for cat in cats:
        user = f"fan-of-{cat}"
        client.post("/interactions", json=_events(user, by_cat[cat][:3]))
        body = client.post("/candidates", json={"user_id": user, "k": 10}).json()
        assert body["method_used"] == "content_based"
        got = [c["item_id"] for c in body["candidates"]]
        answers[cat] = got
        share = np.mean([i in set(by_cat[cat]) for i in got])
        assert share >= 0.5, (cat, share)
    assert answers[cats[0]] != answers[cats[1]]


def test_content_based_honours_filters(client: httpx.Client, version: Path) -> None:
    items = load_mapping(version, "item_mapping.json")
    client.post("/interactions", json=_events("filtered-cold", items[20:22]))
    table = small_data().items
    category = table["category"][0].as_py()
    body = client.post(
        "/candidates",
        json={
            "user_id": "filtered-cold",
            "k": 15,
            "filters": {"attributes": {"category": {"in": [category]}}},
        },
    ).json()
    allowed = {
        i
        for i, c in zip(table["item_id"].to_pylist(), table["category"].to_pylist(), strict=True)
        if c == category
    }
    assert body["method_used"] == "content_based"
    assert body["candidates"] and {c["item_id"] for c in body["candidates"]} <= allowed


def test_hot_user_gets_the_ensemble_with_a_source_per_candidate(client: httpx.Client, version: Path) -> None:
    user = users_by_tier(version)["hot"][0]
    body = client.post(
        "/candidates", json={"user_id": user, "k": 30}, headers={"X-AB-Variant": "control"}
    ).json()
    assert (body["tier"], body["method_used"]) == ("hot", "ensemble")
    got = [c["item_id"] for c in body["candidates"]]
    assert len(got) == len(set(got)) == 30
    assert not set(got) & seen_items(version, user)
    sources = {c["source"] for c in body["candidates"]}
    names = ("als", "two_tower", "content")
    combos = {"+".join(n for i, n in enumerate(names) if mask >> i & 1) for mask in range(1, 8)}
    assert sources <= combos and sources
    scores = [c["score"] for c in body["candidates"]]
    assert scores == sorted(scores, reverse=True)


def test_a_variant_can_override_the_fusion_weights(client: httpx.Client, version: Path) -> None:
    user = users_by_tier(version)["hot"][1]
    body = client.post(
        "/candidates", json={"user_id": user, "k": 10}, headers={"X-AB-Variant": "als-only"}
    ).json()
    assert body["method_used"] == "ensemble"
    assert all("als" in c["source"] for c in body["candidates"])


def test_a_variant_can_blend_the_content_model_into_the_ensemble(client: httpx.Client, version: Path) -> None:
    user = users_by_tier(version)["hot"][2]
    body = client.post(
        "/candidates", json={"user_id": user, "k": 20}, headers={"X-AB-Variant": "with-content"}
    ).json()
    assert (body["method_used"], body["variant"]) == ("ensemble", "with-content")
    got = [c["item_id"] for c in body["candidates"]]
    assert len(got) == len(set(got)) == 20 and not set(got) & seen_items(version, user)
    assert any("content" in c["source"] for c in body["candidates"])


def test_a_user_who_becomes_hot_at_run_time_gets_the_ensemble(client: httpx.Client, version: Path) -> None:
    """No published embedding: the user tower encodes the live history, ALS folds it in."""
    items = load_mapping(version, "item_mapping.json")
    client.post("/interactions", json=_events("newly-hot", items[:25], "click"))
    body = client.post("/candidates", json={"user_id": "newly-hot", "k": 10}).json()
    assert (body["tier"], body["method_used"]) == ("hot", "ensemble")
    assert not {c["item_id"] for c in body["candidates"]} & set(items[:25])


def test_a_user_with_nothing_still_gets_popularity(client: httpx.Client) -> None:
    body = client.post("/candidates", json={"user_id": "nobody-at-all", "k": 5}).json()
    assert (body["tier"], body["method_used"]) == ("cold", "popularity")
    assert len(body["candidates"]) == 5
