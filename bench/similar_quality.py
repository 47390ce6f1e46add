"""Similar items ("more like this") against held-out co-interactions, against popularity.

    python bench/similar_quality.py                      # ML-1M, ML-100K, Amazon Beauty, synthetic
    python bench/similar_quality.py --sets ml1m --k 20

Two criteria, each on its own split. Co-interaction: a per-user random 20% of the interactions
is held out and the models fit the rest; every held-out item of a user with two or more held out
is a query, and the user's other held-out items are what a good "more like this" list holds
(items one person took together, which the models never saw together); Recall@k =
found / min(k, relevant). Next item: a random 20% of the users is held out whole; each of their
items is a query whose one relevant item is the one the user took next (ML-100K by rating time,
Beauty by sequence position, synthetic by event time; the ML-1M copy here has no times); HR@k.
At most 20,000 queries each.

Rows: ALS by inner product (what `GET /items/{id}/similar` answers: the item's vector as the
query of the version's index), two normalisations of it (candidates' norms to the power 0.5,
and cosine), item-to-item co-occurrence cosine on the training matrix (the classic item kNN),
and the most popular items. ALS: 64 factors, regularization 10, alpha 4, binary, 15 iterations
(fixed, the same on every set: nothing is tuned to the test).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import SHARED_DATA, print_table

MAX_QUERIES = 20_000


def _dataset(name: str) -> tuple[sp.csr_matrix, np.ndarray | None] | None:
    from training.dataset import build_dataset
    from training.events import DEFAULT_EVENT_WEIGHTS
    from training.interaction_log import from_table
    from training.readers import read_interactions

    paths = {
        "ml1m": SHARED_DATA / "ml-1m",
        "ml100k": SHARED_DATA / "ml-100k",
        "beauty": SHARED_DATA / "amazon-beauty" / "Beauty.txt",
    }
    if name == "synthetic":
        from training.synthetic import SyntheticConfig, generate

        data = generate(SyntheticConfig(users=20_000, items=5_000, interactions=400_000, clusters=32, seed=3))
        built = build_dataset(from_table(data.interactions, DEFAULT_EVENT_WEIGHTS))
        return built.matrix, built.times
    path = paths[name]
    if not path.exists():
        print(f"skipping {name}: {path} not found")
        return None
    built = build_dataset(read_interactions(str(path), {}))  # Beauty's reader keeps the order as times
    return built.matrix, built.times


def _co_queries(test: sp.csr_matrix, rng: np.random.Generator) -> list[tuple[int, np.ndarray]]:
    """Each held-out item of a user, with the user's other held-out items as the relevant set."""
    out = []
    for user in range(test.shape[0]):
        items = test.indices[test.indptr[user] : test.indptr[user + 1]]
        if len(items) >= 2:
            out += [(int(a), items[items != a]) for a in items]
    return _sample(out, rng)


def _next_queries(
    matrix: sp.csr_matrix, times: np.ndarray, users: np.ndarray, rng: np.random.Generator
) -> list[tuple[int, np.ndarray]]:
    """Each item of a held-out user, with the item the user took next (a later time) as the one
    relevant item."""
    out = []
    for user in users.tolist():
        lo, hi = matrix.indptr[user], matrix.indptr[user + 1]
        order = np.argsort(times[lo:hi], kind="stable")
        items, stamps = matrix.indices[lo:hi][order], times[lo:hi][order]
        later = stamps[1:] > stamps[:-1]
        out += [(int(a), np.array([b])) for a, b, ok in zip(items[:-1], items[1:], later, strict=True) if ok]
    return _sample(out, rng)


def _sample(queries: list[tuple[int, np.ndarray]], rng: np.random.Generator) -> list[tuple[int, np.ndarray]]:
    if len(queries) > MAX_QUERIES:
        queries = [queries[i] for i in rng.choice(len(queries), MAX_QUERIES, replace=False)]
    return queries


