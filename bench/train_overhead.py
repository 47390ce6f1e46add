"""How much the whole `recsys train` command adds on top of implicit's bare `fit`.

Same data, same pinned hyperparameters, same process conditions, alternating runs, each in a
fresh subprocess while this process waits (an OpenMP pool left spinning here after an in-process
fit would otherwise slow the next child down):
- bare: the CSR matrix built untimed, then only `AlternatingLeastSquares.fit` timed (BLAS pinned
  to 1 thread, as implicit asks);
- ours: `recsys train -i <source> --test-split 0 ...` timed whole: interpreter start, imports,
  reading the log, building the dataset, fitting with the loss per iteration, writing the
  version, interpreter exit.

Usage: python bench/train_overhead.py [--source ../shared/data/ml-1m] [--repeats 5] [--factors 128]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import SHARED_DATA, print_table
from training.dataset import build_dataset
from training.readers import read_interactions

ROOT = Path(__file__).resolve().parents[1]


_BARE = """
import sys, time
sys.path.insert(0, {root!r})
from threadpoolctl import threadpool_limits
from implicit.als import AlternatingLeastSquares
from training.dataset import build_dataset
from training.readers import read_interactions
matrix = build_dataset(read_interactions({source!r}, {{}})).matrix
with threadpool_limits(1, "blas"):
    model = AlternatingLeastSquares(
        factors={factors}, regularization={reg}, alpha={alpha}, iterations={iterations}, random_state=42
    )
    start = time.perf_counter()
    model.fit(matrix, show_progress=False)
    print(time.perf_counter() - start)
"""


def bare_fit(source: str, factors: int, reg: float, alpha: float, iterations: int) -> float:
    code = _BARE.format(
        root=str(ROOT), source=source, factors=factors, reg=reg, alpha=alpha, iterations=iterations
    )
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(done.stdout.strip().splitlines()[-1])


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
    parser.add_argument("--repeats", type=int, default=5)
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
            bare = bare_fit(args.source, *hp)
            whole = ours(args.source, *hp, Path(tmp) / f"run{r}")
            rows.append([r + 1, round(bare, 2), round(whole, 2), f"{whole / bare:.3f}x"])
    bare_best = min(float(r[1]) for r in rows)
    ours_best = min(float(r[2]) for r in rows)
    print(
        f"\n{args.source}: {matrix.shape[0]:,} x {matrix.shape[1]:,}, {matrix.nnz:,} pairs; factors "
        f"{args.factors}, reg {args.regularization}, alpha {args.alpha}, {args.iterations} iterations, CG\n"
    )
    print_table(["run", "bare implicit fit (s)", "whole `recsys train` (s)", "ratio"], rows)
    ratios = sorted(float(r[3].rstrip("x")) for r in rows)
    print(
        f"\nbest of {args.repeats}: bare {bare_best:.2f}s, ours {ours_best:.2f}s, "
        f"ratio {ours_best / bare_best:.3f}x; median of the paired ratios "
        f"{ratios[len(ratios) // 2]:.3f}x"
    )


if __name__ == "__main__":
    main()
