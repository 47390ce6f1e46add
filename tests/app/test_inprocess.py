"""The in-process service (`app.inprocess.LocalService`): the answers of `POST /candidates` on
the embedded store, without a server, for the version it was opened on."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import httpx
import pytest

from app.inprocess import InvalidRequestError, LocalService
from app.main import create_app
from app.settings import ServeSettings
from feature_store.embedded_store import EmbeddedStore
from feature_store.publish import publish_version
from feature_store.settings import StoreSettings
from feature_store.version_paths import ArtifactError
from tests.app.conftest import users_by_tier
from tests.app.live_server import LiveServer


@pytest.fixture(scope="module")
def published(artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the versions with als_v1 published to the embedded store (ACTIVE.json)."""
    copy = tmp_path_factory.mktemp("inprocess") / "artifacts"
    shutil.copytree(artifacts, copy)
    asyncio.run(publish_version(copy / "als_v1", EmbeddedStore(copy)))
    return copy


@pytest.fixture(scope="module")
def local(published: Path):
    with LocalService(published) as service:
        yield service


def test_answers_match_the_http_service_on_the_same_folder(published: Path, local: LocalService) -> None:
    tiers = users_by_tier(published / "als_v1")
    users = [tiers["hot"][0], tiers["warm"][0], tiers["cold"][0], "never-seen-before"]
    filters = {"deny_items": ["i00003"]}
    settings = ServeSettings(artifacts=published)
    with (
        LiveServer(create_app(settings, StoreSettings(artifacts=published, redis_url=None))) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        for user in users:
            body = http.post("/candidates", json={"user_id": user, "k": 12, "filters": filters}).json()
            answer = local.recommend(user, limit=12, filters=filters)
            assert (answer.tier, answer.method_used, answer.model_version, answer.variant) == (
                body["tier"],
                body["method_used"],
                body["model_version"],
                body["variant"],
            )
            assert answer.items == [c["item_id"] for c in body["candidates"]]
            assert [c.score for c in answer.candidates] == pytest.approx(
                [c["score"] for c in body["candidates"]]
            )
    assert "i00003" not in local.recommend(users[1], limit=50, filters=filters).items


def test_an_unknown_user_is_cold_and_gets_popularity(local: LocalService) -> None:
    answer = local.recommend("someone-new", limit=5)
    assert (answer.tier, answer.method_used, answer.fallback_reason) == ("cold", "popularity", None)
    assert len(answer.items) == 5


def test_a_version_folder_is_served_whatever_the_active_pointer_says(published: Path) -> None:
    with LocalService(published / "als_v2") as service:
        assert service.version == "als_v2"
        assert service.recommend("someone-new").model_version == "als_v2"
    assert EmbeddedStore(published)._read_pointer()["active"] == "als_v1"  # untouched


def test_a_folder_never_published_serves_its_latest_trained_version(artifacts: Path, tmp_path: Path) -> None:
    copy = tmp_path / "artifacts"
    shutil.copytree(artifacts, copy)
    assert not (copy / "ACTIVE.json").exists()
    with LocalService(copy) as service:
        assert service.recommend("someone-new").model_version == (copy / "LATEST").read_text().strip()


def test_many_users_are_answered_in_order_in_chunks(published: Path, local: LocalService) -> None:
    users = [*users_by_tier(published / "als_v1")["warm"][:7], "nobody", "nobody"]
    answers = list(local.recommend_many(users, limit=4, chunk=3))
    assert [a.user_id for a in answers] == users
    assert answers[0].items == local.recommend(users[0], limit=4).items


@pytest.mark.parametrize(
    ("call", "field"),
    [
        ({"user_id": "u1", "limit": 0}, "limit"),
        ({"user_id": "u1", "limit": 1_001}, "limit"),
        ({"user_id": "", "limit": 3}, "user_id"),
        ({"user_id": "u1", "filters": {"attributes": {"x": {"gt": 1, "gte": 2}}}}, "filters"),
        ({"user_id": "u1", "filters": {"surprise": 1}}, "surprise"),
        ({"user_id": "u1", "variant": "nope"}, "X-AB-Variant"),
    ],
)
def test_bad_calls_raise_an_error_naming_the_field(local: LocalService, call: dict, field: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        local.recommend(**call)
    assert any(field in [str(p) for p in error["loc"]] for error in caught.value.errors), caught.value
    assert field in str(caught.value)


def test_a_missing_or_empty_folder_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no such folder"):
        LocalService(tmp_path / "nothing-here")
    with pytest.raises(ArtifactError, match="run `recsys train` first"):
        LocalService(tmp_path)


async def test_it_works_from_code_that_already_runs_an_event_loop(local: LocalService) -> None:
    assert local.recommend("someone-new", limit=3).method_used == "popularity"


def test_recorded_events_reach_the_next_answer_like_post_interactions(artifacts: Path) -> None:
    with LocalService(artifacts) as service:
        before = service.recommend("someone-new", limit=5)
        assert before.tier == "cold" and before.method_used == "popularity"
        stored = service.record(
            [{"user_id": "someone-new", "item_id": item, "event_type": "like"} for item in before.items[:3]]
        )
        assert stored["stored"] == 3 and stored["unknown_items"] == 0
        after = service.recommend("someone-new", limit=5)
        assert not set(before.items[:3]) & set(after.items)  # seen now: excluded
        with pytest.raises(InvalidRequestError) as caught:
            service.record([{"user_id": "someone-new", "item_id": "i1", "event_type": "teleport"}])
        assert "unknown event type 'teleport'" in str(caught.value.errors)
