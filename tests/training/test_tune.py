from dataclasses import replace

import pytest

from training.als import AlsParams
from training.confidence import Scaling
from training.dataset import build_dataset
from training.events import DEFAULT_EVENT_WEIGHTS
from training.interaction_log import from_table
from training.tune import ALPHA_LADDER, DISCOUNT_LADDER, REG_LADDER, Searcher, auto_select


@pytest.fixture(scope="module")
def searcher(small_synthetic):
    ds = build_dataset(from_table(small_synthetic.interactions, DEFAULT_EVENT_WEIGHTS))
    return ds.matrix


BASE = AlsParams(factors=8, regularization=10.0, alpha=4.0, iterations=6, scaling=Scaling.log)


def test_pinned_parameters_are_never_searched(searcher) -> None:
    s = Searcher(searcher, every=3)
    chosen, trials = auto_select(s, BASE, pinned={"alpha", "scaling", "iterations"})
    assert {t.params.alpha for t in trials} == {4.0}
    assert {t.params.scaling for t in trials} == {Scaling.log}
    assert chosen.alpha == 4.0 and chosen.iterations == 6
    assert {t.params.regularization for t in trials} >= set(REG_LADDER)


def test_selection_picks_the_best_validation_trial_and_its_iteration(searcher) -> None:
    s = Searcher(searcher, every=3)
    chosen, trials = auto_select(s, BASE, pinned={"scaling"})
    best = max(trials, key=lambda t: t.validation_ndcg)
    assert replace(chosen, iterations=best.params.iterations) == best.params
    assert chosen.iterations == best.best_iteration
    assert {t.params.alpha for t in trials} >= set(ALPHA_LADDER)


def test_the_popularity_discount_is_searched_unless_pinned(searcher) -> None:
    searched = auto_select(Searcher(searcher, every=3), BASE, pinned={"scaling", "alpha"})[1]
    assert {t.params.popularity_discount for t in searched} == set(DISCOUNT_LADDER)
    pinned = {"scaling", "alpha", "popularity_discount"}
    kept = auto_select(Searcher(searcher, every=3), replace(BASE, popularity_discount=0.25), pinned=pinned)
    assert {t.params.popularity_discount for t in kept[1]} == {0.25}
    assert kept[0].popularity_discount == 0.25


def test_repeated_candidates_are_fitted_once(searcher) -> None:
    s = Searcher(searcher, every=3)
    s.score(BASE)
    s.score(BASE)
    assert len(s.trials) == 1


def test_sampled_negatives_are_distinct_and_never_items_the_user_touched(searcher) -> None:
    from training.splits import SplitKind, split
    from training.tune import sample_negatives

    parts = split(searcher, SplitKind.leave_one_out, seed=0)
    sampled = sample_negatives(parts.train, parts.test, 50, seed=0)
    assert len(sampled.users) == (parts.test.getnnz(axis=1) > 0).sum()
    for row, user in enumerate(sampled.users[:300]):
        negs = sampled.negatives[row]
        touched = set(searcher[user].indices.tolist())
        assert len(set(negs.tolist())) == 50 and not touched & set(negs.tolist())
        assert sampled.positives[row] in touched


def test_a_sampled_protocol_searcher_validates_on_up_to_three_items_per_user(searcher) -> None:
    s = Searcher(searcher, every=3, sampled_negatives=99)
    sampled, holdout = s.validation.sampled, s.validation.holdout
    assert sampled is not None
    per_user = holdout.getnnz(axis=1)
    assert per_user.max() == 3 and (per_user <= 3).all()
    assert len(sampled.users) == holdout.nnz  # one case per held-out item
    for row in range(0, len(sampled.users), 97):
        user = sampled.users[row]
        touched = set(searcher[user].indices.tolist())  # training part and every held-out item
        assert sampled.positives[row] in set(holdout[user].indices.tolist())
        assert not touched & set(sampled.negatives[row].tolist())
    trial = s.score(BASE)
    assert 0.0 < trial.validation_ndcg <= 1.0
