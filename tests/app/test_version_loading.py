"""Loading a version for serving validates its content, not only its checksums: whatever is wrong
with a version whose files hash correctly, the loader raises one ArtifactError (the registry's
refusal), never a TypeError or AttributeError that used to escape as a 500 or a failed start."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.versions import load_serving_version
from feature_store.index_files import INDEX_META
from feature_store.item_attributes import ATTRIBUTES_META
from feature_store.manifest import MANIFEST_NAME, ArtifactError
from feature_store.version_files import POPULARITY_SCORES
from tests.forge import copy_version, edit_json, edit_manifest, rehash, vouch
from training.events import DEFAULT_EVENT_WEIGHTS


def _string_rows(mapping: dict[str, int]) -> dict[str, str]:
    return {k: str(v) for k, v in mapping.items()}


def _as_list(mapping: dict[str, int]) -> list[str]:
    return sorted(mapping, key=mapping.__getitem__)


def _ef_search(value: object) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def change(data: dict[str, Any]) -> dict[str, Any]:
        data["als"]["params"]["ef_search"] = value
        return data

    return change


def _mapping(change: Callable[[dict[str, int]], Any]) -> Callable[[Path], None]:
    return lambda folder: edit_json(folder, "item_mapping.json", change)


def _hyper(key: str, value: object) -> Callable[[Path], None]:
    return lambda folder: edit_manifest(folder, lambda data: data["hyperparameters"].update({key: value}))


def _only_a_manifest(folder: Path) -> None:
    for child in folder.iterdir():
        if child.name != MANIFEST_NAME:
            child.unlink()
    edit_manifest(folder, lambda data: data.update(files={}))


def _popularity_too_short(folder: Path) -> None:
    np.save(folder / POPULARITY_SCORES, np.ones(3, np.float32), allow_pickle=False)
    rehash(folder, POPULARITY_SCORES)


def _bool_ef_search(folder: Path) -> None:
    edit_json(folder, INDEX_META, _ef_search(True))


MALFORMED: dict[str, tuple[Callable[[Path], None], str]] = {
    "mapping-string-rows": (_mapping(_string_rows), "item_mapping.json: not an id mapping"),
    "mapping-as-list": (_mapping(_as_list), "item_mapping.json: not an id mapping"),
    "mapping-not-a-permutation": (
        _mapping(lambda m: dict.fromkeys(m, 0)),
        "item_mapping.json: not an id mapping",
    ),
    "event-weights-list": (_hyper("event_weights", ["click", 1.0]), "event_weights"),
    "event-weights-strings": (_hyper("event_weights", {"click": "x"}), "event_weights"),
    "discount-string": (_hyper("popularity_discount", "x"), "popularity_discount"),
    "content-list": (_hyper("content", [1, 2]), "content"),
    "fusion-list": (_hyper("fusion", [1]), "fusion"),
    "ef-search-string": (lambda f: edit_json(f, INDEX_META, _ef_search("x")), INDEX_META),
    "ef-search-bool": (_bool_ef_search, INDEX_META),
    "indexes-as-list": (lambda f: edit_json(f, INDEX_META, lambda d: [d]), INDEX_META),
    "only-a-manifest": (_only_a_manifest, "indexes.json: not listed in the manifest"),
    "popularity-wrong-length": (_popularity_too_short, POPULARITY_SCORES),
    "manifest-names-another-version": (
        lambda f: edit_manifest(f, lambda data: data.update(version="als_v1")),
        "names another version",
    ),
}


@pytest.fixture
def own(artifacts: Path, tmp_path: Path) -> Path:
    """A copy of als_v2 as als_v3 in a private artifacts folder."""
    folder = tmp_path / "artifacts"
    folder.mkdir()
    return copy_version(artifacts / "als_v2", folder, "als_v3")


def test_the_untouched_copy_loads(own: Path) -> None:
    loaded = load_serving_version(own.parent, own.name, DEFAULT_EVENT_WEIGHTS)
    assert loaded.name == "als_v3" and loaded.als.n == len(loaded.item_ids)


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_content_is_one_artifact_error_with_a_public_reason(own: Path, case: str) -> None:
    damage, reason = MALFORMED[case]
    damage(own)
    with pytest.raises(ArtifactError) as info:
        load_serving_version(own.parent, own.name, DEFAULT_EVENT_WEIGHTS)
    assert reason in info.value.public or reason in str(info.value), (info.value.public, str(info.value))
    assert str(own) not in info.value.public and "/" not in info.value.public


@pytest.mark.parametrize("name", ["..", "/tmp", "../artifacts/als_v3", "{meta}"])
def test_a_name_that_is_a_path_is_refused_before_any_file_is_read(own: Path, name: str) -> None:
    with pytest.raises(ArtifactError, match="version name rule") as info:
        load_serving_version(own.parent, name, DEFAULT_EVENT_WEIGHTS)
    assert info.value.public == "not a valid version name"


def test_an_attribute_table_lying_unlisted_in_the_folder_is_refused(own: Path) -> None:
    if (own / ATTRIBUTES_META).exists():
        edit_manifest(own, lambda data: data["files"].pop(ATTRIBUTES_META))
    else:
        (own / ATTRIBUTES_META).write_text(json.dumps({"columns": {}}))
    with pytest.raises(ArtifactError, match="present but not listed in the manifest"):
        load_serving_version(own.parent, own.name, DEFAULT_EVENT_WEIGHTS)


def test_an_attribute_column_named_as_a_path_is_refused(own: Path, tmp_path: Path) -> None:
    outside = tmp_path / "attr_x_numbers.npy"
    np.save(outside, np.zeros(3), allow_pickle=False)

    def add_column(data: dict[str, Any]) -> dict[str, Any]:
        data["columns"]["../../../attr_x"] = {"kind": "numeric", "values": []}
        return data

    if not (own / ATTRIBUTES_META).exists():
        pytest.skip("the shared versions were trained with item metadata; this one has none")
    edit_json(own, ATTRIBUTES_META, add_column)
    with pytest.raises(ArtifactError, match="not a plain file name"):
        load_serving_version(own.parent, own.name, DEFAULT_EVENT_WEIGHTS)


def test_an_index_file_outside_the_folder_is_refused_even_when_vouched_for(own: Path, tmp_path: Path) -> None:
    meta = json.loads((own / INDEX_META).read_text())["als"]
    outside = tmp_path / "index.faiss"
    shutil.copy(own / meta["file"], outside)

    def point_outside(data: dict[str, Any]) -> dict[str, Any]:
        data["als"]["file"] = str(outside)
        return data

    edit_json(own, INDEX_META, point_outside)
    vouch(own, {str(outside): outside})
    with pytest.raises(ArtifactError, match="not a plain file name"):
        load_serving_version(own.parent, own.name, DEFAULT_EVENT_WEIGHTS)


def test_the_embedded_store_check_validates_the_user_table_too(own: Path) -> None:
    np.save(own / "profile_seen_items.npy", np.full(5, 10**6, np.int32), allow_pickle=False)
    rehash(own, "profile_seen_items.npy")
    with pytest.raises(ArtifactError, match="profile"):
        load_serving_version(own.parent, own.name, DEFAULT_EVENT_WEIGHTS, check_profiles=True)
