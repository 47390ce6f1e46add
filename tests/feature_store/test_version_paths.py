"""Every file opened is a manifest entry inside the version folder: no `/`, no `..`, no symlink
leaving it, nothing the manifest does not list. Each case here was opened (and served) before,
with a manifest carrying the true hashes of what it named."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import pytest

from feature_store.embedded_store import EmbeddedStore
from feature_store.index_files import INDEX_META, read_index_meta
from feature_store.manifest import MANIFEST_NAME, ArtifactError, verify_version
from feature_store.publish import publish_version
from feature_store.version_paths import contained_path, entry_path, manifest_scope
from tests.builders import train_versions
from tests.forge import edit_json, edit_manifest, rehash, vouch


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_versions(tmp_path_factory.mktemp("paths-artifacts"))[0]


@pytest.fixture
def version(trained: Path, tmp_path: Path) -> Path:
    """A private copy of als_v1 under tmp_path/artifacts, with a secret file beside the folder."""
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    folder = artifacts / trained.name
    shutil.copytree(trained, folder)
    (tmp_path / "secret.txt").write_text("not part of any version\n")
    return folder


def _no_path_in_public(exc: ArtifactError, *paths: Path) -> None:
    for path in paths:
        assert str(path) not in exc.public and "/" not in exc.public, exc.public


@pytest.mark.parametrize("kind", ["relative", "absolute", "etc-passwd", "backslash", "dot-dot"])
def test_manifest_entries_that_are_paths_are_refused_even_with_true_hashes(version: Path, kind: str) -> None:
    secret = version.parent.parent / "secret.txt"
    if kind == "etc-passwd" and not Path("/etc/passwd").is_file():
        pytest.skip("no /etc/passwd here")
    name, target = {
        "relative": (os.path.relpath(secret, version), secret),
        "absolute": (str(secret), secret),
        "etc-passwd": ("/etc/passwd", Path("/etc/passwd")),
        "backslash": ("..\\secret.txt", secret),
        "dot-dot": ("..", secret),
    }[kind]
    vouch(version, {name: target})
    with pytest.raises(ArtifactError, match="not a plain file name") as info:
        verify_version(version)
    _no_path_in_public(info.value, secret)


def test_a_symlink_leaving_the_folder_is_refused_and_one_staying_inside_is_not(version: Path) -> None:
    mapping = version / "item_mapping.json"
    outside = version.parent.parent / "item_mapping.json"
    shutil.copy(mapping, outside)  # same bytes: the hash cannot tell
    inside = version / "item_mapping.copy.json"
    shutil.copy(mapping, inside)
    mapping.unlink()
    mapping.symlink_to(inside.name)
    verify_version(version)  # a link within the folder is just another name for its file
    mapping.unlink()
    mapping.symlink_to(outside)
    with pytest.raises(ArtifactError, match="symlink leaving the version folder") as info:
        verify_version(version)
    assert info.value.public == "item_mapping.json: a symlink leaving the version folder"


def test_a_manifest_that_is_a_symlink_out_of_the_folder_is_refused(version: Path) -> None:
    outside = version.parent.parent / MANIFEST_NAME
    shutil.move(version / MANIFEST_NAME, outside)
    (version / MANIFEST_NAME).symlink_to(outside)
    with pytest.raises(ArtifactError, match="symlink leaving"):
        verify_version(version)


@pytest.mark.parametrize("field", ["file", "vectors"])
@pytest.mark.parametrize("where", ["absolute", "parent"])
def test_indexes_json_naming_a_file_outside_is_refused(version: Path, field: str, where: str) -> None:
    meta = json.loads((version / INDEX_META).read_text())["als"]
    source = version / meta[field]
    outside = version.parent.parent / source.name
    shutil.copy(source, outside)
    named = str(outside) if where == "absolute" else f"../../{source.name}"

    def point_outside(data: dict) -> dict:
        data["als"][field] = named
        return data

    edit_json(version, INDEX_META, point_outside)
    verify_version(version)  # the checksums all hold: only the name rule can refuse it
    with pytest.raises(ArtifactError, match="not a plain file name") as info:
        read_index_meta(version)
    _no_path_in_public(info.value, outside)
    store = EmbeddedStore(version.parent)
    with pytest.raises(ArtifactError):
        asyncio.run(publish_version(version, store))
    assert not (version.parent / "ACTIVE.json").exists()


async def test_publish_opens_no_file_the_manifest_does_not_list(version: Path) -> None:
    meta = json.loads((version / INDEX_META).read_text())["als"]
    shutil.copy(version / meta["file"], version / "extra.faiss")  # inside, unlisted

    def point_at_extra(data: dict) -> dict:
        data["als"]["file"] = "extra.faiss"
        return data

    edit_json(version, INDEX_META, point_at_extra)
    with pytest.raises(ArtifactError, match="extra.faiss: not listed in the manifest"):
        await publish_version(version, EmbeddedStore(version.parent))
    assert await EmbeddedStore(version.parent).active_version() is None


async def test_a_folder_with_only_a_manifest_is_refused_by_publish(version: Path) -> None:
    for child in version.iterdir():
        if child.name != MANIFEST_NAME:
            child.unlink()
    edit_manifest(version, lambda data: data.update(files={}))
    verify_version(version)  # nothing listed, nothing wrong: the content check refuses it
    with pytest.raises(ArtifactError, match="indexes.json: not listed in the manifest"):
        await publish_version(version, EmbeddedStore(version.parent))


def test_a_wrong_size_is_told_to_the_log_but_never_in_the_public_reason(version: Path) -> None:
    edit_manifest(version, lambda data: data["files"]["item_factors.npy"].update(bytes=123_456_789))
    with pytest.raises(ArtifactError, match="123456789") as info:
        verify_version(version)
    assert info.value.public == "item_factors.npy: size does not match the manifest (truncated or replaced)"
    assert not any(c.isdigit() for c in info.value.public)


def test_the_helpers_refuse_what_they_promise(version: Path) -> None:
    for name in ("", ".", "..", "a/b", "/etc/passwd", "a\\b", "a\0b", 3):
        with pytest.raises(ArtifactError):
            contained_path(version, name)
    assert contained_path(version, "item_factors.npy") == (version / "item_factors.npy").resolve()
    with manifest_scope(version, {"item_factors.npy"}):
        entry_path(version, "item_factors.npy")
        with pytest.raises(ArtifactError, match="not listed in the manifest"):
            entry_path(version, "user_factors.npy")
        with pytest.raises(ArtifactError, match="outside the version being loaded"):
            entry_path(version.parent, "LATEST")
    rehash(version, "item_factors.npy")  # outside a scope only containment applies
    entry_path(version, "user_factors.npy")
