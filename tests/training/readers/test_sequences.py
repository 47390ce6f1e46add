"""The S3-Rec sequence files (`user item item ...`): Amazon Beauty and Sports, read in place."""

import pytest

from tests.conftest import real_data
from training.errors import TrainingInputError
from training.readers import read_interactions


def test_a_sequence_file_becomes_one_pair_per_item_in_line_order(tmp_path) -> None:
    path = tmp_path / "seq.txt"
    path.write_text("1 10 11 12\n2 11 13\n")
    log = read_interactions(str(path), {})
    assert log.user_ids[log.user_codes].tolist() == ["1", "1", "1", "2", "2"]
    assert log.item_ids[log.item_codes].tolist() == ["10", "11", "12", "11", "13"]
    assert log.timestamps is None and set(log.weights.tolist()) == {1.0}


def test_a_folder_with_one_sequence_file_is_read_like_the_file(tmp_path) -> None:
    (tmp_path / "Beauty.txt").write_text("1 10 11\n2 10 12\n")
    assert len(read_interactions(str(tmp_path), {})) == 4


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
