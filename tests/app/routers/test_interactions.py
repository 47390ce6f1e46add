"""POST /interactions: events count at once, move users between tiers, and are streamed once."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from feature_store.redis_store import RedisStore
from feature_store.settings import StoreSettings


def _tier(client: httpx.Client, user: str) -> tuple[str, str]:
    body = client.post("/candidates", json={"user_id": user, "k": 10}).json()
    return body["tier"], body["method_used"]


def test_a_new_user_crossing_five_interactions_moves_from_cold_to_warm(client: httpx.Client) -> None:
    user = f"new-{uuid.uuid4().hex[:8]}"
    assert _tier(client, user) == ("cold", "popularity")
    first = client.post("/interactions", json={"user_id": user, "item_id": "i000010", "event_type": "like"})
    assert first.status_code == 200 and first.json()["stored"] == 1
    assert _tier(client, user) == ("cold", "als")  # folded in from one item; no content model yet
    batch = [{"user_id": user, "item_id": f"i0000{n}", "event_type": "view"} for n in (11, 12, 13)]
    assert client.post("/interactions", json={"events": batch}).json()["stored"] == 3
    assert _tier(client, user)[0] == "cold"
    client.post("/interactions", json={"user_id": user, "item_id": "i000014", "event_type": "click"})
    assert _tier(client, user) == ("warm", "als")


def test_recorded_items_are_excluded_at_once(client: httpx.Client) -> None:
    user = f"new-{uuid.uuid4().hex[:8]}"
    top = [
        c["item_id"] for c in client.post("/candidates", json={"user_id": user, "k": 3}).json()["candidates"]
    ]
    client.post("/interactions", json={"user_id": user, "item_id": top[0], "event_type": "view"})
    after = [
        c["item_id"] for c in client.post("/candidates", json={"user_id": user, "k": 3}).json()["candidates"]
    ]
    assert top[0] not in after


def test_a_repeated_request_id_is_stored_and_streamed_once(
    client: httpx.Client, store_settings: StoreSettings
) -> None:
    user = f"idem-{uuid.uuid4().hex[:8]}"
    body = {"request_id": f"req-{user}", "events": [{"user_id": user, "item_id": "i000020", "weight": 2.0}]}
    first = client.post("/interactions", json=body).json()
    again = client.post("/interactions", json=body).json()
    by_header = client.post(
        "/interactions",
        json={"user_id": user, "item_id": "i000021", "weight": 1.0},
        headers={"Idempotency-Key": f"req-{user}"},
    ).json()
    assert (first["stored"], first["duplicate"]) == (1, False)
    assert (again["stored"], again["duplicate"]) == (0, True)
    assert by_header["duplicate"] is True

    async def streamed() -> list[dict[str, str]]:
        store = RedisStore.from_settings(store_settings)
        try:
            return [e.fields for e in await store.read_events() if e.fields.get("user_id") == user]
        finally:
            await store.close()

    events = asyncio.run(streamed())
    assert len(events) == 1 and events[0]["request_id"] == f"req-{user}"
    assert client.post("/candidates", json={"user_id": user}).json()["tier"] == "cold"


def test_unknown_items_are_stored_and_counted(client: httpx.Client) -> None:
    response = client.post(
        "/interactions", json={"user_id": "u-x", "item_id": "brand-new-item", "event_type": "view"}
    )
    assert response.json()["unknown_items"] == 1 and response.json()["stored"] == 1


def test_bad_events_get_a_422_naming_the_field(client: httpx.Client) -> None:
    unknown_type = client.post(
        "/interactions", json={"events": [{"user_id": "u", "item_id": "i", "event_type": "teleport"}]}
    )
    assert unknown_type.status_code == 422
    detail = unknown_type.json()["detail"][0]
    assert detail["loc"] == ["body", "events", 0, "event_type"] and "known: apply, click" in detail["msg"]
    no_signal = client.post("/interactions", json={"user_id": "u", "item_id": "i"})
    assert no_signal.status_code == 422
    assert client.post("/interactions", json={"events": []}).status_code == 422
    nan = client.post(
        "/interactions",
        content=b'{"user_id": "u", "item_id": "i", "weight": NaN}',
        headers={"content-type": "application/json"},
    )
    assert nan.status_code == 422


def test_a_batch_with_one_bad_event_gets_one_error_at_its_own_place(client: httpx.Client) -> None:
    events = [
        {"user_id": "u", "item_id": "i1", "event_type": "like"},
        {"user_id": "u", "item_id": "i2", "weight": "lots"},
    ]
    response = client.post("/interactions", json={"events": events})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [d["loc"] for d in detail] == [["body", "events", 1, "weight"]], detail
    single = client.post("/interactions", json={"user_id": "u", "item_id": "i", "weight": "x"}).json()
    assert [d["loc"] for d in single["detail"]] == [["body", "weight"]]


def test_the_openapi_document_states_the_limits_the_server_enforces(client: httpx.Client) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    k = next(b for b in schemas["CandidatesRequest"]["properties"]["k"]["anyOf"] if "maximum" in b)
    assert k["maximum"] == 1_000  # RECSYS_MAX_K's default, not the schema's 10,000
    assert schemas["InteractionBatch"]["properties"]["events"]["maxItems"] == 1_000
    too_many = [{"user_id": "u", "item_id": "i", "weight": 1.0}] * 1_001
    assert client.post("/interactions", json={"events": too_many}).status_code == 422
    assert client.post("/candidates", json={"user_id": "u", "k": 1_001}).status_code == 422


def test_dislikes_unknown_items_and_repeats_move_no_one_up_a_tier(client: httpx.Client) -> None:
    user = f"new-{uuid.uuid4().hex[:8]}"
    events = [{"user_id": user, "item_id": "i000031", "event_type": "view"}] * 25
    events += [{"user_id": user, "item_id": f"i0000{n}", "event_type": "dislike"} for n in range(40, 46)]
    events += [
        {"user_id": user, "item_id": f"not-in-the-catalog-{n}", "event_type": "like"} for n in range(6)
    ]
    assert client.post("/interactions", json={"events": events}).json()["stored"] == len(events)
    assert _tier(client, user)[0] == "cold"
