"""Named locks in the store: what keeps two retrains from publishing over each other.

A lock is held by a holder string (host, process, a random part) until it expires; a holder that
dies mid-run loses it after its time to live, so a killed job never blocks the next one forever.
"""

from __future__ import annotations

import os
import re
import socket
import uuid

_NAME = re.compile(r"[a-z][a-z0-9-]{0,39}")


def check_lock_name(name: str) -> None:
    """Lock names are chosen by code, never by a request; checked all the same, since they
    become part of a key or a file's content."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"invalid lock name {name!r}")


def new_holder(purpose: str) -> str:
    """Who holds a lock, as an operator reads it: `retrain on host pid 4242 (3f9a...)`."""
    return f"{purpose} on {socket.gethostname()} pid {os.getpid()} ({uuid.uuid4().hex[:8]})"
