"""The artifact manifest: what a model version folder holds, and proof that it is complete.

A version folder (`artifacts/als_v3/`) is only trusted through its `manifest.json`: the sha256 of
every file is recorded when the version is written and checked before anything is loaded, so a
truncated copy or a half-written folder is refused with a message naming the file, and whoever
loads it can keep serving the previous version. Every entry must be a plain file name whose real
path stays inside the folder (`version_paths`), and the version's name follows the one rule of
`version_names`: a manifest is data that whoever can write the folder can forge, so neither its
entries nor the names it carries are ever used as paths.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from feature_store.version_names import check_version_name, split_version_name
from feature_store.version_paths import ArtifactError, check_entry_name, contained_path, showable

__all__ = [
    "LATEST_NAME",
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA",
    "ArtifactError",
    "FileEntry",
    "Manifest",
    "list_versions",
    "load_json",
    "manifest_digest",
    "parse_version",
    "read_latest",
    "read_manifest",
    "resolve_version",
    "sha256_file",
    "verify_version",
    "write_latest",
    "write_manifest",
]

MANIFEST_NAME = "manifest.json"
LATEST_NAME = "LATEST"
MANIFEST_SCHEMA = 1


class FileEntry(BaseModel):
    sha256: str
    bytes: int


class Manifest(BaseModel):
    """The contents of `manifest.json`."""

    schema_version: int = MANIFEST_SCHEMA
    version: str = Field(description="Folder name, e.g. als_v3.")
    created: str = Field(description="UTC time the version was written (ISO 8601).")
    model_family: str = Field(description="What produced it, e.g. 'als'.")
    data_fingerprint: str = Field(description="sha256 of the training matrix and id mappings.")
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    files: dict[str, FileEntry] = Field(description="Every other file of the folder, hashed.")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(
    folder: Path,
    *,
    version: str,
    model_family: str,
    data_fingerprint: str,
    hyperparameters: dict[str, Any],
    metrics: dict[str, Any],
) -> Manifest:
    """Hash every file already in `folder` and write the manifest last, so its presence means done.

    The name is checked here too, so training cannot write a version that serving would refuse."""
    check_version_name(version)
    files = {
        p.name: FileEntry(sha256=sha256_file(p), bytes=p.stat().st_size)
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != MANIFEST_NAME
    }
    manifest = Manifest(
        version=version,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        model_family=model_family,
        data_fingerprint=data_fingerprint,
        hyperparameters=hyperparameters,
        metrics=metrics,
        files=files,
    )
    (folder / MANIFEST_NAME).write_text(manifest.model_dump_json(indent=2) + "\n")
    return manifest


def _regular_file(path: Path) -> bool:
    """A regular file (not a FIFO, a device or a folder: reading those hangs or means nothing)."""
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


def read_manifest(folder: Path) -> Manifest:
    """The folder's manifest, read through the same containment rule as every entry (a
    `manifest.json` that is a symlink out of the folder is refused like any other file)."""
    path = contained_path(folder, MANIFEST_NAME)
    if not _regular_file(path):
        raise ArtifactError(
            f"{folder}: no {MANIFEST_NAME}; the version is incomplete or not one.",
            public=f"no {MANIFEST_NAME}: the version is incomplete or not one",
        )
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except (ValidationError, ValueError) as exc:
        raise ArtifactError(
            f"{path}: unreadable manifest ({exc.__class__.__name__}).", public=f"unreadable {MANIFEST_NAME}"
        ) from exc


def manifest_digest(folder: Path) -> str | None:
    """sha256 of the folder's manifest bytes, None when there is none (or it cannot be read).

    What a refused version is remembered by: the poll retries it only once this changes, instead
    of re-hashing the whole version every few seconds."""
    try:
        return sha256_file(contained_path(folder, MANIFEST_NAME))
    except (OSError, ArtifactError):
        return None


def verify_version(folder: Path) -> Manifest:
    """Check every listed file: a plain name inside the folder (symlinks may not leave it), a
    regular file, its size and its sha256; raise ArtifactError naming the first bad one.

    The full message (for the log and admins) has the path and both sizes; the public one names
    only the entry, so `/readyz` never tells the size of any file."""
    manifest = read_manifest(folder)
    for name, entry in manifest.files.items():
        check_entry_name(name)
        if name == MANIFEST_NAME:
            raise ArtifactError(
                f"{folder}: the manifest lists itself.", public=f"the manifest lists {MANIFEST_NAME}"
            )
        path = contained_path(folder, name)
        shown = showable(name)
        if not _regular_file(path):
            raise ArtifactError(
                f"{path}: listed in the manifest but missing (or not a regular file).",
                public=f"{shown}: listed in the manifest but missing",
            )
        size = path.stat().st_size
        if size != entry.bytes:
            raise ArtifactError(
                f"{path}: {size} bytes, the manifest says {entry.bytes} (truncated or replaced).",
                public=f"{shown}: size does not match the manifest (truncated or replaced)",
            )
        if sha256_file(path) != entry.sha256:
            raise ArtifactError(
                f"{path}: sha256 does not match the manifest (corrupt).",
                public=f"{shown}: sha256 does not match the manifest (corrupt)",
            )
    return manifest


def parse_version(name: str) -> tuple[str, int] | None:
    """`als_v12` -> ('als', 12); anything that breaks the version name rule -> None."""
    return split_version_name(name)


def list_versions(artifacts: Path, family: str | None = None) -> list[str]:
    """Complete version folders (with a manifest), oldest first."""
    if not artifacts.is_dir():
        return []
    found: list[tuple[int, str]] = []
    for child in artifacts.iterdir():
        parsed = parse_version(child.name)
        complete = parsed and child.is_dir() and (child / MANIFEST_NAME).is_file()
        if complete and parsed and (family is None or parsed[0] == family):
            found.append((parsed[1], child.name))
    return [name for _, name in sorted(found)]


def write_latest(artifacts: Path, version: str) -> None:
    """Point `LATEST` at a version atomically (write a temporary file, then rename over)."""
    check_version_name(version)
    tmp = artifacts / f".{LATEST_NAME}.{os.getpid()}.tmp"
    tmp.write_text(version + "\n")
    tmp.replace(artifacts / LATEST_NAME)


def read_latest(artifacts: Path) -> str | None:
    """What `LATEST` says, unchecked (callers check the name: it is a file anyone with write
    access to the artifacts folder can change)."""
    path = artifacts / LATEST_NAME
    if not path.is_file():
        return None
    name = path.read_bytes()[:1024].decode("utf-8", "replace").strip()
    return name or None


def resolve_version(artifacts: Path, version: str | None) -> Path:
    """A version name (or LATEST when None) -> its verified-to-exist folder."""
    name = version or read_latest(artifacts)
    if name is None:
        raise ArtifactError(f"{artifacts}: no LATEST file and no version given; run `recsys train` first.")
    check_version_name(name, "version" if version else f"{LATEST_NAME} names a version whose name")
    folder = artifacts / name
    if not folder.is_dir():
        known = ", ".join(list_versions(artifacts)) or "none"
        raise ArtifactError(f"{folder}: no such version (known: {known}).")
    return folder


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())
