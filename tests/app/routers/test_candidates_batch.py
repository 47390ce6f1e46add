"""POST /candidates/batch over HTTP against a real uvicorn on a real Redis: each user's answer
is the single call's answer, in order, with the bounds and errors of the single call."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.app.conftest import users_by_tier


@pytest.fixture(scope="module")
def tiers(artifacts: Path) -> dict[str, list[str]]:
    return users_by_tier(artifacts / "als_v1")


def test_each_user_gets_what_a_single_call_answers_in_request_order(client: httpx.Client, tiers) -> None:
    users = [tiers["hot"][0], "never-seen-before", tiers["warm"][0], tiers["cold"][0], tiers["warm"][0]]
    filters = {"deny_items": ["i00003"]}
    response = client.post("/candidates/batch", json={"user_ids": users, "k": 15, "filters": filters})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["user_id"] for r in results] == users
    for user, result in zip(users, results, strict=True):
        single = client.post("/candidates", json={"user_id": user, "k": 15, "filters": filters})
        expected = single.json()
        assert {k: result[k] for k in expected} == expected
        assert result["fallback_reason"] == single.headers.get("x-recsys-fallback")
    assert results[1]["method_used"] == "popularity" and results[2]["method_used"] == "als"


def test_the_variant_header_applies_to_every_user(client: httpx.Client, tiers) -> None:
    response = client.post(
        "/candidates/batch", json={"user_ids": tiers["warm"][:3]}, headers={"X-AB-Variant": "nope"}
    )
    assert response.status_code == 422
    assert "X-AB-Variant" in response.text and "known: default" in response.text


def test_too_many_users_is_a_422_naming_user_ids_and_the_bound(client: httpx.Client) -> None:
    limit = 1_000  # the default max_batch_users
    response = client.post("/candidates/batch", json={"user_ids": [f"u{i}" for i in range(limit + 1)]})
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "user_ids"] and "1000" in error["msg"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user_ids": []}, "user_ids"),
        ({"user_ids": ["a\x00b"]}, "user_ids"),
        ({"user_ids": ["u1"], "k": 0}, "k"),
        ({"user_ids": ["u1"], "k": 5_000}, "k"),
        ({"user_ids": ["u1"], "surprise": 1}, "surprise"),
        ({"user_ids": ["u1"], "filters": {"attributes": {"x": {"gt": 1, "gte": 2}}}}, "filters"),
    ],
)
def test_bad_bodies_get_a_422_naming_the_field(client: httpx.Client, body: dict, field: str) -> None:
    response = client.post("/candidates/batch", json=body)
    assert response.status_code == 422, response.text
    assert any(field in error["loc"] for error in response.json()["detail"]), response.text


def test_the_openapi_document_states_the_configured_bounds(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["BatchCandidatesRequest"]
    assert schema["properties"]["user_ids"]["maxItems"] == 1_000
    k = schema["properties"]["k"]
    assert [b["maximum"] for b in k.get("anyOf", [k]) if "maximum" in b] == [1_000]
