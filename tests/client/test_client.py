"""The client against a real server: both flavours, every method, errors as exceptions."""

from __future__ import annotations

import inspect
import threading
import uuid
from pathlib import Path

import httpx
import pytest
from recsys_client import (
    AsyncRecsysClient,
    InvalidRequestError,
    NotFoundError,
    RecsysClient,
    UnauthorizedError,
    UnavailableError,
)

from app.main import create_app
from feature_store.settings import StoreSettings
from tests.app.conftest import serve_settings
from tests.app.live_server import LiveServer, free_port
from tests.client.conftest import ADMIN_TOKEN


def _public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(fn)
        for name, fn in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_") and name not in ("close",)
    }


def test_the_sync_and_async_clients_have_the_same_methods_and_signatures() -> None:
    sync, aio = _public_methods(RecsysClient), _public_methods(AsyncRecsysClient)
    assert sync.keys() == aio.keys()
    for name in sync:
        assert inspect.iscoroutinefunction(getattr(AsyncRecsysClient, name)), name
        assert str(sync[name]) == str(aio[name]), name
    assert {"candidates", "candidates_batch", "record", "similar", "ready", "check_schema"} <= sync.keys()


def test_every_method_of_the_sync_client(server: LiveServer) -> None:
    user = f"client-{uuid.uuid4().hex[:8]}"
    with RecsysClient(server.url, admin_token=ADMIN_TOKEN) as client:
        assert client.ready().ready and client.ready().model_version == "als_v1"
        cold = client.candidates(user, k=5)
        assert (cold.tier, cold.method_used, cold.model_version, cold.variant) == (
            "cold",
            "popularity",
            "als_v1",
            "default",
        )
        assert len(cold.items) == 5 and cold.fallback_reason is None
        top = cold.items[0]
        recorded = client.record([{"user_id": user, "item_id": top, "event_type": "like"}])
        assert (recorded.stored, recorded.duplicate, recorded.unknown_items) == (1, False, 0)
        assert top not in client.candidates(user, k=5).items  # seen: excluded from the next answer
        assert top in client.candidates(user, k=5, exclude_seen=False).items
        filtered = client.candidates(user, k=5, filters={"deny_items": cold.items[1:3]})
        assert not set(cold.items[1:3]) & set(filtered.items)
        batch = client.candidates_batch([user, "someone-else"], k=3)
        assert [a.user_id for a in batch] == [user, "someone-else"]
        assert batch[0].items == client.candidates(user, k=3).items

        item = client.get_item(top)
        assert item.in_model and item.recommendable and item.model_version == "als_v1"
        hidden = client.patch_item(top, {"hidden": True})
        assert hidden.hidden and not hidden.recommendable
        assert top not in client.candidates("someone-new", k=20).items
        shown = client.put_item(top, {"attributes": {"category": "tools"}})
        assert not shown.hidden and shown.attributes["category"] == "tools"
        new_id = f"new-{uuid.uuid4().hex[:6]}"
        written = client.put_items([{"item_id": new_id, "attributes": {"category": "tools"}}])
        assert written.written == 1 and written.generation >= 1
        assert client.delete_item(new_id).deleted

        similar = client.similar(top, k=4)
        assert (
            similar.item_id == top
            and len(similar.items) == 4
            and top not in [s.item_id for s in similar.items]
        )
        deny = similar.items[0].item_id
        narrowed = client.similar(top, k=4, filters={"deny_items": [deny]})
        assert deny not in [s.item_id for s in narrowed.items]
        assert client.check_schema() == []


