"""Forging versions the way someone with write access to the artifacts folder can: edit any file,
then give the manifest the true sha256 and size of whatever it should vouch for. Checksums alone
cannot stop that; these helpers let tests show what does."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from feature_store.manifest import MANIFEST_NAME, sha256_file


def edit_manifest(folder: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply `change` to the manifest's JSON (the manifest itself is not hashed by anything)."""
    path = folder / MANIFEST_NAME
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2) + "\n")


def vouch(folder: Path, entries: dict[str, Path]) -> None:
    """List `name -> file` in the manifest with that file's true sha256 and size."""

    def change(data: dict[str, Any]) -> None:
        for name, path in entries.items():
            data["files"][name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}

    edit_manifest(folder, change)


def rehash(folder: Path, *names: str) -> None:
    """Re-vouch for files of the folder after editing them."""
    vouch(folder, {name: folder / name for name in names})


def edit_json(folder: Path, name: str, change: Callable[[Any], Any]) -> None:
    """Replace the JSON file `name` by `change(its content)` and re-vouch for it."""
    path = folder / name
    path.write_text(json.dumps(change(json.loads(path.read_text()))))
    rehash(folder, name)


def copy_version(source: Path, artifacts: Path, name: str) -> Path:
    """A copy of `source` as version `name` (folder and manifest renamed alike)."""
    target = artifacts / name
    shutil.copytree(source, target, symlinks=True)
    edit_manifest(target, lambda data: data.update(version=name))
    return target
