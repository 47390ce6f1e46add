"""The embedded feature store: the same interface in-process, with no server to run.

The default when no Redis URL is configured, so the demo works on a bare machine. A version's user
table is the version folder's own memory-mapped `.npy` files (no copy); the active pointer is the
file `ACTIVE.json` in the artifacts folder, replaced atomically, so `recsys publish` in one process
switches what a running server in another serves.

The run-time catalog (items hidden, expired, changed or added through the items API) is an
append-only JSON-lines file, `CATALOG.jsonl`, in the artifacts folder: it survives a restart, and
every process serving the same folder picks up what another appended (a stat per request, a read
of the new lines when the file grew). Writers take an exclusive lock on it, so two processes never
interleave a batch or hand out one generation twice.

The event stream (every event recorded at run time) is the append-only file `EVENTS.jsonl`
(event_file.py), shared the same way: it survives a restart and `recsys retrain` reads it back.

Limits (documented in docs/feature-store.md): each user's newest run-time events, which answers
fold in, live in the memory of the process that recorded them (another worker does not see them
until the next version is trained); the stream keeps the newest `stream_maxlen` entries; every
process holds the user-id index of the versions it serves in RAM (about 100 bytes per user).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from feature_store.base import LiveEvent, ProgressFn, RecordResult, StreamEntry, UserProfile
from feature_store.catalog import CatalogChanges, CatalogConflictError, ItemRecord
from feature_store.errors import VersionNotReadyError
from feature_store.event_file import EVENTS_FILE, EventFile
from feature_store.live_view import LiveRecord, LiveView, fold_live
from feature_store.locks import check_lock_name
from feature_store.manifest import MANIFEST_NAME
from feature_store.version_files import ProfileTable, load_profile_table
from feature_store.version_names import check_version_name

POINTER_FILE = "ACTIVE.json"
PINS_FILE = "PINS.json"
LOCKS_FILE = "LOCKS.json"
CATALOG_FILE = "CATALOG.jsonl"

log = logging.getLogger("recsys.embedded_store")


class _CatalogLog:
    """The catalog's records in memory, mirrored by an append-only file when there is a folder.

    A line is `{"seq": generation, "item": record}`; the newest seq of an item wins. A line that
    does not parse (someone else's write) is skipped and counted, a line without its newline (a
    writer still at it) is left for the next read.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.records: dict[str, ItemRecord] = {}
        self.generation = 0
        self.skipped = 0
        self._offset = 0
        self._size = -1

    def catch_up(self) -> None:
        """Read what other processes appended since the last read (a stat when nothing did)."""
        if self.path is None:
            return
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size == self._size:
            return
        with self.path.open("rb") as fh:
            self._read_from(fh)

    def _read_from(self, fh: BinaryIO) -> None:
        if fh.seek(0, os.SEEK_END) < self._offset:  # replaced by a shorter file: read it again
            self.records, self.generation, self._offset = {}, 0, 0
        fh.seek(self._offset)
        data = fh.read()
        end = data.rfind(b"\n") + 1
        for line in data[:end].splitlines():
            self._apply_line(line)
        self._offset += end
        self._size = self._offset if end == len(data) else -1

    def _apply_line(self, line: bytes) -> None:
        try:
            entry = json.loads(line)
            seq = int(entry["seq"])
            record = ItemRecord.decode(json.dumps(entry["item"]), seq) if seq > 0 else None
        except (ValueError, KeyError, TypeError, RecursionError):
            record = None
        if record is None:
            self.skipped += 1
            if self.skipped == 1:
                log.warning("%s: skipped a line that is not an item record", self.path)
            return
        self.generation = max(self.generation, record.seq)
        held = self.records.get(record.item_id)
        if held is None or record.seq >= held.seq:
            self.records[record.item_id] = record

    def append(self, records: Sequence[ItemRecord], expected: Mapping[str, int] | None) -> int:
        """Check, then write the records as the next generation; under the file's lock."""
        if self.path is None:
            return self._commit(records, expected, None)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                self._read_from(fh)
                return self._commit(records, expected, fh)
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _commit(
        self, records: Sequence[ItemRecord], expected: Mapping[str, int] | None, fh: BinaryIO | None
    ) -> int:
        for item_id, want in (expected or {}).items():
            held = self.records.get(item_id)
            if want >= 0 and (held.seq if held else 0) != want:
                raise CatalogConflictError(item_id)
        generation = self.generation + 1
        stamped = [r.model_copy(update={"seq": generation}) for r in records]
        if fh is not None:
            lines = b"".join(
                b'{"seq": %d, "item": %s}\n' % (generation, r.encode().encode()) for r in stamped
            )
            fh.write(lines)
            fh.flush()
            os.fsync(fh.fileno())
            self._offset += len(lines)
            self._size = self._offset
        for record in stamped:
            self.records[record.item_id] = record
        self.generation = generation
        return generation


