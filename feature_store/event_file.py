"""The embedded store's event stream on disk: `EVENTS.jsonl` in the artifacts folder.

Every process serving the folder appends the events it records (`POST /interactions`) under an
exclusive flock and reads what the others appended, so the stream survives a restart and
`recsys retrain`, in a process of its own, reads back what the service recorded, as it does from
Redis. Entry ids (`<ms>-<seq>`, Redis' form) are given under the lock, after reading the file's
end, so they increase in file order whichever process wrote them.

The file keeps the newest `maxlen` entries: when it holds twice that, the writer holding the lock
rewrites it with the newest half (an atomic replace); readers notice the new file and read it
again. Lines are bytes from disk: a line that is not a well-formed entry is skipped.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from feature_store.base import StreamEntry

EVENTS_FILE = "EVENTS.jsonl"
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


class EventFile:
    def __init__(self, path: Path, maxlen: int) -> None:
        self.path = path
        self.maxlen = maxlen
        self._offset = 0
        self._inode = -1
        self._lines = 0

    def catch_up(self, into: deque[StreamEntry]) -> None:
        """Read what was appended since the last read (a stat when nothing was)."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return
        if stat.st_ino == self._inode and stat.st_size == self._offset:
            return
        with self.path.open("rb") as fh:
            self._read(fh, into)

    def _read(self, fh: BinaryIO, into: deque[StreamEntry]) -> None:
        stat = os.fstat(fh.fileno())
        if stat.st_ino != self._inode or stat.st_size < self._offset:  # compacted: read it all again
            into.clear()
            self._offset, self._inode, self._lines = 0, stat.st_ino, 0
        fh.seek(self._offset)
        data = fh.read()
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        for line in data[:end].splitlines():
            self._lines += 1
            entry = _parse(line)
            if entry is not None:
                into.append(entry)
        self._offset += end

    def append(self, batch: Sequence[Mapping[str, str]], into: deque[StreamEntry]) -> None:
        """Give the batch ids after the file's last entry and append it, all under the lock.
        Raises OSError when the folder cannot be written (the caller keeps events in memory)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked() as fh:
            self._read(fh, into)
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
            payload = ("\n".join(lines) + "\n").encode()
            fh.seek(0, os.SEEK_END)
            fh.write(payload)
            fh.flush()
            self._offset += len(payload)
            self._lines += len(lines)
            if self._lines > 2 * self.maxlen:
                self._compact(into)

    @contextmanager
    def _locked(self) -> Iterator[BinaryIO]:
        """The file, opened and flocked; reopened when another writer compacted it (replaced the
        path) while this one waited for the lock, so nothing is appended to a file no longer
        there."""
        while True:
            fh = self.path.open("ab+")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    current = self.path.stat().st_ino
                except FileNotFoundError:
                    current = -1
                if current == os.fstat(fh.fileno()).st_ino:
                    yield fh
                    return
            finally:
                fh.close()

    def _compact(self, into: deque[StreamEntry]) -> None:
        """Rewrite the file with the newest `maxlen` entries (called with the lock held)."""
        newest = list(into)[-self.maxlen :]
        tmp = self.path.with_name(f".{EVENTS_FILE}.{os.getpid()}.tmp")
        text = "".join(
            json.dumps({"id": e.entry_id, "f": e.fields}, separators=(",", ":")) + "\n" for e in newest
        ).encode()
        tmp.write_bytes(text)
        tmp.replace(self.path)
        stat = self.path.stat()
        self._offset, self._inode, self._lines = len(text), stat.st_ino, len(newest)
