"""Ranking metrics as pure functions of recommended lists and held-out items.

Two precision definitions are reported because both are in use and they differ by ~10%:
- `precision`: the textbook hits / k, averaged over users;
- `precision_capped`: implicit's `precision_at_k`, sum(hits) / sum(min(k, |test_u|)), a
  micro-average whose denominator is capped, so users with few test items are not penalised.
MAP@k and NDCG@k follow implicit's `ranking_metrics_at_k` (AP divided by min(k, |test_u|); ideal DCG
over min(k, |test_u|) hits), so numbers compare with published implicit results.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class RankingMetrics:
    k: int
    users: int
    precision: float
    precision_capped: float
    recall: float
    map: float
    ndcg: float
    hit_rate: float
    coverage: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def hit_matrix(topk: np.ndarray, test_rows: sp.csr_matrix) -> np.ndarray:
    """`topk[u, j]` (item index, -1 for padding) is in user u's test set -> bool matrix.

    Each (user, item) pair becomes one integer key and the lists' keys are looked up in the
    sorted test keys by binary search: on MovieLens 1M's validation (6,040 users x 20 against
    80,000 held-out pairs) 4 ms against 15 ms for `np.isin`, and the automatic search does this
    at every checkpoint of every trial."""
    test_rows = test_rows.tocsr()
    n_items = test_rows.shape[1]
    test_keys = (
        np.repeat(np.arange(test_rows.shape[0], dtype=np.int64), np.diff(test_rows.indptr)) * n_items
        + test_rows.indices
    )
    if test_keys.size == 0:
        return np.zeros(topk.shape, dtype=bool)
    if not test_rows.has_sorted_indices:
        test_keys = np.sort(test_keys)
    rec_keys = np.arange(topk.shape[0], dtype=np.int64)[:, None] * n_items + topk
    found = test_keys[np.minimum(np.searchsorted(test_keys, rec_keys), test_keys.size - 1)]
    return (found == rec_keys) & (topk >= 0)


def per_user_ndcg(topk: np.ndarray, test_rows: sp.csr_matrix) -> np.ndarray:
    """NDCG@k of each user with at least one test item (the rows `ranking_metrics` averages), for
    paired comparisons of two rankings of the same users."""
    k = topk.shape[1]
    n_rel = np.diff(test_rows.tocsr().indptr)
    evaluated = n_rel > 0
    hits = hit_matrix(topk, test_rows)[evaluated].astype(np.float64)
    capped = np.minimum(n_rel[evaluated], k).astype(np.int64)
    discounts = 1.0 / np.log2(np.arange(1, k + 1, dtype=np.float64) + 1.0)
    ideal = np.cumsum(discounts)[np.maximum(capped, 1) - 1]
    return np.asarray((hits * discounts).sum(axis=1) / ideal)


def ranking_metrics(topk: np.ndarray, test_rows: sp.csr_matrix, n_items: int | None = None) -> RankingMetrics:
    """Metrics over users with at least one test item. `test_rows` is aligned with `topk` rows."""
    k = topk.shape[1]
    n_rel = np.diff(test_rows.tocsr().indptr)
    evaluated = n_rel > 0
    hits = hit_matrix(topk, test_rows)[evaluated].astype(np.float64)
    n_rel = n_rel[evaluated].astype(np.float64)
    users = int(evaluated.sum())
    n_items = n_items if n_items is not None else test_rows.shape[1]
    listed = topk[topk >= 0]
    coverage = float(np.count_nonzero(np.bincount(listed, minlength=n_items)) / max(n_items, 1))
    if users == 0:
        return RankingMetrics(k, 0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, coverage)
    per_user_hits = hits.sum(axis=1)
    capped = np.minimum(n_rel, k)
    positions = np.arange(1, k + 1, dtype=np.float64)
    precision_at_hit = np.cumsum(hits, axis=1) / positions
    ap = (precision_at_hit * hits).sum(axis=1) / capped
    discounts = 1.0 / np.log2(positions + 1.0)
    ideal = np.cumsum(discounts)[capped.astype(np.int64) - 1]
    ndcg = (hits * discounts).sum(axis=1) / ideal
    return RankingMetrics(
        k=k,
        users=users,
        precision=float((per_user_hits / k).mean()),
        precision_capped=float(per_user_hits.sum() / capped.sum()),
        recall=float((per_user_hits / n_rel).mean()),
        map=float(ap.mean()),
        ndcg=float(ndcg.mean()),
        hit_rate=float((per_user_hits > 0).mean()),
        coverage=coverage,
    )


@dataclass(frozen=True)
class HeldOutRanks:
    """Recall@k and NDCG@k of a full ranking, computed from where each held-out item ranks."""

    k: int
    users: int
    recall: float
    ndcg: float


def metrics_from_ranks(ranks: np.ndarray, owners: np.ndarray, n_rel: np.ndarray, k: int) -> HeldOutRanks:
    """`ranks[i]` is held-out pair i's position in its user's ranking of the items that user did
    not train on (0 = first), `owners[i]` its user's row in `n_rel` (each user's held-out count,
    all positive). The same Recall@k and NDCG@k `ranking_metrics` reads off the top-k lists,
    without building them: a pair is a hit where its rank is under k, at position rank + 1."""
    n_users = len(n_rel)
    if n_users == 0:
        return HeldOutRanks(k, 0, 0.0, 0.0)
    hit = ranks < k
    discounts = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))
    hits = np.bincount(owners[hit], minlength=n_users)
    dcg = np.bincount(owners[hit], weights=discounts[ranks[hit]], minlength=n_users)
    ideal = np.cumsum(discounts)[np.minimum(n_rel, k) - 1]
    return HeldOutRanks(
        k=k, users=n_users, recall=float((hits / n_rel).mean()), ndcg=float((dcg / ideal).mean())
    )


@dataclass(frozen=True)
class BeyondAccuracy:
    """What the retrieval-phase design asks of a candidate list besides hits (its expected ranges:
    coverage 80-90%, diversity 0.7-0.9):

    - `coverage`: share of the catalog recommended to at least one user;
    - `diversity`: intra-list diversity, 1 - mean pairwise cosine of a list's item vectors,
      averaged over users (the same reference vectors for every model compared);
    - `gini`: Gini index of how often each catalog item is recommended (0 = every item equally,
      1 = one item to everyone);
    - `novelty`: mean self-information -log2(share of training users who had the item) of the
      recommended items, in bits (higher = less popular items).
    """

    k: int
    coverage: float
    diversity: float
    gini: float
    novelty: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def gini(counts: np.ndarray) -> float:
    """Gini index of non-negative counts (0 for all-equal or all-zero)."""
    x = np.sort(np.asarray(counts, np.float64))
    n, total = len(x), float(x.sum())
    if n == 0 or total == 0:
        return 0.0
    ranks = np.arange(1, n + 1, dtype=np.float64)
    return float(((2 * ranks - n - 1) * x).sum() / (n * total))


def intra_list_diversity(topk: np.ndarray, item_vectors: np.ndarray, block: int = 4096) -> float:
    """Mean over lists of 1 - mean pairwise cosine of their items (padding -1 ignored)."""
    norms = np.linalg.norm(item_vectors, axis=1, keepdims=True)
    unit = (item_vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)
    values = []
    for start in range(0, topk.shape[0], block):
        rows = topk[start : start + block]
        valid = rows >= 0
        vecs = unit[np.where(valid, rows, 0)] * valid[..., None]
        sims = np.einsum("ukd,uld->ukl", vecs, vecs)
        n = valid.sum(axis=1).astype(np.float64)
        pairs = n * (n - 1)
        off_diagonal = sims.sum(axis=(1, 2)) - np.einsum("ukk->u", sims)
        usable = pairs > 0
        values.append(1.0 - off_diagonal[usable] / pairs[usable])
    joined = np.concatenate(values) if values else np.empty(0)
    return float(joined.mean()) if len(joined) else 0.0


def beyond_accuracy(
    topk: np.ndarray, item_vectors: np.ndarray, train: sp.csr_matrix, n_items: int | None = None
) -> BeyondAccuracy:
    """The BeyondAccuracy figures of recommended lists `topk` (item indices, -1 = padding)."""
    n_items = n_items if n_items is not None else item_vectors.shape[0]
    recommended = topk[topk >= 0]
    exposure = np.bincount(recommended, minlength=n_items)
    users_per_item = np.bincount(train.tocsr().indices, minlength=n_items).astype(np.float64)
    share = np.maximum(users_per_item, 1.0) / max(train.shape[0], 1)  # an unseen item counts once
    return BeyondAccuracy(
        k=int(topk.shape[1]),
        coverage=float((exposure > 0).sum() / max(n_items, 1)),
        diversity=intra_list_diversity(topk, item_vectors),
        gini=gini(exposure),
        novelty=float((-np.log2(share[recommended])).mean()) if len(recommended) else 0.0,
    )


@dataclass(frozen=True)
class SampledMetrics:
    """The NCF leave-one-out protocol: the held-out item ranked among sampled negatives."""

    k: int
    users: int
    hr: float
    ndcg: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def sampled_metrics(positive: np.ndarray, negatives: np.ndarray, k: int = 10) -> SampledMetrics:
    """`positive[u]` is the held-out item's score, `negatives[u, :]` the negatives' (NaN = absent).

    Rank is the number of negatives scoring higher, ties counted against the model, so a model
    that scores everything equally gets HR 0, not a lucky 1.
    """
    valid = ~np.isnan(negatives)
    better = ((negatives >= positive[:, None]) & valid).sum(axis=1)
    in_top = better < k
    ndcg = np.where(in_top, 1.0 / np.log2(better + 2.0), 0.0)
    return SampledMetrics(k=k, users=int(positive.shape[0]), hr=float(in_top.mean()), ndcg=float(ndcg.mean()))
