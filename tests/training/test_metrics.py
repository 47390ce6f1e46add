import numpy as np
import pytest
import scipy.sparse as sp

from training.metrics import hit_matrix, metrics_from_ranks, ranking_metrics, sampled_metrics


def test_hand_computed_example() -> None:
    # user 0: test {1, 5}; recommended [1, 2, 5] -> hits at ranks 1 and 3.
    # user 1: test {7};    recommended [3, 4, 6] -> no hit.
    topk = np.array([[1, 2, 5], [3, 4, 6]])
    test = sp.csr_matrix((np.ones(3), ([0, 0, 1], [1, 5, 7])), shape=(2, 10))
    m = ranking_metrics(topk, test)
    assert m.users == 2
    assert m.precision == pytest.approx((2 / 3 + 0) / 2)
    assert m.precision_capped == pytest.approx(2 / (2 + 1))
    assert m.recall == pytest.approx((1.0 + 0) / 2)
    assert m.map == pytest.approx(((1 / 1 + 2 / 3) / 2 + 0) / 2)
    idcg = 1 + 1 / np.log2(3)
    assert m.ndcg == pytest.approx(((1 + 1 / np.log2(4)) / idcg) / 2)
    assert m.hit_rate == 0.5
    assert m.coverage == pytest.approx(6 / 10)


def test_metrics_from_ranks_match_the_hand_computed_lists() -> None:
    # The example above as ranks: user 0's items 1 and 5 ranked 0 and 2, user 1's item 7 at 3.
    m = metrics_from_ranks(np.array([0, 2, 3]), np.array([0, 0, 1]), np.array([2, 1]), k=3)
    idcg = 1 + 1 / np.log2(3)
    assert m.users == 2
    assert m.recall == pytest.approx((1.0 + 0) / 2)
    assert m.ndcg == pytest.approx(((1 + 1 / np.log2(4)) / idcg) / 2)


def test_metrics_from_ranks_cap_the_ideal_at_k() -> None:
    # Five held-out items, two in the top 2: recall 2/5, NDCG against an ideal of two hits.
    m = metrics_from_ranks(np.array([0, 1, 2, 7, 9]), np.zeros(5, np.int64), np.array([5]), k=2)
    assert m.recall == pytest.approx(2 / 5)
    assert m.ndcg == pytest.approx(1.0)


def test_users_without_test_items_are_not_counted() -> None:
    topk = np.array([[0, 1], [0, 1]])
    test = sp.csr_matrix((np.ones(1), ([0], [1])), shape=(2, 3))
    assert ranking_metrics(topk, test).users == 1


def test_padding_is_never_a_hit() -> None:
    topk = np.array([[-1, -1]])
    test = sp.csr_matrix((np.ones(1), ([0], [0])), shape=(1, 3))
    m = ranking_metrics(topk, test)
    assert m.precision == 0 and m.coverage == 0


def test_hit_matrix_finds_each_listed_test_item_whatever_the_order_of_the_rows_indices() -> None:
    rng = np.random.default_rng(3)
    n_users, n_items = 50, 40
    test = sp.random(n_users, n_items, density=0.15, format="csr", random_state=4)
    shuffled = test.copy()
    for row in range(n_users):  # the same pairs, stored out of order
        lo, hi = shuffled.indptr[row], shuffled.indptr[row + 1]
        shuffled.indices[lo:hi] = shuffled.indices[lo:hi][::-1].copy()
    shuffled.has_sorted_indices = False
    topk = rng.integers(-1, n_items, size=(n_users, 8))
    expected = np.array([[item >= 0 and test[u, item] != 0 for item in topk[u]] for u in range(n_users)])
    assert expected.any()
    np.testing.assert_array_equal(hit_matrix(topk, test), expected)
    np.testing.assert_array_equal(hit_matrix(topk, shuffled), expected)
    assert not hit_matrix(topk, sp.csr_matrix((n_users, n_items))).any()


def test_our_metrics_equal_implicits_ranking_metrics_at_k(small_synthetic) -> None:
    from implicit.als import AlternatingLeastSquares
    from implicit.evaluation import ranking_metrics_at_k
    from threadpoolctl import threadpool_limits

    from training.dataset import build_dataset
    from training.evaluation import evaluate_ranking
    from training.events import DEFAULT_EVENT_WEIGHTS
    from training.interaction_log import from_table
    from training.splits import SplitKind, split

    ds = build_dataset(from_table(small_synthetic.interactions, DEFAULT_EVENT_WEIGHTS))
    matrix = ds.matrix.copy()
    matrix.data = np.abs(matrix.data)  # implicit's evaluator has no notion of dislikes
    s = split(matrix, SplitKind.random, seed=5)
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=16, iterations=5, random_state=0)
        model.fit(s.train, show_progress=False)
        ref = ranking_metrics_at_k(model, s.train, s.test, K=10, show_progress=False)
    ours = evaluate_ranking(model.user_factors, model.item_factors, s.train, s.test, k=10)
    assert ours.precision_capped == pytest.approx(ref["precision"], abs=1e-9)
    assert ours.map == pytest.approx(ref["map"], abs=1e-9)
    assert ours.ndcg == pytest.approx(ref["ndcg"], abs=1e-9)


def test_sampled_metrics_rank_against_negatives_and_count_ties_against_the_model() -> None:
    positive = np.array([5.0, 1.0, 3.0])
    negatives = np.array(
        [
            [1.0, 2.0, np.nan],  # rank 0 -> hit, ndcg 1
            [2.0, 3.0, 4.0],  # rank 3 -> miss at k=2
            [3.0, 0.0, 0.0],  # a tie counts as better: rank 1 -> hit, ndcg 1/log2(3)
        ]
    )
    m = sampled_metrics(positive, negatives, k=2)
    assert m.hr == pytest.approx(2 / 3)
    assert m.ndcg == pytest.approx((1 + 1 / np.log2(3)) / 3)


def test_a_constant_model_scores_zero_not_a_lucky_one() -> None:
    m = sampled_metrics(np.zeros(4), np.zeros((4, 99)), k=10)
    assert m.hr == 0.0


def test_gini_is_zero_for_equal_exposure_and_near_one_for_one_item_to_everyone() -> None:
    from training.metrics import gini

    assert gini(np.array([5, 5, 5, 5])) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 100])) == pytest.approx(0.75)  # (n - 1) / n for n = 4
    assert gini(np.zeros(3)) == 0.0


def test_diversity_is_zero_for_identical_items_and_one_for_orthogonal_ones() -> None:
    from training.metrics import intra_list_diversity

    vectors = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    assert intra_list_diversity(np.array([[0, 1]]), vectors) == pytest.approx(0.0)
    assert intra_list_diversity(np.array([[0, 2]]), vectors) == pytest.approx(1.0)
    assert intra_list_diversity(np.array([[0, 2, -1], [0, 1, -1]]), vectors) == pytest.approx(0.5)


def test_beyond_accuracy_of_a_popularity_list_is_low_coverage_and_low_novelty() -> None:
    from training.metrics import beyond_accuracy

    train = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 0, 1], [1, 1, 0, 0]], np.float32))
    vectors = np.eye(4)
    same = beyond_accuracy(np.array([[0, 1]] * 4), vectors, train)
    spread = beyond_accuracy(np.array([[0, 1], [2, 3], [1, 2], [3, 0]]), vectors, train)
    assert (same.coverage, spread.coverage) == (0.5, 1.0)
    assert same.gini > spread.gini and same.novelty < spread.novelty
    assert same.novelty == pytest.approx((0.0 + 1.0) / 2)  # item 0: every user (0 bits); item 1: half
