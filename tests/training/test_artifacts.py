import json

import numpy as np
import pytest

from feature_store.manifest import read_latest, verify_version
from training.als import AlsParams, fit_als
from training.artifacts import write_als_version
from training.dataset import build_dataset
from training.events import DEFAULT_EVENT_WEIGHTS
from training.interaction_log import from_table


@pytest.fixture(scope="module")
def trained(small_synthetic):
    ds = build_dataset(from_table(small_synthetic.interactions, DEFAULT_EVENT_WEIGHTS))
    return ds, fit_als(ds.matrix, AlsParams(factors=8, iterations=3))


def test_a_version_holds_every_file_and_verifies(tmp_path, trained) -> None:
    ds, result = trained
    folder = write_als_version(tmp_path, ds, result, {"als": {"ndcg": 0.1}})
    assert folder.name == "als_v1" and read_latest(tmp_path) == "als_v1"
    names = {p.name for p in folder.iterdir()}
    assert names >= {
        "manifest.json",
        "user_factors.npy",
        "item_factors.npy",
        "user_mapping.json",
        "item_mapping.json",
        "model.npz",
        "metrics.json",
        "history.json",
        "training_curve.png",
        "embeddings.png",
    }
    assert "selection.png" not in names  # nothing was searched
    manifest = verify_version(folder)
    assert manifest.data_fingerprint == ds.fingerprint
    assert manifest.hyperparameters["factors"] == 8


def test_a_searched_version_shows_its_trials_as_a_png(tmp_path, trained) -> None:
    ds, result = trained
    rows = [
        {"factors": f, "regularization": r, "alpha": 4.0, "validation_score": 0.1 + f / 1e4 - r / 1e3}
        for f in (64, 128)
        for r in (0.1, 10.0)
    ]
    metrics = {"selection": rows, "selection_metric": "validation recall@20"}
    folder = write_als_version(tmp_path, ds, result, metrics)
    png = (folder / "selection.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert verify_version(folder).metrics["selection"] == rows


def test_artifacts_load_without_pickle_and_rescore_from_files_alone(tmp_path, trained) -> None:
    ds, result = trained
    folder = write_als_version(tmp_path, ds, result, {})
    users = np.load(folder / "user_factors.npy", allow_pickle=False)
    items = np.load(folder / "item_factors.npy", allow_pickle=False)
    with np.load(folder / "model.npz", allow_pickle=False) as model:
        assert model["item_factors"].shape == items.shape
    mapping = json.loads((folder / "user_mapping.json").read_text())
    uid = ds.user_ids[5]
    assert mapping[uid] == 5
    np.testing.assert_array_equal(users[mapping[uid]], result.user_factors[5])


def test_versions_count_up_and_a_failed_write_leaves_nothing(tmp_path, trained, monkeypatch) -> None:
    ds, result = trained
    write_als_version(tmp_path, ds, result, {})
    assert write_als_version(tmp_path, ds, result, {}).name == "als_v2"

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("training.artifacts.write_manifest", boom)
    with pytest.raises(OSError, match="disk full"):
        write_als_version(tmp_path, ds, result, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["LATEST", "als_v1", "als_v2"]
    assert read_latest(tmp_path) == "als_v2"


def test_a_discounted_fit_ships_its_item_weights_and_serving_folds_in_with_them(
    tmp_path, small_synthetic
) -> None:
    from dataclasses import replace

    from app.versions import load_serving_version
    from feature_store.manifest import ArtifactError

    ds = build_dataset(from_table(small_synthetic.interactions, DEFAULT_EVENT_WEIGHTS))
    result = fit_als(ds.matrix, AlsParams(factors=8, iterations=3, popularity_discount=0.25))
    folder = write_als_version(tmp_path, ds, result, {})
    manifest = verify_version(folder)
    assert manifest.hyperparameters["popularity_discount"] == 0.25
    assert "item_confidence_weights.npy" in manifest.files
    version = load_serving_version(tmp_path, folder.name, DEFAULT_EVENT_WEIGHTS)
    assert version.foldin is not None and version.foldin.item_weights is not None
    np.testing.assert_array_equal(version.foldin.item_weights, result.item_weights)

    plain = write_als_version(tmp_path, ds, replace(result, item_weights=None), {})
    with pytest.raises(ArtifactError):  # the discount without its weights: refused, not guessed
        load_serving_version(tmp_path, plain.name, DEFAULT_EVENT_WEIGHTS)
