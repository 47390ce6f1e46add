import itertools
from dataclasses import replace

import numpy as np
import pytest

from training.als import AlsParams, Validation, fit_als
from training.dataset import build_dataset
from training.evaluation import evaluate_ranking, popularity_factors
from training.events import DEFAULT_EVENT_WEIGHTS
from training.interaction_log import from_table
from training.splits import SplitKind, split, validation_split


@pytest.fixture(scope="module")
def synthetic_split(small_synthetic):
    ds = build_dataset(from_table(small_synthetic.interactions, DEFAULT_EVENT_WEIGHTS))
    return split(ds.matrix, SplitKind.random, seed=0)


PARAMS = AlsParams(factors=16, regularization=10.0, alpha=4.0, iterations=10)


def test_als_finds_taste_structure_that_popularity_cannot(synthetic_split) -> None:
    result = fit_als(synthetic_split.train, PARAMS)
    als = evaluate_ranking(
        result.user_factors, result.item_factors, synthetic_split.train, synthetic_split.test
    )
    pop = evaluate_ranking(
        *popularity_factors(synthetic_split.train), synthetic_split.train, synthetic_split.test
    )
    assert als.ndcg > 1.5 * pop.ndcg
    assert als.coverage > pop.coverage


def test_loss_is_recorded_each_iteration_and_falls(synthetic_split) -> None:
    result = fit_als(synthetic_split.train, PARAMS)
    losses = [h.loss for h in result.history]
    assert len(losses) == PARAMS.iterations and all(v is not None for v in losses)
    assert losses[-1] < losses[0]


def test_same_seed_gives_the_same_factors(synthetic_split) -> None:
    a = fit_als(synthetic_split.train, replace(PARAMS, iterations=3))
    b = fit_als(synthetic_split.train, replace(PARAMS, iterations=3))
    np.testing.assert_allclose(a.item_factors, b.item_factors, rtol=1e-4, atol=1e-6)


def test_factors_are_float32_and_shaped_like_the_matrix(synthetic_split) -> None:
    result = fit_als(synthetic_split.train, replace(PARAMS, iterations=2))
    assert result.user_factors.dtype == np.float32
    assert result.user_factors.shape == (synthetic_split.train.shape[0], 16)
    assert result.item_factors.shape == (synthetic_split.train.shape[1], 16)


def test_early_stopping_stops_and_keeps_the_best_iterations_factors(synthetic_split) -> None:
    holdout = validation_split(synthetic_split.train, 0.1, seed=1)
    # A regularisation this weak on few factors overfits: validation peaks, then decays.
    params = AlsParams(factors=64, regularization=0.001, alpha=40.0, iterations=40, calculate_loss=False)
    val = Validation(holdout.test, every=2, patience=2)
    result = fit_als(holdout.train, params, validation=val)
    measured = [h for h in result.history if h.validation_score is not None]
    assert len(result.history) < params.iterations
    best = max(measured, key=lambda h: h.validation_score or 0.0)
    assert result.best_iteration == best.iteration
    again = evaluate_ranking(
        result.user_factors, result.item_factors, holdout.train, holdout.test, k=20, max_users=val.max_users
    )
    assert again.recall == pytest.approx(best.validation_score, rel=1e-6)


def test_checkpoints_are_every_two_sweeps_early_then_a_quarter_of_the_sweeps_so_far(synthetic_split) -> None:
    val = Validation(synthetic_split.test, every=2)
    points = [2]
    while points[-1] < 30:
        points.append(val.next_checkpoint(points[-1]))
    assert points == [2, 4, 6, 8, 10, 12, 15, 19, 24, 30]


def test_a_fit_trailing_the_incumbent_stops_as_a_loser(synthetic_split) -> None:
    holdout = validation_split(synthetic_split.train, 0.1, seed=1)
    params = AlsParams(factors=16, regularization=1.0, alpha=4.0, iterations=30, calculate_loss=False)
    patient = Validation(holdout.test, patience=100)
    free = fit_als(holdout.train, params, validation=patient)
    assert not free.lost_race and len(free.history) == params.iterations
    curve = tuple((h.iteration, h.validation_score) for h in free.history if h.validation_score is not None)
    ahead = tuple((it, score * 1.05) for it, score in curve)  # an incumbent 5% better everywhere
    raced = fit_als(holdout.train, params, validation=replace(patient, race=ahead, race_from=6))
    assert raced.lost_race
    assert [h.iteration for h in raced.history][-1] == 8  # behind at 6 and 8: stopped there


def test_no_progress_stops_a_challenger_only_from_the_incumbents_best_iteration(synthetic_split) -> None:
    holdout = validation_split(synthetic_split.train, 0.1, seed=1)
    params = AlsParams(factors=16, regularization=1.0, alpha=4.0, iterations=30, calculate_loss=False)
    # A tolerance no checkpoint can clear: every checkpoint after the first counts as no progress.
    stalled = Validation(holdout.test, patience=2, tolerance=10.0)
    assert [h.iteration for h in fit_als(holdout.train, params, validation=stalled).history][-1] == 6
    patient = replace(stalled, patience_from=19)
    history = fit_als(holdout.train, params, validation=patient).history
    assert [h.iteration for h in history][-1] == 19  # checkpoints 15 and 19 were both without progress


def test_a_fit_under_half_the_incumbent_stops_at_the_fourth_sweep(synthetic_split) -> None:
    holdout = validation_split(synthetic_split.train, 0.1, seed=1)
    params = AlsParams(factors=16, regularization=1.0, alpha=4.0, iterations=30, calculate_loss=False)
    unbeatable = tuple((it, 1.0) for it in range(2, 31, 2))
    raced = fit_als(holdout.train, params, validation=Validation(holdout.test, race=unbeatable, race_from=10))
    assert raced.lost_race and [h.iteration for h in raced.history][-1] == 4


def test_dislikes_push_items_down(small_synthetic) -> None:
    ds = build_dataset(from_table(small_synthetic.interactions, DEFAULT_EVENT_WEIGHTS))
    result = fit_als(ds.matrix, PARAMS)
    m = ds.matrix.tocoo()
    scores = np.einsum("ij,ij->i", result.user_factors[m.row], result.item_factors[m.col])
    assert scores[m.data < 0].mean() < scores[m.data > 0].mean()


def test_bias_terms_are_learned_and_scores_stay_dot_products(synthetic_split) -> None:
    params = replace(PARAMS, biases=True, iterations=6)
    result = fit_als(synthetic_split.train, params)
    users, items = result.user_factors, result.item_factors
    assert users.shape[1] == items.shape[1] == PARAMS.factors + 2
    np.testing.assert_array_equal(users[:, -1], 1.0)  # users [x, b_u, 1]
    np.testing.assert_array_equal(items[:, -2], 1.0)  # items [y, 1, b_i]
    # Popular items earn a larger bias: the popularity signal lives in b_i.
    popularity = np.asarray((synthetic_split.train > 0).sum(axis=0)).ravel()
    assert np.corrcoef(popularity, items[:, -1])[0, 1] > 0.3
    losses = [h.loss for h in result.history]
    assert all(b <= a + 1e-7 for a, b in itertools.pairwise(losses))


def test_biased_model_beats_popularity_too(synthetic_split) -> None:
    result = fit_als(synthetic_split.train, replace(PARAMS, biases=True))
    als = evaluate_ranking(
        result.user_factors, result.item_factors, synthetic_split.train, synthetic_split.test
    )
    pop = evaluate_ranking(
        *popularity_factors(synthetic_split.train), synthetic_split.train, synthetic_split.test
    )
    assert als.ndcg > 1.5 * pop.ndcg
