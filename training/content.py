"""Item content vectors from metadata, for cold users and as Two-Tower item features.

Each item becomes one document: its free text (title, text, description) as words, and every
categorical or tag value as a single token `column=value` (so "Comedy" the genre and "comedy" in a
title stay different signals), numbers as coarse quantile tokens. scikit-learn's TF-IDF weighs the
tokens (rare tags say more than common ones) and a truncated SVD folds synonyms and co-occurring tags
into a dense vector of a fixed size that Faiss can index. Vectors are unit length: cosine is the
similarity that means something for TF-IDF.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.readers.items import TEXT_COLUMNS

_QUANTILE_BUCKETS = 5
_TOKEN_SAFE = re.compile(r"[^0-9a-z]+")


@dataclass(frozen=True)
class ContentParams:
    dim: int = 64
    max_features: int = 50_000
    seed: int = 42


@dataclass
class ContentEncoder:
    """What it takes to give an item that was not in training its content vector: the document
    rules (which columns are tags, text, numbers with their bucket edges) and the fitted TF-IDF and
    SVD as plain arrays, so serving encodes a new item's metadata with numpy (no pickle, no
    scikit-learn). `app/retrieval/content_encoder.py` is its mirror."""

    columns: dict[str, str]  # column -> "tokens" (category, tags), "text" or "number"
    edges: dict[str, list[float]]  # number column -> its quantile bucket edges
    vocabulary: list[str]  # term per TF-IDF column
    idf: np.ndarray  # float32 per term
    components: np.ndarray | None  # float32 dim x terms (None: the TF-IDF is the vector)

    def as_json(self) -> dict[str, Any]:
        return {"columns": self.columns, "edges": self.edges, "vocabulary": self.vocabulary}


@dataclass
class ContentModel:
    vectors: np.ndarray  # float32 items x dim, unit rows (zero rows for items without metadata)
    present: np.ndarray  # bool per item: has metadata
    info: dict[str, Any] = field(default_factory=dict)
    encoder: ContentEncoder | None = None


def _token(column: str, value: object) -> str:
    return f"{column}_{_TOKEN_SAFE.sub('_', str(value).lower()).strip('_')}"


def _column_tokens(
    name: str, array: pa.ChunkedArray, rules: dict[str, str], edges: dict[str, list[float]]
) -> list[list[str]] | None:
    """Tokens per row for a structured column, or None for free text (handled by the analyzer).
    Records in `rules` and `edges` how each column was read, for the encoder."""
    kind = array.type
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        rules[name] = "tokens"
        return [[_token(name, v) for v in (row or []) if v is not None] for row in array.to_pylist()]
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        values = pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)
        finite = values[np.isfinite(values)]
        if not len(finite):
            return [[] for _ in values]
        cuts = np.unique(np.quantile(finite, np.linspace(0, 1, _QUANTILE_BUCKETS + 1)[1:-1]))
        rules[name], edges[name] = "number", [float(c) for c in cuts]
        buckets = np.searchsorted(cuts, values)
        return [[f"{name}_q{b}"] if np.isfinite(v) else [] for v, b in zip(values, buckets, strict=True)]
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_dictionary(kind):
        texts = pc.cast(array, pa.string()).to_pylist()
        if name in TEXT_COLUMNS:
            rules[name] = "text"
            return None
        rules[name] = "tokens"
        return [[_token(name, t)] if t else [] for t in texts]
    return [[] for _ in range(len(array))]


def item_documents(
    items: pa.Table,
    item_ids: np.ndarray,
    rules: dict[str, str] | None = None,
    edges: dict[str, list[float]] | None = None,
) -> tuple[list[str], np.ndarray]:
    """One document per item of `item_ids` (in that order), and which items had metadata.
    `rules` and `edges`, when given, receive how each column was read (the encoder's schema)."""
    rules = {} if rules is None else rules
    edges = {} if edges is None else edges
    ids = pc.cast(items["item_id"], pa.string())
    position = pc.index_in(pa.array(item_ids.astype(str)), value_set=ids)
    present = position.is_valid().to_numpy(zero_copy_only=False)
    table = items.take(position.fill_null(0))
    parts: list[list[str]] = [[] for _ in range(len(item_ids))]
    for name in table.column_names:
        if name == "item_id" or pa.types.is_temporal(table[name].type):
            continue
        tokens = _column_tokens(name, table[name], rules, edges)
        if tokens is None:
            for row, text in enumerate(pc.cast(table[name], pa.string()).to_pylist()):
                if text:
                    parts[row].append(text.lower())
        else:
            for row, toks in enumerate(tokens):
                parts[row].extend(toks)
    docs = [" ".join(p) if ok else "" for p, ok in zip(parts, present, strict=True)]
    return docs, present


def fit_content(
    items: pa.Table, item_ids: np.ndarray, params: ContentParams = ContentParams()
) -> ContentModel:
    """TF-IDF over the item documents, truncated SVD to `params.dim`, unit rows."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    rules: dict[str, str] = {}
    edges: dict[str, list[float]] = {}
    docs, present = item_documents(items, item_ids, rules, edges)
    if not present.any():
        raise ValueError("no item of the interaction data has a row in the item metadata (check item_id)")
    vectorizer = TfidfVectorizer(
        max_features=params.max_features,
        sublinear_tf=True,
        token_pattern=r"(?u)\b\w\w+\b",
        dtype=np.float32,
    )
    tfidf = vectorizer.fit_transform(docs)
    n_terms = tfidf.shape[1]
    dim = max(1, min(params.dim, n_terms - 1, int(present.sum()) - 1))
    components: np.ndarray | None = None
    if dim >= 2:
        svd = TruncatedSVD(n_components=dim, algorithm="randomized", n_iter=7, random_state=params.seed)
        svd.fit(tfidf)
        components = np.ascontiguousarray(svd.components_, np.float32)
        # The projection, not fit_transform's U x S: the randomized SVD's two differ a little
        # (cosine 0.98 seen), and serving places new items by the projection.
        dense = np.asarray(tfidf @ components.T, np.float32)
        explained = float(svd.explained_variance_ratio_.sum())
    else:  # a vocabulary of one or two terms: the TF-IDF itself is the vector
        dense = tfidf.toarray().astype(np.float32)
        explained = 1.0
    norms = np.linalg.norm(dense, axis=1, keepdims=True)
    vectors = np.where(norms > 0, dense / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
    vectors[~present] = 0.0
    info = {
        "dim": int(vectors.shape[1]),
        "terms": int(n_terms),
        "items_with_metadata": int(present.sum()),
        "explained_variance": round(explained, 4),
    }
    terms = vectorizer.get_feature_names_out().tolist()
    encoder = ContentEncoder(rules, edges, terms, vectorizer.idf_.astype(np.float32), components)
    return ContentModel(vectors, present, info, encoder)


def content_profiles(vectors: np.ndarray, matrix: Any) -> np.ndarray:
    """Each user's profile: the weighted mean of the content vectors of their positive items
    (what serving computes from the store's recent items). Rows of users with none are zero."""
    positive = matrix.tocsr().copy()
    positive.data = np.maximum(positive.data, 0).astype(np.float32)
    positive.eliminate_zeros()
    sums = np.asarray(positive.sum(axis=1)).ravel()
    profiles = np.asarray(positive @ vectors, np.float32)
    profiles /= np.maximum(sums, 1e-12)[:, None]
    return profiles


# Popularity prior weights tried on validation; 0 is pure content similarity.
PRIOR_GRID: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)


def popularity_share(scores: np.ndarray) -> np.ndarray:
    """Popularity on a 0..1 scale (share of the top item's), the prior's unit."""
    top = float(scores.max()) if len(scores) else 0.0
    return (scores / top if top > 0 else np.zeros_like(scores)).astype(np.float32)


def scoring_vectors(vectors: np.ndarray, popularity: np.ndarray) -> np.ndarray:
    """Item vectors the content index holds: the unit content vector and the popularity share as
    one extra coordinate, so a query `[profile, beta]` scores `cos + beta * popularity` by inner
    product, in Faiss, under filters, with `beta` chosen per request if need be."""
    return np.hstack([vectors, popularity_share(popularity)[:, None]]).astype(np.float32)


def scoring_queries(profiles: np.ndarray, beta: float) -> np.ndarray:
    """Unit user profiles with the prior weight appended (zero profiles stay zero: popularity)."""
    norms = np.linalg.norm(profiles, axis=1, keepdims=True)
    unit = np.where(norms > 0, profiles / np.maximum(norms, 1e-12), 0.0)
    return np.hstack([unit, np.full((len(profiles), 1), beta)]).astype(np.float32)


def choose_prior(
    vectors: np.ndarray,
    train: Any,
    times: np.ndarray | None = None,
    half_life_s: float | None = None,
    seed: int = 42,
    grid: tuple[float, ...] = PRIOR_GRID,
    k: int = 10,
) -> tuple[float, dict[str, float]]:
    """The popularity prior weight that serves short histories best, chosen on `train` alone.

    Content similarity alone favours obscure look-alikes (on ML-1M it lost to popularity by 3x),
    and popularity alone ignores the user; their sum, weighted on validation, beat both. The
    validation cuts users back to 1-4 items, the histories this model serves.
    """
    from training.evaluation import top_k
    from training.metrics import ranking_metrics
    from training.popularity import decayed_counts
    from training.splits import tier_split

    part = tier_split(train, times, cold_share=0.5, warm_share=0.0, seed=seed + 11)
    counts = np.diff(part.train.indptr)
    users = np.flatnonzero((counts >= 1) & (counts <= 4) & (np.diff(part.test.indptr) > 0))
    if not len(users):
        return grid[min(2, len(grid) - 1)], {}
    users = users[np.random.default_rng(seed).permutation(len(users))[:5_000]]
    # Popularity from the validation's own training part: the held-out events must not vote.
    popularity = decayed_counts(part.train, part.train_times, half_life_s)
    items = scoring_vectors(vectors, popularity)
    profiles = content_profiles(vectors, part.train[users])
    trials: dict[str, float] = {}
    best = (-1.0, grid[0])
    for beta in grid:
        queries = scoring_queries(profiles, beta)
        recs = top_k(queries, items, np.arange(len(users)), k, exclude=part.train[users])
        ndcg = ranking_metrics(recs, part.test[users], n_items=len(items)).ndcg
        trials[f"{beta:g}"] = round(ndcg, 5)
        if ndcg > best[0] + 1e-9:
            best = (ndcg, beta)
    return best[1], trials
