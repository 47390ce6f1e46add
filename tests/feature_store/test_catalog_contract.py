"""The run-time catalog's contract: every test runs against the embedded store, one Redis and a
Redis Cluster (the `store` fixture)."""

from __future__ import annotations

import pytest

from feature_store.base import FeatureStore
from feature_store.catalog import CatalogConflictError, ItemRecord
from feature_store.embedded_store import CATALOG_FILE, EmbeddedStore
from tests.feature_store.conftest import make_table


def _item(item_id: str, **kw: object) -> ItemRecord:
    return ItemRecord(item_id=item_id, updated_at=1_700_000_000.0, **kw)  # type: ignore[arg-type]


async def test_a_fresh_store_has_an_empty_catalog_at_generation_zero(store: FeatureStore) -> None:
    assert await store.catalog_generation() == 0
    changes = await store.catalog_changes(0)
    assert changes.generation == 0 and changes.records == []
    assert await store.get_items(["nothing"]) == {}


async def test_each_write_is_one_generation_stamped_on_its_records(store: FeatureStore) -> None:
    g1 = await store.put_items([_item("a", hidden=True), _item("b", attributes={"price": 9.5})])
    g2 = await store.put_items([_item("c", attributes={"tags": ["x", "y"], "title": "Café ☕"})])
    assert (g1, g2) == (1, 2)
    assert await store.catalog_generation() == 2
    got = await store.get_items(["a", "b", "c", "missing"])
    assert set(got) == {"a", "b", "c"}
    assert got["a"].hidden and got["a"].seq == 1
    assert got["b"].attributes == {"price": 9.5}
    assert got["c"].attributes == {"tags": ["x", "y"], "title": "Café ☕"} and got["c"].seq == 2


async def test_changes_after_a_generation_hold_only_newer_records(store: FeatureStore) -> None:
    await store.put_items([_item("a"), _item("b")])
    await store.put_items([_item("a", hidden=True)])
    everything = await store.catalog_changes(0)
    assert everything.generation == 2
    assert {r.item_id: r.seq for r in everything.records} == {"a": 2, "b": 1}
    newer = await store.catalog_changes(1)
    assert [(r.item_id, r.hidden) for r in newer.records] == [("a", True)]
    assert (await store.catalog_changes(2)).records == []


async def test_a_conditional_write_on_a_stale_read_writes_nothing(store: FeatureStore) -> None:
    await store.put_items([_item("a")])
    await store.put_items([_item("a", hidden=True)])  # someone else, after our read at seq 1
    with pytest.raises(CatalogConflictError) as caught:
        await store.put_items([_item("a", deleted=True), _item("z")], expected={"a": 1, "z": 0})
    assert caught.value.item_id == "a"
    assert await store.catalog_generation() == 2
    assert await store.get_items(["z"]) == {}
    assert await store.put_items([_item("a", deleted=True)], expected={"a": 2}) == 3
    assert (await store.get_items(["a"]))["a"].deleted


async def test_a_creation_expects_the_item_absent(store: FeatureStore) -> None:
    await store.put_items([_item("a")], expected={"a": 0})
    with pytest.raises(CatalogConflictError):
        await store.put_items([_item("a")], expected={"a": 0})


async def test_every_profile_read_carries_the_catalog_generation(store: FeatureStore) -> None:
    table = make_table()
    await store.mark_version("als_v1", {"status": "writing"})
    await store.write_version("als_v1", table)
    await store.mark_version("als_v1", {"status": "complete"})
    before = await store.get_profile("als_v1", table.user_ids[0])
    assert before.catalog_generation == 0
    await store.put_items([_item("i3", hidden=True)])
    after = await store.get_profile("als_v1", table.user_ids[0])
    assert after.catalog_generation == 1
    unknown = await store.get_profile("als_v1", "nobody")
    assert unknown.catalog_generation == 1


async def test_the_embedded_catalog_survives_a_restart_and_is_shared_by_processes(tmp_path) -> None:
    one = EmbeddedStore(tmp_path)
    two = EmbeddedStore(tmp_path)  # another worker on the same folder
    await one.put_items([_item("a", hidden=True)])
    assert (await two.get_items(["a"]))["a"].hidden
    await two.put_items([_item("b", available_until=1.0)])
    assert await one.catalog_generation() == 2
    restarted = EmbeddedStore(tmp_path)
    changes = await restarted.catalog_changes(0)
    assert {r.item_id for r in changes.records} == {"a", "b"} and changes.generation == 2


async def test_lines_that_are_not_records_are_skipped_not_fatal(tmp_path) -> None:
    store = EmbeddedStore(tmp_path)
    await store.put_items([_item("a", hidden=True)])
    with (tmp_path / CATALOG_FILE).open("ab") as fh:
        fh.write(b'{"seq": 9, "item": {"item_id": "x", "evil": 1}}\n')
        fh.write(b"not json at all\n")
        fh.write(b'{"seq": 2, "item": {"item_id": "b", "hidden": true}}\n')
        fh.write(b'{"seq": 3, "item": {"item_id": "c"')  # a writer still at it
    fresh = EmbeddedStore(tmp_path)
    got = await fresh.get_items(["a", "b", "c", "x"])
    assert set(got) == {"a", "b"}
    assert await fresh.catalog_generation() == 2
