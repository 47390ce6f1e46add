"""Does the default `recsys train` win on data nobody tuned it for? One table per data set: the
default (automatic selection), the seed's fixed settings (`--seed-defaults`) and the best point of
a wide `tune` grid chosen on validation, each scored the way an outside evaluator scores them.

Protocol (as the issue's evaluator): the training part goes to `train` exactly as a user's log
would (its own holdout, selection and refit on all of it); the model is then scored on the test
part by a full ranking of the catalog less the user's training items, Recall@20 and NDCG@20.
- ML-1M: random 80/20 per interaction; Amazon Beauty and Sports: per-user random 20% holdout;
- NCF: the published leave-one-out split of ML-1M (Recall@20 of a full ranking = HR@20; the
  sampled HR@10 of the NCF protocol is `recsys evaluate --ncf`, see bench/quality.py).

"time" is the whole call; "x fit" divides it by one bare fit at the parameters the row chose
(same machine, same run), "x pinned" by the same `train` with those parameters given (holdout fit,
scores and refit, nothing searched). The grid is timed as `tune` runs it plus the final fit.

Usage: python bench/defaults.py [--data ml-1m,ncf,beauty,sports] [--skip-grid] [--json out.json]
       python bench/defaults.py --data beauty --skip-grid --search-seconds 10,30   (time budgets)
       python bench/defaults.py --noise beauty   (the default's selection on three validation seeds)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import SHARED_DATA, print_table
from training.als import AlsParams, fit_als
from training.confidence import Scaling
from training.dataset import Dataset, build_dataset
from training.evaluation import evaluate_ranking
from training.interaction_log import from_table
from training.pipeline import choose_params, train
from training.readers import read_interactions
from training.readers.movielens import read_ncf
from training.settings import SEED_DEFAULTS, TrainSettings
from training.splits import SplitKind, split
from training.tune import SEARCHED, Searcher, grid

SETS = {"ml-1m": "ml-1m", "ncf": "ncf-ml-1m", "beauty": "amazon-beauty", "sports": "amazon-sports"}
GRID_FACTORS = [64, 128, 256, 512]
GRID_REG = [0.01, 1.0, 100.0]
GRID_ALPHA = [1.0, 8.0, 40.0, 128.0]


def load(name: str) -> tuple[Dataset, sp.csr_matrix]:
    """The training part as a Dataset (what `recsys train` would be given) and the test matrix."""
    folder = SHARED_DATA / SETS[name]
    if name == "ncf":
        data = read_ncf(folder)
        ds = build_dataset(from_table(data.train, {}))
        users, items = ds.user_index(), ds.item_index()
        rows = [
            (users[u], items[i]) for u, i in zip(data.test_users, data.test_items, strict=True) if i in items
        ]
        r, c = np.array(rows).T
        test = sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=ds.matrix.shape)
        return ds, test
    ds = build_dataset(read_interactions(str(folder), {}))
    kind = SplitKind.random if name == "ml-1m" else SplitKind.user
    parts = split(ds.matrix, kind, test_fraction=0.2, seed=42)
    return Dataset(parts.train, ds.user_ids, ds.item_ids), parts.test


def score(
    user_factors: np.ndarray, item_factors: np.ndarray, ds: Dataset, test: sp.csr_matrix
) -> tuple[float, float]:
    m = evaluate_ranking(user_factors, item_factors, ds.matrix, test, k=20)
    return m.recall, m.ndcg


def one_fit_seconds(ds: Dataset, params: AlsParams) -> float:
    start = time.perf_counter()
    fit_als(ds.matrix, replace(params, calculate_loss=False))
    return time.perf_counter() - start


def label(p: AlsParams) -> str:
    discount = f" d{p.popularity_discount:g}" if p.popularity_discount else ""
    return f"f{p.factors} r{p.regularization:g} a{p.alpha:g} {p.scaling}{discount} it{p.iterations}"


def run_train(ds: Dataset, test: sp.csr_matrix, settings: TrainSettings) -> dict[str, Any]:
    start = time.perf_counter()
    report = train(ds, settings, write=False)
    seconds = time.perf_counter() - start
    recall, ndcg = score(report.result.user_factors, report.result.item_factors, ds, test)
    fit = one_fit_seconds(ds, report.params)
    return {
        "recall": recall,
        "ndcg": ndcg,
        "params": label(report.params),
        "seconds": seconds,
        "fit": fit,
        "pinned": pinned_train_seconds(ds, report.params),
    }


def pinned_train_seconds(ds: Dataset, p: AlsParams) -> float:
    """The same `train` (holdout fit, scores, refit) with the chosen values given: what a retrain
    that skips the search costs, the other yardstick for the search's price."""
    pinned = TrainSettings(**{name: getattr(p, name) for name in SEARCHED})
    start = time.perf_counter()
    train(ds, pinned, write=False)
    return time.perf_counter() - start


