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

from feature_store.manifest import ArtifactError, read_manifest
from feature_store.version_paths import entry_path, has_entry, in_scope, manifest_scope, showable

USER_FACTORS = "user_factors.npy"
ITEM_FACTORS = "item_factors.npy"
USER_MAPPING = "user_mapping.json"
ITEM_MAPPING = "item_mapping.json"
# float32 per item: the popularity discount of the confidences ALS was fitted with (only when set)
ITEM_CONFIDENCE_WEIGHTS = "item_confidence_weights.npy"
# The other models of a train-all version (each optional: a plain `train` writes none of them).
POPULARITY_SCORES = "popularity_scores.npy"  # float32 per item, time-decayed
CONTENT_VECTORS = "content_vectors.npy"  # unit content vector + popularity share column
CONTENT_ENCODER = "content_encoder.json"  # how a new item's metadata becomes its content vector
CONTENT_IDF = "content_idf.npy"  # the fitted TF-IDF weights, per term of the encoder's vocabulary
CONTENT_COMPONENTS = "content_components.npy"  # the fitted SVD, dim x terms
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
    """A `.npy` entry of the version (contained in the folder, listed in its manifest while a
    version is being loaded; see version_paths), never with pickle."""
    path = entry_path(folder, name)
    if not path.is_file():
        raise ArtifactError(f"{path}: missing from the version folder.", public=f"{showable(name)}: missing")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ArtifactError(
            f"{path}: not a readable .npy array ({exc}).",
            public=f"{showable(name)}: not a readable .npy array",
        ) from exc


def load_mapping(folder: Path, name: str) -> list[str]:
    """A mapping file (`{"id": row}`) as the list of ids in row order.

    Checked whole, because a mapping is what turns rows into the ids every answer carries: a list
    instead of an object, rows that are strings, floats or booleans, or rows that are not exactly
    0..n-1 are refused here rather than failing (or answering wrong ids) at request time."""
    path = entry_path(folder, name)
    public = f"{showable(name)}: not an id mapping (a JSON object of id -> row 0..n-1)"
    try:
        mapping = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ArtifactError(
            f"{path}: unreadable id mapping ({exc.__class__.__name__}).", public=public
        ) from exc
    if not isinstance(mapping, dict):
        raise ArtifactError(
            f"{path}: a JSON {type(mapping).__name__}, not an object of id -> row.", public=public
        )
    ids = [""] * len(mapping)
    filled = [False] * len(mapping)
    for key, row in mapping.items():
        if type(row) is not int or not 0 <= row < len(ids) or filled[row]:
            raise ArtifactError(f"{path}: rows are not a permutation of 0..{len(ids) - 1}.", public=public)
        ids[row], filled[row] = key, True
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
        """Shapes, dtypes and pointers agree, so a user's slice can never read past an array or
        decode into garbage at request time (the embedded store reads these arrays per request)."""
        n = len(self.user_ids)
        for name, arr in self.embeddings.items():
            if arr.ndim != 2 or arr.shape[0] != n or not np.issubdtype(arr.dtype, np.floating):
                raise ArtifactError(
                    f"embedding '{name}' has shape {arr.shape} and dtype {arr.dtype}, expected ({n}, dim)",
                    public=f"user embedding '{showable(name)}' does not match the user mapping",
                )
        integral = (self.counts, self.seen_indptr, self.seen_items, self.recent_indptr, self.recent_items)
        if any(a.ndim != 1 or not np.issubdtype(a.dtype, np.integer) for a in integral) or (
            self.recent_weights.ndim != 1 or not np.issubdtype(self.recent_weights.dtype, np.number)
        ):
            raise ArtifactError(
                "profile arrays must be 1-D integer arrays (weights: numbers)",
                public="profile arrays have the wrong shape or type",
            )
        if len(self.counts) != n or len(self.seen_indptr) != n + 1 or len(self.recent_indptr) != n + 1:
            raise ArtifactError(
                "profile arrays disagree with the user mapping in length",
                public="profile arrays disagree with the user mapping",
            )
        for indptr, items in ((self.seen_indptr, self.seen_items), (self.recent_indptr, self.recent_items)):
            if n and (indptr[0] != 0 or indptr[-1] != len(items) or np.any(np.diff(indptr) < 0)):
                raise ArtifactError(
                    "profile CSR pointers disagree with their item arrays",
                    public="profile pointers disagree with their item arrays",
                )
        if len(self.recent_weights) != len(self.recent_items):
            raise ArtifactError(
                "recent weights and recent items differ in length",
                public="profile arrays disagree with each other",
            )


def check_item_rows(table: ProfileTable, n_items: int) -> None:
    """Every seen and recent item row is a row of the version's item mapping: requests use them as
    indexes (exclusions, fold-in, the content profile), where one out of range fails the request."""
    for name, items in (("seen", table.seen_items), ("recent", table.recent_items)):
        if len(items) and (int(items.min()) < 0 or int(items.max()) >= n_items):
            raise ArtifactError(
                f"profile {name} items hold rows outside 0..{n_items - 1}",
                public=f"profile {name} items are not rows of the item mapping",
            )


def load_profile_table(folder: Path, mmap: bool = True) -> ProfileTable:
    """The version's user table: ALS factors (and Two-Tower embeddings when the version has them)
    plus the profile arrays written by training.

    Always read under a manifest: the loader's verified one when a version is being loaded
    (publish, serving), else the folder's own (the embedded store reading a published version),
    so a file the manifest does not list is never opened."""
    if in_scope(folder):
        return _load_profile_table(folder, mmap)
    with manifest_scope(folder, read_manifest(folder).files):
        return _load_profile_table(folder, mmap)


def _load_profile_table(folder: Path, mmap: bool) -> ProfileTable:
    embeddings = {"als": load_array(folder, USER_FACTORS, mmap)}
    if has_entry(folder, TWO_TOWER_USERS):
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
