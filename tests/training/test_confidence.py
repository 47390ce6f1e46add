import numpy as np
import scipy.sparse as sp

from training.confidence import (
    Scaling,
    choose_default_scaling,
    popularity_weights,
    scale_matrix,
    scale_values,
)


def test_scaling_keeps_the_sign_of_dislikes() -> None:
    values = np.array([4.0, -2.0, 0.5], np.float32)
    assert scale_values(values, Scaling.linear).tolist() == [4.0, -2.0, 0.5]
    assert scale_values(values, Scaling.binary).tolist() == [1.0, -1.0, 1.0]
    np.testing.assert_allclose(
        scale_values(values, Scaling.log), [np.log1p(4), -np.log1p(2), np.log1p(0.5)], rtol=1e-6
    )


def test_log_scaling_tames_counts_spanning_orders_of_magnitude() -> None:
    plays = np.array([1.0, 5000.0], np.float32)
    linear_ratio = plays[1] / plays[0]
    log_ratio = scale_values(plays, Scaling.log)[1] / scale_values(plays, Scaling.log)[0]
    assert linear_ratio == 5000 and log_ratio < 13


def test_scale_matrix_leaves_the_input_untouched() -> None:
    m = sp.csr_matrix(np.array([[3.0, 0.0], [0.0, -1.0]], np.float32))
    out = scale_matrix(m, Scaling.binary)
    assert out.data.tolist() == [1.0, -1.0] and m.data.tolist() == [3.0, -1.0]


def test_default_scaling_follows_the_spread_of_the_weights() -> None:
    assert choose_default_scaling(np.ones(10, np.float32)) is Scaling.binary
    assert choose_default_scaling(np.array([0.5, 1.0, 2.0, 3.5, 2.5], np.float32)) is Scaling.linear
    counts = np.random.default_rng(0).pareto(1.0, 10_000).astype(np.float32) + 1
    assert choose_default_scaling(counts) is Scaling.log


def test_popularity_discount_shrinks_popular_items_and_lifts_niche_ones() -> None:
    # item 0: 8 users, item 1: 2 users, item 2: only a dislike, item 3: nobody
    dense = np.zeros((8, 4), np.float32)
    dense[:, 0] = 1.0
    dense[:2, 1] = 1.0
    dense[3, 2] = -1.0
    m = sp.csr_matrix(dense)
    weights = popularity_weights(m, 0.5)
    np.testing.assert_allclose(weights[:2], [(8 / 5) ** -0.5, (2 / 5) ** -0.5], rtol=1e-6)
    assert weights[2] == weights[3] == 1.0  # no positive pair: nothing to discount
    assert popularity_weights(m, 0.0).tolist() == [1.0] * 4


def test_scale_matrix_multiplies_each_pair_by_its_items_weight() -> None:
    m = sp.csr_matrix(np.array([[2.0, 1.0], [0.0, -3.0]], np.float32))
    out = scale_matrix(m, Scaling.linear, np.array([0.5, 2.0], np.float32))
    assert out.toarray().tolist() == [[1.0, 2.0], [0.0, -6.0]]
