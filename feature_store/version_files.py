"""The files of a version folder that serving and publish read, by name, memory-mapped.

Training writes these names (training/artifacts.py); publish and app/ read them through here, so
neither side imports the other. Arrays are plain `.npy` (no pickle: `allow_pickle=False`
everywhere) and are memory-mapped, so a 1M-user table costs page cache, not a copy per process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from feature_store.manifest import ArtifactError

USER_FACTORS = "user_factors.npy"
ITEM_FACTORS = "item_factors.npy"
USER_MAPPING = "user_mapping.json"
ITEM_MAPPING = "item_mapping.json"
# float32 per item: the popularity discount of the confidences ALS was fitted with (only when set)
ITEM_CONFIDENCE_WEIGHTS = "item_confidence_weights.npy"
# The other models of a train-all version (each optional: a plain `train` writes none of them).
POPULARITY_SCORES = "popularity_scores.npy"  # float32 per item, time-decayed
CONTENT_VECTORS = "content_vectors.npy"  # unit content vector + popularity share column
TWO_TOWER_ITEMS = "two_tower_item_embeddings.npy"
TWO_TOWER_USERS = "two_tower_user_embeddings.npy"  # published as the 'two_tower' embedding
TWO_TOWER_USER_TOWER = "two_tower_user_tower.npz"  # numpy weights: encodes any history at serve time
PROFILE_COUNTS = "profile_counts.npy"
PROFILE_SEEN_INDPTR = "profile_seen_indptr.npy"
PROFILE_SEEN_ITEMS = "profile_seen_items.npy"
PROFILE_RECENT_INDPTR = "profile_recent_indptr.npy"
PROFILE_RECENT_ITEMS = "profile_recent_items.npy"
PROFILE_RECENT_WEIGHTS = "profile_recent_weights.npy"
PROFILE_FILES = (
    PROFILE_COUNTS,
    PROFILE_SEEN_INDPTR,
    PROFILE_SEEN_ITEMS,
    PROFILE_RECENT_INDPTR,
    PROFILE_RECENT_ITEMS,
    PROFILE_RECENT_WEIGHTS,
)


def load_array(folder: Path, name: str, mmap: bool = True) -> np.ndarray:
    path = folder / name
    if not path.is_file():
        raise ArtifactError(f"{path}: missing from the version folder.")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as exc:
        raise ArtifactError(f"{path}: not a readable .npy array ({exc}).") from exc


def load_mapping(folder: Path, name: str) -> list[str]:
    """A mapping file (`{"id": row}`) as the list of ids in row order."""
    path = folder / name
    try:
        mapping = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: unreadable id mapping ({exc.__class__.__name__}).") from exc
    ids = [""] * len(mapping)
    for key, row in mapping.items():
        if not 0 <= row < len(ids) or ids[row]:
            raise ArtifactError(f"{path}: rows are not a permutation of 0..{len(ids) - 1}.")
        ids[row] = key
    return ids


@dataclass
class ProfileTable:
    """Everything publish writes per user, as columnar arrays (CSR for the variable-length parts).

    Row u describes user_ids[u]; item rows index the version's item mapping; recent items are
    ordered oldest to newest.
    """

    user_ids: list[str]
    counts: np.ndarray
    embeddings: dict[str, np.ndarray]
    seen_indptr: np.ndarray
    seen_items: np.ndarray
    recent_indptr: np.ndarray
    recent_items: np.ndarray
    recent_weights: np.ndarray

    def __len__(self) -> int:
        return len(self.user_ids)

    def check(self) -> None:
        n = len(self.user_ids)
        for name, arr in self.embeddings.items():
            if arr.ndim != 2 or arr.shape[0] != n:
                raise ArtifactError(f"embedding '{name}' has shape {arr.shape}, expected ({n}, dim)")
        if len(self.counts) != n or len(self.seen_indptr) != n + 1 or len(self.recent_indptr) != n + 1:
            raise ArtifactError("profile arrays disagree with the user mapping in length")
        if self.seen_indptr[-1] != len(self.seen_items) or self.recent_indptr[-1] != len(self.recent_items):
            raise ArtifactError("profile CSR pointers disagree with their item arrays")


def load_profile_table(folder: Path, mmap: bool = True) -> ProfileTable:
    """The version's user table: ALS factors (and Two-Tower embeddings when the version has them)
    plus the profile arrays written by training."""
    embeddings = {"als": load_array(folder, USER_FACTORS, mmap)}
    if (folder / TWO_TOWER_USERS).is_file():
        embeddings["two_tower"] = load_array(folder, TWO_TOWER_USERS, mmap)
    table = ProfileTable(
        user_ids=load_mapping(folder, USER_MAPPING),
        counts=load_array(folder, PROFILE_COUNTS, mmap),
        embeddings=embeddings,
        seen_indptr=load_array(folder, PROFILE_SEEN_INDPTR, mmap),
        seen_items=load_array(folder, PROFILE_SEEN_ITEMS, mmap),
        recent_indptr=load_array(folder, PROFILE_RECENT_INDPTR, mmap),
        recent_items=load_array(folder, PROFILE_RECENT_ITEMS, mmap),
        recent_weights=load_array(folder, PROFILE_RECENT_WEIGHTS, mmap),
    )
    table.check()
    return table
