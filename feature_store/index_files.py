"""How a version's Faiss indexes are described on disk, and how they are opened.

`indexes.json` lists each index (ALS items now; content and Two-Tower later) with what a reader
must know to query it: the kind, the metric the scores mean, and the transform applied to the
vectors before indexing: unit-normalising for cosine, or (optional) the MIPS-to-L2 reduction
for inner product, where each item gets one extra coordinate sqrt(max_norm^2 - |x|^2) and the
query a zero, so the nearest item in L2 is the one of largest inner product. Scores handed to
callers are always recomputed exactly from the item vectors, so a transform never leaks into an
answer.
"""

from __future__ import annotations

import json
import math
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, ValidationError, field_validator

from feature_store.manifest import ArtifactError
from feature_store.version_paths import check_entry_name, entry_path, showable

INDEX_META = "indexes.json"
# Integer search and build settings read from `params`, with the least each may be. Serving reads
# some of them per request (nprobe, rerank), so a string there was a 500 on every request.
_INT_PARAMS = {"ef_search": 1, "nprobe": 1, "rerank": 0, "nlist": 1, "m": 1, "ef_construction": 1, "pq_m": 1}
_MAX_PARAM = 1 << 24


class IndexKind(StrEnum):
    auto = "auto"  # flat below a catalog size where exact search is as fast, else hnsw
    flat = "flat"
    hnsw = "hnsw"
    ivf = "ivf"
    ivf_pq = "ivf_pq"  # IVF over 4-bit PQ fast-scan codes; candidates re-ranked exactly at search


IVF_KINDS = (IndexKind.ivf, IndexKind.ivf_pq)  # searched with nprobe over inverted lists


class Metric(StrEnum):
    ip = "ip"
    cosine = "cosine"
    l2 = "l2"


class Transform(StrEnum):
    none = "none"
    normalize = "normalize"  # cosine: unit vectors, searched by L2 (same ranking)
    mips_to_l2 = "mips_to_l2"  # inner product: one extra coordinate, searched by L2


