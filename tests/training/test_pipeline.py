"""`train`'s holdout report scores the search's own winner instead of fitting it again."""

import numpy as np
import pytest

from training.dataset import build_dataset
from training.events import DEFAULT_EVENT_WEIGHTS
from training.interaction_log import from_table
from training.pipeline import ImplicitEngine, search_seed, train
from training.settings import TrainSettings
from training.splits import split
from training.tune import SEARCHED, search_fit_part


class CountingEngine(ImplicitEngine):
    """The real implicit engine, remembering how many pairs each fit outside the search saw."""

    def __init__(self) -> None:
        self.fitted_pairs: list[int] = []

    def fit(self, matrix, params, on_iteration=None):
        self.fitted_pairs.append(int(matrix.nnz))
        return super().fit(matrix, params, on_iteration)


@pytest.fixture(scope="module")
def dataset(small_synthetic):
    return build_dataset(from_table(small_synthetic.interactions, DEFAULT_EVENT_WEIGHTS))


@pytest.fixture(scope="module")
def searched(dataset):
    engine = CountingEngine()
    settings = TrainSettings(max_factors=128, search_seconds=20)
    return settings, engine, train(dataset, settings, write=False, engine=engine)


def _fit_part_pairs(dataset, settings: TrainSettings) -> int:
    parts = split(dataset.matrix, settings.split, test_fraction=settings.test_split, seed=settings.seed)
    return int(search_fit_part(parts.train, search_seed(settings)).nnz)


def test_a_searched_train_fits_once_outside_the_search_the_refit_on_all(dataset, searched) -> None:
    settings, engine, report = searched
    assert report.trials
    assert engine.fitted_pairs == [dataset.matrix.nnz]
    assert report.metrics["model_fit_pairs"] == _fit_part_pairs(dataset, settings)
    assert report.metrics["model_fit_pairs"] < report.metrics["train_pairs"]


def test_a_pinned_train_is_scored_on_the_same_part_the_search_fits_on(dataset, searched) -> None:
    settings, _, report = searched
    chosen = report.params
    pinned = settings.model_copy(update={name: getattr(chosen, name) for name in SEARCHED})
    engine = CountingEngine()
    again = train(dataset, pinned, write=False, engine=engine)
    assert not again.trials
    assert engine.fitted_pairs == [_fit_part_pairs(dataset, settings), dataset.matrix.nnz]
    # The winner as the search fitted it is the fit of its values on that part: the figures of
    # a default and a pinned train compare.
    for name in ("recall", "ndcg", "precision", "coverage"):
        assert again.metrics["als"][name] == pytest.approx(report.metrics["als"][name], abs=1e-6)
    # And the model served is the same either way: the refit on all data is from scratch.
    np.testing.assert_allclose(again.result.item_factors, report.result.item_factors, atol=1e-5)


def test_pinned_iterations_are_scored_as_pinned_not_where_the_search_stopped(dataset) -> None:
    engine = CountingEngine()
    settings = TrainSettings(max_factors=64, iterations=30, search_seconds=20)
    report = train(dataset, settings, write=False, engine=engine)
    assert report.params.iterations == 30
    winner = max(report.trials, key=lambda t: t.score)
    if winner.best_iteration == 30:
        pytest.skip("the search's winner peaked at the pinned count: nothing to tell apart")
    assert engine.fitted_pairs == [_fit_part_pairs(dataset, settings), dataset.matrix.nnz]