async def test_every_method_of_the_async_client(server: LiveServer) -> None:
    user = f"client-{uuid.uuid4().hex[:8]}"
    async with AsyncRecsysClient(server.url, admin_token=ADMIN_TOKEN) as client:
        assert (await client.ready()).status == "ready"
        cold = await client.candidates(user, k=5)
        assert cold.method_used == "popularity" and len(cold.items) == 5
        recorded = await client.record([{"user_id": user, "item_id": cold.items[0], "weight": 2.0}])
        assert recorded.stored == 1
        assert cold.items[0] not in (await client.candidates(user, k=5)).items
        batch = await client.candidates_batch([user], k=2)
        assert batch[0].user_id == user and len(batch[0].items) == 2
        top = cold.items[1]
        assert (await client.get_item(top)).in_model
        assert (await client.patch_item(top, {"hidden": True})).hidden
        assert not (await client.put_item(top, {})).hidden
        new_id = f"new-{uuid.uuid4().hex[:6]}"
        assert (await client.put_items([{"item_id": new_id}])).written == 1
        assert (await client.delete_item(new_id)).deleted
        assert len((await client.similar(top, k=3)).items) == 3
        assert len((await client.similar(top, k=3, filters={"deny_items": [cold.items[2]]})).items) == 3
        assert await client.check_schema() == []


def test_a_422_raises_invalid_request_naming_the_fields(server: LiveServer) -> None:
    with RecsysClient(server.url) as client:
        with pytest.raises(InvalidRequestError) as caught:
            client.candidates("u1", k=5_000)
        assert caught.value.status == 422 and caught.value.fields == ["k"]
        with pytest.raises(InvalidRequestError) as caught:
            client.candidates("u1", filters={"attributes": {"price": {"gt": 1, "gte": 2}}})
        assert caught.value.fields == ["filters.attributes.price"]
        assert "give gte or gt, not both" in str(caught.value)
        with pytest.raises(InvalidRequestError) as caught:
            client.candidates("u1", variant="no-such-variant")
        assert caught.value.fields == ["X-AB-Variant"]


def test_admin_calls_without_the_token_raise_unauthorized_and_unknown_items_not_found(
    server: LiveServer,
) -> None:
    with RecsysClient(server.url) as client, pytest.raises(UnauthorizedError):
        client.get_item("i00001")
    with RecsysClient(server.url, admin_token=ADMIN_TOKEN) as client:
        with pytest.raises(NotFoundError, match="unknown item"):
            client.patch_item("never-was-an-item", {"hidden": True})
        with pytest.raises(NotFoundError):
            client.similar("never-was-an-item")


def test_ids_with_unicode_spaces_and_url_characters_reach_the_right_item(server: LiveServer) -> None:
    odd = "shop ünïcode item?#1%"
    with RecsysClient(server.url, admin_token=ADMIN_TOKEN) as client:
        assert client.put_item(odd, {"attributes": {"category": "odd"}}).item_id == odd
        assert client.get_item(odd).attributes["category"] == "odd"
        assert client.delete_item(odd).deleted


def test_the_client_shares_one_connection_pool(server: LiveServer) -> None:
    opened: list[object] = []

    class Counting(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            opened.append(request)
            return super().handle_request(request)

    with RecsysClient(server.url, transport=Counting()) as client:
        for _ in range(20):
            client.candidates("pool-user", k=1)
        pool = client._http._transport._pool  # type: ignore[attr-defined]
        assert len(opened) == 20 and len(pool.connections) == 1


def test_wait_ready_returns_once_the_server_serves_and_raises_when_nothing_answers(
    server: LiveServer,
) -> None:
    with RecsysClient(server.url) as client:
        assert client.wait_ready(timeout_s=5).model_version == "als_v1"
    port = free_port()  # nothing listens there
    with RecsysClient(f"http://127.0.0.1:{port}") as client, pytest.raises(UnavailableError) as caught:
        client.wait_ready(timeout_s=0.6, interval_s=0.1)
    assert "not ready after 0.6s" in str(caught.value)


async def test_async_wait_ready_waits_for_a_server_that_starts_late(
    artifacts: Path, store_settings: StoreSettings
) -> None:
    """The tour's first step: the client waits while the service starts, then gets its answer."""
    late = LiveServer(create_app(serve_settings(artifacts), store_settings))
    started = threading.Timer(0.8, late.__enter__)
    started.start()
    try:
        async with AsyncRecsysClient(late.url) as client:
            answer = await client.wait_ready(timeout_s=30, interval_s=0.1)
        assert answer.ready and answer.model_version == "als_v1"
    finally:
        started.join()
        late.__exit__(None, None, None)
