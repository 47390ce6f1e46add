"""The embedded store's event stream on disk: `EVENTS.jsonl` in the artifacts folder.

Every process serving the folder appends the events it records (`POST /interactions`) and reads
what the others appended, so the stream survives a restart and `recsys retrain`, in a process of
its own, reads back what the service recorded, as it does from Redis. Writers hold an exclusive
flock on `EVENTS.lock`; entry ids (`<ms>-<seq>`, Redis' form) are given under it after reading the
file's end, so they increase in file order whichever process wrote them.

The stream is bounded without ever rewriting it on a request's path: when the current file holds
`maxlen` entries it is renamed to `EVENTS.1.jsonl` (one rename, replacing the segment before) and
a new one begins, so between `maxlen` and twice that are kept. A reader that had the renamed file
open finishes it under its new name. Lines are bytes from disk: one that is not a well-formed
entry is skipped.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path

from feature_store.base import StreamEntry

EVENTS_FILE = "EVENTS.jsonl"
PREVIOUS_FILE = "EVENTS.1.jsonl"
LOCK_FILE = "EVENTS.lock"
_ID = re.compile(r"(\d{1,15})-(\d{1,9})")
_MAX_LINE = 8_192  # an entry is a few hundred bytes; longer lines are not ours


def _key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _parse(line: bytes) -> StreamEntry | None:
    if len(line) > _MAX_LINE:
        return None
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    entry_id, fields = data.get("id"), data.get("f")
    if not isinstance(entry_id, str) or not _ID.fullmatch(entry_id) or not isinstance(fields, dict):
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items()):
        return None
    return StreamEntry(entry_id, fields)


def _inode(path: Path) -> int:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return -1


class EventFile:
    def __init__(self, path: Path, maxlen: int) -> None:
        self.path = path
        self.previous = path.with_name(PREVIOUS_FILE)
        self.lock = path.with_name(LOCK_FILE)
        self.maxlen = maxlen
        self._inode = -1  # the file read so far, and how far
        self._offset = 0
        self._lines = 0

    def _read(self, path: Path, into: deque[StreamEntry]) -> None:
        """Read `path` (the file last read, or a new one from its start) up to its last newline."""
        try:
            with path.open("rb") as fh:
                inode = os.fstat(fh.fileno()).st_ino
                if inode != self._inode:
                    self._inode, self._offset, self._lines = inode, 0, 0
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        for line in data[:end].splitlines():
            self._lines += 1
            entry = _parse(line)
            if entry is not None:
                into.append(entry)
        self._offset += end

    def catch_up(self, into: deque[StreamEntry]) -> None:
        """Read what was appended since the last read: a stat when nothing was."""
        current = _inode(self.path)
        if current != -1 and current == self._inode:
            if self.path.stat().st_size != self._offset:
                self._read(self.path, into)
            return
        if self._inode != -1 and _inode(self.previous) == self._inode:
            self._read(self.previous, into)  # the file being read was rotated: finish it
        elif self._inode == -1 or current != -1:
            into.clear()  # a first read, or more than one rotation missed: start again
            self._inode = -1
            self._read(self.previous, into)
        self._read(self.path, into)

    def append(self, batch: Sequence[Mapping[str, str]], into: deque[StreamEntry]) -> None:
        """Give the batch ids after the stream's last entry and append it, under the lock.
        Raises OSError when the folder cannot be written (the caller keeps events in memory)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.catch_up(into)
            last = _key(into[-1].entry_id) if into else (0, 0)
            ms = int(time.time() * 1000)
            seq = last[1] + 1 if ms <= last[0] else 0
            ms = max(ms, last[0])
            lines = []
            for fields in batch:
                entry = StreamEntry(f"{ms}-{seq}", dict(fields))
                lines.append(json.dumps({"id": entry.entry_id, "f": entry.fields}, separators=(",", ":")))
                into.append(entry)
                seq += 1
            with self.path.open("ab") as fh:
                fh.write(("\n".join(lines) + "\n").encode())
                size = fh.tell()
            self._read_own(size, len(lines))
            if self._lines >= self.maxlen:
                self.path.replace(self.previous)  # one rename: readers finish it under its new name

    def _read_own(self, size: int, lines: int) -> None:
        """Our own lines are in `into` already: move the read position past them."""
        inode = _inode(self.path)
        if inode != self._inode:  # the first lines of a new file
            self._inode, self._offset, self._lines = inode, 0, 0
        self._offset = size
        self._lines += lines
