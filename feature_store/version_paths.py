"""Which files of a version folder may be opened: manifest entries inside the folder, nothing else.

A manifest is written by training, but whoever can write the artifacts folder can write a manifest
too, with correct hashes for whatever it names. Entries such as `../../../../etc/hostname` or
`/etc/passwd`, an `indexes.json` naming an absolute `.faiss` file, or a symlink to a file outside
were all opened (and served) before these rules. Now:

- an entry is one plain file name: not empty, not `.` or `..`, no `/`, `\\` or NUL;
- its real path (symlinks resolved) must lie inside the version folder's real path; a symlink
  that stays inside is fine, one that leaves is refused;
- while a version is being loaded (`manifest_scope`, set by serving and publish with the verified
  manifest), every file opened must also be listed in that manifest.

Outside a scope (tools and tests reading a bare folder of arrays) only the first two rules apply.
The version folder itself may be a symlink (a deployment may mount versions elsewhere); what is
checked is that nothing escapes from wherever it really is.

Error messages come in two forms: the full one (paths, sizes; for the log and the authenticated
admin endpoints) and `public`, which names at most a well-formed entry of the version and never a
path, a host or a size, for answers any client can read (`/readyz`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

GENERIC_REFUSAL = "the version's files did not verify or load (details in the service log)"
# Entry names shown in public messages: what training writes (attr_<column>_codes.npy, ...).
_SHOWABLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class ArtifactError(Exception):
    """A version folder is missing, partial, corrupt or malformed; the message says which file and
    why (for logs and admins), `public` says it without paths, hosts or sizes (for anyone)."""

    def __init__(self, message: str, public: str | None = None) -> None:
        super().__init__(message)
        self.public = public or GENERIC_REFUSAL


def showable(name: object) -> str:
    """`name` when it is safe to echo to an unauthenticated client, else a placeholder."""
    return name if isinstance(name, str) and _SHOWABLE.fullmatch(name) else "an entry"


def check_entry_name(name: object) -> str:
    """`name` when it can only mean a file directly inside the version folder."""
    bad = (
        not isinstance(name, str)
        or name in ("", ".", "..")
        or any(c in name for c in "/\\\0")
        or len(name.encode("utf-8", "surrogatepass")) > 255
    )
    if bad:
        shown = repr(name)[:80]
        raise ArtifactError(
            f"manifest or index entry {shown} is not a plain file name of the version folder",
            public="an entry names a file outside the version folder or is not a plain file name",
        )
    assert isinstance(name, str)
    return name


def contained_path(folder: Path, name: object) -> Path:
    """The real path of entry `name` of `folder`, refused unless it stays inside the folder.

    Returned resolved, so what is opened next is the file that was checked, not a symlink that
    could be pointed elsewhere in between (a writer who can swap files can swap contents anyway;
    checksums are what catch that)."""
    entry = check_entry_name(name)
    base = folder.resolve()
    real = (base / entry).resolve()
    if real == base or not real.is_relative_to(base):
        raise ArtifactError(
            f"{folder / entry}: a symlink leaving the version folder (to {real}); refused",
            public=f"{showable(entry)}: a symlink leaving the version folder",
        )
    return real


@dataclass(frozen=True)
class _Scope:
    folder: Path  # resolved
    entries: frozenset[str]


_SCOPE: ContextVar[_Scope | None] = ContextVar("recsys_version_scope", default=None)


@contextmanager
def manifest_scope(folder: Path, entries: Iterable[str]) -> Iterator[None]:
    """While loading `folder`, only its verified manifest's `entries` may be opened.

    A context variable, not a parameter: the readers (arrays, mappings, indexes, attributes) are
    shared with training tools and tests that read bare folders, and the loaders that must be
    strict (serving, publish) set it once around the whole load."""
    token = _SCOPE.set(_Scope(folder.resolve(), frozenset(entries)))
    try:
        yield
    finally:
        _SCOPE.reset(token)


def in_scope(folder: Path) -> bool:
    """Whether a manifest scope for `folder` is active (the loader already verified it)."""
    scope = _SCOPE.get()
    return scope is not None and scope.folder == folder.resolve()


def entry_path(folder: Path, name: object) -> Path:
    """The path to open for entry `name`: contained in `folder`, and listed in the manifest when
    a version is being loaded. Every reader of a version file goes through here."""
    path = contained_path(folder, name)
    scope = _SCOPE.get()
    if scope is None:
        return path
    if scope.folder != folder.resolve():
        raise ArtifactError(
            f"{folder / str(name)}: outside the version being loaded ({scope.folder}); refused",
            public=f"{showable(name)}: outside the version being loaded",
        )
    if name not in scope.entries:
        raise ArtifactError(
            f"{folder / str(name)}: not listed in the manifest; refused",
            public=f"{showable(name)}: not listed in the manifest",
        )
    return path


def has_entry(folder: Path, name: str) -> bool:
    """Whether the version has the optional file `name`: its manifest lists it when a version is
    being loaded (a file lying there unlisted is refused, not ignored), else it is a file there."""
    scope = _SCOPE.get()
    if scope is not None and scope.folder == folder.resolve():
        if name in scope.entries:
            return True
        if os.path.lexists(folder / name):
            raise ArtifactError(
                f"{folder / name}: present but not listed in the manifest; refused",
                public=f"{showable(name)}: present but not listed in the manifest",
            )
        return False
    return (folder / name).is_file()
