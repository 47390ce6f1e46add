import numpy as np
import pytest
import scipy.sparse as sp
from implicit.cpu import _als

from training.als import AlsParams, fit_als
from training.loss import als_loss, loss_pairs


def _problem(seed: int = 0, users: int = 400, items: int = 300, density: float = 0.05):
    rng = np.random.default_rng(seed)
    matrix = sp.random(users, items, density=density, format="csr", random_state=seed, dtype=np.float32)
    matrix.data = rng.integers(1, 6, matrix.nnz).astype(np.float32)
    matrix.data[rng.random(matrix.nnz) < 0.1] *= -1  # dislikes: implicit's negative confidences
    x = rng.normal(0, 0.3, (users, 16)).astype(np.float32)
    y = rng.normal(0, 0.3, (items, 16)).astype(np.float32)
    return matrix, x, y


@pytest.mark.parametrize("alpha", [1.0, 4.0, 40.0])
def test_exact_loss_is_implicits_own_value(alpha: float) -> None:
    matrix, x, y = _problem()
    ours = als_loss(loss_pairs(matrix, alpha=alpha, max_pairs=0), x, y, 0.5)
    reference = _als.calculate_loss((alpha * matrix).astype(np.float32), x, y, 0.5, num_threads=1)
    assert ours == pytest.approx(reference, rel=1e-5)


def test_loss_over_a_sample_of_pairs_estimates_the_exact_value_closely() -> None:
    matrix, x, y = _problem(seed=1, users=3000, items=1000, density=0.05)
    exact = als_loss(loss_pairs(matrix, alpha=4.0, max_pairs=0), x, y, 0.1)
    sample = loss_pairs(matrix, alpha=4.0, max_pairs=20_000)
    assert not sample.exact and len(sample.rows) == 20_000 < matrix.nnz
    assert als_loss(sample, x, y, 0.1) == pytest.approx(exact, rel=0.01)


def test_loss_over_a_sample_of_rows_estimates_the_exact_value_closely() -> None:
    matrix, x, y = _problem(seed=2, users=6000, items=3000, density=0.01)
    exact = als_loss(loss_pairs(matrix, alpha=4.0, max_pairs=0), x, y, 0.1)
    sample = loss_pairs(matrix, alpha=4.0, max_pairs=matrix.nnz, max_rows=1000)
    assert sample.user_rows is not None and len(sample.user_rows) == 1000 and not sample.exact
    assert sample.item_rows is not None and len(sample.item_rows) == 1000
    assert als_loss(sample, x, y, 0.1) == pytest.approx(exact, rel=0.01)


def test_sampled_pairs_are_real_stored_pairs_with_their_confidence() -> None:
    matrix, _, _ = _problem(seed=2)
    sample = loss_pairs(matrix, alpha=2.0, max_pairs=500, seed=3)
    np.testing.assert_allclose(
        sample.confidence, 2.0 * np.asarray(matrix[sample.rows, sample.cols]).ravel(), rtol=1e-6
    )


def test_fit_reports_when_its_loss_was_estimated() -> None:
    matrix, _, _ = _problem(seed=4, users=600, items=200, density=0.2)
    matrix.data = np.abs(matrix.data)
    params = AlsParams(factors=8, regularization=1.0, alpha=2.0, iterations=4)
    estimated = fit_als(matrix, params, loss_max_pairs=1000)
    exact = fit_als(matrix, params, loss_max_pairs=0)
    assert estimated.loss_pairs == 1000 and exact.loss_pairs is None
    for a, b in zip(estimated.history, exact.history, strict=True):
        assert a.loss == pytest.approx(b.loss, rel=0.02)
    assert exact.history[-1].loss < exact.history[0].loss