@dataclass
class _Version:
    table: ProfileTable
    rows: dict[str, int]


class EmbeddedStore:
    name = "embedded"

    def __init__(
        self,
        artifacts: Path | None = None,
        recent_limit: int = 50,
        stream_maxlen: int = 1_000_000,
        idempotency_ttl_s: int = 86_400,
        live_events_per_user: int = 1_000,
        pointer_file: bool = True,
    ) -> None:
        """`pointer_file=False` keeps the active pointer in memory only: the in-process service
        serves the one version it was opened on, whatever `ACTIVE.json` says or later says."""
        self._artifacts = artifacts
        self._pointer_file = pointer_file
        self._recent_limit = recent_limit
        self._versions: dict[str, _Version] = {}
        self._status: dict[str, dict[str, Any]] = {}
        self._live: dict[str, deque[LiveRecord]] = {}
        self._live_cap = live_events_per_user
        self._pins: dict[str, dict[str, Any]] = {}
        self._locks: dict[str, dict[str, Any]] = {}
        self._events: deque[StreamEntry] = deque(maxlen=stream_maxlen)
        # The stream on disk where this store serves a folder (not the in-process service's
        # private store): other processes, and the next retrain, read it.
        self._event_file = (
            EventFile(artifacts / EVENTS_FILE, stream_maxlen)
            if artifacts is not None and pointer_file
            else None
        )
        self._last_id = (0, 0)
        self._seen_requests: dict[str, float] = {}
        self._idem_ttl = idempotency_ttl_s
        self._pointer: dict[str, str | None] = {"active": None, "previous": None}
        self._pointer_mtime = -1.0
        self._catalog = _CatalogLog(None if artifacts is None else artifacts / CATALOG_FILE)

    # -- the active pointer -------------------------------------------------------------------

    def _pointer_path(self) -> Path | None:
        return None if self._artifacts is None or not self._pointer_file else self._artifacts / POINTER_FILE

    def _read_pointer(self) -> dict[str, str | None]:
        path = self._pointer_path()
        if path is not None and path.is_file():
            mtime = path.stat().st_mtime
            if mtime != self._pointer_mtime:
                try:
                    data = json.loads(path.read_text())
                    self._pointer = {"active": data.get("active"), "previous": data.get("previous")}
                    self._pointer_mtime = mtime
                except (OSError, ValueError):
                    pass  # a torn read cannot happen (atomic replace); keep the last good pointer
        return self._pointer

    def _write_pointer(self, pointer: dict[str, str | None]) -> None:
        self._pointer = pointer
        path = self._pointer_path()
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{POINTER_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(pointer) + "\n")
        tmp.replace(path)
        self._pointer_mtime = path.stat().st_mtime

    async def ping(self) -> None:
        return None

    async def active_version(self) -> str | None:
        return self._read_pointer()["active"]

    async def previous_version(self) -> str | None:
        return self._read_pointer()["previous"]

    async def activate(self, version: str) -> str | None:
        check_version_name(version)  # a folder under the artifacts: `..` once served the parent
        status = self._status.get(version, {}).get("status")
        ready = status == "complete" if status is not None else self._load(version) is not None
        if not ready:
            raise VersionNotReadyError(f"{version} is not completely written; publish it first")
        pointer = self._read_pointer()
        old = pointer["active"]
        if old != version:
            self._write_pointer({"active": version, "previous": old})
        return old

    # -- versions -----------------------------------------------------------------------------

    def _load(self, version: str) -> _Version | None:
        """A version written in this process, or else its folder's files (lazily, memory-mapped)."""
        if version in self._versions:
            return self._versions[version]
        if self._artifacts is None:
            return None
        folder = self._artifacts / version
        if not (folder / MANIFEST_NAME).is_file():
            return None
        table = load_profile_table(folder)
        loaded = _Version(table, {u: i for i, u in enumerate(table.user_ids)})
        self._versions[version] = loaded
        self._status.setdefault(version, {"status": "complete", "users": len(table)})
        return loaded

    async def write_version(
        self, version: str, table: ProfileTable, progress: ProgressFn | None = None
    ) -> int:
        table.check()
        self._versions[version] = _Version(table, {u: i for i, u in enumerate(table.user_ids)})
        if progress:
            progress(len(table))
        return len(table)

    async def version_status(self) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in self._status.items()}

    async def mark_version(self, version: str, status: dict[str, Any]) -> None:
        self._status[version] = dict(status)

    async def delete_version(self, version: str) -> int:
        pointer = self._read_pointer()
        if version in (pointer["active"], pointer["previous"]) or version in await self.pinned_versions():
            raise ValueError(f"{version} is active, previous or pinned by a running server; not deleted")
        removed = 1 if self._versions.pop(version, None) is not None else 0
        self._status.pop(version, None)
        return removed

    # -- pins: versions A/B variants serve -----------------------------------------------------

    def _read_pins(self) -> dict[str, dict[str, Any]]:
        """Pins live in a file beside the pointer, so `recsys publish` in another process sees
        what a running server pins, as it sees the pointer."""
        path = None if self._artifacts is None else self._artifacts / PINS_FILE
        if path is not None and path.is_file():
            try:
                data = json.loads(path.read_text())
                if isinstance(data, dict):
                    self._pins = {str(k): v for k, v in data.items() if isinstance(v, dict)}
            except (OSError, ValueError):
                pass
        return self._pins

    async def pin(self, holder: str, versions: Sequence[str], ttl_s: float) -> None:
        pins = {k: v for k, v in self._read_pins().items() if float(v.get("until", 0)) > time.time()}
        pins[holder] = {"versions": list(versions), "until": time.time() + ttl_s}
        self._pins = pins
        if self._artifacts is None:
            return
        path = self._artifacts / PINS_FILE
        tmp = path.with_name(f".{PINS_FILE}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(pins) + "\n")
            tmp.replace(path)
        except OSError:
            # A read-only artifacts mount (the Docker example): pins stay in this process, which
            # is all an embedded store serves; only its own cleanup could delete a version.
            return

    async def acquire_lock(self, name: str, holder: str, ttl_s: float) -> str | None:
        check_lock_name(name)
        with self._locks_file() as locks:
            current = locks.get(name)
            if current and current["holder"] != holder and float(current["until"]) > time.time():
                return str(current["holder"])
            locks[name] = {"holder": holder, "until": time.time() + ttl_s}
        return None

    async def release_lock(self, name: str, holder: str) -> bool:
        check_lock_name(name)
        with self._locks_file() as locks:
            if (locks.get(name) or {}).get("holder") != holder:
                return False
            del locks[name]
        return True

    @contextmanager
    def _locks_file(self) -> Iterator[dict[str, dict[str, Any]]]:
        """The locks as one JSON file in the artifacts folder, read and rewritten under an
        exclusive flock, so processes sharing the folder see one another's locks."""
        if self._artifacts is None:
            yield self._locks
            return
        self._artifacts.mkdir(parents=True, exist_ok=True)
        path = self._artifacts / LOCKS_FILE
        with path.open("a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            fh.seek(0)
            try:
                data = json.loads(fh.read() or "{}")
            except ValueError:
                data = {}  # a torn or foreign file: no lock is held
            if not isinstance(data, dict):
                data = {}
            fields = {"holder", "until"}
            locks = {str(k): v for k, v in data.items() if isinstance(v, dict) and fields <= v.keys()}
            yield locks
            fh.seek(0)
            fh.truncate()
            fh.write(json.dumps(locks) + "\n")
            fh.flush()

    async def pinned_versions(self) -> set[str]:
        now = time.time()
        return {
            str(v)
            for pin in self._read_pins().values()
            if float(pin.get("until", 0)) > now
            for v in pin.get("versions", [])
        }

    # -- per-user reads and run-time writes ---------------------------------------------------

    async def get_profile(
        self, version: str, user_id: str, recent_limit: int = 50, view: LiveView | None = None
    ) -> UserProfile:
        loaded = self._load(version)
        row = None if loaded is None else loaded.rows.get(user_id)
        profile = UserProfile(user_id=user_id, version=version, known=row is not None, count=0)
        if loaded is not None and row is not None:
            t = loaded.table
            profile.count = int(t.counts[row])
            profile.embeddings = {name: np.asarray(m[row], np.float32) for name, m in t.embeddings.items()}
            profile.seen = np.asarray(t.seen_items[t.seen_indptr[row] : t.seen_indptr[row + 1]], np.int32)
            lo, hi = int(t.recent_indptr[row]), int(t.recent_indptr[row + 1])
            lo = max(lo, hi - self._recent_limit)
            profile.recent_items = np.asarray(t.recent_items[lo:hi], np.int32)
            profile.recent_weights = np.asarray(t.recent_weights[lo:hi], np.float32)
        self._catalog.catch_up()
        profile.catalog_generation = self._catalog.generation
        records = self._live.get(user_id)
        if view is not None and records:
            fold_live(profile, list(records), view, recent_limit)
        else:
            profile.recent_items = profile.recent_items[-recent_limit:]
            profile.recent_weights = profile.recent_weights[-recent_limit:]
        return profile

    def _next_id(self) -> str:
        ms = int(time.time() * 1000)
        last_ms, seq = self._last_id
        self._last_id = (ms, 0) if ms > last_ms else (last_ms, seq + 1)
        return f"{self._last_id[0]}-{self._last_id[1]}"

    async def record(
        self, events: Sequence[LiveEvent], request_id: str | None = None, stream: bool = True
    ) -> RecordResult:
        now = time.time()
        if request_id is not None:
            expires = self._seen_requests.get(request_id)
            if expires is not None and expires > now:
                return RecordResult(stored=0, duplicate=True)
            if len(self._seen_requests) > 100_000:
                self._seen_requests = {k: v for k, v in self._seen_requests.items() if v > now}
            self._seen_requests[request_id] = now + self._idem_ttl
        streamed = []
        for event in events:
            own = self._live.get(event.user_id)
            if own is None:
                own = self._live[event.user_id] = deque(maxlen=self._live_cap)
            own.append(LiveRecord(event.timestamp, event.weight, event.item_id))
            if stream:
                fields = event.stream_fields()
                if request_id:
                    fields["request_id"] = request_id
                streamed.append(fields)
        if streamed:
            self._stream(streamed)
        return RecordResult(stored=len(events))

    def _stream(self, batch: list[dict[str, str]]) -> None:
        if self._event_file is not None:
            try:
                self._event_file.append(batch, self._events)
                return
            except OSError as exc:  # a read-only artifacts mount: the stream stays in memory
                log.warning("events are not persisted (%s): the stream stays in this process", exc)
                self._event_file = None
        for fields in batch:
            self._events.append(StreamEntry(self._next_id(), fields))

    async def read_events(self, after: str = "0", count: int = 10_000) -> list[StreamEntry]:
        def key(entry_id: str) -> tuple[int, int]:
            ms, _, seq = entry_id.partition("-")
            return int(ms), int(seq or 0)

        if self._event_file is not None:
            try:
                self._event_file.catch_up(self._events)
            except OSError as exc:  # unreadable: what this process holds is all there is
                log.warning("the event stream file could not be read (%s)", exc)
        floor = (-1, -1) if after in ("0", "", "-") else key(after)
        out = [e for e in self._events if key(e.entry_id) > floor]
        return out[:count]

    # -- the run-time catalog ------------------------------------------------------------------

    async def put_items(
        self, records: Sequence[ItemRecord], expected: Mapping[str, int] | None = None
    ) -> int:
        if not records:
            self._catalog.catch_up()
            return self._catalog.generation
        return self._catalog.append(records, expected)

    async def get_items(self, item_ids: Sequence[str]) -> dict[str, ItemRecord]:
        self._catalog.catch_up()
        held = self._catalog.records
        return {i: held[i] for i in item_ids if i in held}

    async def catalog_changes(self, after: int) -> CatalogChanges:
        self._catalog.catch_up()
        changed = [r for r in self._catalog.records.values() if r.seq > after]
        return CatalogChanges(self._catalog.generation, changed)

    async def catalog_generation(self) -> int:
        self._catalog.catch_up()
        return self._catalog.generation

    async def close(self) -> None:
        return None
