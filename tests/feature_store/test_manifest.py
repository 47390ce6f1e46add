import json

import pytest

from feature_store.manifest import (
    ArtifactError,
    list_versions,
    parse_version,
    read_latest,
    resolve_version,
    verify_version,
    write_latest,
    write_manifest,
)


@pytest.fixture
def version(tmp_path):
    folder = tmp_path / "als_v1"
    folder.mkdir()
    (folder / "item_factors.npy").write_bytes(b"\x93NUMPY" + b"0" * 100)
    (folder / "metrics.json").write_text("{}")
    write_manifest(
        folder,
        version="als_v1",
        model_family="als",
        data_fingerprint="abc",
        hyperparameters={"factors": 8},
        metrics={},
    )
    return folder


def test_a_complete_version_verifies(version) -> None:
    manifest = verify_version(version)
    assert set(manifest.files) == {"item_factors.npy", "metrics.json"}
    assert manifest.hyperparameters == {"factors": 8}


def test_a_truncated_file_is_named(version) -> None:
    path = version / "item_factors.npy"
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(ArtifactError, match="item_factors.npy.*truncated"):
        verify_version(version)


def test_a_corrupt_file_of_the_same_size_is_caught_by_its_checksum(version) -> None:
    path = version / "item_factors.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="item_factors.npy.*sha256"):
        verify_version(version)


def test_a_missing_file_or_manifest_is_refused(version) -> None:
    (version / "metrics.json").unlink()
    with pytest.raises(ArtifactError, match="metrics.json.*missing"):
        verify_version(version)
    (version / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match="no manifest.json"):
        verify_version(version)


def test_a_garbled_manifest_is_refused(version) -> None:
    (version / "manifest.json").write_text(json.dumps({"version": 3}))
    with pytest.raises(ArtifactError, match="unreadable manifest"):
        verify_version(version)


def test_versions_sort_numerically_and_latest_resolves(tmp_path, version) -> None:
    for n in (2, 10):
        other = tmp_path / f"als_v{n}"
        other.mkdir()
        write_manifest(
            other,
            version=other.name,
            model_family="als",
            data_fingerprint="x",
            hyperparameters={},
            metrics={},
        )
    (tmp_path / "als_v11").mkdir()  # no manifest: incomplete, not listed
    assert list_versions(tmp_path) == ["als_v1", "als_v2", "als_v10"]
    write_latest(tmp_path, "als_v10")
    assert read_latest(tmp_path) == "als_v10"
    assert resolve_version(tmp_path, None).name == "als_v10"
    with pytest.raises(ArtifactError, match="known: als_v1, als_v2, als_v10"):
        resolve_version(tmp_path, "als_v99")
    assert parse_version("als_v12") == ("als", 12) and parse_version("als_vx") is None
