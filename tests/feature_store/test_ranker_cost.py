"""The ranker's cost per candidate, read from the LightGBM model."""

import numpy as np
import pytest

from feature_store.ranker_cost import comparisons_per_row


def test_comparisons_count_each_trees_leaf_depth_weighted_by_the_rows_reaching_it() -> None:
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2_000, 3))
    y = (x[:, 0] > 0).astype(float)
    params = {"objective": "regression", "verbosity": -1, "min_data_in_leaf": 1}
    stump = lgb.train({**params, "num_leaves": 2}, lgb.Dataset(x, y), 4)
    assert comparisons_per_row(stump, 4) == pytest.approx(4.0)  # one test a tree
    assert comparisons_per_row(stump, 2) == pytest.approx(2.0)
    bushy = lgb.train({**params, "num_leaves": 16}, lgb.Dataset(x, y + rng.normal(size=2_000)), 4)
    assert 4 * 2.0 < comparisons_per_row(bushy, 4) <= 4 * 15.0
    assert comparisons_per_row(bushy) == pytest.approx(comparisons_per_row(bushy, 4))
