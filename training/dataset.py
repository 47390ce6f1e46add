"""From an interaction log to the weighted user x item matrix ALS trains on.

Repeated events of one (user, item) pair are summed (a view then a like = 0.5 + 2.0). A pair whose
net weight is negative (say, a dislike alone) is kept as an explicit negative: implicit reads a
negative cell as preference 0 with confidence |w|, so the model is pushed away from that item more
firmly than from an item never seen. A pair that nets to exactly zero carries no signal and is
removed. Only positive pairs count toward `min_interactions`: disliking five items does not make a
user "warm".
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from training.errors import MatrixTooSparseError, NoInteractionsError
from training.interaction_log import InteractionLog

MATRIX_FILE = "interactions.npz"
TIMES_FILE = "interaction_times.npy"
USER_MAPPING_FILE = "user_mapping.json"
ITEM_MAPPING_FILE = "item_mapping.json"
DATASET_INFO_FILE = "dataset.json"


@dataclass
class Dataset:
    """The training matrix and the ids of its rows and columns."""

    matrix: sp.csr_matrix  # float32 users x items, net weights (negative = dislike)
    user_ids: np.ndarray  # object array, row -> original id
    item_ids: np.ndarray  # object array, column -> original id
    times: np.ndarray | None = None  # int64 aligned with matrix.data: latest event of the pair
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.matrix.shape[0]), int(self.matrix.shape[1]))

    @property
    def fingerprint(self) -> str:
        return str(self.info.get("fingerprint", ""))

    def user_index(self) -> dict[str, int]:
        return {uid: i for i, uid in enumerate(self.user_ids.tolist())}

    def item_index(self) -> dict[str, int]:
        return {iid: i for i, iid in enumerate(self.item_ids.tolist())}


def _sorted_codes(codes: np.ndarray, vocab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber ids in sorted order, so the same log in any row order gives the same matrix."""
    order = np.argsort(vocab.astype(str), kind="stable")
    rank = np.empty(len(vocab), dtype=np.int32)
    rank[order] = np.arange(len(vocab), dtype=np.int32)
    return rank[codes], vocab[order]


def _aggregate(log: InteractionLog) -> tuple[sp.csr_matrix, np.ndarray | None, np.ndarray, np.ndarray]:
    """Sum weights per pair; keep the latest timestamp of each pair, aligned with the CSR data.

    Returns the matrix, the times, and the user and item ids of its rows and columns.
    """
    shape = (len(log.user_ids), len(log.item_ids))
    user_codes, user_ids = _sorted_codes(log.user_codes, log.user_ids)
    item_codes, item_ids = _sorted_codes(log.item_codes, log.item_ids)
    # One int64 key per event (row-major cell number): a single argsort is ~3x a two-key lexsort.
    order = np.argsort(user_codes.astype(np.int64) * shape[1] + item_codes, kind="stable")
    users = user_codes[order]
    items = item_codes[order]
    new_pair = np.empty(len(order), dtype=bool)
    if len(order):
        new_pair[0] = True
        new_pair[1:] = (users[1:] != users[:-1]) | (items[1:] != items[:-1])
    starts = np.flatnonzero(new_pair)
    sums = np.add.reduceat(log.weights[order].astype(np.float64), starts) if len(starts) else np.zeros(0)
    times = None
    if log.timestamps is not None and len(starts):
        times = np.maximum.reduceat(log.timestamps[order], starts)
    pair_users, pair_items = users[starts], items[starts]
    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(pair_users, minlength=shape[0]), out=indptr[1:])
    matrix = sp.csr_matrix((sums.astype(np.float32), pair_items.astype(np.int32), indptr), shape=shape)
    return matrix, times, user_ids, item_ids


def _drop_zero_pairs(
    matrix: sp.csr_matrix, times: np.ndarray | None
) -> tuple[sp.csr_matrix, np.ndarray | None]:
    keep = matrix.data != 0
    if keep.all():
        return matrix, times
    coo = matrix.tocoo()
    kept = sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=matrix.shape)
    # tocoo() of a canonical CSR preserves order, and so does rebuilding from sorted coordinates.
    return kept, (None if times is None else times[keep])


def _filter(
    matrix: sp.csr_matrix, times: np.ndarray | None, min_user: int, min_item: int
) -> tuple[sp.csr_matrix, np.ndarray | None, np.ndarray, np.ndarray]:
    """Repeat user/item filtering until stable (removing items can push users under the bar)."""
    rows = np.arange(matrix.shape[0])
    cols = np.arange(matrix.shape[1])
    data_index = np.arange(matrix.nnz)
    for _ in range(50):
        positive = matrix.copy()
        positive.data = (positive.data > 0).astype(np.float32)
        user_counts = np.asarray(positive.sum(axis=1)).ravel()
        item_counts = np.asarray(positive.sum(axis=0)).ravel()
        keep_rows = user_counts >= min_user
        keep_cols = item_counts >= min_item
        if keep_rows.all() and keep_cols.all():
            break
        # Carry the position of each stored value through the slicing to re-align the times.
        tracker = matrix.copy()
        tracker.data = data_index.astype(np.float64) + 1.0
        tracker = tracker[keep_rows][:, keep_cols].tocsr()
        tracker.sort_indices()
        matrix = matrix[keep_rows][:, keep_cols].tocsr()
        matrix.sort_indices()
        data_index = (tracker.data - 1.0).astype(np.int64)
        rows, cols = rows[keep_rows], cols[keep_cols]
        if matrix.nnz == 0:
            break
    kept_times = None if times is None else times[data_index]
    return matrix, kept_times, rows, cols


