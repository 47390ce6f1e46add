"""Item index: recall@100 and single-query latency of every plan, on real ALS item factors.

    python bench/index_recall.py --sizes ml1m,100k,1m

Factors: ALS trained here on ML-1M (../shared/data, skipped when absent) and on the synthetic
generator's logs with 100,000 and 1,000,000 items (cached under --cache). Queries are user
vectors of the same model. Every latency is one query at a time on one thread (as the service
runs it), through app/retrieval's ItemIndex, including exact re-scoring; the ceiling beside each
graph row is exact search over all items in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import SHARED_DATA, print_table

from app.retrieval import bitmaps
from app.retrieval.filters import CompiledFilter
from app.retrieval.search import ItemIndex, SearchParams
from feature_store.index_files import IndexKind, Metric, open_faiss_index, transform_queries
from training.indexes import IndexParams, build_index, resolve_kind, write_index

K = 100
SIZES = {"100k": (300_000, 100_000, 6_000_000), "1m": (1_000_000, 1_000_000, 20_000_000)}


def factors(name: str, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    path = cache / f"factors_{name}.npz"
    if path.is_file():
        data = np.load(path)
        return data["users"], data["items"]
    from training.als import AlsParams, fit_als
    from training.confidence import Scaling
    from training.dataset import build_dataset
    from training.events import DEFAULT_EVENT_WEIGHTS
    from training.interaction_log import from_table

    t0 = time.perf_counter()
    if name == "ml1m":
        from training.readers import read_interactions

        log = read_interactions(str(SHARED_DATA / "ml-1m"), {})
        params = AlsParams(factors=64, regularization=50.0, alpha=4.0, iterations=15, scaling=Scaling.binary)
    else:
        from training.synthetic import SyntheticConfig, generate

        users, items, events = SIZES[name]
        data = generate(SyntheticConfig(users=users, items=items, interactions=events, clusters=64, seed=11))
        log = from_table(data.interactions, DEFAULT_EVENT_WEIGHTS)
        params = AlsParams(factors=64, regularization=10.0, alpha=4.0, iterations=8, scaling=Scaling.log)
    dataset = build_dataset(log)
    result = fit_als(dataset.matrix, params)
    shape = dataset.matrix.shape
    print(f"[{name}] ALS on {shape} ({dataset.matrix.nnz:,} pairs) in {time.perf_counter() - t0:.0f}s")
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, users=result.user_factors, items=result.item_factors)
    return result.user_factors, result.item_factors


def _timed(fn, queries: np.ndarray) -> tuple[list, np.ndarray]:
    out, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        out.append(fn(q))
        times.append(time.perf_counter() - t0)
    return out, np.array(times) * 1000


def _recall(results: list, truth: list[set[int]]) -> float:
    return float(
        np.mean([len(set(r.rows.tolist()) & t) / len(t) for r, t in zip(results, truth, strict=True)])
    )


def bench_one(name: str, cache: Path, n_queries: int, rows: list, frows: list, lrows: list) -> None:
    import faiss

    users, items = factors(name, cache)
    rng = np.random.default_rng(5)
    queries = users[rng.choice(len(users), n_queries, replace=False)]
    folder = Path(tempfile.mkdtemp(prefix=f"idx-{name}-"))
    np.save(folder / "item_factors.npy", items, allow_pickle=False)
    # auto = flat below 20k items, IVF for inner product above, IVF over PQ codes from 250k;
    # HNSW is shown for comparison where it builds in reasonable time, IVF over raw vectors
    # beside the compressed one at 1M.
    small = len(items) <= 200_000
    kinds = [IndexKind.flat, IndexKind.hnsw, IndexKind.ivf] if small else [IndexKind.ivf, IndexKind.ivf_pq]
    indexes: dict[IndexKind, ItemIndex] = {}
    for kind in kinds:
        t0 = time.perf_counter()
        index, meta = build_index(
            items, IndexParams(kind=kind, metric=Metric.ip), "als", "item_factors.npy", users
        )
        build_s = time.perf_counter() - t0
        meta = meta.model_copy(update={"file": f"index_{kind.value}.faiss"})
        write_index(index, folder, meta)
        indexes[kind] = ItemIndex.load(folder, meta)
        if kind is IndexKind.flat:
            continue
        t0 = time.perf_counter()
        open_faiss_index(folder, meta, mmap=True)
        mmap_ms = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        faiss.read_index(str(folder / meta.file))
        read_ms = (time.perf_counter() - t0) * 1000
        size = (folder / meta.file).stat().st_size / 2**20
        lrows.append(
            [name, kind.value, len(items), f"{size:.0f} MiB", f"{mmap_ms:.1f} ms", f"{read_ms:.0f} ms"]
        )
        trial = meta.params.get("ip_graph_trial", "-")
        beam = meta.params.get("ef_search", meta.params.get("nprobe"))
        curve = meta.params["calibration"]["recall_by_beam"]
        print(
            f"[{name}] {kind.value} build {build_s:.0f}s; ip graph trial {trial}; transform {meta.transform}"
        )
        print(f"[{name}] {kind.value} calibrated beam {beam}: recall@100 by beam {curve}", flush=True)
    exact = next(iter(indexes.values()))
    exact_results, exact_ms = _timed(lambda q: exact._exact(q, K, None, np.empty(0, np.int64)), queries)
    truth = [set(r[0].tolist()) for r in exact_results]
    p50_exact = float(np.median(exact_ms))
    p99_exact = float(np.percentile(exact_ms, 99))
    rows.append(
        [name, len(items), "exact (all items)", "-", 1.0, f"{p50_exact:.3f}", f"{p99_exact:.3f}", "1.00x"]
    )
    if IndexKind.flat in indexes:
        res, ms = _timed(lambda q: indexes[IndexKind.flat].search(q, K), queries)
        p50, p99 = float(np.median(ms)), float(np.percentile(ms, 99))
        rows.append(
            [
                name,
                len(items),
                "flat (plan exact)",
                "-",
                _recall(res, truth),
                f"{p50:.3f}",
                f"{p99:.3f}",
                f"{p50 / p50_exact:.2f}x",
            ]
        )
    for kind in (IndexKind.hnsw, IndexKind.ivf, IndexKind.ivf_pq):
        if kind not in indexes:
            continue
        graph = indexes[kind]
        key = "ef_search" if kind is IndexKind.hnsw else "nprobe"
        calibrated = int(graph.meta.params[key])
        ladder = {
            IndexKind.hnsw: (64, 128, 256, 512),
            IndexKind.ivf: (16, 32, 64, 128, 256),
            IndexKind.ivf_pq: (128, 256, 512, 768),
        }[kind]
        for beam in sorted({*ladder, calibrated}):
            res, ms = _timed(
                lambda q, b=beam, g=graph: g.search(q, K, params=SearchParams(ef_search=b)), queries
            )
            label = kind.value + (" (calibrated default)" if beam == calibrated else "")
            p50, p99 = float(np.median(ms)), float(np.percentile(ms, 99))
            rows.append(
                [
                    name,
                    len(items),
                    label,
                    beam,
                    _recall(res, truth),
                    f"{p50:.3f}",
                    f"{p99:.3f}",
                    f"{p50 / p50_exact:.2f}x",
                ]
            )
    n = len(items)
    served = indexes[resolve_kind(IndexParams(), n)]
    for share in (0.5, 0.1, 0.01, 0.001):
        allowed_rows = np.sort(rng.choice(n, max(K, int(share * n)), replace=False))
        bm = bitmaps.from_rows(n, allowed_rows)
        filt = CompiledFilter(bm, np.empty(0, np.int64))
        sub = items[allowed_rows]
        ftruth = [set(allowed_rows[np.argpartition(-(sub @ q), K - 1)[:K]].tolist()) for q in queries]
        res, ms = _timed(lambda q, f=filt: served.search(q, K, f), queries)
        plans = sorted({r.plan.value for r in res})
        # Baselines in the same run: the bare index with a bitmap selector at its unfiltered beam
        # (what a hand-written service does), and exact scoring of every item with a mask.
        sel = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bm))
        params = faiss.SearchParametersIVF(sel=sel, nprobe=int(served.meta.params["nprobe"]))
        raw_hits, raw_ms = 0, []
        for q, t in zip(queries, ftruth, strict=True):
            t0 = time.perf_counter()
            _, labels = served.index.search(transform_queries(q, served.meta.transform), K, params=params)
            raw_ms.append((time.perf_counter() - t0) * 1000)
            raw_hits += len(set(labels[0][labels[0] >= 0].tolist()) & t)
        mask = bitmaps.contains(bm, np.arange(n))
        mask_ms = []
        for q in queries[:50]:
            t0 = time.perf_counter()
            s = items @ q
            s[~mask] = -np.inf
            np.argpartition(-s, K - 1)[:K]
            mask_ms.append((time.perf_counter() - t0) * 1000)
        frows.append(
            [
                f"{name} ({served.meta.kind.value})",
                f"{share:.1%}",
                len(allowed_rows),
                "/".join(plans),
                _recall(res, ftruth),
                min(len(r.rows) for r in res),
                f"{np.median(ms):.3f}",
                f"{raw_hits / (K * len(queries)):.3f}",
                f"{np.median(raw_ms):.3f}",
                f"{np.median(mask_ms):.2f}",
            ]
        )


def async_overhead() -> tuple[float, float]:
    async def go() -> tuple[float, float]:
        inline, thread = [], []
        for _ in range(2000):
            t0 = time.perf_counter()
            (lambda: None)()
            inline.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            await asyncio.to_thread(lambda: None)
            thread.append(time.perf_counter() - t0)
        return float(np.median(inline) * 1e6), float(np.median(thread) * 1e6)

    return asyncio.run(go())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="ml1m,100k", help="Comma list of ml1m, 100k, 1m.")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "recsys-bench")
    args = ap.parse_args()
    rows: list = []
    frows: list = []
    lrows: list = []
    for name in args.sizes.split(","):
        if name == "ml1m" and not (SHARED_DATA / "ml-1m").exists():
            print("[ml1m] skipped: ../shared/data/ml-1m is absent")
            continue
        bench_one(name, args.cache, args.queries, rows, frows, lrows)
    print(f"\nUnfiltered top-{K}: recall against exact search, latency per query (1 thread)")
    print_table(
        ["data", "items", "plan", "efSearch", f"recall@{K}", "p50 ms", "p99 ms", "p50 vs exact"], rows
    )
    print(f"\nFiltered top-{K} (random allowed sets): our planner vs the bare IVF+selector vs a masked scan")
    print_table(
        [
            "data",
            "selectivity",
            "allowed",
            "plan",
            f"recall@{K}",
            "min results",
            "p50 ms",
            "bare sel. recall",
            "bare sel. ms",
            "masked scan ms",
        ],
        frows,
    )
    print("\nOpening the index files")
    print_table(["data", "index", "items", "size", "IO_FLAG_MMAP_IFC", "read_index (copy)"], lrows)
    inline_us, thread_us = async_overhead()
    print(f"\nasyncio.to_thread round trip: {thread_us:.0f} us (inline call {inline_us:.2f} us)")


if __name__ == "__main__":
    main()
