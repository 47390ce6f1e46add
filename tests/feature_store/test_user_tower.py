"""The numpy user tower reproduces training's user vectors and refuses broken files clearly."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from feature_store.manifest import ArtifactError
from feature_store.user_tower import UserTower
from tests.builders import small_data
from training.dataset import build_dataset
from training.events import DEFAULT_EVENT_WEIGHTS
from training.interaction_log import from_table
from training.two_tower import TwoTowerParams, TwoTowerResult, fit_two_tower, save_user_tower

# A small cap, so the encoder's history cap is exercised by the heavier synthetic users.
PARAMS = TwoTowerParams(dim=16, hidden=32, epochs=3, batch_size=256, learning_rate=1e-2, max_history=8)


@pytest.fixture(scope="module")
def matrix() -> sp.csr_matrix:
    data = small_data(users=500, items=200, seed=11)
    return build_dataset(from_table(data.interactions, DEFAULT_EVENT_WEIGHTS)).matrix.tocsr()


@pytest.fixture(scope="module")
def fitted(matrix: sp.csr_matrix) -> TwoTowerResult:
    return fit_two_tower(matrix, PARAMS)


@pytest.fixture
def saved(fitted: TwoTowerResult, tmp_path: Path) -> Path:
    path = tmp_path / "user_tower.npz"
    save_user_tower(fitted, path)
    return path


def test_round_trip_reproduces_every_trained_user_vector(
    matrix: sp.csr_matrix, fitted: TwoTowerResult, saved: Path
) -> None:
    tower = UserTower.load(saved)
    assert tower.max_history == PARAMS.max_history and tower.dim == PARAMS.dim
    assert tower.n_items == matrix.shape[1]
    encoded = 0
    capped = 0
    for u in range(matrix.shape[0]):
        row = matrix[u]
        # Raw rows and weights, dislikes included: the encoder drops what training dropped.
        vector = tower.encode(row.indices, row.data)
        if vector is None:
            assert not (row.data > 0).any()
            assert not fitted.user_embeddings[u].any()
            continue
        assert vector.dtype == np.float32 and vector.shape == (PARAMS.dim,)
        assert np.abs(vector - fitted.user_embeddings[u]).max() < 1e-4, u
        encoded += 1
        capped += int((row.data > 0).sum() > PARAMS.max_history)
    assert encoded > 400 and capped > 20  # the cap was exercised, not just the easy users


def test_a_new_user_from_a_few_items_gets_a_unit_vector(saved: Path) -> None:
    tower = UserTower.load(saved)
    vector = tower.encode(np.array([3, 17, 42]), np.array([1.0, 2.5, 0.5]))
    assert vector is not None and vector.dtype == np.float32 and vector.shape == (PARAMS.dim,)
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
    # Repeated events on an item add up, as training aggregates a pair; order does not matter.
    same = tower.encode(np.array([42, 17, 3, 17]), np.array([0.5, 1.0, 1.0, 1.5]))
    assert same is not None
    np.testing.assert_allclose(vector, same, atol=1e-6)
    # Rows outside the table (items newer than the model) and non-positive weights are ignored.
    extra = tower.encode(np.array([3, 17, 42, 10_000, -1, 5]), np.array([1.0, 2.5, 0.5, 3.0, 3.0, -1.0]))
    assert extra is not None
    np.testing.assert_allclose(vector, extra, atol=1e-6)


@pytest.mark.parametrize(
    ("rows", "weights"),
    [
        ([], []),
        ([1, 2], [-1.0, 0.0]),
        ([5, 5], [1.0, -2.0]),  # net dislike
        ([10_000, -3], [1.0, 1.0]),  # nothing in range
    ],
)
def test_nothing_positive_gives_none(saved: Path, rows: list[int], weights: list[float]) -> None:
    tower = UserTower.load(saved)
    assert tower.encode(np.array(rows, dtype=np.int64), np.array(weights, dtype=np.float64)) is None


def test_mismatched_rows_and_weights_are_refused(saved: Path) -> None:
    with pytest.raises(ValueError, match="differ in length"):
        UserTower.load(saved).encode(np.array([1, 2]), np.array([1.0]))


def _rewrite(saved: Path, target: Path, drop: str | None = None, **replace_arrays: np.ndarray) -> Path:
    with np.load(saved) as npz:
        arrays = {k: npz[k] for k in npz.files if k != drop}
    arrays.update(replace_arrays)
    with target.open("wb") as fh:
        np.savez(fh, **arrays)
    return target


def test_missing_keys_are_an_artifact_error(saved: Path, tmp_path: Path) -> None:
    path = _rewrite(saved, tmp_path / "no_w2.npz", drop="w2")
    with pytest.raises(ArtifactError, match="missing w2"):
        UserTower.load(path)


def test_shapes_that_do_not_chain_are_an_artifact_error(saved: Path, tmp_path: Path) -> None:
    path = _rewrite(saved, tmp_path / "bad_b1.npz", b1=np.zeros(7, np.float32))
    with pytest.raises(ArtifactError, match="shapes disagree"):
        UserTower.load(path)


def test_non_finite_weights_are_an_artifact_error(saved: Path, tmp_path: Path) -> None:
    with np.load(saved) as npz:
        w1 = npz["w1"].copy()
    w1[0, 0] = np.nan
    path = _rewrite(saved, tmp_path / "nan.npz", w1=w1)
    with pytest.raises(ArtifactError, match="NaN"):
        UserTower.load(path)


def test_truncated_or_absent_or_pickled_files_are_an_artifact_error(saved: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(saved.read_bytes()[:200])
    with pytest.raises(ArtifactError, match="not a readable"):
        UserTower.load(truncated)
    with pytest.raises(ArtifactError, match="not a readable"):
        UserTower.load(tmp_path / "absent.npz")
    pickled = tmp_path / "pickled.npz"
    with pickled.open("wb") as fh:
        np.savez(
            fh, **{k: np.array([{"x": 1}], dtype=object) for k in ("history_table", "w1", "b1", "w2", "b2")}
        )
    with pytest.raises(ArtifactError):
        UserTower.load(pickled)
    assert zipfile.is_zipfile(saved)


def test_constructor_checks_shapes_too(fitted: TwoTowerResult) -> None:
    tower = dict(fitted.user_tower)
    UserTower(**tower)  # no cap: fine
    with pytest.raises(ValueError, match="shapes disagree"):
        UserTower(**{**tower, "w2": tower["w2"][:-1]})
    with pytest.raises(ValueError, match="max_history"):
        UserTower(**tower, max_history=0)


def test_saved_file_holds_no_pickled_objects(saved: Path) -> None:
    with np.load(saved, allow_pickle=False) as npz:
        assert set(npz.files) == {"history_table", "w1", "b1", "w2", "b2", "max_history"}
        assert all(npz[k].dtype == np.float32 for k in ("history_table", "w1", "b1", "w2", "b2"))
        assert int(npz["max_history"]) == PARAMS.max_history
