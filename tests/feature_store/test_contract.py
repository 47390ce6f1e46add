"""One contract, two stores: every test here runs against the embedded store and a real Redis."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from feature_store.base import FeatureStore, LiveEvent
from feature_store.errors import VersionNotReadyError
from feature_store.live_view import LiveView
from tests.feature_store.conftest import LIVE_CAP, make_table


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


ITEMS = {f"i{r}": r for r in range(30)}  # make_table's catalog, as a version maps it
EVERY_EVENT = LiveView(ITEMS, since=None)


async def test_one_recorded_batch_counts_at_once_in_every_version(store: FeatureStore) -> None:
    table, _ = await _publish(store, "als_v1")
    await _publish(store, "als_v2", seed=1)
    user = table.user_ids[3]
    trained = set(table.seen_items[table.seen_indptr[3] : table.seen_indptr[4]].tolist())
    new_row = next(r for r in range(30) if r not in trained)
    events = [
        LiveEvent(user, f"i{new_row}", 2.0, 1.0, "like"),
        LiveEvent(user, "item-new", 1.0, 2.0, "click"),  # unknown to the version
    ]
    result = await store.record(events, request_id="req-1")
    assert result.stored == 2 and not result.duplicate
    before = await store.get_profile("als_v1", user)
    after = await store.get_profile("als_v1", user, view=EVERY_EVENT)
    assert after.count == before.count + 1 and after.live == 2
    assert new_row in after.seen.tolist() and len(after.seen) == len(before.seen) + 1
    assert after.recent_items[-1] == new_row and after.recent_weights[-1] == pytest.approx(2.0)
    other = await store.get_profile("als_v2", user, view=EVERY_EVENT)
    assert other.live == 2 and new_row in other.seen.tolist()


async def test_the_count_is_distinct_known_items_with_a_positive_net_weight(store: FeatureStore) -> None:
    await _publish(store, "als_v1")
    events = [LiveEvent("fresh", f"i{r}", 1.0, float(r)) for r in range(5)]
    events += [LiveEvent("fresh", "i0", 0.5, 10.0, "view")] * 25  # one item, many views: one
    events += [LiveEvent("fresh", f"i{r}", -1.0, 11.0, "dislike") for r in (20, 21)]  # no positive
    events += [LiveEvent("fresh", f"unknown-{n}", 1.0, 12.0) for n in range(6)]  # the version lacks
    await store.record(events)
    profile = await store.get_profile("als_v1", "fresh", view=EVERY_EVENT)
    assert not profile.known and profile.count == 5 and profile.embeddings == {}
    assert sorted(profile.seen.tolist()) == [0, 1, 2, 3, 4, 20, 21]


async def test_events_already_in_a_versions_training_data_are_not_counted_again(store: FeatureStore) -> None:
    await _publish(store, "als_v1")
    await store.record([LiveEvent("late", f"i{r}", 1.0, 100.0 + r) for r in range(6)])
    profile = await store.get_profile("als_v1", "late", view=LiveView(ITEMS, since=102.0))
    assert profile.count == 3 and profile.live == 3 and profile.recent_items.tolist() == [3, 4, 5]


async def test_a_repeated_request_id_is_applied_and_streamed_once(store: FeatureStore) -> None:
    await _publish(store, "als_v1")
    events = [LiveEvent("u", "i1", 1.0, 10.0, "view")]
    assert (await store.record(events, request_id="same")).stored == 1
    again = await store.record(events, request_id="same")
    assert again.duplicate and again.stored == 0
    assert (await store.get_profile("als_v1", "u", view=EVERY_EVENT)).live == 1
    stream = await store.read_events()
    assert len(stream) == 1
    assert stream[0].fields["user_id"] == "u" and stream[0].fields["request_id"] == "same"
    assert stream[0].fields["event_type"] == "view" and float(stream[0].fields["weight"]) == 1.0


async def test_the_stream_pages_in_order_after_an_entry_id(store: FeatureStore) -> None:
    events = [LiveEvent("u", f"i{n}", 1.0, float(n)) for n in range(25)]
    await store.record(events)
    first = await store.read_events(count=10)
    rest = await store.read_events(after=first[-1].entry_id, count=100)
    items = [e.fields["item_id"] for e in first + rest]
    assert items == [f"i{n}" for n in range(25)]
    assert await store.read_events(after=rest[-1].entry_id) == []


async def test_recent_items_are_capped_at_the_limit_newest_last(store: FeatureStore) -> None:
    await _publish(store, "als_v1")
    events = [LiveEvent("busy", f"i{n % 30}", 1.0, float(n)) for n in range(80)]
    await store.record(events)
    profile = await store.get_profile("als_v1", "busy", recent_limit=20, view=EVERY_EVENT)
    assert profile.recent_items.tolist() == [n % 30 for n in range(60, 80)]
    assert profile.count == 30 and profile.live == 80


async def test_what_one_user_can_make_a_read_carry_is_bounded(store: FeatureStore) -> None:
    for n in range(15):
        await store.record([LiveEvent("flood", f"i{(n * 100 + k) % 30}", 1.0, float(k)) for k in range(100)])
    profile = await store.get_profile("nobody_v1", "flood", view=EVERY_EVENT)
    assert profile.live == LIVE_CAP and len(profile.seen) <= 30
    assert len(await store.read_events(count=5_000)) == 1_500  # the stream still has every event


async def test_versions_in_use_are_never_deleted(store: FeatureStore) -> None:
    table, _ = await _publish(store, "als_v1")
    for n, seed in ((2, 1), (3, 2), (4, 3)):
        await _publish(store, f"als_v{n}", seed=seed)
    await store.activate("als_v3")
    await store.activate("als_v4")
    await store.pin("replica-a", ["als_v2"], ttl_s=30)
    for version in ("als_v4", "als_v3", "als_v2"):
        with pytest.raises(ValueError, match="active, previous or pinned"):
            await store.delete_version(version)
    assert await store.delete_version("als_v1") > 0
    assert not (await store.get_profile("als_v1", table.user_ids[0])).known
    assert "als_v1" not in await store.version_status()
    assert (await store.get_profile("als_v2", table.user_ids[0])).known


async def test_pins_expire_when_their_server_stops_renewing_them(store: FeatureStore) -> None:
    await store.pin("gone", ["als_v7"], ttl_s=0.05)
    await store.pin("alive", ["als_v8", "als_v9"], ttl_s=30)
    assert await store.pinned_versions() >= {"als_v8", "als_v9"}
    await asyncio.sleep(0.1)
    assert await store.pinned_versions() == {"als_v8", "als_v9"}


async def test_rewriting_a_version_is_idempotent(store: FeatureStore) -> None:
    table, _ = await _publish(store, "als_v1")
    await store.write_version("als_v1", table)
    profile = await store.get_profile("als_v1", table.user_ids[5])
    assert profile.count == table.counts[5]
    np.testing.assert_array_equal(profile.embeddings["als"], table.embeddings["als"][5])


async def test_an_embedded_store_that_cannot_write_its_folder_keeps_its_pins_in_memory(tmp_path) -> None:
    from feature_store.embedded_store import EmbeddedStore

    not_a_folder = tmp_path / "a-file"  # writes under it fail even for root, as on a read-only mount
    not_a_folder.write_text("")
    store = EmbeddedStore(not_a_folder)
    await store.pin("server", ["als_v2"], ttl_s=30)
    assert await store.pinned_versions() == {"als_v2"}
