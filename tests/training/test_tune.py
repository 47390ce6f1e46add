import math
from dataclasses import replace

import pytest

from training.als import AlsParams
from training.confidence import Scaling
from training.dataset import build_dataset
from training.events import DEFAULT_EVENT_WEIGHTS
from training.interaction_log import from_table
from training.splits import SplitKind, split
from training.tune import (
    ALPHA_LADDER,
    DISCOUNT_LADDER,
    GROWTH_RACE_FROM,
    MIN_GAIN,
    REG_LADDER,
    Searcher,
    Trial,
    auto_select,
)


@pytest.fixture(scope="module")
def searcher(small_synthetic):
    ds = build_dataset(from_table(small_synthetic.interactions, DEFAULT_EVENT_WEIGHTS))
    return ds.matrix


BASE = AlsParams(factors=8, regularization=10.0, alpha=4.0, iterations=6, scaling=Scaling.log)


def test_pinned_parameters_are_never_searched(searcher) -> None:
    s = Searcher(searcher, every=3)
    pinned = {"alpha", "scaling", "iterations", "factors"}
    selection = auto_select(s, BASE, pinned=pinned)
    assert {t.params.alpha for t in selection.trials} == {4.0}
    assert {t.params.scaling for t in selection.trials} == {Scaling.log}
    assert {t.params.factors for t in selection.trials} == {8}
    assert selection.params.alpha == 4.0 and selection.params.iterations == 6
    assert {t.params.regularization for t in selection.trials} >= set(REG_LADDER)


def test_selection_returns_the_winning_trial_with_its_iteration(searcher) -> None:
    s = Searcher(searcher, every=3)
    selection = auto_select(s, BASE, pinned={"scaling"}, max_factors=16)
    chosen = selection.params
    winner = next(t for t in selection.trials if replace(t.params, iterations=chosen.iterations) == chosen)
    assert chosen.iterations == winner.best_iteration
    assert winner.score >= max(t.score for t in selection.trials) / (1.0 + MIN_GAIN)
    assert {t.params.alpha for t in selection.trials} >= set(ALPHA_LADDER)
    assert max(t.params.factors for t in selection.trials) <= 16
    assert selection.metric == "recall@20"


def test_the_popularity_discount_is_searched_unless_pinned(searcher) -> None:
    pinned = {"scaling", "alpha", "factors"}
    searched = auto_select(Searcher(searcher, every=3), BASE, pinned=pinned).trials
    assert {t.params.popularity_discount for t in searched} == set(DISCOUNT_LADDER)
    kept = auto_select(
        Searcher(searcher, every=3),
        replace(BASE, popularity_discount=0.25),
        pinned=pinned | {"popularity_discount"},
    )
    assert {t.params.popularity_discount for t in kept.trials} == {0.25}
    assert kept.params.popularity_discount == 0.25


class ScriptedSearcher(Searcher):
    """The search logic on a known landscape: each configuration's validation score is a
    formula, so where the search ends up is checkable without fitting anything."""

    def __init__(self, landscape) -> None:
        self.trials = []
        self._cache = {}
        self._on_trial = None
        self.landscape = landscape

    @property
    def metric_name(self) -> str:
        return "recall@20"

    def score(self, params, race=None, race_from=6, patience_from=0):
        key = replace(params, calculate_loss=False)
        if key not in self._cache:
            self._cache[key] = Trial(params, self.landscape(params), 10, 0.0, ((10, self.landscape(params)),))
            self.trials.append(self._cache[key])
        return self._cache[key]


def landscape(best_size: int, gain: float):
    """Alpha best at 16 (with L2 16, the penalty moving with alpha); each doubling up to
    `best_size` gains `gain` when its L2 is 9x the previous size's, and loses otherwise."""

    def score(p: AlsParams) -> float:
        doublings = math.log2(p.factors / 64)
        ideal_reg = 16.0 * 9.0**doublings
        value = (
            0.2
            - 0.01 * abs(math.log(p.alpha / 16.0, 4))
            - 0.004 * abs(math.log10(p.regularization / ideal_reg))
        )
        sized = min(doublings, math.log2(best_size / 64))
        return value * (1.0 + gain) ** sized * (0.9 ** max(0.0, doublings - sized))

    return score


