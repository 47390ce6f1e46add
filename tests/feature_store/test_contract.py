"""One contract, two stores: every test here runs against the embedded store and a real Redis."""

from __future__ import annotations

import numpy as np
import pytest

from feature_store.base import FeatureStore, LiveEvent
from feature_store.errors import VersionNotReadyError
from tests.feature_store.conftest import make_table


async def _publish(store: FeatureStore, version: str, seed: int = 0, n_users: int = 50):
    table = make_table(n_users=n_users, seed=seed)
    await store.mark_version(version, {"status": "writing", "users": len(table)})
    written = await store.write_version(version, table)
    await store.mark_version(version, {"status": "complete", "users": len(table)})
    return table, written


async def test_a_fresh_store_has_no_active_version(store: FeatureStore) -> None:
    assert await store.active_version() is None
    assert await store.previous_version() is None
    await store.ping()


async def test_every_published_user_reads_back_exactly(store: FeatureStore) -> None:
    table, written = await _publish(store, "als_v1")
    assert written == len(table)
    for u in (0, 7, 49):
        profile = await store.get_profile("als_v1", table.user_ids[u])
        assert profile.known
        assert profile.count == table.counts[u]
        np.testing.assert_array_equal(profile.embeddings["als"], table.embeddings["als"][u])
        lo, hi = table.seen_indptr[u], table.seen_indptr[u + 1]
        np.testing.assert_array_equal(np.sort(profile.seen), np.sort(table.seen_items[lo:hi]))
        np.testing.assert_array_equal(profile.recent_items, table.recent_items[lo:hi])
        np.testing.assert_allclose(profile.recent_weights, table.recent_weights[lo:hi])


async def test_an_unknown_user_is_not_known_and_has_no_interactions(store: FeatureStore) -> None:
    await _publish(store, "als_v1")
    profile = await store.get_profile("als_v1", "nobody")
    assert not profile.known and profile.count == 0 and profile.embeddings == {}
    assert len(profile.seen) == 0 and len(profile.recent_items) == 0


async def test_only_a_completely_written_version_can_be_activated(store: FeatureStore) -> None:
    table = make_table()
    await store.mark_version("als_v1", {"status": "writing"})
    await store.write_version("als_v1", table)
    with pytest.raises(VersionNotReadyError):
        await store.activate("als_v1")
    with pytest.raises(VersionNotReadyError):
        await store.activate("als_v404")
    assert await store.active_version() is None


async def test_activation_switches_atomically_and_keeps_the_previous_version(store: FeatureStore) -> None:
    await _publish(store, "als_v1")
    await _publish(store, "als_v2", seed=1)
    assert await store.activate("als_v1") is None
    assert await store.activate("als_v2") == "als_v1"
    assert (await store.active_version(), await store.previous_version()) == ("als_v2", "als_v1")
    assert await store.activate("als_v2") == "als_v2"  # idempotent: previous unchanged
    assert await store.previous_version() == "als_v1"
    assert await store.activate("als_v1") == "als_v2"  # rollback
    status = await store.version_status()
    assert status["als_v1"]["status"] == status["als_v2"]["status"] == "complete"


async def test_recorded_events_count_at_once_and_extend_seen_and_recent(store: FeatureStore) -> None:
    table, _ = await _publish(store, "als_v1")
    user = table.user_ids[3]
    before = await store.get_profile("als_v1", user)
    events = [
        LiveEvent(user, "item-a", 2.0, 1.0, "like", item_row=29),
        LiveEvent(user, "item-new", 1.0, 2.0, "click", item_row=-1),  # unknown to the version
    ]
    result = await store.record("als_v1", events, request_id="req-1")
    assert result.stored == 2 and not result.duplicate
    after = await store.get_profile("als_v1", user)
    assert after.count == before.count + 2
    assert 29 in after.seen.tolist() and len(after.seen) == len(before.seen) + 1
    assert after.recent_items[-1] == 29 and after.recent_weights[-1] == pytest.approx(2.0)


async def test_a_new_user_with_events_has_a_count_but_no_embedding(store: FeatureStore) -> None:
    await _publish(store, "als_v1")
    events = [LiveEvent("fresh", f"i{r}", 1.0, float(r), item_row=r) for r in range(5)]
    await store.record("als_v1", events)
    profile = await store.get_profile("als_v1", "fresh")
    assert not profile.known and profile.count == 5 and profile.embeddings == {}
    assert profile.recent_items.tolist() == [0, 1, 2, 3, 4]


async def test_a_repeated_request_id_is_applied_and_streamed_once(store: FeatureStore) -> None:
    await _publish(store, "als_v1")
    events = [LiveEvent("u", "i1", 1.0, 10.0, "view", item_row=1)]
    assert (await store.record("als_v1", events, request_id="same")).stored == 1
    again = await store.record("als_v1", events, request_id="same")
    assert again.duplicate and again.stored == 0
    assert (await store.get_profile("als_v1", "u")).count == 1
    stream = await store.read_events()
    assert len(stream) == 1
    assert stream[0].fields["user_id"] == "u" and stream[0].fields["request_id"] == "same"
    assert stream[0].fields["event_type"] == "view" and float(stream[0].fields["weight"]) == 1.0


async def test_the_stream_pages_in_order_after_an_entry_id(store: FeatureStore) -> None:
    events = [LiveEvent("u", f"i{n}", 1.0, float(n)) for n in range(25)]
    await store.record(None, events)
    first = await store.read_events(count=10)
    rest = await store.read_events(after=first[-1].entry_id, count=100)
    items = [e.fields["item_id"] for e in first + rest]
    assert items == [f"i{n}" for n in range(25)]
    assert await store.read_events(after=rest[-1].entry_id) == []


async def test_recent_items_are_capped_at_the_limit_newest_last(store: FeatureStore) -> None:
    await _publish(store, "als_v1")
    events = [LiveEvent("busy", f"i{n}", 1.0, float(n), item_row=n % 30) for n in range(80)]
    await store.record("als_v1", events)
    profile = await store.get_profile("als_v1", "busy", recent_limit=20)
    assert profile.recent_items.tolist() == [n % 30 for n in range(60, 80)]
    assert profile.count == 80


async def test_deleting_a_version_removes_its_users_but_never_the_live_one(store: FeatureStore) -> None:
    table, _ = await _publish(store, "als_v1")
    await _publish(store, "als_v2", seed=1)
    await store.activate("als_v2")
    await store.record("als_v1", [LiveEvent(table.user_ids[0], "x", 1.0, 1.0, item_row=2)])
    assert await store.delete_version("als_v1") > 0
    assert not (await store.get_profile("als_v1", table.user_ids[0])).known
    assert "als_v1" not in await store.version_status()
    with pytest.raises(ValueError, match="active"):
        await store.delete_version("als_v2")
    assert (await store.get_profile("als_v2", table.user_ids[0])).known


async def test_rewriting_a_version_is_idempotent(store: FeatureStore) -> None:
    table, _ = await _publish(store, "als_v1")
    await store.write_version("als_v1", table)
    profile = await store.get_profile("als_v1", table.user_ids[5])
    assert profile.count == table.counts[5]
    np.testing.assert_array_equal(profile.embeddings["als"], table.embeddings["als"][5])
