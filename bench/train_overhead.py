"""How much the whole `recsys train` command adds on top of implicit's bare `fit`.

Same data, same pinned hyperparameters, same process conditions, alternating runs:
- bare: the CSR matrix already in memory -> `AlternatingLeastSquares.fit` (BLAS pinned to 1 thread);
- ours: `recsys train -i <source> --test-split 0 ...` as a subprocess: interpreter start, imports,
  reading the log, building the dataset, fitting with the loss per iteration, writing the version.

Usage: python bench/train_overhead.py [--source ../shared/data/ml-1m] [--repeats 2] [--factors 128]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import SHARED_DATA, print_table
from training.dataset import build_dataset
from training.readers import read_interactions


def bare_fit(matrix, factors: int, reg: float, alpha: float, iterations: int) -> float:
    from implicit.als import AlternatingLeastSquares

    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=factors, regularization=reg, alpha=alpha, iterations=iterations, random_state=42
        )
        start = time.perf_counter()
        model.fit(matrix, show_progress=False)
        return time.perf_counter() - start


def ours(source: str, factors: int, reg: float, alpha: float, iterations: int, artifacts: Path) -> float:
    cmd = [
        sys.executable,
        "-m",
        "training.cli",
        "train",
        "-i",
        source,
        "--artifacts",
        str(artifacts),
        "--test-split",
        "0",
        "--factors",
        str(factors),
        "--regularization",
        str(reg),
        "--alpha",
        str(alpha),
        "--iterations",
        str(iterations),
        "--scaling",
        "linear",
        "--popularity-discount",
        "0",
    ]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=Path(__file__).resolve().parents[1])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", default=str(SHARED_DATA / "ml-1m"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--factors", type=int, default=128)
    parser.add_argument("--regularization", type=float, default=0.01)
    parser.add_argument("--alpha", type=float, default=40.0)
    parser.add_argument("--iterations", type=int, default=20)
    args = parser.parse_args()
    hp = (args.factors, args.regularization, args.alpha, args.iterations)

    matrix = build_dataset(read_interactions(args.source, {})).matrix
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            bare = bare_fit(matrix, *hp)
            whole = ours(args.source, *hp, Path(tmp) / f"run{r}")
            rows.append([r + 1, round(bare, 2), round(whole, 2), f"{whole / bare:.3f}x"])
    bare_best = min(float(r[1]) for r in rows)
    ours_best = min(float(r[2]) for r in rows)
    print(
        f"\n{args.source}: {matrix.shape[0]:,} x {matrix.shape[1]:,}, {matrix.nnz:,} pairs; factors "
        f"{args.factors}, reg {args.regularization}, alpha {args.alpha}, {args.iterations} iterations, CG\n"
    )
    print_table(["run", "bare implicit fit (s)", "whole `recsys train` (s)", "ratio"], rows)
    print(
        f"\nbest of {args.repeats}: bare {bare_best:.2f}s, ours {ours_best:.2f}s, "
        f"ratio {ours_best / bare_best:.3f}x"
    )


if __name__ == "__main__":
    main()
