"""A/B variants over HTTP: the header picks, the hash buckets, pins and overrides apply, and an
unknown variant is a 422 naming the known ones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.experiments import load_experiment
from app.main import create_app
from feature_store.settings import StoreSettings
from tests.app.conftest import flush, publish, redis_settings, serve_settings, users_by_tier
from tests.app.live_server import LiveServer

AB_FILE = """
salt = "test-exp"
[[variants]]
name = "control"
traffic = 0.5
[[variants]]
name = "previous-model"
traffic = 0.3
model_version = "als_v1"
[[variants]]
name = "eager-warm"
traffic = 0.2
warm_min_interactions = 1
"""


@pytest.fixture(scope="module")
def ab_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ab") / "ab.toml"
    path.write_text(AB_FILE)
    return path


@pytest.fixture(scope="module")
def ab_client(redis_url: str, artifacts: Path, ab_path: Path) -> Iterator[httpx.Client]:
    """als_v2 live, als_v1 kept as previous and pinned by a variant."""
    settings: StoreSettings = redis_settings(redis_url, artifacts)
    publish(settings, artifacts / "als_v1")
    publish(settings, artifacts / "als_v2")
    app = create_app(serve_settings(artifacts, ab_config=ab_path), settings)
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=10) as client:
        yield client
    flush(settings)


def test_the_header_picks_the_variant_and_is_echoed_in_body_and_header(ab_client: httpx.Client) -> None:
    response = ab_client.post(
        "/candidates", json={"user_id": "u1", "k": 5}, headers={"X-AB-Variant": "control"}
    )
    assert response.json()["variant"] == response.headers["x-ab-variant"] == "control"
    assert response.json()["model_version"] == "als_v2"


def test_a_variant_pinning_a_model_version_is_served_by_that_version(ab_client: httpx.Client) -> None:
    body = ab_client.post(
        "/candidates", json={"user_id": "u1", "k": 5}, headers={"X-AB-Variant": "previous-model"}
    ).json()
    assert body["model_version"] == "als_v1"


def test_a_variant_overriding_routing_changes_the_tier(ab_client: httpx.Client, artifacts: Path) -> None:
    cold = users_by_tier(artifacts / "als_v2")["cold"][0]
    control = ab_client.post(
        "/candidates", json={"user_id": cold}, headers={"X-AB-Variant": "control"}
    ).json()
    eager = ab_client.post(
        "/candidates", json={"user_id": cold}, headers={"X-AB-Variant": "eager-warm"}
    ).json()
    assert (control["tier"], eager["tier"]) == ("cold", "warm")


def test_without_the_header_users_are_bucketed_by_the_stable_hash(
    ab_client: httpx.Client, ab_path: Path
) -> None:
    experiment = load_experiment(ab_path)
    seen = set()
    for i in range(40):
        user = f"hash-user-{i}"
        first = ab_client.post("/candidates", json={"user_id": user, "k": 1}).json()["variant"]
        again = ab_client.post("/candidates", json={"user_id": user, "k": 1}).json()["variant"]
        assert first == again == experiment.assign(user).name
        seen.add(first)
    assert seen == {"control", "previous-model", "eager-warm"}


def test_an_unknown_variant_is_a_422_naming_the_known_ones(ab_client: httpx.Client) -> None:
    response = ab_client.post("/candidates", json={"user_id": "u1"}, headers={"X-AB-Variant": "treatment-b"})
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["header", "X-AB-Variant"]
    assert "control, previous-model, eager-warm" in detail["msg"]


def test_exposures_are_counted_per_variant_and_method(ab_client: httpx.Client) -> None:
    ab_client.post("/candidates", json={"user_id": "u1"}, headers={"X-AB-Variant": "eager-warm"})
    metrics = ab_client.get("/metrics").text
    assert 'recsys_candidates_requests_total{method="popularity",tier="cold",variant="eager-warm"}' in metrics