def test_the_size_doubles_while_it_wins_with_regularisation_rising_with_it() -> None:
    selection = auto_select(
        ScriptedSearcher(landscape(256, 0.03)), replace(BASE, factors=64), binary_data=True
    )
    assert selection.params.factors == 256
    at_64 = max((t for t in selection.trials if t.params.factors == 64), key=lambda t: t.score)
    # The landscape's best L2 at 256 factors is 16 x 81; the walk in sqrt(3) steps from the
    # 64-factor winner lands within half a step of it (the x3 walk it replaced ended at 810 from
    # that winner's 10, 1.6x under it).
    assert at_64.params.regularization == 10.0
    assert abs(math.log(selection.params.regularization / (16.0 * 81))) <= math.log(3.0**0.25)
    assert selection.params.alpha == 16.0
    assert {t.params.factors for t in selection.trials} == {64, 128, 256, 512}


def test_the_size_stops_at_max_factors() -> None:
    selection = auto_select(
        ScriptedSearcher(landscape(256, 0.03)), replace(BASE, factors=64), binary_data=True, max_factors=128
    )
    assert max(t.params.factors for t in selection.trials) == 128
    assert selection.params.factors == 128


def test_a_larger_model_must_win_by_more_than_the_noise_to_be_kept() -> None:
    selection = auto_select(
        ScriptedSearcher(landscape(128, MIN_GAIN / 2)), replace(BASE, factors=64), binary_data=True
    )
    assert selection.params.factors == 64
    assert {t.params.factors for t in selection.trials} == {64, 128, 256}


def test_small_gains_that_add_up_past_the_noise_are_kept() -> None:
    selection = auto_select(
        ScriptedSearcher(landscape(512, 0.6 * MIN_GAIN)), replace(BASE, factors=64), binary_data=True
    )
    assert selection.params.factors == 512


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
    assert 0.0 < trial.score <= 1.0


def test_of_larger_sizes_the_best_on_validation_is_kept_even_within_half_a_percent() -> None:
    gains = {64: 1.0, 128: 1.015, 256: 1.03, 512: 1.032, 1024: 0.95}
    base = landscape(64, 0.0)

    def score(p: AlsParams) -> float:
        ideal = 16.0 * 9.0 ** math.log2(p.factors / 64)
        return base(replace(p, factors=64, regularization=p.regularization * 16.0 / ideal)) * gains[p.factors]

    selection = auto_select(ScriptedSearcher(score), replace(BASE, factors=64), binary_data=True)
    assert {t.params.factors for t in selection.trials} == {64, 128, 256, 512}
    assert selection.params.factors == 512  # 0.2% over 256: within the noise, kept anyway


class TimedScriptedSearcher(ScriptedSearcher):
    """The scripted landscape where every new trial takes one second of the budget."""

    def __init__(self, landscape, budget_seconds) -> None:
        super().__init__(landscape)
        self.budget_seconds = budget_seconds
        self.spent_seconds = 0.0
        self.stopped_by_budget = False

    def score(self, params, race=None, race_from=6, patience_from=0):
        before = len(self.trials)
        trial = super().score(params, race, race_from, patience_from)
        self.spent_seconds += len(self.trials) - before
        return trial


def test_a_time_budget_stops_the_search_and_keeps_the_best_trial_so_far() -> None:
    searcher = TimedScriptedSearcher(landscape(256, 0.03), budget_seconds=5.0)
    selection = auto_select(searcher, replace(BASE, factors=64), binary_data=True)
    assert len(selection.trials) == 5
    assert selection.stopped_by_budget
    best = max(selection.trials, key=lambda t: t.score)
    assert selection.params == replace(best.params, iterations=best.best_iteration)
    assert selection.params.factors == 64  # the size is grown last, and the budget ran out first


def test_a_budget_the_whole_search_fits_in_changes_nothing() -> None:
    unlimited = auto_select(
        ScriptedSearcher(landscape(256, 0.03)), replace(BASE, factors=64), binary_data=True
    )
    roomy = auto_select(
        TimedScriptedSearcher(landscape(256, 0.03), budget_seconds=1000.0),
        replace(BASE, factors=64),
        binary_data=True,
    )
    assert roomy.params == unlimited.params and len(roomy.trials) == len(unlimited.trials)
    assert not roomy.stopped_by_budget and not unlimited.stopped_by_budget


