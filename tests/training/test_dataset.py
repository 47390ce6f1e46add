import numpy as np
import pyarrow as pa
import pytest

from training.dataset import build_dataset, load_dataset, save_dataset
from training.errors import MatrixTooSparseError, NoInteractionsError
from training.events import DEFAULT_EVENT_WEIGHTS
from training.interaction_log import from_arrays, from_table

T = 1_700_000_000  # event times are plausible epoch seconds; the tests speak in offsets from it


def _events(rows: list[tuple[str, str, str, int]]):
    users, items, events, stamps = zip(*rows, strict=True)
    table = pa.table(
        {"user_id": users, "item_id": items, "event_type": events, "timestamp": [T + s for s in stamps]}
    )
    return from_table(table, DEFAULT_EVENT_WEIGHTS)


def _cell(ds, user: str, item: str) -> float:
    return float(ds.matrix[ds.user_index()[user], ds.item_index()[item]])


def test_repeated_events_of_a_pair_are_summed_and_keep_the_latest_time() -> None:
    ds = build_dataset(
        _events(
            [
                ("u1", "a", "view", 10),
                ("u1", "a", "like", 30),
                ("u1", "b", "click", 20),
                ("u2", "a", "view", 5),
            ]
        )
    )
    assert _cell(ds, "u1", "a") == pytest.approx(2.5)
    row = ds.user_index()["u1"]
    start, end = ds.matrix.indptr[row], ds.matrix.indptr[row + 1]
    times = dict(
        zip(ds.item_ids[ds.matrix.indices[start:end]].tolist(), ds.times[start:end].tolist(), strict=True)
    )
    assert times == {"a": T + 30, "b": T + 20}


def test_a_net_dislike_stays_as_an_explicit_negative() -> None:
    ds = build_dataset(
        _events(
            [
                ("u1", "a", "dislike", 1),
                ("u1", "b", "like", 2),
                ("u2", "b", "view", 3),
                ("u2", "a", "like", 4),
            ]
        )
    )
    assert _cell(ds, "u1", "a") == -1.0
    assert ds.info["negative_pairs"] == 1


def test_a_pair_that_nets_to_zero_is_removed() -> None:
    ds = build_dataset(
        _events(
            [
                ("u1", "a", "click", 1),
                ("u1", "a", "dislike", 2),
                ("u1", "b", "like", 3),
                ("u2", "b", "view", 4),
                ("u2", "a", "like", 5),
            ]
        )
    )
    assert _cell(ds, "u1", "a") == 0.0
    assert ds.matrix.nnz == 3


def test_min_interactions_filters_until_stable_and_keeps_times_aligned() -> None:
    rng = np.random.default_rng(0)
    users = rng.integers(0, 60, 3000).astype(str)
    items = rng.integers(0, 80, 3000).astype(str)
    stamps = T + rng.integers(0, 1_000_000, 3000)
    log = from_arrays(users, items, timestamps=stamps)
    ds = build_dataset(log, min_interactions=30, min_item_interactions=20)
    assert ds.info["removed_users"] > 0 and ds.shape[0] > 0
    pos = (ds.matrix > 0).astype(np.int32)
    assert (np.asarray(pos.sum(axis=1)).ravel() >= 30).all()
    assert (np.asarray(pos.sum(axis=0)).ravel() >= 20).all()
    # Each stored time must be the latest event of exactly that pair in the raw log.
    latest: dict[tuple[str, str], int] = {}
    for u, i, t in zip(users.tolist(), items.tolist(), stamps.tolist(), strict=True):
        latest[(u, i)] = max(latest.get((u, i), -1), t)
    coo = ds.matrix.tocoo()
    for r, c, t in zip(coo.row[:200], coo.col[:200], ds.times[:200], strict=True):
        assert latest[(ds.user_ids[r], ds.item_ids[c])] == t


def test_empty_input_says_no_interactions_found() -> None:
    table = pa.table(
        {
            "user_id": pa.array([], pa.string()),
            "item_id": pa.array([], pa.string()),
            "weight": pa.array([], pa.float32()),
        }
    )
    with pytest.raises(NoInteractionsError, match="No interactions found"):
        from_table(table, {})


def test_filtering_everything_away_says_matrix_too_sparse_with_numbers_and_fix() -> None:
    log = from_arrays(["u1", "u1", "u2"], ["a", "b", "a"])
    with pytest.raises(MatrixTooSparseError) as err:
        build_dataset(log, min_interactions=5)
    message = str(err.value)
    assert message.startswith("Matrix too sparse")
    assert "0 users" in message and "2 users x 2 items" in message and "Lower --min-interactions" in message


def test_only_dislikes_is_too_sparse_to_learn_from() -> None:
    log = from_arrays(["u1", "u2"], ["a", "b"], weights=np.array([-1.0, -1.0]))
    with pytest.raises(MatrixTooSparseError, match="0 positive"):
        build_dataset(log)


def test_fingerprint_identifies_the_training_input() -> None:
    a = build_dataset(from_arrays(["u1", "u2", "u2"], ["a", "a", "b"]))
    b = build_dataset(from_arrays(["u2", "u1", "u2"], ["b", "a", "a"]))
    c = build_dataset(from_arrays(["u1", "u2", "u2"], ["a", "a", "c"]))
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_save_and_load_round_trip_the_seed_outputs(tmp_path) -> None:
    ds = build_dataset(from_arrays(["u1", "u2", "u2"], ["a", "a", "b"], timestamps=T + np.array([3, 2, 1])))
    save_dataset(ds, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} >= {
        "interactions.npz",
        "user_mapping.json",
        "item_mapping.json",
    }
    back = load_dataset(tmp_path)
    assert (back.matrix != ds.matrix).nnz == 0
    assert back.user_ids.tolist() == ds.user_ids.tolist() and back.times.tolist() == ds.times.tolist()
    assert back.fingerprint == ds.fingerprint
