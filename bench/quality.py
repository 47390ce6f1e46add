"""Quality on real data, one table: the default `train` (automatic selection), the training
guide's values, the best point of the pre-project grid, an optional `tune` result, popularity.

Protocols:
- ML-1M pairs (binary), random 80/20 per interaction: P@10 (textbook hits/10 and implicit's
  capped precision_at_k), MAP@10, NDCG@10, Recall@10, coverage.
- NCF leave-one-out split of ML-1M: HR@10 / NDCG@10 of the held-out item among its 99 negatives.

Usage: python bench/quality.py [--tune-best tune/best.json] [--skip-ncf]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import SHARED_DATA, print_table
from training.dataset import build_dataset
from training.pipeline import evaluate_ncf, holdout_metrics
from training.readers import read_interactions
from training.settings import SEED_DEFAULTS, TrainSettings

GRID_BEST = {
    "factors": 64,
    "regularization": 1.0,
    "alpha": 1.0,
    "iterations": 20,
    "scaling": "binary",
    "popularity_discount": 0.0,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tune-best", type=Path, help="best.json written by `recsys tune`")
    parser.add_argument("--skip-ncf", action="store_true")
    args = parser.parse_args()

    configs: list[tuple[str, dict]] = [
        ("default train (auto)", {}),
        ("seed values (128, 0.01, a40)", dict(SEED_DEFAULTS)),
        ("pre-project grid best (64, 1.0, a1)", GRID_BEST),
    ]
    if args.tune_best:
        configs.append(("tune best", json.loads(args.tune_best.read_text())))

    ds = build_dataset(read_interactions(str(SHARED_DATA / "ml-1m"), {}))
    rows, pop = [], None
    for name, cfg in configs:
        start = time.perf_counter()
        metrics, params, _ = holdout_metrics(ds, TrainSettings(**cfg), [])
        m = metrics["als"]
        pop = metrics["popularity"]
        rows.append(
            [
                name,
                m["precision"],
                m["precision_capped"],
                m["map"],
                m["ndcg"],
                m["recall"],
                m["coverage"],
                f"f{params.factors} r{params.regularization:g} a{params.alpha:g} {params.scaling} "
                f"d{params.popularity_discount:g} it{params.iterations}",
                f"{time.perf_counter() - start:.0f}s",
            ]
        )
    assert pop is not None
    rows.append(
        [
            "popularity",
            pop["precision"],
            pop["precision_capped"],
            pop["map"],
            pop["ndcg"],
            pop["recall"],
            pop["coverage"],
            "-",
            "-",
        ]
    )
    print("\nML-1M pairs (binary), random 80/20 per interaction, k=10")
    print_table(
        ["model", "P@10", "P@10 capped", "MAP@10", "NDCG@10", "R@10", "coverage", "parameters", "time"], rows
    )

    if not args.skip_ncf:
        ncf_rows = []
        for name, cfg in (("default (auto, f64)", {}), ("auto, f128", {"factors": 128})):
            start = time.perf_counter()
            report = evaluate_ncf(SHARED_DATA / "ncf-ml-1m", TrainSettings(**cfg))
            p = report.params
            ncf_rows.append(
                [
                    name,
                    report.als["hr"],
                    report.als["ndcg"],
                    f"f{p.factors} r{p.regularization:g} a{p.alpha:g} d{p.popularity_discount:g} "
                    f"it{p.iterations}",
                    f"{time.perf_counter() - start:.0f}s",
                ]
            )
        ncf_rows.append(["popularity", report.popularity["hr"], report.popularity["ndcg"], "-", "-"])
        print("\nNCF leave-one-out split of ML-1M (6,040 users, 99 negatives), k=10")
        print_table(["model", "HR@10", "NDCG@10", "parameters", "time"], ncf_rows)


if __name__ == "__main__":
    main()
