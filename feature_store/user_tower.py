"""The Two-Tower user tower in numpy: a user vector from their history, at request time.

Training (`training/two_tower.py`) exports the user tower as plain float32 arrays, so serving needs
neither torch nor anything from `training/`: the serving image stays small, and a user who has
only just arrived (or whose history changed since the last training run) is encoded on the spot
from the items they touched. The computation mirrors the torch model exactly:

    pooled = Σ w_i H[i] / Σ w_i          over the user's positive items (weight > 0)
    u      = relu(pooled @ w1 + b1) @ w2 + b2,  then L2-normalised

with the same history cap as training (the `max_history` largest weights, ties by smaller item
row), so a known user encoded from their training history gets the vector training exported.
Cost: O(len(history) x hidden + hidden² + hidden x dim), a few microseconds for typical users.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from feature_store.manifest import ArtifactError

_KEYS = ("history_table", "w1", "b1", "w2", "b2")


class UserTower:
    """Numpy user encoder. Arrays use the row-vector convention: `w1` is hidden x hidden1 and
    `w2` is hidden1 x dim (the transpose of torch's `Linear.weight`)."""

    def __init__(
        self,
        history_table: np.ndarray,
        w1: np.ndarray,
        b1: np.ndarray,
        w2: np.ndarray,
        b2: np.ndarray,
        max_history: int | None = None,
    ) -> None:
        arrays = {"history_table": history_table, "w1": w1, "b1": b1, "w2": w2, "b2": b2}
        _check_shapes(arrays)
        self.history_table = np.asarray(history_table, np.float32)
        self.w1 = np.asarray(w1, np.float32)
        self.b1 = np.asarray(b1, np.float32)
        self.w2 = np.asarray(w2, np.float32)
        self.b2 = np.asarray(b2, np.float32)
        if max_history is not None and max_history < 1:
            raise ValueError(f"max_history must be at least 1, got {max_history}")
        self.max_history = max_history

    @property
    def n_items(self) -> int:
        return int(self.history_table.shape[0])

    @property
    def dim(self) -> int:
        return int(self.w2.shape[1])

    @classmethod
    def load(cls, path: Path) -> UserTower:
        """Read the `.npz` written by `training.two_tower.save_user_tower` (never with pickle).

        Raises ArtifactError naming the file and the problem, so a caller can refuse the version
        and keep serving the previous one.
        """
        try:
            with np.load(path, allow_pickle=False) as npz:
                missing = [k for k in _KEYS if k not in npz.files]
                if missing:
                    raise ArtifactError(
                        f"{path}: user tower is missing {', '.join(missing)} (has {', '.join(npz.files)})"
                    )
                arrays = {k: npz[k] for k in _KEYS}
                cap = npz["max_history"] if "max_history" in npz.files else None
        except ArtifactError:
            raise
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
            raise ArtifactError(f"{path}: not a readable user tower .npz ({exc})") from exc
        for name, arr in arrays.items():
            if not np.issubdtype(arr.dtype, np.floating):
                raise ArtifactError(f"{path}: user tower array {name} has dtype {arr.dtype}, not float")
            if not np.isfinite(arr).all():
                raise ArtifactError(f"{path}: user tower array {name} holds NaN or infinite values")
        max_history = None
        if cap is not None:
            if cap.shape != () or not np.issubdtype(cap.dtype, np.integer) or int(cap) < 1:
                raise ArtifactError(f"{path}: max_history must be a positive integer scalar, got {cap!r}")
            max_history = int(cap)
        try:
            return cls(**arrays, max_history=max_history)
        except ValueError as exc:
            raise ArtifactError(f"{path}: {exc}") from exc

    def encode(self, rows: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
        """The user's unit vector (float32, `dim`) from item rows and their event weights.

        Weights are summed per item first (as training aggregates a user-item pair), rows outside
        the table are ignored (items newer than the model), and only items with a positive net
        weight are pooled. Returns None when nothing positive remains: such a user has no
        Two-Tower vector and falls back down the tier table.
        """
        rows = np.asarray(rows).reshape(-1)
        weights = np.asarray(weights, np.float64).reshape(-1)
        if rows.shape != weights.shape:
            raise ValueError(f"rows ({rows.shape[0]}) and weights ({weights.shape[0]}) differ in length")
        if rows.size == 0:
            return None
        rows = rows.astype(np.int64)
        keep = (rows >= 0) & (rows < self.n_items) & np.isfinite(weights)
        rows, weights = rows[keep], weights[keep]
        if rows.size == 0:
            return None
        rows, inverse = np.unique(rows, return_inverse=True)
        totals = np.bincount(inverse, weights=weights, minlength=rows.size)
        positive = totals > 0
        rows, totals = rows[positive], totals[positive].astype(np.float32)
        if rows.size == 0:
            return None
        if self.max_history is not None and rows.size > self.max_history:
            # Largest weights first, ties by the smaller row (rows are sorted ascending).
            order = np.lexsort((rows, -totals))[: self.max_history]
            rows, totals = rows[order], totals[order]
        pooled = (totals @ self.history_table[rows]) / totals.sum(dtype=np.float32)
        hidden = np.maximum(pooled @ self.w1 + self.b1, np.float32(0.0))
        u = hidden @ self.w2 + self.b2
        norm = float(np.linalg.norm(u))
        if not np.isfinite(norm) or norm == 0.0:
            return None
        return (u / norm).astype(np.float32)


def _check_shapes(arrays: dict[str, np.ndarray]) -> None:
    """The arrays must chain: history_table (n x h), w1 (h x h1), b1 (h1), w2 (h1 x d), b2 (d)."""
    table, w1, b1, w2, b2 = (np.asarray(arrays[k]) for k in _KEYS)
    shapes = ", ".join(f"{k} {np.shape(arrays[k])}" for k in _KEYS)
    ok = (
        table.ndim == 2
        and w1.ndim == 2
        and w2.ndim == 2
        and b1.ndim == 1
        and b2.ndim == 1
        and table.shape[1] == w1.shape[0]
        and w1.shape[1] == b1.shape[0] == w2.shape[0]
        and w2.shape[1] == b2.shape[0]
    )
    if not ok:
        raise ValueError(
            "user tower shapes disagree (expected history_table n x h, w1 h x h1, b1 h1, "
            f"w2 h1 x d, b2 d): {shapes}"
        )
