"""Training the ranking stage: lambdarank on what users did next, saved as LightGBM text."""

from __future__ import annotations

import numpy as np
import pytest

from feature_store.ranking_features import FEATURES
from tests.builders import small_data
from training.dataset import build_dataset
from training.events import DEFAULT_EVENT_WEIGHTS
from training.interaction_log import from_table
from training.ranker import (
    BoosterTrial,
    RankerModel,
    cheapest_near_best,
    fit_ranker,
    ranked_top_k,
)
from training.settings import TrainSettings
from training.splits import latest_split
from training.tier_eval import evaluate_tiers

SETTINGS = TrainSettings(
    factors=8, regularization=1.0, alpha=4.0, iterations=3, test_split=0.2, content_dim=8, two_tower=False
)


@pytest.fixture(scope="module")
def data():
    return small_data(1_200)


@pytest.fixture(scope="module")
def dataset(data):
    return build_dataset(from_table(data.interactions, DEFAULT_EVENT_WEIGHTS))


@pytest.fixture(scope="module")
def ranker(dataset, data) -> RankerModel:
    from training.pipeline import choose_params

    params = choose_params(dataset.matrix, SETTINGS).params
    return fit_ranker(
        dataset.matrix, dataset.times, params, SETTINGS, items=data.items, item_ids=dataset.item_ids
    )


def test_latest_split_holds_out_each_users_newest_positives(dataset) -> None:
    parts = latest_split(dataset.matrix, dataset.times, 0.2)
    assert parts.train.nnz + parts.test.nnz == dataset.matrix.nnz
    user = int(np.argmax(np.diff(parts.test.indptr)))
    held = parts.test.indices[parts.test.indptr[user] : parts.test.indptr[user + 1]]
    start, end = dataset.matrix.indptr[user], dataset.matrix.indptr[user + 1]
    times = dict(
        zip(dataset.matrix.indices[start:end].tolist(), dataset.times[start:end].tolist(), strict=True)
    )
    kept = set(parts.train.indices[parts.train.indptr[user] : parts.train.indptr[user + 1]].tolist())
    assert min(times[i] for i in held) >= max(times[i] for i in kept)


def test_the_ranker_is_lightgbm_text_over_our_features_and_learns(ranker: RankerModel) -> None:
    assert ranker.text.startswith("tree") and ranker.features == FEATURES
    booster = ranker.booster()
    assert booster.feature_name() == list(FEATURES)
    assert ranker.best_iteration >= 1 and ranker.validation_ndcg > 0.2
    assert sum(ranker.importance.values()) == pytest.approx(1.0)
    by_tier = ranker.info["validation_ndcg_by_tier"]
    # The ranker's order beats popularity's on the validation users of every tier it saw.
    assert all(scores["ranker"] > scores["popularity"] for scores in by_tier.values()), by_tier
    assert set(ranker.tiers) <= set(by_tier)


def test_the_kept_booster_is_the_cheapest_within_the_tolerance_of_the_best() -> None:
    trials = [
        BoosterTrial("deep", 0.500, None, 900.0),
        BoosterTrial("close", 0.4980, None, 300.0),
        BoosterTrial("cheap but worse", 0.480, None, 50.0),
    ]
    assert cheapest_near_best(trials, 0.005).label == "close"
    assert cheapest_near_best(trials, 0.0).label == "deep"
    assert cheapest_near_best(trials, 0.05).label == "cheap but worse"


def test_fitting_reports_every_booster_tried_and_the_one_kept(ranker: RankerModel) -> None:
    tried = ranker.info["boosters_tried"]
    assert len(tried) == 6 and ranker.info["kept"] in tried
    kept = tried[ranker.info["kept"]]
    best = max(t["ndcg"] for t in tried.values())
    assert kept["ndcg"] >= best * (1 - 0.005)
    assert all(t["comparisons"] >= kept["comparisons"] for t in tried.values() if t["ndcg"] >= best * 0.995)


def test_ranked_lists_never_hold_a_training_item(ranker: RankerModel, dataset, data) -> None:
    from training.model_set import fit_model_set
    from training.pipeline import choose_params

    params = choose_params(dataset.matrix, SETTINGS).params
    models = fit_model_set(
        dataset.matrix, dataset.times, params, SETTINGS, items=data.items, item_ids=dataset.item_ids
    )
    users = np.arange(40)
    top = ranked_top_k(models, ranker, dataset.matrix, dataset.times, users, 10, (5, 20))
    assert top.shape == (40, 10)
    for i, u in enumerate(users.tolist()):
        own = set(dataset.matrix.indices[dataset.matrix.indptr[u] : dataset.matrix.indptr[u + 1]].tolist())
        assert not own & set(top[i][top[i] >= 0].tolist())


def test_evaluate_tiers_adds_a_ranker_row_per_tier_and_its_verdicts(dataset, data) -> None:
    report = evaluate_tiers(dataset, SETTINGS, items=data.items, ranker=True)
    tiers = {r.tier for r in report.rows if r.method == "ranker"}
    assert tiers == {"cold", "warm", "hot"}
    assert any(claim.startswith("hot: ranker >") for claim in report.verdicts())
    assert report.ranker is not None
