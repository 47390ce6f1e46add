"""Choosing hyperparameters on validation data: the `tune` grid and `train`'s automatic selection.

Both score a configuration the same way: fit on the training part minus a per-user validation
holdout, track NDCG@10 on that holdout every few iterations, and keep the best iteration. The test
split is never looked at while choosing.

Automatic selection (the default of `train`) is a small coordinate search, because no single
alpha is right: measured on real data sets the best alpha ranged from 1 to 40, and regularisation
must move with it. It tries the confidence scaling (when weights are not all equal), then alpha on
a x4 geometric ladder, then regularisation on a x5 ladder, then the popularity discount of the
confidences (0, 0.25, 0.5), each step keeping the winner. Any parameter the user pins on the
command line is left out of the search.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from training.als import AlsParams, SampledHoldout, Validation, fit_als
from training.confidence import Scaling
from training.splits import SplitKind, split, validation_split

ALPHA_LADDER = (1.0, 4.0, 16.0, 40.0)
REG_LADDER = (0.4, 2.0, 10.0, 50.0)
DISCOUNT_LADDER = (0.0, 0.25, 0.5)
SEARCHED = ("regularization", "alpha", "scaling", "popularity_discount", "iterations")


@dataclass(frozen=True)
class Trial:
    params: AlsParams
    validation_ndcg: float
    best_iteration: int
    seconds: float

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
            "validation_ndcg": round(self.validation_ndcg, 5),
            "seconds": round(self.seconds, 2),
        }


class Searcher:
    """Fits candidates on one fixed train/validation split and remembers every trial."""

    def __init__(
        self,
        train: sp.csr_matrix,
        *,
        seed: int = 7,
        validation_fraction: float = 0.1,
        max_users: int = 2000,
        every: int = 5,
        sampled_negatives: int = 0,
        sampled_per_user: int = 3,
        on_trial: Callable[[Trial], None] | None = None,
    ) -> None:
        if sampled_negatives:
            # Mirror the NCF protocol: a held-out item against sampled negatives. Up to three
            # items per user instead of one: with one, the validation NDCG of ML-1M's 6,040 users
            # moved by about as much as the choices it had to tell apart (a 0.001-0.003 gap came
            # out either way depending on the split's seed).
            holdout = split(train, SplitKind.leave_one_out, seed=seed, per_user=sampled_per_user)
            sampled = sample_negatives(train, holdout.test, sampled_negatives, seed=seed)
        else:
            holdout = validation_split(train, validation_fraction, seed=seed)
            sampled = None
        self.fit_part = holdout.train
        self.validation = Validation(
            holdout.test, every=every, patience=2, max_users=max_users, sampled=sampled
        )
        self.trials: list[Trial] = []
        self._cache: dict[AlsParams, Trial] = {}
        self._on_trial = on_trial

    def score(self, params: AlsParams) -> Trial:
        key = replace(params, calculate_loss=False)
        if key in self._cache:
            return self._cache[key]
        start = time.perf_counter()
        result = fit_als(self.fit_part, key, validation=self.validation)
        best = max(
            (h for h in result.history if h.validation_ndcg is not None),
            key=lambda h: h.validation_ndcg or 0.0,
        )
        trial = Trial(params, float(best.validation_ndcg or 0.0), best.iteration, time.perf_counter() - start)
        self._cache[key] = trial
        self.trials.append(trial)
        if self._on_trial:
            self._on_trial(trial)
        return trial

    def best(self) -> Trial:
        return max(self.trials, key=lambda t: t.validation_ndcg)


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
) -> tuple[AlsParams, list[Trial]]:
    """Coordinate search over scaling, alpha, regularisation and the popularity discount;
    returns the winner with the iteration count validation preferred."""
    pinned = set(pinned)
    best = searcher.score(base)

    def sweep(name: str, values: Iterable[Any], step: float | None = None) -> None:
        """Try each value; when the winner sits at an end of a numeric ladder, walk past it
        (at most twice) so data unlike anything measured here still finds its optimum."""
        nonlocal best
        if name in pinned:
            return
        ladder = list(values)
        for value in ladder:
            trial = searcher.score(replace(best.params, **{name: value}))
            if trial.validation_ndcg > best.validation_ndcg:
                best = trial
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
            trial = searcher.score(replace(best.params, **{name: value}))
            ladder.append(value)
            if trial.validation_ndcg <= best.validation_ndcg:
                return
            best = trial

    if not binary_data:
        sweep("scaling", list(Scaling))
    sweep("alpha", ALPHA_LADDER, 4.0)
    sweep("regularization", REG_LADDER, 5.0)
    sweep("popularity_discount", DISCOUNT_LADDER)
    # One more pass over alpha: its best value moves once regularisation has.
    sweep("alpha", ALPHA_LADDER, 4.0)
    chosen = best.params
    if "iterations" not in pinned:
        chosen = replace(chosen, iterations=max(best.best_iteration, searcher.validation.every))
    return chosen, list(searcher.trials)


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
