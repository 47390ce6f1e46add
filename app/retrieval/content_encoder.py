"""A new item's content vector from its metadata, with the version's own content model.

The mirror of `training/content.py` at serve time: the same document (a `column_value` token per
category or tag, a `column_qN` token per number bucket, free text as words), the same tokens
(scikit-learn's default `\\b\\w\\w+\\b` over lower case), sublinear TF times the fitted IDF, unit
length, the fitted SVD, unit length. Everything comes from plain arrays in the version folder
(`content_encoder.json`, `content_idf.npy`, `content_components.npy`), so an item added through the
items API this morning gets the vector it would have had in training, with numpy only. The
tests hold it to the training vectors of the items it was trained on.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from app.retrieval.values import number as filter_number
from feature_store.catalog import AttributeValue
from feature_store.manifest import ArtifactError
from feature_store.version_files import CONTENT_COMPONENTS, CONTENT_ENCODER, CONTENT_IDF, load_array
from feature_store.version_paths import entry_path, has_entry

_TOKEN_SAFE = re.compile(r"[^0-9a-z]+")
_WORDS = re.compile(r"(?u)\b\w\w+\b")
_RULES = frozenset({"tokens", "text", "number"})
MAX_TERMS = 2_000_000


def _token(column: str, value: object) -> str:
    """training/content.py's `_token`, letter for letter (the app does not import training)."""
    return f"{column}_{_TOKEN_SAFE.sub('_', str(value).lower()).strip('_')}"


def _label(value: object) -> str:
    """A value as the metadata file would have spelt it: a whole number as `3`, not `3.0`."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class ContentEncoder:
    def __init__(
        self,
        columns: dict[str, str],
        edges: dict[str, np.ndarray],
        vocabulary: list[str],
        idf: np.ndarray,
        components: np.ndarray | None,
    ) -> None:
        self.columns = columns
        self.edges = edges
        self.terms = {term: i for i, term in enumerate(vocabulary)}
        self.idf = idf
        self.components = components
        self.dim = len(idf) if components is None else components.shape[0]

    @classmethod
    def load(cls, folder: Path, dim: int) -> ContentEncoder | None:
        """The version's encoder, or None for a version trained before it was written. Checked
        against the content index's dimension: a mismatch is a refusal, never a wrong vector."""
        if not has_entry(folder, CONTENT_ENCODER):
            return None
        try:
            raw = json.loads(entry_path(folder, CONTENT_ENCODER).read_text())
            columns = {str(k): str(v) for k, v in raw["columns"].items()}
            edges = {str(k): np.asarray(v, np.float64) for k, v in raw["edges"].items()}
            vocabulary = [str(t) for t in raw["vocabulary"]]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ArtifactError(
                f"{folder / CONTENT_ENCODER}: unreadable ({exc.__class__.__name__}).",
                public=f"{CONTENT_ENCODER} is unreadable",
            ) from exc
        idf = load_array(folder, CONTENT_IDF, mmap=False).astype(np.float32)
        components = (
            load_array(folder, CONTENT_COMPONENTS, mmap=False).astype(np.float32)
            if has_entry(folder, CONTENT_COMPONENTS)
            else None
        )
        ok = (
            set(columns.values()) <= _RULES
            and len(vocabulary) <= MAX_TERMS
            and idf.shape == (len(vocabulary),)
            and bool(np.isfinite(idf).all())
            and all(e.ndim == 1 and np.isfinite(e).all() for e in edges.values())
        )
        if components is not None:
            ok = ok and components.shape == (dim, len(vocabulary)) and bool(np.isfinite(components).all())
        else:
            ok = ok and len(vocabulary) == dim
        if not ok:
            raise ArtifactError(
                f"{folder}: the content encoder does not match its vocabulary or the content index "
                f"({dim} dimensions).",
                public="the content encoder does not match the content index",
            )
        return cls(columns, edges, vocabulary, idf, components)

    def document(self, attributes: Mapping[str, AttributeValue]) -> list[str]:
        """The item's terms, as training's `item_documents` builds them."""
        words: list[str] = []
        for name, rule in self.columns.items():
            value = attributes.get(name)
            if value is None:
                continue
            if rule == "text":
                words += _WORDS.findall(str(value).lower())
            elif rule == "number":
                number = _number(value)
                if number is not None:
                    words.append(f"{name}_q{int(np.searchsorted(self.edges[name], number))}")
            else:
                values = value if isinstance(value, list) else [value]
                words += [t for v in values for t in _WORDS.findall(_token(name, _label(v)).lower())]
        return words

    def encode(self, attributes: Mapping[str, AttributeValue]) -> np.ndarray | None:
        """The unit content vector, or None when no term of the item is in the vocabulary."""
        counts = Counter(t for t in self.document(attributes) if t in self.terms)
        if not counts:
            return None
        cols = np.fromiter((self.terms[t] for t in counts), np.int64, len(counts))
        tf = np.fromiter((1.0 + math.log(c) for c in counts.values()), np.float32, len(counts))
        weights = tf * self.idf[cols]
        weights /= max(float(np.linalg.norm(weights)), 1e-12)
        if self.components is None:
            dense = np.zeros(self.dim, np.float32)
            dense[cols] = weights
        else:
            dense = self.components[:, cols] @ weights
        norm = float(np.linalg.norm(dense))
        return (dense / norm).astype(np.float32) if norm > 0 else None


def _number(value: AttributeValue) -> float | None:
    """As the filters read a replaced value: a number, a numeric text, or an ISO date (epoch s)."""
    number = filter_number(value)
    return number if math.isfinite(number) else None
