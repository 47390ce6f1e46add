"""`train`'s search fits its candidates on the test pairs too (never scoring them there), and its
holdout report fits the chosen values on the training part alone."""

import numpy as np
import pytest

from training.dataset import build_dataset
from training.events import DEFAULT_EVENT_WEIGHTS
from training.interaction_log import from_table
from training.pipeline import ImplicitEngine, holdout_metrics, train
from training.settings import TrainSettings
from training.splits import split
from training.tune import SEARCHED


class CountingEngine(ImplicitEngine):
    """The real implicit engine, remembering what each search was given and how many pairs each
    fit outside the search saw."""

    def __init__(self) -> None:
        self.fitted_pairs: list[int] = []
        self.with_loss: list[bool] = []
        self.also_fit: list = []

    def select(self, train, settings, progress, also_fit=None):
        self.also_fit.append(also_fit)
        return super().select(train, settings, progress, also_fit=also_fit)

    def fit(self, matrix, params, on_iteration=None):
        self.fitted_pairs.append(int(matrix.nnz))
        self.with_loss.append(params.calculate_loss)
        return super().fit(matrix, params, on_iteration)


@pytest.fixture(scope="module")
def dataset(small_synthetic):
    return build_dataset(from_table(small_synthetic.interactions, DEFAULT_EVENT_WEIGHTS))


@pytest.fixture(scope="module")
def searched(dataset):
    engine = CountingEngine()
    settings = TrainSettings(max_factors=128, search_seconds=20)
    return settings, engine, train(dataset, settings, write=False, engine=engine)


def _parts(dataset, settings: TrainSettings):
    return split(dataset.matrix, settings.split, test_fraction=settings.test_split, seed=settings.seed)


def test_the_search_of_train_also_fits_the_test_pairs_with_their_weights(dataset, searched) -> None:
    settings, engine, report = searched
    parts = _parts(dataset, settings)
    (also_fit,) = engine.also_fit
    assert also_fit is not None
    assert also_fit.nnz == parts.test.nnz
    assert (abs(parts.test - (also_fit > 0)) > 0).nnz == 0  # exactly the test pairs
    # With the log's own weights, not the test part's ones: the synthetic log weighs events.
    expected = dataset.matrix.multiply(parts.test)
    np.testing.assert_allclose(also_fit.toarray(), expected.toarray())
    assert len(np.unique(also_fit.data)) > 1
    assert report.metrics["selection_fitted_test_pairs"] is True


def test_a_searched_train_scores_its_choice_fitted_on_the_training_part_then_refits_on_all(
    dataset, searched
) -> None:
    settings, engine, report = searched
    assert report.trials
    train_pairs = _parts(dataset, settings).train.nnz
    assert engine.fitted_pairs == [train_pairs, dataset.matrix.nnz]
    assert report.metrics["model_fit_pairs"] == report.metrics["train_pairs"] == train_pairs


def test_only_the_shipped_fit_computes_its_training_loss(dataset, searched) -> None:
    settings, engine, report = searched
    assert engine.with_loss == [False, True]  # the scored fit's loss would be thrown away
    assert all(h.loss is not None for h in report.result.history)
    no_refit = settings.model_copy(update={name: getattr(report.params, name) for name in SEARCHED})
    no_refit = no_refit.model_copy(update={"refit": False})
    engine = CountingEngine()
    shipped = train(dataset, no_refit, write=False, engine=engine)
    assert engine.with_loss == [True]  # the scored model is the one shipped: its curve is kept
    assert all(h.loss is not None for h in shipped.result.history)


def test_a_pinned_train_scores_and_ships_the_same_model_as_the_search_that_chose_its_values(
    dataset, searched
) -> None:
    settings, _, report = searched
    chosen = report.params
    pinned = settings.model_copy(update={name: getattr(chosen, name) for name in SEARCHED})
    engine = CountingEngine()
    again = train(dataset, pinned, write=False, engine=engine)
    assert not again.trials
    assert "selection_fitted_test_pairs" not in again.metrics
    for name in ("recall", "ndcg", "precision", "coverage"):
        assert again.metrics["als"][name] == pytest.approx(report.metrics["als"][name], abs=1e-6)
    np.testing.assert_allclose(again.result.item_factors, report.result.item_factors, atol=1e-5)


def test_evaluate_keeps_the_test_pairs_out_of_the_search(dataset) -> None:
    engine = CountingEngine()
    settings = TrainSettings(max_factors=64, search_seconds=10)
    metrics, _, _ = holdout_metrics(dataset, settings, [], engine=engine)
    assert engine.also_fit == [None]
    assert "selection_fitted_test_pairs" not in metrics
