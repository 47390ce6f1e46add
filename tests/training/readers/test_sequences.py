"""The S3-Rec sequence files (`user item item ...`): Amazon Beauty and Sports, read in place."""

import pytest

from tests.conftest import real_data
from training.dataset import build_dataset
from training.errors import TrainingInputError
from training.readers import read_interactions
from training.readers.sequences import ORDER_EPOCH
from training.splits import latest_split


def test_a_sequence_file_becomes_one_pair_per_item_in_line_order(tmp_path) -> None:
    path = tmp_path / "seq.txt"
    path.write_text("1 10 11 12\n2 11 13\n")
    log = read_interactions(str(path), {})
    assert log.user_ids[log.user_codes].tolist() == ["1", "1", "1", "2", "2"]
    assert log.item_ids[log.item_codes].tolist() == ["10", "11", "12", "11", "13"]
    assert set(log.weights.tolist()) == {1.0}


def test_each_lines_order_becomes_times_a_second_apart_from_the_same_start(tmp_path) -> None:
    path = tmp_path / "seq.txt"
    path.write_text("1 10 11 12\n2 11 13\n")
    log = read_interactions(str(path), {})
    assert log.timestamps is not None
    assert (log.timestamps - ORDER_EPOCH).tolist() == [0, 1, 2, 0, 1]


def test_a_latest_items_split_of_a_sequence_file_holds_out_each_users_last_items(tmp_path) -> None:
    path = tmp_path / "seq.txt"
    path.write_text(
        "".join(f"{u} " + " ".join(str(100 * u + i) for i in range(10)) + "\n" for u in range(1, 6))
    )
    data = build_dataset(read_interactions(str(path), {}))
    parts = latest_split(data.matrix, data.times, 0.2)
    for row in range(parts.test.shape[0]):
        held = data.item_ids[parts.test[row].indices]
        user = int(data.user_ids[row])
        assert sorted(held.tolist()) == [str(100 * user + 8), str(100 * user + 9)]


def test_a_folder_with_one_sequence_file_is_read_like_the_file(tmp_path) -> None:
    (tmp_path / "Beauty.txt").write_text("1 10 11\n2 10 12\n")
    assert len(read_interactions(str(tmp_path), {})) == 4


def test_a_folder_with_a_train_and_a_test_sequence_file_names_both_instead_of_reading_both(
    tmp_path,
) -> None:
    (tmp_path / "train.txt").write_text("1 10 11\n2 10 12\n")
    (tmp_path / "test.txt").write_text("1 12\n2 11\n")
    refusal = r"2 sequence files \(test.txt, train.txt\); pass the one .* -i .*train.txt"
    with pytest.raises(TrainingInputError, match=refusal):
        read_interactions(str(tmp_path), {})
    assert len(read_interactions(str(tmp_path / "train.txt"), {})) == 4


def test_a_user_without_items_is_a_clear_error(tmp_path) -> None:
    path = tmp_path / "seq.txt"
    path.write_text("1 10 11\n2\n")
    with pytest.raises(TrainingInputError, match="line 2 has a user but no items"):
        read_interactions(str(path), {})


@pytest.mark.parametrize(
    ("folder", "users", "items", "pairs"),
    [("amazon-beauty", 22_363, 12_101, 198_502), ("amazon-sports", 35_598, 18_357, 296_337)],
)
def test_the_amazon_sequences_match_their_published_statistics(folder, users, items, pairs) -> None:
    log = read_interactions(str(real_data(folder)), {})
    assert (len(log.user_ids), len(log.item_ids), len(log)) == (users, items, pairs)
