"""The next training run reads the run-time catalog: deleted and expired items dropped, hidden
ones kept, attributes set at run time (and items added through the API) in the metadata."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from feature_store.catalog import ItemRecord
from feature_store.embedded_store import EmbeddedStore
from feature_store.version_files import load_mapping
from training.catalog_state import CatalogState, drop_items, merge_items
from training.cli import app
from training.events import DEFAULT_EVENT_WEIGHTS
from training.interaction_log import from_table
from training.synthetic import SyntheticConfig, generate, write

runner = CliRunner()


def test_deleted_and_expired_items_are_dropped_and_hidden_ones_kept() -> None:
    state = CatalogState(
        {
            "gone": ItemRecord(item_id="gone", deleted=True),
            "over": ItemRecord(item_id="over", available_until=100.0),
            "later": ItemRecord(item_id="later", available_until=time.time() + 3600),
            "paused": ItemRecord(item_id="paused", hidden=True),
        },
        "test",
    )
    assert state.dropped_ids(time.time()) == {"gone", "over"}


def test_dropping_items_removes_exactly_their_events() -> None:
    table = pa.table(
        {"user_id": ["u1", "u1", "u2", "u3"], "item_id": ["a", "gone", "gone", "b"], "weight": [1.0] * 4}
    )
    log = from_table(table, DEFAULT_EVENT_WEIGHTS)
    kept, dropped = drop_items(log, {"gone"})
    assert dropped == 2 and len(kept) == 2
    assert sorted(kept.item_ids[kept.item_codes].tolist()) == ["a", "b"]


def test_runtime_attributes_replace_the_row_and_new_items_join_the_table() -> None:
    created = pa.array([datetime(2024, 1, 1, tzinfo=UTC)] * 2, pa.timestamp("us", tz="UTC"))
    table = pa.table(
        {"item_id": ["a", "b"], "category": ["x", "y"], "price": [10.0, 20.0], "created_at": created}
    )
    records = {
        "a": ItemRecord(item_id="a", attributes={"category": "z", "price": 5.0, "tags": ["new", "sale"]}),
        "c": ItemRecord(item_id="c", attributes={"category": "x", "created_at": "2026-12-01T00:00:00"}),
        "b": ItemRecord(item_id="b", hidden=True),  # no attributes: the file's row stands
    }
    merged = merge_items(table, records)
    assert merged is not None
    rows = {r["item_id"]: r for r in merged.to_pylist()}
    assert rows["a"] == {
        "item_id": "a",
        "category": "z",
        "price": 5.0,
        "created_at": None,
        "tags": "new|sale",
    }
    assert rows["b"]["category"] == "y" and rows["b"]["price"] == 20.0
    assert rows["c"]["created_at"] == datetime(2026, 12, 1, tzinfo=UTC)
    assert merged.schema.field("created_at").type == pa.timestamp("us", tz="UTC")


def test_recsys_train_applies_the_embedded_catalog(tmp_path) -> None:
    inter, items = write(
        generate(SyntheticConfig(users=400, items=80, interactions=6_000, clusters=4)), tmp_path
    )
    mapping = pq.read_table(items).column("item_id").to_pylist()
    gone, repriced, paused = str(mapping[0]), str(mapping[1]), str(mapping[2])
    artifacts = tmp_path / "artifacts"
    store = EmbeddedStore(artifacts)
    asyncio.run(
        store.put_items(
            [
                ItemRecord(item_id=gone, deleted=True),
                ItemRecord(item_id=repriced, attributes={"category": "brand-new", "price": 0.5}),
                ItemRecord(item_id=paused, hidden=True),
                ItemRecord(item_id="added-today", attributes={"category": "brand-new", "price": 3.0}),
            ]
        )
    )
    args = ["train", "-i", str(inter), "--items", str(items), "--artifacts", str(artifacts)]
    pinned = ["--factors", "8", "--alpha", "4", "--regularization", "1", "--iterations", "2"]
    result = runner.invoke(app, [*args, *pinned, "--scaling", "log", "--popularity-discount", "0"])
    assert result.exit_code == 0, result.output
    assert "4 items changed through the items API" in result.output
    assert "items deleted or expired through the items API" in result.output
    version = artifacts / "als_v1"
    trained = load_mapping(version, "item_mapping.json")
    assert gone not in trained and paused in trained and repriced in trained
    meta = json.loads((version / "item_attributes.json").read_text())["columns"]
    assert "brand-new" in meta["category"]["values"]
    prices = np.load(version / "attr_price_numbers.npy")
    assert prices[trained.index(repriced)] == 0.5

    kept = runner.invoke(
        app, [*args, *pinned, "--scaling", "log", "--popularity-discount", "0", "--no-catalog"]
    )
    assert kept.exit_code == 0, kept.output
    assert gone in load_mapping(artifacts / "als_v2", "item_mapping.json")
