"""The ranking stage in serving, over HTTP against a real server: ranked answers say so, an A/B
variant turns the ranker off, a ranker that raises falls back (counted in /metrics), and a
version whose ranker the service cannot feed is refused with the reason."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from app.main import create_app
from app.ranking import ServingRanker
from app.settings import ServeSettings
from app.versions import load_serving_version
from feature_store.embedded_store import EmbeddedStore
from feature_store.manifest import ArtifactError
from feature_store.publish import publish_version
from feature_store.ranking_features import FEATURES, RANKER_FILE
from feature_store.settings import StoreSettings
from tests.app.conftest import seen_items, users_by_tier
from tests.app.live_server import LiveServer
from tests.builders import train_all_version
from tests.forge import copy_version, edit_manifest, rehash
from training.events import DEFAULT_EVENT_WEIGHTS


@pytest.fixture(scope="module")
def ranked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A train-all version with a ranker (no Two-Tower: seconds), published to the embedded store."""
    artifacts = tmp_path_factory.mktemp("ranked") / "artifacts"
    folder = train_all_version(artifacts, users=1_200, two_tower=False, ranker=True)
    asyncio.run(publish_version(folder, EmbeddedStore(artifacts)))
    return folder


def _ab(folder: Path) -> Path:
    path = folder.parent / "ab.json"
    variants = [{"name": "ranked", "traffic": 0.5}, {"name": "unranked", "traffic": 0.5, "ranker": False}]
    path.write_text(json.dumps({"salt": "ranker-test", "variants": variants}))
    return path


def _server(folder: Path, tiers: list[str] | None = None) -> LiveServer:
    artifacts = folder.parent
    settings = ServeSettings(artifacts=artifacts, ab_config=_ab(folder), ranker_tiers=tiers)
    return LiveServer(create_app(settings, StoreSettings(artifacts=artifacts, redis_url=None)))


def _ask(http: httpx.Client, user: str, variant: str) -> dict[str, Any]:
    response = http.post("/candidates", json={"user_id": user, "k": 20}, headers={"X-AB-Variant": variant})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_the_version_says_which_tiers_its_ranker_won_on_validation(ranked: Path) -> None:
    entry = json.loads((ranked / "manifest.json").read_text())["hyperparameters"]["ranker"]
    assert entry["features"] == list(FEATURES)
    assert set(entry["tiers"]) <= {"cold", "warm", "hot"}
    tiers = users_by_tier(ranked)
    with _server(ranked) as server, httpx.Client(base_url=server.url) as http:
        for tier in ("cold", "warm", "hot"):
            on = _ask(http, tiers[tier][0], "ranked")
            assert on["method_used"].endswith("+ranker") == (tier in entry["tiers"]), (tier, entry["tiers"])


@pytest.mark.parametrize("served", [["warm", "hot"], ["cold"]])
def test_the_ranker_orders_the_tiers_it_serves_and_a_variant_turns_it_off(
    ranked: Path, served: list[str]
) -> None:
    entry = {"tiers": served}
    tiers = users_by_tier(ranked)
    with _server(ranked, served) as server, httpx.Client(base_url=server.url) as http:
        for tier in ("cold", "warm", "hot"):
            user = tiers[tier][0]
            on, off = _ask(http, user, "ranked"), _ask(http, user, "unranked")
            assert on["tier"] == off["tier"] == tier
            assert not off["method_used"].endswith("+ranker")
            if tier in entry["tiers"]:
                assert on["method_used"] == f"{off['method_used']}+ranker"
                assert {c["source"] for c in on["candidates"]} == {"ranker"}
                scores = [c["score"] for c in on["candidates"]]
                assert scores == sorted(scores, reverse=True) and len(scores) == 20
                seen = seen_items(ranked, user)
                assert not seen & {c["item_id"] for c in on["candidates"]}
            else:
                assert on["method_used"] == off["method_used"]


@pytest.mark.parametrize(("max_work", "where"), [(100_000, "event loop"), (0, "search thread")])
def test_small_ranking_work_runs_on_the_event_loop_and_large_work_on_a_search_thread(
    ranked: Path, monkeypatch, max_work: int, where: str
) -> None:
    from app.inprocess import LocalService

    threads: list[str] = []
    real = ServingRanker.score

    def spy(self: ServingRanker, features: np.ndarray) -> np.ndarray:
        threads.append(threading.current_thread().name)
        return real(self, features)

    monkeypatch.setattr(ServingRanker, "score", spy)
    user = users_by_tier(ranked)["warm"][0]
    settings = ServeSettings(artifacts=ranked.parent, ranker_tiers=["warm"], ranker_inline_max_work=max_work)
    service = LocalService(ranked.parent, settings)
    try:
        answer = service.recommend(user, limit=20)
    finally:
        service.close()
    assert answer.method_used.endswith("+ranker") and len(threads) == 1
    assert (threads[0] == "recsys-local") == (where == "event loop"), threads


