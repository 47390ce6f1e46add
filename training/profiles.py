"""Per-user profile arrays written into a version for publish: counts, seen items, recent items.

The count that drives tier routing is the number of distinct items with a positive net weight,
the definition serving applies to live events too (`feature_store/live_view.py`) and the per-tier
evaluation uses: not raw events, so a user who viewed one item fifty times is not routed as a hot
user, and not dislikes, which give the model nothing to recommend from. Recent items are the
user's newest pairs by latest event time (by matrix order when the log has no timestamps), with
their aggregated weight, so the content model can weigh a profile the way the matrix does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from feature_store.version_files import (
    PROFILE_COUNTS,
    PROFILE_RECENT_INDPTR,
    PROFILE_RECENT_ITEMS,
    PROFILE_RECENT_WEIGHTS,
    PROFILE_SEEN_INDPTR,
    PROFILE_SEEN_ITEMS,
)


def build_profiles(
    matrix: sp.csr_matrix, times: np.ndarray | None, recent_limit: int
) -> dict[str, np.ndarray]:
    """Profile arrays keyed by their file name, from the signed weight matrix and its pair times."""
    m = matrix.tocsr()  # the dataset's canonical CSR; `times` is aligned with its data
    indptr = m.indptr.astype(np.int64)
    counts = np.diff(indptr).astype(np.int32)
    rows = np.repeat(np.arange(m.shape[0]), counts)
    order_key = times if times is not None else np.arange(m.nnz)
    # Newest last within each row: sort by (row, time); keep each row's last `recent_limit`.
    order = np.lexsort((order_key, rows))
    keep_n = np.minimum(counts, recent_limit).astype(np.int64)
    recent_indptr = np.concatenate([[0], np.cumsum(keep_n)])
    pos_in_row = np.arange(m.nnz) - np.repeat(indptr[:-1], counts)
    keep = pos_in_row >= np.repeat(counts - keep_n, counts)
    chosen = order[keep]
    positive_counts = np.bincount(rows[m.data > 0], minlength=m.shape[0]).astype(np.int32)
    return {
        PROFILE_COUNTS: positive_counts,
        PROFILE_SEEN_INDPTR: indptr,
        PROFILE_SEEN_ITEMS: m.indices.astype(np.int32),
        PROFILE_RECENT_INDPTR: recent_indptr,
        PROFILE_RECENT_ITEMS: m.indices[chosen].astype(np.int32),
        PROFILE_RECENT_WEIGHTS: m.data[chosen].astype(np.float32),
    }


def write_profiles(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    for name, array in arrays.items():
        np.save(folder / name, array, allow_pickle=False)
