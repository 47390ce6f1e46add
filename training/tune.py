"""Choosing hyperparameters on validation data: the `tune` grid and `train`'s automatic selection.

Both score a configuration the same way: fit on the training part minus a per-user validation
holdout, measure Recall@20 of a full ranking of the catalog on that holdout (for a sample of
its users sized by the held-out items it holds and the cost of a checkpoint, `validation_users`)
every two iterations, and keep the best iteration. No test pair is ever scored while choosing
(`train` fits the candidates on its test pairs too, never scores them there: `Searcher`).

Automatic selection (the default of `train`) is a coordinate search in two phases, because no
single setting is right: on real data sets the best alpha ranged from 4 to 1024, the best L2
from 30 to 2,560 and the best size from 64 to 512 factors, the L2 rising with alpha and size.

1. **Shape, at a small size** (64 factors, where a sweep costs a fraction of one at the final
   size): the confidence scaling (when weights are not all equal), alpha on a x4 ladder (the
   L2 penalty moving in proportion), regularisation on a x10 ladder, the popularity discount,
   then the neighbours of alpha (x2) and of the regularisation (x3) again. A ladder whose
   winner sits at an end is walked further (twice at most).
2. **Size**: the factors double while each size gains more than STEP_GAIN over the previous
   one and `max_factors` allows, each size tried at the previous size's L2 and sqrt(3) times it
   (walked further in sqrt(3) steps while that wins); the best of the larger sizes is kept if
   it beats 64 factors by more than MIN_GAIN.

Every trial after the first races the incumbent: a fit that trails the incumbent's validation
curve by more than 2% at two checkpoints in a row (from the 6th sweep; a larger size races the
smaller model, which it trails at first, from the 10th, and its sibling at the same size from
the 6th) is stopped there, so a loser costs a few sweeps, not a whole fit. A larger size within
that margin is not stopped for a lack of progress before the sweep where the smaller model
peaked: ALS can plateau and climb again, and the whole size search hangs on that comparison
(`Validation.patience_from`). Shape trials keep the plain patience: given as many sweeps as the
incumbent, the flat L2 landscape of MovieLens 1M at 64 factors let noise walk the penalty down
to 0.33, from where the sqrt(3) steps at 128 factors never climbed back (Recall@20 -4%).
Warm-starting trials from the incumbent's factors was tried and dropped: a few sweeps from a
neighbour's fixed point score like the neighbour, the search drifted to extreme values, and on
Amazon Sports the model it chose scored 7% under the seed's settings. Pinned parameters are
never searched.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from training.als import AlsParams, SampledHoldout, Validation, fit_als
from training.confidence import Scaling
from training.splits import SplitKind, split, validation_split

START_FACTORS = 64
ALPHA_LADDER = (1.0, 4.0, 16.0, 64.0)
REG_LADDER = (0.1, 1.0, 10.0, 100.0)
DISCOUNT_LADDER = (0.0, 0.25, 0.5)
SIZE_REG_STEPS = (1.0, 3.0**0.5)  # L2 of a doubled model, relative to the previous size's
MIN_GAIN = 0.01  # relative validation gain a larger model must show over 64 factors to be kept
STEP_GAIN = 0.005  # relative gain of one doubling over the last that makes the next one worth trying
GROWTH_RACE_FROM = 10  # a larger model starts slower: it races the incumbent only from here
VALIDATION_FRACTION = 0.1  # of each user's positives, held out to score the trials
# How many users the validation scores at every checkpoint (`validation_users`): as many as
# VALIDATION_SCORES user x item scores per checkpoint allow, never fewer than MIN_VALIDATION_USERS,
# and more where they hold fewer than MIN_VALIDATION_ITEMS held-out items, up to MAX_VALIDATION_SCORES.
MIN_VALIDATION_USERS = 3000
VALIDATION_SCORES = 120_000_000
MIN_VALIDATION_ITEMS = 20_000
MAX_VALIDATION_SCORES = 4 * VALIDATION_SCORES
SEARCHED = ("factors", "regularization", "alpha", "scaling", "popularity_discount", "iterations")


@dataclass(frozen=True)
class Trial:
    params: AlsParams
    score: float  # the validation metric at the best iteration
    best_iteration: int
    seconds: float
    curve: tuple[tuple[int, float], ...] = ()  # (iteration, validation metric) where measured
    lost_race: bool = False  # stopped early, trailing the incumbent

    def row(self) -> dict[str, Any]:
        p = self.params
        discount = f" d{p.popularity_discount:g}" if p.popularity_discount else ""
        return {
            "label": f"f{p.factors} r{p.regularization:g} a{p.alpha:g} {p.scaling}{discount}",
            "factors": p.factors,
            "regularization": p.regularization,
            "alpha": p.alpha,
            "scaling": str(p.scaling),
            "popularity_discount": p.popularity_discount,
            "iterations": self.best_iteration,
            "validation_score": round(self.score, 5),
            "stopped_trailing": self.lost_race,
            "seconds": round(self.seconds, 2),
        }


def validation_users(
    holdout: sp.csr_matrix,
    seed: int,
    *,
    min_users: int = MIN_VALIDATION_USERS,
    max_scores: int = VALIDATION_SCORES,
    min_items: int = MIN_VALIDATION_ITEMS,
    ceiling_scores: int = MAX_VALIDATION_SCORES,
) -> np.ndarray:
    """The users whose held-out items score the trials, sorted: a random sample sized by what
    the verdicts need and what a checkpoint may cost, not a fixed number of users.

    A verdict is a difference of Recall@20 between models, and its noise is mostly the counting
    noise of the held-out items: a recall near 0.1 measured on n items has a relative standard
    error of about sqrt(0.9 / (0.1 n)). So the sample takes as many users as `max_scores` user x
    item scores per checkpoint allow (each checkpoint ranks the whole catalog for every sampled
    user; 120 million cost about 0.4 s at 64 factors on these two cores as top-k lists, 0.2 s
    as counted ranks, `evaluate_recall_ndcg`), at least `min_users`,
    and more where those hold fewer than `min_items` held-out items, up to `ceiling_scores`.
    Measured: a fixed 3,000 users held about 3,300 items on Amazon Beauty, and three seeds of the
    validation split chose 128, 256 and 512 factors (test Recall@20 0.1541-0.1610); on MovieLens
    1M, with 13 items a user, two samples of 3,000 of its 6,040 users chose 256 and 64 factors
    (0.2735 and 0.2687), so a dense log needs the users too. On Amazon Sports the score budget
    alone gave 6,537 users holding 6,825 items (about 1 a user): one configuration's validation
    Recall@20 moved by 3.9% across five splits (the formula says 3.6%), and three seeds chose
    models scoring 0.1059, 0.1141 and 0.1202 on test. With 20,000 items (19,249 users) it moved
    by 1.5%, and all three seeds chose 512 factors at L2 1280 and alpha 512 (0.1141-0.1164)."""
    counts = np.diff(holdout.indptr)
    users = np.flatnonzero(counts > 0)
    order = np.random.default_rng(seed).permutation(users)
    n_items = max(holdout.shape[1], 1)
    holding_enough = int(np.searchsorted(np.cumsum(counts[order]), min_items)) + 1
    size = max(min_users, max_scores // n_items, min(holding_enough, ceiling_scores // n_items))
    if size >= len(users):
        return users
    return np.sort(order[:size])


def only_rows(matrix: sp.csr_matrix, rows: np.ndarray) -> sp.csr_matrix:
    """`matrix` with every row outside `rows` emptied (the shape is kept)."""
    keep = np.zeros(matrix.shape[0], np.float32)
    keep[rows] = 1.0
    out = sp.csr_matrix(sp.diags(keep) @ matrix)
    out.eliminate_zeros()
    return out


class Searcher:
    """Fits candidates on one fixed train/validation split and remembers every trial. With a
    `budget_seconds`, no trial starts once the trials so far have taken that long.

    `also_fit` holds pairs every trial is fitted on but never scored on: `train`'s own test part.
    The values a search chooses depend on how much data the trials see, and the model shipped is
    fitted on the whole log: on Amazon Sports a search fitted on `train`'s training part less the
    validation (72% of the log) chose alpha 1024 and L2 2560 on two validation seeds, one fitted
    on 90% chose alpha 512 and L2 1280 on three, and fitted on the same data the second scored
    9% more Recall@20 on test (0.1169 against 0.1073)."""

    budget_seconds: float | None = None
    spent_seconds: float = 0.0
    stopped_by_budget: bool = False

    def __init__(
        self,
        train: sp.csr_matrix,
        *,
        seed: int = 7,
        validation_fraction: float = VALIDATION_FRACTION,
        every: int = 2,
        k: int = 20,
        metric: str = "recall",
        sampled_negatives: int = 0,
        sampled_per_user: int = 3,
        on_trial: Callable[[Trial], None] | None = None,
        budget_seconds: float | None = None,
        also_fit: sp.csr_matrix | None = None,
    ) -> None:
        self.budget_seconds = budget_seconds
        if sampled_negatives:
            # Mirror the NCF protocol: a held-out item against sampled negatives. Up to three
            # items per user instead of one: with one, the validation NDCG of ML-1M's 6,040 users
            # moved by about as much as the choices it had to tell apart (a 0.001-0.003 gap came
            # out either way depending on the split's seed).
            holdout = split(train, SplitKind.leave_one_out, seed=seed, per_user=sampled_per_user)
            sampled = sample_negatives(train, holdout.test, sampled_negatives, seed=seed)
            k = 10
            scored = holdout.test
        else:
            holdout = validation_split(train, validation_fraction, seed=seed)
            sampled = None
            scored = only_rows(holdout.test, validation_users(holdout.test, seed))
        self.fit_part = holdout.train if also_fit is None else sp.csr_matrix(holdout.train + also_fit)
        self.validation = Validation(scored, every=every, k=k, metric=metric, max_users=None, sampled=sampled)
        self.trials: list[Trial] = []
        self._cache: dict[AlsParams, Trial] = {}
        self._on_trial = on_trial

    @property
    def metric_name(self) -> str:
        name = "ndcg" if self.validation.sampled is not None else self.validation.metric
        return f"{name}@{self.validation.k}"

    def may_start(self) -> bool:
        """Whether another trial fits in the budget; the first refusal is remembered (the
        selection reports that the search was cut short)."""
        if self.budget_seconds is not None and self.spent_seconds >= self.budget_seconds:
            self.stopped_by_budget = True
            return False
        return True

    def score(
        self, params: AlsParams, race: Trial | None = None, race_from: int = 6, patience_from: int = 0
    ) -> Trial:
        """Fit `params` from scratch and score it on the validation holdout, racing `race` from
        iteration `race_from` on; a lack of progress stops it only from `patience_from` on.
        Repeated candidates are fitted once."""
        key = replace(params, calculate_loss=False)
        if key in self._cache:
            return self._cache[key]
        validation = replace(
            self.validation,
            race=race.curve if race is not None else (),
            race_from=race_from,
            patience_from=patience_from,
        )
        start = time.perf_counter()
        result = fit_als(self.fit_part, key, validation=validation)
        curve = tuple(
            (h.iteration, float(h.validation_score)) for h in result.history if h.validation_score is not None
        )
        best_iteration, best_score = max(curve, key=lambda point: point[1]) if curve else (0, 0.0)
        trial = Trial(
            params, best_score, best_iteration, time.perf_counter() - start, curve, result.lost_race
        )
        self._cache[key] = trial
        self.trials.append(trial)
        self.spent_seconds += trial.seconds
        if self._on_trial:
            self._on_trial(trial)
        return trial

    def best(self) -> Trial:
        return max(self.trials, key=lambda t: t.score)


@dataclass
class Selection:
    """What a search chose: the parameters (with the iteration count), every trial, and the
    validation metric they were compared on."""

    params: AlsParams
    trials: list[Trial] = field(default_factory=list)
    metric: str = ""
    stopped_by_budget: bool = False  # the time budget ended the search before its last step


def sample_negatives(train: sp.csr_matrix, test: sp.csr_matrix, n: int, seed: int = 0) -> SampledHoldout:
    """For each test pair: `n` items drawn uniformly among those its user never touched (neither
    in `train` nor in `test`)."""
    rng = np.random.default_rng(seed)
    test = test.tocsr()
    users = np.repeat(np.arange(test.shape[0]), np.diff(test.indptr))
    positives = test.indices.astype(np.int64)
    n_items = train.shape[1]
    negatives = np.empty((len(users), n), dtype=np.int64)
    for user in np.flatnonzero(np.diff(test.indptr) > 0):
        seen = set(train.indices[train.indptr[user] : train.indptr[user + 1]].tolist())
        seen.update(test.indices[test.indptr[user] : test.indptr[user + 1]].tolist())
        for row in range(test.indptr[user], test.indptr[user + 1]):
            negatives[row] = _draw_unseen(rng, seen, n, n_items)
    return SampledHoldout(users, positives, negatives)


def _draw_unseen(rng: np.random.Generator, seen: set[int], n: int, n_items: int) -> np.ndarray:
    """`n` distinct items outside `seen` (all of them, padded with -1, when fewer exist)."""
    if len(seen) + n > n_items:
        pool = np.setdiff1d(np.arange(n_items), np.fromiter(seen, dtype=np.int64))[:n]
        return np.concatenate([pool, np.full(n - len(pool), -1, np.int64)])
    picked: list[int] = []
    taken = set(seen)
    while len(picked) < n:
        for item in rng.integers(0, n_items, 2 * n).tolist():
            if item not in taken:
                taken.add(item)
                picked.append(item)
                if len(picked) == n:
                    break
    return np.asarray(picked, np.int64)


def is_binary(matrix: sp.csr_matrix) -> bool:
    positive = matrix.data[matrix.data > 0]
    return positive.size == 0 or bool(np.all(positive == positive[0]))


def auto_select(
    searcher: Searcher,
    base: AlsParams,
    *,
    pinned: Iterable[str] = (),
    binary_data: bool = False,
    max_factors: int = 512,
) -> Selection:
    """The two-phase search of the module docstring; returns the winner with the iteration
    count validation preferred. `base.factors` is the size when "factors" is pinned."""
    pinned = set(pinned)
    if "factors" not in pinned:
        base = replace(base, factors=min(START_FACTORS, max_factors))
    best = searcher.score(base)

    def consider(params: AlsParams) -> bool:
        nonlocal best
        if not searcher.may_start():
            return False
        trial = searcher.score(params, race=best)
        if trial.score > best.score:
            best = trial
            return True
        return False

    def moved(name: str, value: Any) -> AlsParams:
        """The incumbent with `name` set to `value`. Alpha moves the L2 penalty with it (same
        penalty per unit of confidence) unless the penalty is pinned: the best L2 rises with
        alpha, a diagonal ridge a search along one axis at a time walks past (on MovieLens 1M,
        L2 100 lost to 10 at alpha 4 and won by 3% at alpha 8)."""
        params = replace(best.params, **{name: value})
        if name == "alpha" and "regularization" not in pinned:
            params = replace(params, regularization=best.params.regularization * value / best.params.alpha)
        return params

    def sweep(name: str, values: Iterable[Any], step: float | None = None) -> None:
        """Try each value; when the winner sits at an end of a numeric ladder, walk past it
        (at most twice) so data unlike anything measured here still finds its optimum."""
        if name in pinned:
            return
        ladder = list(values)
        for value in ladder:
            consider(moved(name, value))
        if step is None:
            return
        for _ in range(2):
            current = getattr(best.params, name)
            if current >= max(ladder):
                value = current * step
            elif current <= min(ladder):
                value = current / step
            else:
                return
            ladder.append(value)
            if not consider(moved(name, value)):
                return

    if not binary_data:
        sweep("scaling", list(Scaling))
    sweep("alpha", ALPHA_LADDER, 4.0)
    sweep("regularization", REG_LADDER, 10.0)
    sweep("popularity_discount", DISCOUNT_LADDER)
    # The neighbours once more, alpha then L2: each one's best value moves once the other has
    # (measured on MovieLens 1M, the best L2 at alpha 8 was 100, at alpha 4 it hardly mattered).
    sweep("alpha", [best.params.alpha / 2.0, best.params.alpha * 2.0])
    sweep("regularization", [best.params.regularization / 3.0, best.params.regularization * 3.0])
    if "factors" not in pinned:
        best = _grow(searcher, best, pinned, max_factors)
    chosen = best.params
    if "iterations" not in pinned:
        chosen = replace(chosen, iterations=max(best.best_iteration, 1))
    return Selection(chosen, list(searcher.trials), searcher.metric_name, searcher.stopped_by_budget)


def _grow(searcher: Searcher, incumbent: Trial, pinned: set[str], max_factors: int) -> Trial:
    """Double the factors while each size gains more than STEP_GAIN over the one before it, then
    keep the best of the larger sizes if it beats the incumbent by more than MIN_GAIN (a larger
    model costs memory and time at every retrain and query, so it has to earn its place by more
    than the validation noise). Among the larger sizes the best on validation is kept even when
    a smaller one is within noise of it: the search fits on the training part less its
    validation holdout, the shipped model on everything, and more data carries more factors.
    Keeping the smallest size within 0.5% of the best lost 4% Recall@20 on the NCF split (128
    factors kept, 0.2592 against 0.2604 for 256 on validation) and 1.6% on Amazon Beauty (256
    kept, 0.1215 against 0.1216 for 512). Small steps add up: on MovieLens 1M, 128 factors
    gained 0.6% over 64 and 256 another 0.9%. Regularisation moves with the size
    (measured on Amazon Beauty, the best L2 at 256 factors was 10-100x the best at 64), so each
    size is tried at the previous size's L2 and sqrt(3) times it, the upper one walked further
    while it wins. The step was 3 until the NCF split of MovieLens 1M showed it overshooting: at
    128 factors L2 30 scored 0.5980, 90 fell off the cliff where the penalty flattens the vectors
    (0.5484), and 52 between them reached 0.6025, the only value that cleared MIN_GAIN; the
    finer step costs a raced loser per size where the cliff is near (stopped within 4-8 sweeps)
    and more walking steps where the best L2 climbs steeply."""
    steps = (1.0,) if "regularization" in pinned else SIZE_REG_STEPS
    frontier = incumbent
    while frontier.params.factors * 2 <= max_factors and searcher.may_start():
        tried: list[Trial] = []
        for step in steps:
            if tried and not searcher.may_start():
                break
            tried.append(_doubled(searcher, frontier, frontier.params.regularization * step, tried))
        while len(steps) > 1 and max(tried, key=lambda t: t.score) is tried[-1] and searcher.may_start():
            tried.append(_doubled(searcher, frontier, tried[-1].params.regularization * steps[-1], tried))
        best = max(tried, key=lambda t: t.score)
        if best.score < frontier.score * (1.0 + STEP_GAIN):
            break
        frontier = best
    larger = [t for t in searcher.trials if t.params.factors > incumbent.params.factors]
    if not larger or max(t.score for t in larger) < incumbent.score * (1.0 + MIN_GAIN):
        return incumbent
    return max(larger, key=lambda t: t.score)


def _doubled(searcher: Searcher, previous: Trial, regularization: float, same_size: list[Trial]) -> Trial:
    """`previous` at twice the factors and the given L2, raced against the best curves known.

    A larger model trails a smaller one at first, so against `previous` the race waits for the
    10th sweep. A sibling at the same size starts no faster than the candidate, so once one
    exists the race begins at the 6th sweep against the best sibling, the smaller model's curve
    joining from the 10th. On Amazon Beauty the second L2 at 128 and 256 factors had run 12 and
    10 sweeps against the smaller model alone, 5-10% behind its sibling; this stops them at the
    8th."""
    params = replace(previous.params, factors=previous.params.factors * 2, regularization=regularization)
    if not same_size:
        return searcher.score(
            params, race=previous, race_from=GROWTH_RACE_FROM, patience_from=previous.best_iteration
        )
    sibling = max(same_size, key=lambda t: t.score)
    later = tuple((max(it, GROWTH_RACE_FROM), value) for it, value in previous.curve)
    race = replace(sibling, curve=tuple(sorted(sibling.curve + later)))
    return searcher.score(params, race=race, race_from=6, patience_from=previous.best_iteration)


def grid(
    factors: list[int],
    regularization: list[float],
    alpha: list[float],
    iterations: list[int],
    scaling: list[Scaling],
    base: AlsParams,
    popularity_discount: list[float] | None = None,
) -> list[AlsParams]:
    """Every combination (the seed's grid search), in a stable order."""
    return [
        replace(base, factors=f, regularization=r, alpha=a, iterations=i, scaling=s, popularity_discount=d)
        for f, r, a, i, s, d in itertools.product(
            factors, regularization, alpha, iterations, scaling, popularity_discount or [0.0]
        )
    ]