def test_a_ranker_that_raises_answers_unranked_and_is_counted(ranked: Path, monkeypatch) -> None:
    def broken(self: ServingRanker, features: np.ndarray) -> np.ndarray:
        raise RuntimeError("LightGBM lost its trees")

    user = users_by_tier(ranked)["warm"][0]
    monkeypatch.setattr(ServingRanker, "score", broken)
    with _server(ranked, ["warm"]) as server, httpx.Client(base_url=server.url) as http:
        answers = [_ask(http, user, "ranked") for _ in range(3)]
        metrics = http.get("/metrics").text
    assert all(not a["method_used"].endswith("+ranker") and len(a["candidates"]) == 20 for a in answers)
    assert "recsys_ranker_failures_total 3.0" in metrics


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("renamed-feature", "cannot compute: item_price"),
        ("dropped-feature", "lacks features this service computes: recent_similarity"),
        ("reordered", "another order"),
        ("corrupt-model", "LightGBM cannot read ranker.txt"),
        ("tiers", "tiers must be a list"),
    ],
)
def test_a_ranker_the_service_cannot_feed_is_refused_with_the_reason(
    ranked: Path, tmp_path: Path, damage: str, reason: str
) -> None:
    folder = tmp_path / "artifacts"
    folder.mkdir()
    own = copy_version(ranked, folder, "als_v7")

    def change(data: dict[str, Any]) -> None:
        entry = data["hyperparameters"]["ranker"]
        names = entry["features"]
        if damage == "renamed-feature":
            names[names.index("item_trend")] = "item_price"
        elif damage == "dropped-feature":
            names.remove("recent_similarity")
        elif damage == "reordered":
            names[0], names[1] = names[1], names[0]
        elif damage == "tiers":
            entry["tiers"] = ["vip"]

    if damage == "corrupt-model":
        (own / RANKER_FILE).write_text("tree\nnot a LightGBM model\n")
        rehash(own, RANKER_FILE)
    else:
        edit_manifest(own, change)
    with pytest.raises(ArtifactError) as info:
        load_serving_version(folder, "als_v7", DEFAULT_EVENT_WEIGHTS)
    assert reason in info.value.public, info.value.public
    assert "/" not in info.value.public


def test_the_untouched_ranked_version_loads_with_its_ranker(ranked: Path, tmp_path: Path) -> None:
    folder = tmp_path / "artifacts"
    shutil.copytree(ranked.parent, folder)
    loaded = load_serving_version(folder, ranked.name, DEFAULT_EVENT_WEIGHTS)
    assert loaded.ranker is not None and loaded.ranker.items.counts.shape == (loaded.als.n,)


def test_the_loaded_ranker_scores_through_the_c_entry_point_exactly_as_booster_predict(
    ranked: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "artifacts"
    shutil.copytree(ranked.parent, folder)
    ranker = load_serving_version(folder, ranked.name, DEFAULT_EVENT_WEIGHTS).ranker
    assert ranker is not None and ranker.direct is not None
    rows = np.random.default_rng(3).normal(0.0, 2.0, (200, len(FEATURES))).astype(np.float32)
    rows[::7, 4:8] = np.nan  # a version without a Two-Tower scores NaN there
    expected = ranker.booster.predict(rows, num_threads=1)
    np.testing.assert_allclose(ranker.score(rows), expected, rtol=1e-6, atol=1e-6)
    assert ranker.score(rows[:0]).shape == (0,)


@pytest.mark.parametrize("fault", ["scores differ", "raises"])
def test_a_c_entry_point_that_disagrees_or_fails_leaves_booster_predict_in_use(
    ranked: Path, tmp_path: Path, monkeypatch, fault: str
) -> None:
    from app.ranking import _DirectPredict

    def other(self: _DirectPredict, features: np.ndarray) -> np.ndarray:
        if fault == "raises":
            raise RuntimeError("LightGBM predict failed (status -1)")
        return np.zeros(len(features), np.float32)  # a library whose C signature changed

    monkeypatch.setattr(_DirectPredict, "__call__", other)
    folder = tmp_path / "artifacts"
    shutil.copytree(ranked.parent, folder)
    ranker = load_serving_version(folder, ranked.name, DEFAULT_EVENT_WEIGHTS).ranker
    assert ranker is not None and ranker.direct is None
    rows = np.zeros((5, len(FEATURES)), np.float32)
    np.testing.assert_allclose(ranker.score(rows), ranker.booster.predict(rows), rtol=1e-6)


def test_a_published_version_whose_ranker_needs_other_features_is_refused_with_the_reason(
    ranked: Path, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    forged = copy_version(ranked, artifacts, "als_v9")

    def rename(data: dict[str, Any]) -> None:
        names = data["hyperparameters"]["ranker"]["features"]
        names[names.index("item_trend")] = "item_price"

    edit_manifest(forged, rename)
    asyncio.run(publish_version(forged, EmbeddedStore(artifacts)))  # checksums hold: it publishes
    app = create_app(ServeSettings(artifacts=artifacts), StoreSettings(artifacts=artifacts, redis_url=None))
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=30) as http:
        ready = http.get("/readyz")
        answer = http.post("/candidates", json={"user_id": "u1", "k": 5})
    assert ready.status_code == 503, ready.text
    reason = ready.json()["refused_versions"]["als_v9"]
    assert "ranker: the ranker needs features this service cannot compute: item_price" in reason
    assert answer.status_code == 503
