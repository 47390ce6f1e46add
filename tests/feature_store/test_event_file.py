"""The embedded store's stream on disk: shared by the processes serving one folder, kept across a
restart, read back by a retrain, bounded, and distrustful of what it reads."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
from pathlib import Path

import pytest

from feature_store.base import LiveEvent
from feature_store.embedded_store import EmbeddedStore
from feature_store.event_file import EVENTS_FILE, PREVIOUS_FILE


def _event(n: int, user: str = "u") -> LiveEvent:
    return LiveEvent(user, f"i{n}", 1.0, 1_700_000_000.0 + n, "view")


async def test_events_recorded_by_one_store_are_read_by_another_on_the_same_folder(tmp_path: Path) -> None:
    folder = tmp_path / "not-yet-created"
    server, retrain = EmbeddedStore(folder), EmbeddedStore(folder)
    await server.record([_event(1), _event(2)], request_id="batch-1")
    await server.record([_event(3)])
    entries = await retrain.read_events()
    assert [e.fields["item_id"] for e in entries] == ["i1", "i2", "i3"]
    assert entries[0].fields["request_id"] == "batch-1"
    assert [e.entry_id for e in await retrain.read_events(entries[0].entry_id)] == [
        e.entry_id for e in entries[1:]
    ]
    restarted = EmbeddedStore(folder)
    assert len(await restarted.read_events()) == 3


def _writer(folder: str, name: str, n: int) -> None:
    async def go() -> None:
        store = EmbeddedStore(Path(folder), stream_maxlen=10_000)
        for i in range(n):
            await store.record([_event(i, name)])

    asyncio.run(go())


def test_two_processes_appending_at_once_lose_nothing_and_ids_increase(tmp_path: Path) -> None:
    procs = [multiprocessing.Process(target=_writer, args=(str(tmp_path), f"p{k}", 200)) for k in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    entries = asyncio.run(EmbeddedStore(tmp_path).read_events(count=10_000))
    assert sorted(e.fields["user_id"] for e in entries).count("p0") == 200 and len(entries) == 400
    keys = [tuple(map(int, e.entry_id.split("-"))) for e in entries]
    assert keys == sorted(keys) and len(set(keys)) == 400


async def test_the_file_is_rotated_by_one_rename_and_readers_follow(tmp_path: Path) -> None:
    writer, reader = EmbeddedStore(tmp_path, stream_maxlen=50), EmbeddedStore(tmp_path, stream_maxlen=50)
    for n in range(60):
        await writer.record([_event(n)])
    assert len(await reader.read_events()) == 50
    for n in range(60, 110):  # at 50 lines the file becomes EVENTS.1.jsonl and a new one begins
        await writer.record([_event(n)])
    current = (tmp_path / EVENTS_FILE).read_text().splitlines()
    previous = (tmp_path / PREVIOUS_FILE).read_text().splitlines()
    assert (len(previous), len(current)) == (50, 10)
    seen = await reader.read_events()
    assert [e.fields["item_id"] for e in seen] == [f"i{n}" for n in range(60, 110)]
    fresh = await EmbeddedStore(tmp_path, stream_maxlen=50).read_events()
    assert [e.entry_id for e in fresh] == [e.entry_id for e in seen]


async def test_lines_that_are_not_entries_are_skipped(tmp_path: Path) -> None:
    (tmp_path / EVENTS_FILE).write_text(
        "\n".join(
            [
                "not json",
                json.dumps({"id": "../../etc", "f": {}}),
                json.dumps({"id": "5-0", "f": {"user_id": 7}}),
                json.dumps({"id": "6-0", "f": {"user_id": "u", "item_id": "i"}}),
                "x" * 10_000,
            ]
        )
        + "\n"
    )
    entries = await EmbeddedStore(tmp_path).read_events()
    assert [e.entry_id for e in entries] == ["6-0"]


async def test_the_in_process_service_store_never_writes_the_folders_stream(tmp_path: Path) -> None:
    private = EmbeddedStore(tmp_path, pointer_file=False)
    await private.record([_event(1)])
    assert not (tmp_path / EVENTS_FILE).exists() and len(await private.read_events()) == 1


async def test_a_stream_file_that_cannot_be_written_keeps_the_stream_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A read-only artifacts mount (the Docker example); simulated with a folder in the file's
    place, which no user, root included, can append to."""
    (tmp_path / EVENTS_FILE).mkdir()
    store = EmbeddedStore(tmp_path)
    result = await store.record([_event(1)])
    assert result.stored == 1 and [e.fields["item_id"] for e in await store.read_events()] == ["i1"]
    assert "events are not persisted" in caplog.text
    assert await EmbeddedStore(tmp_path).read_events() == []  # a reader degrades the same way
