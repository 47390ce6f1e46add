"""ALS through `implicit`: one fit with the loss per iteration, validation and early stopping.

implicit fits `alpha * value` as confidence (not 1 + alpha * value as in the Hu-Koren-Volinsky
paper and Spark). Its OpenMP loop uses every core, so BLAS is pinned to one thread around the fit;
otherwise BLAS threads fight the OpenMP threads for the same cores (implicit warns about exactly
this). On CPU the loss per iteration is `training.loss` (implicit's objective at a bounded cost)
rather than implicit's own, which costs 15-20% of a fit.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from implicit.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from training.biased_als import fit_biased
from training.confidence import Scaling, confidence_matrix
from training.evaluation import evaluate_recall_ndcg, evaluate_sampled
from training.loss import DEFAULT_MAX_PAIRS, LossPairs, als_loss, loss_pairs


@dataclass(frozen=True)
class AlsParams:
    factors: int = 64
    regularization: float = 0.1
    alpha: float = 1.0
    iterations: int = 15
    scaling: Scaling = Scaling.log
    random_state: int = 42
    use_gpu: bool = False
    use_cg: bool = True
    calculate_loss: bool = True
    biases: bool = False  # user and item bias terms (own solver: implicit has none)
    popularity_discount: float = 0.0  # confidence x (item popularity / mean) ** -discount

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["scaling"] = str(self.scaling)
        return out


@dataclass
class IterationRecord:
    iteration: int
    seconds: float
    loss: float | None
    validation_score: float | None = None  # the selection metric (`Validation.metric`) when measured


@dataclass
class AlsResult:
    user_factors: np.ndarray  # float32 users x factors
    item_factors: np.ndarray  # float32 items x factors
    params: AlsParams
    history: list[IterationRecord] = field(default_factory=list)
    best_iteration: int | None = None  # 1-based, when validation picked it
    fit_seconds: float = 0.0
    model: Any = None  # implicit's model object, for its own `save`
    loss_pairs: int | None = None  # stored pairs the loss was summed over, when it was estimated
    item_weights: np.ndarray | None = None  # float32 per item, when popularity_discount is set
    lost_race: bool = False  # stopped early, trailing `Validation.race`

    def history_dicts(self) -> list[dict[str, Any]]:
        return [asdict(h) for h in self.history]


class _StopTrainingError(Exception):
    """Raised from the per-iteration callback: implicit has no other way to stop a fit."""


@dataclass(frozen=True)
class SampledHoldout:
    """One held-out item per user ranked against sampled negatives (the NCF protocol)."""

    users: np.ndarray
    positives: np.ndarray
    negatives: np.ndarray  # users x n item indices


@dataclass(frozen=True)
class Validation:
    """Validation for early stopping: `metric`@k at checkpoints (`next_checkpoint`), on a full
    ranking of the `holdout` items, or, when `sampled` is given, NDCG@k on the NCF-style sampled protocol.

    `k` is the depth the service answers at (tens of candidates), not 10: the selection has to
    prefer the model whose 20th item is right too. A checkpoint counts as progress only when it
    beats the best so far by more than `tolerance` (relative): ALS creeps up by a few hundredths
    of a percent for many sweeps after it has converged, which would keep a fit going for nothing.

    With a `race` (the incumbent's score by iteration) the fit stops as a loser once it trails
    that curve by more than `race_margin` at two checkpoints in a row from `race_from` on: a
    configuration that is clearly behind after a few sweeps does not catch up, so a loser costs
    a few sweeps instead of a whole fit.

    A lack of progress stops a fit only from `patience_from` on: the size search sets it to the
    sweep where the smaller model peaked, so a larger one still within the race margin gets as
    many sweeps. ALS with a large alpha can sit on a plateau for a few checkpoints and climb
    again: on the whole Amazon Sports log, 128 factors held 0.0844 from sweep 8 to 12 and reached
    0.0873 at 24, while the 64-factor incumbent peaked at 30; stopped at 12, the larger model
    lost, the size search ended at 64 factors, and 256 factors (0.0912) was never tried.
    """

    holdout: sp.csr_matrix
    every: int = 2
    patience: int = 2
    k: int = 20
    metric: str = "recall"  # or "ndcg"
    max_users: int | None = 3000  # None: every user with held-out items
    sampled: SampledHoldout | None = None
    tolerance: float = 0.002
    race: tuple[tuple[int, float], ...] = ()
    race_margin: float = 0.02
    race_from: int = 6
    patience_from: int = 0

    def score(self, users: np.ndarray, items: np.ndarray, train: sp.csr_matrix) -> float:
        if self.sampled is not None:
            s = self.sampled
            return evaluate_sampled(users, items, s.users, s.positives, s.negatives, self.k).ndcg
        result = evaluate_recall_ndcg(users, items, train, self.holdout, k=self.k, max_users=self.max_users)
        return result.recall if self.metric == "recall" else result.ndcg

    def next_checkpoint(self, iteration: int) -> int:
        """Every `every` sweeps early on, where the best iteration count is decided and a few
        sweeps make a difference; then a quarter of the sweeps so far (2, 4, 6, 8, 10, 12, 15,
        19, 24, 30 at every=2), because each checkpoint ranks the whole catalog for thousands
        of users and costs about as much as a few sweeps at 64 factors."""
        return iteration + max(self.every, round(iteration / 4))

    def trails(self, iteration: int, score: float) -> bool:
        """Whether `score` at `iteration` is behind the incumbent's best by then, by more than
        the margin."""
        if not self.race or iteration < self.race_from:
            return False
        reached = [value for it, value in self.race if it <= iteration] or [self.race[0][1]]
        return score < max(reached) * (1.0 - self.race_margin)

    def collapsed(self, iteration: int, score: float) -> bool:
        """Under half the incumbent's best from the 4th sweep on: a configuration that far off
        (an L2 penalty that flattens every vector) never recovers, whatever the size."""
        return bool(self.race) and iteration >= 4 and score < 0.5 * max(value for _, value in self.race)


def _to_numpy(factors: Any) -> np.ndarray:
    return np.asarray(factors.to_numpy() if hasattr(factors, "to_numpy") else factors, np.float32)


def build_model(params: AlsParams, *, own_loss: bool = False) -> Any:
    return AlternatingLeastSquares(
        factors=params.factors,
        regularization=params.regularization,
        alpha=params.alpha,
        iterations=params.iterations,
        calculate_training_loss=params.calculate_loss and not own_loss,
        use_cg=params.use_cg,
        use_gpu=params.use_gpu,
        random_state=params.random_state,
    )


class BiasedModel:
    """What `model.npz` holds for the biased variant: arrays only, written with numpy."""

    def __init__(self, params: AlsParams) -> None:
        self.params = params
        self.user_factors: np.ndarray | None = None
        self.item_factors: np.ndarray | None = None

    def save(self, path: str) -> None:
        assert self.user_factors is not None and self.item_factors is not None
        np.savez(
            path,
            user_factors=self.user_factors,
            item_factors=self.item_factors,
            regularization=self.params.regularization,
            alpha=self.params.alpha,
            factors=self.params.factors,
            layout=np.array("users [x, b_u, 1]; items [y, 1, b_i]"),
        )


def gpu_available() -> bool:
    try:
        import implicit.gpu

        return bool(implicit.gpu.HAS_CUDA)
    except ImportError:  # pragma: no cover
        return False


def fit_als(
    matrix: sp.csr_matrix,
    params: AlsParams,
    *,
    validation: Validation | None = None,
    on_iteration: Callable[[IterationRecord], None] | None = None,
    loss_max_pairs: int = DEFAULT_MAX_PAIRS,
) -> AlsResult:
    """Fit on `matrix` (raw net weights; scaling is applied here). Early-stops on validation.
    The loss sums at most `loss_max_pairs` stored pairs (0 = all; see `training.loss`)."""
    confidences, item_weights = confidence_matrix(matrix, params.scaling, params.popularity_discount)
    history: list[IterationRecord] = []
    best: dict[str, Any] = {
        "score": -1.0,
        "iteration": None,
        "factors": None,
        "bad": 0,
        "behind": 0,
        "next_check": validation.every if validation is not None else 0,
    }
    model: Any

    def observe(
        iteration: int,
        seconds: float,
        loss: float | None,
        factors: Callable[[], tuple[np.ndarray, np.ndarray]],
    ) -> None:
        record = IterationRecord(iteration + 1, float(seconds), None if loss is None else float(loss))
        if validation is not None and (
            iteration + 1 == best["next_check"] or iteration + 1 == params.iterations
        ):
            best["next_check"] = validation.next_checkpoint(iteration + 1)
            users, items = factors()
            score = validation.score(users, items, confidences)
            record.validation_score = score
            progressed = score > best["score"] * (1.0 + validation.tolerance)
            if score > best["score"]:
                best.update(score=score, iteration=iteration + 1, factors=(users.copy(), items.copy()))
            best["bad"] = 0 if progressed else best["bad"] + 1
            best["behind"] = best["behind"] + 1 if validation.trails(iteration + 1, score) else 0
        history.append(record)
        if on_iteration is not None:
            on_iteration(record)
        if validation is not None and (
            best["behind"] >= 2
            or (
                record.validation_score is not None
                and validation.collapsed(record.iteration, record.validation_score)
            )
        ):
            best["lost_race"] = True
            raise _StopTrainingError
        if (
            validation is not None
            and best["bad"] >= validation.patience
            and iteration + 1 >= validation.patience_from
        ):
            raise _StopTrainingError

    pairs: LossPairs | None = None
    start = time.perf_counter()
    with threadpool_limits(1, "blas"):
        if params.biases:
            model = BiasedModel(params)
            final: dict[str, np.ndarray] = {}

            def biased_callback(
                it: int, sec: float, loss: float | None, u: np.ndarray, i: np.ndarray
            ) -> None:
                final.update(users=u, items=i)
                observe(it, sec, loss, lambda: (u, i))

            with contextlib.suppress(_StopTrainingError):
                fit_biased(
                    confidences * params.alpha,
                    params.factors,
                    params.regularization,
                    params.iterations,
                    random_state=params.random_state,
                    callback=biased_callback,
                    calculate_loss=params.calculate_loss,
                )
            model.user_factors, model.item_factors = final["users"], final["items"]
        else:
            own_loss = params.calculate_loss and not params.use_gpu
            if own_loss:
                pairs = loss_pairs(
                    confidences, alpha=params.alpha, max_pairs=loss_max_pairs, seed=params.random_state
                )
            model = build_model(params, own_loss=own_loss)

            def callback(iteration: int, seconds: float, loss: float | None) -> None:
                if pairs is not None:
                    loss = als_loss(pairs, model.user_factors, model.item_factors, params.regularization)
                observe(
                    iteration,
                    seconds,
                    loss,
                    lambda: (_to_numpy(model.user_factors), _to_numpy(model.item_factors)),
                )

            with contextlib.suppress(_StopTrainingError):
                model.fit(confidences, show_progress=False, callback=callback)
    fit_seconds = time.perf_counter() - start

    if best["factors"] is not None:
        user_factors, item_factors = best["factors"]
    else:
        user_factors, item_factors = _to_numpy(model.user_factors), _to_numpy(model.item_factors)
    if params.use_gpu and hasattr(model, "to_cpu"):
        model = model.to_cpu()
    model.user_factors, model.item_factors = user_factors, item_factors
    return AlsResult(
        user_factors=user_factors,
        item_factors=item_factors,
        params=params,
        history=history,
        best_iteration=best["iteration"],
        fit_seconds=fit_seconds,
        model=model,
        loss_pairs=None if pairs is None or pairs.exact else len(pairs.rows),
        item_weights=item_weights,
        lost_race=bool(best.get("lost_race")),
    )
