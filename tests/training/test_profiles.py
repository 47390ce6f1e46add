import numpy as np
import scipy.sparse as sp

from training.profiles import build_profiles


def test_counts_are_distinct_positive_items_and_recent_is_newest_last_capped() -> None:
    matrix = sp.csr_matrix(
        np.array([[1.0, 0, 2.0, -1.0, 3.0], [0, 0, 0, 0, 0], [0, 5.0, 0, 0, 0]], np.float32)
    )
    times = np.array([40, 10, 30, 20, 7])  # aligned with matrix.data: row 0 -> items 0,2,3,4; row 2 -> 1
    arrays = build_profiles(matrix, times, recent_limit=3)
    assert arrays["profile_counts.npy"].tolist() == [3, 0, 1]  # the dislike is seen, not counted
    ptr = arrays["profile_recent_indptr.npy"]
    assert ptr.tolist() == [0, 3, 3, 4]
    assert arrays["profile_recent_items.npy"][0:3].tolist() == [4, 3, 0]  # times 20, 30, 40
    assert arrays["profile_recent_weights.npy"][0:3].tolist() == [3.0, -1.0, 1.0]
    seen_ptr = arrays["profile_seen_indptr.npy"]
    assert sorted(arrays["profile_seen_items.npy"][seen_ptr[0] : seen_ptr[1]].tolist()) == [0, 2, 3, 4]
