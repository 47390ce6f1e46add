"""The artifact manifest: what a model version folder holds, and proof that it is complete.

A version folder (`artifacts/als_v3/`) is only trusted through its `manifest.json`: the sha256 of
every file is recorded when the version is written and checked before anything is loaded, so a
truncated copy or a half-written folder is refused with a message naming the file, and whoever
loads it can keep serving the previous version.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

MANIFEST_NAME = "manifest.json"
LATEST_NAME = "LATEST"
MANIFEST_SCHEMA = 1
_VERSION_RE = re.compile(r"^(?P<family>[a-z][a-z0-9_]*?)_v(?P<number>\d+)$")


class ArtifactError(Exception):
    """A version folder is missing, partial or corrupt; the message says which file and why."""


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
    """Hash every file already in `folder` and write the manifest last, so its presence means done."""
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


def read_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise ArtifactError(f"{folder}: no {MANIFEST_NAME}; the version is incomplete or not one.")
    try:
        return Manifest.model_validate_json(path.read_bytes())
    except (ValidationError, ValueError) as exc:
        raise ArtifactError(f"{path}: unreadable manifest ({exc.__class__.__name__}).") from exc


def verify_version(folder: Path) -> Manifest:
    """Check sizes and sha256 of every listed file; raise ArtifactError naming the first bad one."""
    manifest = read_manifest(folder)
    for name, entry in manifest.files.items():
        path = folder / name
        if not path.is_file():
            raise ArtifactError(f"{path}: listed in the manifest but missing.")
        size = path.stat().st_size
        if size != entry.bytes:
            raise ArtifactError(
                f"{path}: {size} bytes, the manifest says {entry.bytes} (truncated or replaced)."
            )
        if sha256_file(path) != entry.sha256:
            raise ArtifactError(f"{path}: sha256 does not match the manifest (corrupt).")
    return manifest


def parse_version(name: str) -> tuple[str, int] | None:
    """`als_v12` -> ('als', 12); anything else -> None."""
    match = _VERSION_RE.match(name)
    return (match["family"], int(match["number"])) if match else None


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
    tmp = artifacts / f".{LATEST_NAME}.{os.getpid()}.tmp"
    tmp.write_text(version + "\n")
    tmp.replace(artifacts / LATEST_NAME)


def read_latest(artifacts: Path) -> str | None:
    path = artifacts / LATEST_NAME
    if not path.is_file():
        return None
    name = path.read_text().strip()
    return name or None


def resolve_version(artifacts: Path, version: str | None) -> Path:
    """A version name (or LATEST when None) -> its verified-to-exist folder."""
    name = version or read_latest(artifacts)
    if name is None:
        raise ArtifactError(f"{artifacts}: no LATEST file and no version given; run `recsys train` first.")
    folder = artifacts / name
    if not folder.is_dir():
        known = ", ".join(list_versions(artifacts)) or "none"
        raise ArtifactError(f"{folder}: no such version (known: {known}).")
    return folder


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())
