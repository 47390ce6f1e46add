"""Packing many users' profiles at once for publish: the fixed-size head of every value comes
from one numpy structured array, so the per-user Python work is a slice and a join."""

from __future__ import annotations

import numpy as np

from feature_store.profile_codec import FORMAT, MAGIC
from feature_store.version_files import ProfileTable


def _head_dtype(embeddings: dict[str, np.ndarray]) -> np.dtype:
    fields: list[tuple[str, str] | tuple[str, str, tuple[int, ...]]] = [
        ("magic", "S2"),
        ("format", "u1"),
        ("n_emb", "u1"),
        ("count", "<u4"),
        ("n_seen", "<u4"),
        ("n_recent", "<u4"),
    ]
    for i, (name, matrix) in enumerate(embeddings.items()):
        raw = name.encode()
        fields += [(f"nl{i}", "u1"), (f"name{i}", f"S{len(raw)}"), (f"dim{i}", "<u2")]
        fields.append((f"vec{i}", "<f4", (matrix.shape[1],)))
    return np.dtype(fields)  # packed: numpy adds no padding unless align=True


def pack_rows(table: ProfileTable, start: int, stop: int, recent_limit: int) -> list[bytes]:
    """Profile values of users start..stop-1, byte-identical to `profile_codec.pack_profile`."""
    n = stop - start
    head = np.zeros(n, _head_dtype(table.embeddings))
    head["magic"] = MAGIC
    head["format"] = FORMAT
    head["n_emb"] = len(table.embeddings)
    head["count"] = table.counts[start:stop]
    seen_ptr = np.asarray(table.seen_indptr[start : stop + 1], np.int64)
    rec_ptr = np.asarray(table.recent_indptr[start : stop + 1], np.int64)
    rec_start = np.maximum(rec_ptr[:-1], rec_ptr[1:] - recent_limit)  # keep the newest
    head["n_seen"] = np.diff(seen_ptr)
    head["n_recent"] = rec_ptr[1:] - rec_start
    for i, (name, matrix) in enumerate(table.embeddings.items()):
        raw = name.encode()
        head[f"nl{i}"] = len(raw)
        head[f"name{i}"] = raw
        head[f"dim{i}"] = matrix.shape[1]
        head[f"vec{i}"] = matrix[start:stop]
    size = head.dtype.itemsize
    heads = head.tobytes()
    seen = np.ascontiguousarray(table.seen_items[seen_ptr[0] : seen_ptr[-1]], "<i4").tobytes()
    items = np.ascontiguousarray(table.recent_items[rec_ptr[0] : rec_ptr[-1]], "<i4").tobytes()
    weights = np.ascontiguousarray(table.recent_weights[rec_ptr[0] : rec_ptr[-1]], "<f4").tobytes()
    s0, r0 = int(seen_ptr[0]), int(rec_ptr[0])
    sp = ((seen_ptr - s0) * 4).tolist()
    rs = ((rec_start - r0) * 4).tolist()
    re = ((rec_ptr[1:] - r0) * 4).tolist()
    return [
        b"".join(
            (
                heads[u * size : (u + 1) * size],
                seen[sp[u] : sp[u + 1]],
                items[rs[u] : re[u]],
                weights[rs[u] : re[u]],
            )
        )
        for u in range(n)
    ]


def take_rows(table: ProfileTable, rows: np.ndarray) -> ProfileTable:
    """The users at `rows` (any order) as a table of their own, so `pack_rows(sub, 0, len(sub))`
    packs them. Publish to a cluster writes users in hash-slot order, which is not file order."""
    rows = np.asarray(rows, np.int64)
    seen_ptr, seen_at = _gather(table.seen_indptr, rows)
    recent_ptr, recent_at = _gather(table.recent_indptr, rows)
    return ProfileTable(
        user_ids=[table.user_ids[r] for r in rows.tolist()],
        counts=np.asarray(table.counts[rows]),
        embeddings={name: np.asarray(matrix[rows]) for name, matrix in table.embeddings.items()},
        seen_indptr=seen_ptr,
        seen_items=np.asarray(table.seen_items[seen_at]),
        recent_indptr=recent_ptr,
        recent_items=np.asarray(table.recent_items[recent_at]),
        recent_weights=np.asarray(table.recent_weights[recent_at]),
    )


def _gather(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR pointers of `rows` laid end to end, and the positions of their entries."""
    low = np.asarray(indptr[rows], np.int64)
    lengths = np.asarray(indptr[rows + 1], np.int64) - low
    ptr = np.zeros(len(rows) + 1, np.int64)
    np.cumsum(lengths, out=ptr[1:])
    return ptr, np.repeat(low - ptr[:-1], lengths) + np.arange(ptr[-1])
