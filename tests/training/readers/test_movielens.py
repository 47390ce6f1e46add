from tests.conftest import real_data
from training.readers import read_interactions, read_items
from training.readers.movielens import read_ncf


def test_ml100k_ratings_become_weights_with_timestamps() -> None:
    log = read_interactions(str(real_data("ml-100k")), {})
    assert len(log) == 100_000 and len(log.user_ids) == 943 and len(log.item_ids) == 1682
    assert set(log.weights.tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert log.timestamps is not None


def test_ml1m_pairs_are_binary() -> None:
    log = read_interactions(str(real_data("ml-1m")), {})
    assert len(log) == 1_000_209 and len(log.user_ids) == 6040 and len(log.item_ids) == 3706
    assert set(log.weights.tolist()) == {1.0}


def test_movielens_item_metadata_has_genres_as_tags() -> None:
    items = read_items(str(real_data("ml-1m"))).table
    first = items.slice(0, 1).to_pylist()[0]
    assert first["item_id"] == "1" and "Toy Story" in first["text"] and "Animation" in first["tags"]


def test_ncf_split_has_one_test_item_and_99_distinct_negatives_per_user() -> None:
    ncf = read_ncf(real_data("ncf-ml-1m"))
    assert ncf.train.num_rows == 994_169 and len(ncf.test_users) == 6040
    assert all(item not in negs for item, negs in zip(ncf.test_items, ncf.negatives, strict=True))
    assert sum(len(n) == 99 for n in ncf.negatives) == 6040 - 156  # the known self-collisions