def _recall(top: dict[int, np.ndarray], queries: list[tuple[int, np.ndarray]], k: int) -> float:
    hits = [len(np.intersect1d(top[a], rel)) / min(k, len(rel)) for a, rel in queries]
    return float(np.mean(hits))


def _methods(
    train: sp.csr_matrix, asked: list[int], k: int
) -> tuple[dict[str, dict[int, np.ndarray]], float]:
    from training.als import AlsParams, fit_als
    from training.confidence import Scaling

    started = time.perf_counter()
    params = AlsParams(factors=64, regularization=10.0, alpha=4.0, iterations=15, scaling=Scaling.binary)
    items = fit_als(train, params).item_factors
    fit_s = time.perf_counter() - started
    unit = items / np.maximum(np.linalg.norm(items, axis=1, keepdims=True), 1e-12)
    out: dict[str, dict[int, np.ndarray]] = {"cosine": {}, "half": {}, "dot": {}, "knn": {}, "popularity": {}}
    root = np.sqrt(np.maximum(np.linalg.norm(items, axis=1), 1e-12))
    binary = (train > 0).astype(np.float32).tocsc()
    norms = np.sqrt(np.asarray(binary.multiply(binary).sum(axis=0)).ravel())
    order = np.argsort(-np.asarray((train > 0).sum(axis=0)).ravel())
    for a in asked:
        cosine = unit @ unit[a]
        cosine[a] = -np.inf
        out["cosine"][a] = np.argsort(-cosine)[:k]
        scores = items @ items[a]
        scores[a] = -np.inf
        out["dot"][a] = np.argsort(-scores)[:k]
        out["half"][a] = np.argsort(-(scores / root))[:k]
        co = np.asarray((binary.T @ binary[:, a]).todense()).ravel() / np.maximum(norms * norms[a], 1e-9)
        co[a] = -np.inf
        out["knn"][a] = np.argsort(-co)[:k]
        out["popularity"][a] = order[order != a][:k]
    return out, fit_s


NAMES = {
    "dot": "ALS inner product (the service)",
    "half": "ALS, candidates' norms ^ 0.5",
    "cosine": "ALS cosine",
    "knn": "co-occurrence cosine (item kNN)",
    "popularity": "popularity",
}


def evaluate(name: str, matrix: sp.csr_matrix, times: np.ndarray | None, k: int) -> list[list[object]]:
    from training.splits import SplitKind, split

    rng = np.random.default_rng(7)
    parts = split(matrix, SplitKind.user, test_fraction=0.2, seed=7)
    co = _co_queries(parts.test, rng)
    co_top, _ = _methods(parts.train, sorted({a for a, _ in co}), k)
    nxt: list[tuple[int, np.ndarray]] = []
    next_top: dict[str, dict[int, np.ndarray]] = {}
    if times is not None:
        held = rng.choice(matrix.shape[0], matrix.shape[0] // 5, replace=False)
        train = matrix.tolil(copy=True)
        train[held] = 0
        nxt = _next_queries(matrix, times, held, rng)
        next_top, _ = _methods(sp.csr_matrix(train), sorted({a for a, _ in nxt}), k)
    rows: list[list[object]] = []
    for method, label in NAMES.items():
        row: list[object] = [name, label, round(_recall(co_top[method], co, k), 4)]
        row.append(round(_recall(next_top[method], nxt, k), 4) if nxt else "-")
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", default="ml1m,ml100k,beauty,synthetic")
    parser.add_argument("--k", type=int, default=20)
    args = parser.parse_args()
    rows: list[list[object]] = []
    for name in args.sets.split(","):
        loaded = _dataset(name)
        if loaded is not None:
            rows += evaluate(name, *loaded, args.k)
            for row in rows[-len(NAMES) :]:
                print(row, flush=True)
    print()
    print_table(["data", "method", f"co-interaction Recall@{args.k}", f"next item HR@{args.k}"], rows)


if __name__ == "__main__":
    main()