def test_a_spent_budget_still_fits_the_first_candidate(searcher) -> None:
    s = Searcher(searcher, every=3, budget_seconds=1e-9)
    selection = auto_select(s, BASE, pinned={"scaling", "factors"})
    assert len(selection.trials) == 1 and selection.stopped_by_budget
    assert selection.params == replace(BASE, iterations=selection.trials[0].best_iteration)


class RacingRecorder(ScriptedSearcher):
    """The scripted landscape, remembering the curve each trial raced and from which sweep."""

    def __init__(self, landscape) -> None:
        super().__init__(landscape)
        self.races: dict[AlsParams, tuple[Trial | None, int]] = {}
        self.patience_from: dict[AlsParams, int] = {}

    def score(self, params, race=None, race_from=6, patience_from=0):
        self.races.setdefault(params, (race, race_from))
        self.patience_from.setdefault(params, patience_from)
        return super().score(params, race, race_from, patience_from)


def test_a_larger_size_races_its_best_sibling_from_sweep_6_and_the_smaller_model_from_10() -> None:
    recorder = RacingRecorder(landscape(256, 0.03))
    auto_select(recorder, replace(BASE, factors=64), binary_data=True)
    grown = [p for p in recorder.races if p.factors > 64]
    assert len({p.factors for p in grown}) >= 2
    for params in grown:
        race, race_from = recorder.races[params]
        same_size = [t for t in recorder.trials if t.params.factors == params.factors]
        before = same_size[: [t.params for t in same_size].index(params)]
        smaller = max(
            (t for t in recorder.trials if t.params.factors == params.factors // 2), key=lambda t: t.score
        )
        if not before:
            assert race is smaller and race_from == GROWTH_RACE_FROM
            continue
        sibling = max(before, key=lambda t: t.score)
        assert race_from == 6 and race.params == sibling.params
        # The sibling's curve as it is; the smaller model's counts only from the 10th sweep on.
        moved = {(max(it, GROWTH_RACE_FROM), value) for it, value in smaller.curve}
        assert set(race.curve) == set(sibling.curve) | moved


def test_pairs_given_to_also_fit_are_fitted_in_every_trial_and_never_scored(searcher) -> None:
    parts = split(searcher, SplitKind.random, test_fraction=0.2, seed=3)
    train, test = parts.train, searcher.multiply(parts.test).tocsr()
    plain = Searcher(train, seed=5)
    wider = Searcher(train, seed=5, also_fit=test)
    # The same validation: the extra pairs change what is fitted, not what is scored.
    assert (wider.validation.holdout != plain.validation.holdout).nnz == 0
    assert wider.fit_part.nnz == plain.fit_part.nnz + test.nnz
    assert (wider.fit_part - plain.fit_part != test).nnz == 0
    held = wider.validation.holdout.multiply(test)
    assert held.nnz == 0  # no test pair is ever a validation target


def test_a_larger_size_is_not_stopped_for_a_lack_of_progress_before_the_smaller_models_peak(
    searcher,
) -> None:
    s = Searcher(searcher, every=2)
    s.validation = replace(s.validation, tolerance=10.0)  # no checkpoint counts as progress
    checkpoints = (2, 4, 6, 8, 10, 12, 15, 19)
    smaller = Trial(BASE, 0.0, 19, 0.0, tuple((it, 0.0) for it in checkpoints))  # never ahead
    trial = s.score(replace(BASE, iterations=30), race=smaller, patience_from=19)
    assert not trial.lost_race
    assert trial.curve[-1][0] == 19
    plain = s.score(replace(BASE, iterations=29), race=smaller)
    assert plain.curve[-1][0] == 6


def test_only_growth_trials_wait_for_the_smaller_models_peak() -> None:
    recorder = RacingRecorder(landscape(256, 0.03))
    auto_select(recorder, replace(BASE, factors=64), binary_data=True)
    for params, waited in recorder.patience_from.items():
        if params.factors == 64:
            assert waited == 0
        else:
            smaller = [t for t in recorder.trials if t.params.factors == params.factors // 2]
            assert waited in {t.best_iteration for t in smaller} and waited > 0