def run_grid(ds: Dataset, test: sp.csr_matrix, alphas: list[float], seed: int = 42) -> dict[str, Any]:
    start = time.perf_counter()
    searcher = Searcher(ds.matrix, seed=seed + 1)
    base = AlsParams(scaling=Scaling.binary, random_state=seed, iterations=30)
    for candidate in grid(GRID_FACTORS, GRID_REG, alphas, [30], [Scaling.binary], base):
        searcher.score(candidate)
    best = searcher.best()
    params = replace(best.params, iterations=best.best_iteration, calculate_loss=False)
    result = fit_als(ds.matrix, params)
    seconds = time.perf_counter() - start
    recall, ndcg = score(result.user_factors, result.item_factors, ds, test)
    return {
        "recall": recall,
        "ndcg": ndcg,
        "params": label(params),
        "seconds": seconds,
        "fit": one_fit_seconds(ds, params),
        "trials": [t.row() for t in searcher.trials],
    }


def noise(name: str, seeds: tuple[int, ...] = (43, 44, 45)) -> None:
    """How far the selection's verdicts move with the validation split: the whole default
    selection on three validation seeds, then the paired difference between the first run's
    winner and its strongest rival of another size, re-measured on five validation splits."""
    ds, test = load(name)
    rows, first = [], None
    for seed in seeds:
        settings = TrainSettings(seed=seed - 1)
        start = time.perf_counter()
        selection = choose_params(ds.matrix, settings)
        first = first or selection
        best = max(selection.trials, key=lambda t: t.score)
        result = fit_als(ds.matrix, replace(selection.params, calculate_loss=False))
        recall, ndcg = score(result.user_factors, result.item_factors, ds, test)
        rows.append(
            [
                seed,
                label(selection.params),
                best.score,
                recall,
                ndcg,
                len(selection.trials),
                f"{time.perf_counter() - start:.0f}s",
            ]
        )
    print(
        f"\n{name}: the default selection on {len(seeds)} validation seeds (test scored after a fit on all)"
    )
    print_table(["val seed", "chosen", "val R@20", "test R@20", "test N@20", "trials", "time"], rows)
    assert first is not None
    chosen = first.params
    rivals = [t for t in first.trials if t.params.factors != chosen.factors and not t.lost_race]
    if not rivals:
        return
    rival = max(rivals, key=lambda t: t.score)
    rival_params = replace(rival.params, iterations=rival.best_iteration)
    differences, scores = [], []
    for seed in range(100, 105):
        searcher = Searcher(ds.matrix, seed=seed)
        a = fit_als(searcher.fit_part, replace(chosen, calculate_loss=False))
        b = fit_als(searcher.fit_part, replace(rival_params, calculate_loss=False))
        va = searcher.validation.score(a.user_factors, a.item_factors, searcher.fit_part)
        vb = searcher.validation.score(b.user_factors, b.item_factors, searcher.fit_part)
        scores.append(va)
        differences.append((va - vb) / vb)
    print(
        f"winner {label(chosen)} vs rival {label(rival_params)} on 5 validation splits: "
        f"validation R@20 {np.mean(scores):.4f} +- {np.std(scores, ddof=1):.4f} "
        f"({np.std(scores, ddof=1) / np.mean(scores):.1%}); paired relative difference "
        f"{np.mean(differences):+.1%} +- {np.std(differences, ddof=1):.1%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="ml-1m,ncf,beauty,sports")
    parser.add_argument("--skip-grid", action="store_true")
    parser.add_argument("--only-grid", action="store_true")
    parser.add_argument(
        "--grid-alpha",
        type=lambda text: [float(v) for v in text.split(",")],
        default=GRID_ALPHA,
        help="alpha values of the grid (default 1,8,40,128)",
    )
    parser.add_argument(
        "--search-seconds",
        type=lambda text: [float(v) for v in text.split(",")],
        default=[],
        help="also the default under these search budgets (`train --search-seconds`), e.g. 10,30",
    )
    parser.add_argument("--noise", metavar="SET", help="measure the selection's noise on one set instead")
    parser.add_argument("--json", type=Path, help="also write every row (and the grid's trials) here")
    args = parser.parse_args()
    if args.noise:
        noise(args.noise)
        return
    out: dict[str, Any] = {}
    for name in args.data.split(","):
        if not (SHARED_DATA / SETS[name]).is_dir():
            print(f"skipping {name}: {SHARED_DATA / SETS[name]} is absent")
            continue
        ds, test = load(name)
        results: dict[str, Any] = {}
        if not args.only_grid:
            results["default train"] = run_train(ds, test, TrainSettings())
            for budget in args.search_seconds:
                results[f"search <= {budget:g}s"] = run_train(ds, test, TrainSettings(search_seconds=budget))
            results["--seed-defaults"] = run_train(ds, test, TrainSettings(**SEED_DEFAULTS))
        if not args.skip_grid:
            results["tune grid best"] = run_grid(ds, test, args.grid_alpha)
        out[name] = results
        shape = (
            f"{ds.matrix.shape[0]:,} users, {ds.matrix.shape[1]:,} items, {ds.matrix.nnz:,} training pairs"
        )
        print(f"\n{name} ({shape}; test scored by full ranking)")
        print_table(
            ["model", "Recall@20", "NDCG@20", "chosen", "time", "x fit", "x pinned"],
            [
                [
                    row,
                    r["recall"],
                    r["ndcg"],
                    r["params"],
                    f"{r['seconds']:.0f}s",
                    f"{r['seconds'] / r['fit']:.1f}",
                    f"{r['seconds'] / r['pinned']:.1f}" if "pinned" in r else "",
                ]
                for row, r in results.items()
            ],
        )
        if args.json:
            args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