def fingerprint(matrix: sp.csr_matrix, user_ids: np.ndarray, item_ids: np.ndarray) -> str:
    """sha256 over the matrix and the id order: equal fingerprints mean the same training input."""
    digest = hashlib.sha256()
    for arr in (
        matrix.indptr.astype(np.int64),
        matrix.indices.astype(np.int32),
        matrix.data.astype(np.float32),
    ):
        digest.update(np.ascontiguousarray(arr).tobytes())
    for ids in (user_ids, item_ids):
        digest.update("\x1f".join(ids.tolist()).encode())
        digest.update(b"\x1e")
    return digest.hexdigest()


def build_dataset(
    log: InteractionLog,
    *,
    min_interactions: int = 1,
    min_item_interactions: int = 1,
    event_weights: dict[str, float] | None = None,
) -> Dataset:
    """Aggregate, drop zero pairs, filter, and fail loudly when nothing learnable remains."""
    if len(log) == 0:
        raise NoInteractionsError("No interactions found. Record some events (views, likes, ...) first.")
    matrix, times, all_user_ids, all_item_ids = _aggregate(log)
    matrix, times = _drop_zero_pairs(matrix, times)
    before_users = int((np.diff(matrix.indptr) > 0).sum())
    before_items = len(np.unique(matrix.indices))
    before_nnz = int(matrix.nnz)
    matrix, times, rows, cols = _filter(matrix, times, min_interactions, min_item_interactions)
    n_users, n_items = matrix.shape
    positives = int((matrix.data > 0).sum())
    if n_users < 2 or n_items < 2 or positives == 0:
        raise MatrixTooSparseError(
            f"Matrix too sparse: after --min-interactions {min_interactions} "
            f"(items: {min_item_interactions}) {n_users} users x {n_items} items with {positives} "
            f"positive interactions remain (from {before_users} users x {before_items} items, "
            f"{before_nnz} pairs). ALS needs at least 2 users and 2 items with positive events. "
            "Lower --min-interactions / --min-item-interactions or collect more interactions."
        )
    user_ids = all_user_ids[rows]
    item_ids = all_item_ids[cols]
    density = matrix.nnz / float(n_users * n_items)
    info: dict[str, Any] = {
        "users": n_users,
        "items": n_items,
        "pairs": int(matrix.nnz),
        "positive_pairs": positives,
        "negative_pairs": int((matrix.data < 0).sum()),
        "events": len(log),
        "density": density,
        "min_interactions": min_interactions,
        "min_item_interactions": min_item_interactions,
        "removed_users": before_users - n_users,
        "removed_items": before_items - n_items,
        "dropped_unknown_events": dict(log.dropped_unknown_events),
        "dropped_invalid_rows": dict(log.dropped_invalid_rows),
        "read_notes": list(log.notes),
        "has_timestamps": times is not None,
        "event_weights": event_weights or {},
        "fingerprint": fingerprint(matrix, user_ids, item_ids),
        # What the next retrain compares its log with (training/log_checks.py).
        "event_types": log.event_type_counts(),
        "top_user_share": float(np.bincount(log.user_codes).max() / len(log)),
    }
    return Dataset(matrix, user_ids, item_ids, times, info)


def save_dataset(dataset: Dataset, folder: Path) -> None:
    """The seed's outputs: interactions.npz plus id mappings as JSON (original id -> row)."""
    folder.mkdir(parents=True, exist_ok=True)
    sp.save_npz(folder / MATRIX_FILE, dataset.matrix, compressed=False)
    if dataset.times is not None:
        np.save(folder / TIMES_FILE, dataset.times, allow_pickle=False)
    write_mapping(folder / USER_MAPPING_FILE, dataset.user_ids)
    write_mapping(folder / ITEM_MAPPING_FILE, dataset.item_ids)
    (folder / DATASET_INFO_FILE).write_text(json.dumps(dataset.info, indent=2) + "\n")


def write_mapping(path: Path, ids: np.ndarray) -> None:
    path.write_text(json.dumps({uid: i for i, uid in enumerate(ids.tolist())}, ensure_ascii=False))


def read_mapping(path: Path) -> np.ndarray:
    """Mapping JSON -> object array row -> id (rows must be exactly 0..n-1)."""
    mapping: dict[str, int] = json.loads(path.read_text())
    ids = np.empty(len(mapping), dtype=object)
    for key, row in mapping.items():
        ids[row] = key
    return ids


def load_dataset(folder: Path) -> Dataset:
    matrix = sp.load_npz(folder / MATRIX_FILE).tocsr().astype(np.float32)
    times_path = folder / TIMES_FILE
    times = np.load(times_path, allow_pickle=False) if times_path.is_file() else None
    info = json.loads((folder / DATASET_INFO_FILE).read_text())
    return Dataset(
        matrix,
        read_mapping(folder / USER_MAPPING_FILE),
        read_mapping(folder / ITEM_MAPPING_FILE),
        times,
        info,
    )
