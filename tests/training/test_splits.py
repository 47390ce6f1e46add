import numpy as np
import pytest
import scipy.sparse as sp

from training.splits import SplitKind, split, validation_split


@pytest.fixture
def matrix_and_times():
    rng = np.random.default_rng(1)
    dense = (rng.random((200, 300)) < 0.08).astype(np.float32)
    dense[rng.random(dense.shape) < 0.01] = -1.0  # some dislikes
    m = sp.csr_matrix(dense)
    times = rng.integers(0, 10_000, m.nnz)
    return m, times


def _positives(m: sp.csr_matrix) -> set[tuple[int, int]]:
    coo = m.tocoo()
    return {(r, c) for r, c, v in zip(coo.row, coo.col, coo.data, strict=True) if v > 0}


@pytest.mark.parametrize("kind", list(SplitKind))
def test_train_and_test_partition_the_positives_and_never_hold_out_dislikes(kind, matrix_and_times) -> None:
    m, times = matrix_and_times
    s = split(m, kind, test_fraction=0.2, times=times, seed=0)
    train_pos, test_pos = _positives(s.train), _positives(s.test)
    assert not train_pos & test_pos
    assert test_pos <= _positives(m)
    assert (s.train < 0).nnz == (m < 0).nnz
    if kind is not SplitKind.time:  # the time split also drops unseen users/items
        assert train_pos | test_pos == _positives(m)


def test_random_split_holds_out_about_the_fraction(matrix_and_times) -> None:
    m, _ = matrix_and_times
    s = split(m, SplitKind.random, test_fraction=0.2, seed=0)
    assert s.test.nnz / len(_positives(m)) == pytest.approx(0.2, abs=0.02)


def test_user_split_evaluates_every_user_and_keeps_training_items(matrix_and_times) -> None:
    m, _ = matrix_and_times
    s = split(m, SplitKind.user, test_fraction=0.2, seed=0)
    n_pos = np.diff((m > 0).tocsr().indptr)
    held = np.diff(s.test.indptr)
    kept = np.diff((s.train > 0).tocsr().indptr)
    assert ((held >= 1) == (n_pos >= 2)).all()
    assert (kept[n_pos >= 1] >= 1).all()


def test_time_split_tests_only_on_the_future(matrix_and_times) -> None:
    m, times = matrix_and_times
    s = split(m, SplitKind.time, test_fraction=0.2, times=times)
    assert s.train_times is not None and len(s.train_times) == s.train.nnz
    positive_train_times = s.train_times[s.train.data > 0]
    cut = positive_train_times.max()
    full = {(r, c): t for r, c, t in zip(*m.nonzero(), times, strict=True)}
    test_times = [full[(r, c)] for r, c in zip(*s.test.nonzero(), strict=True)]
    assert min(test_times) > cut


def test_leave_one_out_holds_out_each_users_latest(matrix_and_times) -> None:
    m, times = matrix_and_times
    s = split(m, SplitKind.leave_one_out, times=times)
    full = {(r, c): t for r, c, t in zip(*m.nonzero(), times, strict=True)}
    for user in range(m.shape[0]):
        held = s.test[user].indices
        positives = [c for c in m[user].indices if m[user, c] > 0]
        if len(positives) < 2:
            assert len(held) == 0
            continue
        assert len(held) == 1
        assert full[(user, held[0])] == max(full[(user, c)] for c in positives)


def test_time_split_without_timestamps_says_so() -> None:
    with pytest.raises(ValueError, match="timestamps"):
        split(sp.csr_matrix(np.eye(3, dtype=np.float32)), SplitKind.time)


def test_a_validation_split_with_times_holds_out_each_users_latest_positives(matrix_and_times) -> None:
    m, times = matrix_and_times
    s = validation_split(m, fraction=0.2, seed=3, times=times)
    full = {(r, c): t for r, c, t in zip(*m.nonzero(), times, strict=True)}
    assert _positives(s.test) | _positives(s.train) == _positives(m)
    for user in range(m.shape[0]):
        held = s.test[user].indices
        kept = [c for c in s.train[user].indices if s.train[user, c] > 0]
        if len(held) and kept:
            assert min(full[(user, c)] for c in held) >= max(full[(user, c)] for c in kept)
    assert s.train_times is not None and len(s.train_times) == s.train.nnz
    assert validation_split(m, fraction=0.2, seed=3).test.nnz > 0  # without times: a random share


def test_leave_k_out_holds_out_k_positives_and_always_leaves_one() -> None:
    dense = np.zeros((3, 6), np.float32)
    dense[0, :6] = 1.0  # six positives: three held out
    dense[1, :2] = 1.0  # two: one held out, one left
    dense[2, 0] = 1.0  # one: nothing to hold out
    s = split(sp.csr_matrix(dense), SplitKind.leave_one_out, per_user=3, seed=0)
    assert s.test.getnnz(axis=1).tolist() == [3, 1, 0]
    assert s.train.getnnz(axis=1).tolist() == [3, 1, 1]