class IndexMeta(BaseModel):
    name: str = Field(description="Which vectors: 'als', later 'content', 'two_tower'.")
    file: str = Field(description="Faiss index file in the version folder.")
    vectors: str = Field(description="The .npy of the raw item vectors, for exact scoring.")
    kind: IndexKind
    metric: Metric
    transform: Transform
    dim: int
    ntotal: int
    max_norm: float = 0.0
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("file", "vectors")
    @classmethod
    def _plain_entry(cls, value: str) -> str:
        """A file of the version folder by its plain name: never a path (`/abs.faiss`, `../x`)."""
        try:
            return check_entry_name(value)
        except ArtifactError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("dim")
    @classmethod
    def _positive_dim(cls, value: int) -> int:
        if not 1 <= value <= 65_536:
            raise ValueError("dim must be from 1 to 65536")
        return value

    @field_validator("ntotal")
    @classmethod
    def _count(cls, value: int) -> int:
        if value < 0:
            raise ValueError("ntotal must not be negative")
        return value

    @field_validator("max_norm")
    @classmethod
    def _finite_norm(cls, value: float) -> float:
        if not math.isfinite(value) or value < 0:
            raise ValueError("max_norm must be a finite number >= 0")
        return value

    @field_validator("params")
    @classmethod
    def _int_params(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, least in _INT_PARAMS.items():
            if key in value:
                got = value[key]
                if type(got) is not int or not least <= got <= _MAX_PARAM:
                    raise ValueError(f"params.{key} must be an integer from {least} to {_MAX_PARAM}")
        return value


def write_index_meta(folder: Path, metas: dict[str, IndexMeta]) -> None:
    data = {name: meta.model_dump(mode="json") for name, meta in metas.items()}
    (folder / INDEX_META).write_text(json.dumps(data, indent=2) + "\n")


def read_index_meta(folder: Path) -> dict[str, IndexMeta]:
    """The version's index descriptions, each checked: plain file names, sane numbers, and the
    key matching the description's own name."""
    path = entry_path(folder, INDEX_META)
    if not path.is_file():
        raise ArtifactError(
            f"{path}: missing; this version has no Faiss index (retrain it).", public=f"{INDEX_META}: missing"
        )
    public = f"{INDEX_META}: not a valid index description"
    try:
        raw = json.loads(path.read_bytes())
        if not isinstance(raw, dict):
            raise ArtifactError(
                f"{path}: a JSON {type(raw).__name__}, not an object of indexes.", public=public
            )
        metas = {name: IndexMeta.model_validate(meta) for name, meta in raw.items()}
    except (ValueError, ValidationError) as exc:
        first = exc.errors()[0] if isinstance(exc, ValidationError) else None
        why = f": {'.'.join(map(str, first['loc']))}: {first['msg']}" if first else ""
        raise ArtifactError(
            f"{path}: unreadable index description ({exc.__class__.__name__}{why}).", public=public
        ) from exc
    for name, meta in metas.items():
        if meta.name != name:
            raise ArtifactError(f"{path}: index {name!r} describes itself as {meta.name!r}.", public=public)
    return metas


def transform_items(vectors: np.ndarray, transform: Transform, max_norm: float = 0.0) -> np.ndarray:
    x = np.ascontiguousarray(vectors, np.float32)
    if transform is Transform.normalize:
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        return np.ascontiguousarray(x / np.maximum(norms, 1e-12), np.float32)
    if transform is Transform.mips_to_l2:
        sq = np.einsum("ij,ij->i", x, x)
        extra = np.sqrt(np.maximum(max_norm**2 - sq, 0.0)).astype(np.float32)
        return np.ascontiguousarray(np.hstack([x, extra[:, None]]), np.float32)
    return x


def transform_queries(queries: np.ndarray, transform: Transform) -> np.ndarray:
    q = np.ascontiguousarray(np.atleast_2d(queries), np.float32)
    if transform is Transform.normalize:
        norms = np.linalg.norm(q, axis=1, keepdims=True)
        return np.ascontiguousarray(q / np.maximum(norms, 1e-12), np.float32)
    if transform is Transform.mips_to_l2:
        return np.ascontiguousarray(np.hstack([q, np.zeros((len(q), 1), np.float32)]), np.float32)
    return q


def open_faiss_index(folder: Path, meta: IndexMeta, mmap: bool = True) -> Any:
    """Read an index file; memory-mapped where Faiss supports it so worker processes share pages.

    IO_FLAG_MMAP_IFC maps HNSW and flat storage (0.08 s for a 1M-item HNSW here); plain
    IO_FLAG_MMAP has no effect on HNSW.
    """
    import faiss

    path = entry_path(folder, meta.file)
    shown = showable(meta.file)
    if not path.is_file():
        raise ArtifactError(f"{path}: index file missing.", public=f"{shown}: index file missing")
    try:
        flags = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY if mmap else 0
        index = faiss.read_index(str(path), flags)
    except RuntimeError as exc:
        # Faiss' message names its own source file; that stays in the full message only.
        raise ArtifactError(
            f"{path}: Faiss cannot read it ({str(exc).splitlines()[0][:200]}).",
            public=f"{shown}: Faiss cannot read it",
        ) from exc
    if index.ntotal != meta.ntotal:
        raise ArtifactError(
            f"{path}: holds {index.ntotal} vectors, {INDEX_META} says {meta.ntotal}.",
            public=f"{shown}: vector count does not match {INDEX_META}",
        )
    expected_d = meta.dim + (1 if meta.transform is Transform.mips_to_l2 else 0)
    if index.d != expected_d:
        raise ArtifactError(
            f"{path}: dimension {index.d}, {INDEX_META} implies {expected_d}.",
            public=f"{shown}: dimension does not match {INDEX_META}",
        )
    return index
