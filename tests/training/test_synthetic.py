import numpy as np
import pyarrow.compute as pc

from training.events import DEFAULT_EVENT_WEIGHTS
from training.synthetic import SyntheticConfig, generate, write


def test_same_seed_same_data_other_seed_other_data() -> None:
    cfg = SyntheticConfig(users=300, items=100, interactions=5_000)
    a, b = generate(cfg), generate(cfg)
    c = generate(SyntheticConfig(users=300, items=100, interactions=5_000, seed=7))
    assert a.interactions.equals(b.interactions) and a.items.equals(b.items)
    assert not a.interactions.equals(c.interactions)


def test_all_routing_tiers_and_a_long_tail_occur(small_synthetic) -> None:
    users = small_synthetic.interactions["user_id"].combine_chunks().indices.to_numpy()
    per_user = np.bincount(users, minlength=len(small_synthetic.all_user_ids))
    assert small_synthetic.interactions.num_rows == 60_000
    for low, high in ((0, 0), (1, 4), (5, 19), (20, 10**9)):
        share = ((per_user >= low) & (per_user <= high)).mean()
        assert share > 0.01, (low, high, share)
    items = small_synthetic.interactions["item_id"].combine_chunks().indices.to_numpy()
    per_item = np.sort(np.bincount(items))[::-1]
    assert per_item[: len(per_item) // 10].sum() / per_item.sum() > 0.3  # top 10% of items


def test_users_mostly_interact_within_their_taste_cluster(small_synthetic) -> None:
    users = small_synthetic.interactions["user_id"].combine_chunks().indices.to_numpy()
    items = small_synthetic.interactions["item_id"].combine_chunks().indices.to_numpy()
    same = small_synthetic.item_clusters[items] == small_synthetic.user_clusters[users]
    assert 0.5 < same.mean() < 0.95


def test_event_types_are_the_seeds_with_views_most_common(small_synthetic) -> None:
    counts = {
        d["values"]: d["counts"]
        for d in pc.value_counts(small_synthetic.interactions["event_type"]).to_pylist()
    }
    assert set(counts) == set(DEFAULT_EVENT_WEIGHTS)
    assert max(counts, key=counts.get) == "view"


def test_item_metadata_has_content_columns(small_synthetic) -> None:
    assert set(small_synthetic.items.column_names) >= {"item_id", "category", "tags", "text", "price"}
    assert small_synthetic.items.num_rows == 400


def test_written_files_read_back(tmp_path) -> None:
    from training.readers import read_interactions

    data = generate(SyntheticConfig(users=50, items=20, interactions=500))
    for fmt in ("parquet", "csv"):
        inter, _ = write(data, tmp_path / fmt, fmt)
        log = read_interactions(str(inter), DEFAULT_EVENT_WEIGHTS)
        assert len(log) == 500 and log.timestamps is not None
