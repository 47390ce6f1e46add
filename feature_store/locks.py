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


_HOLDER = re.compile(r".* on (?P<host>\S+) pid (?P<pid>\d+) \([0-9a-f]+\)")


def holder_is_dead(holder: str) -> bool:
    """Whether `holder` names a process on this host that no longer runs (a retrain killed by
    the OOM killer or a reboot): its lock can be taken over at once instead of after its time to
    live. A holder on another host is never judged from here."""
    found = _HOLDER.fullmatch(holder)
    if found is None or found["host"] != socket.gethostname():
        return False
    try:
        os.kill(int(found["pid"]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it runs, as another user
    return False
