"""The weekly retrain's cost: a full `recsys retrain` (parameters searched again) against
`--keep-params` (the live version's values, no search), on ML-1M-sized synthetic data.

    python bench/retrain_time.py                      # 6,040 users x 3,706 items x 1,000,209 events
    python bench/retrain_time.py --interactions 200000 --users 2000 --items 1000   # a quick look

The log spans 187 days ending now; the live version is `train-all` on the first 180 days (published
to the embedded store), and each retrain gets the whole log (a week of new events). Both retrains
start from copies of the same artifacts folder, one after the other, on this machine's cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import print_table

from training.synthetic import SyntheticConfig, generate

RECSYS = str(Path(sys.executable).with_name("recsys"))
DAY = 86_400


def _run(args: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    start = time.perf_counter()
    done = subprocess.run([RECSYS, *args], env=env, capture_output=True, text=True)
    return time.perf_counter() - start, done.returncode, done.stdout + done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=6_040)
    parser.add_argument("--items", type=int, default=3_706)
    parser.add_argument("--interactions", type=int, default=1_000_209)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")}
    with tempfile.TemporaryDirectory(prefix="bench-retrain-") as tmp:
        work = Path(tmp)
        start_epoch = int(time.time()) - 187 * DAY
        data = generate(
            SyntheticConfig(
                users=args.users,
                items=args.items,
                interactions=args.interactions,
                days=187,
                start_epoch=start_epoch,
            )
        )
        table = data.interactions
        cut = start_epoch + 180 * DAY
        pq.write_table(table.filter(pc.less(table["timestamp"], cut)), work / "week0.parquet")
        pq.write_table(table, work / "week1.parquet")
        pq.write_table(data.items, work / "items.parquet")
        items = ["--items", str(work / "items.parquet")]
        live = work / "live"
        seconds, code, out = _run(
            [
                "train-all",
                "-i",
                str(work / "week0.parquet"),
                *items,
                "--artifacts",
                str(live),
                "--test-split",
                "0",
            ],
            env,
        )
        assert code == 0, out
        _, code, out = _run(["publish", "--artifacts", str(live)], env)
        assert code == 0, out
        rows: list[list[object]] = [
            ["train-all on the first 180 days (the live version)", f"{seconds:.0f}", "", ""]
        ]
        timings = {}
        for name, extra in (("full", []), ("keep-params", ["--keep-params"])):
            folder = work / name
            shutil.copytree(live, folder)
            seconds, code, out = _run(
                ["retrain", "-i", str(work / "week1.parquet"), *items, "--artifacts", str(folder), *extra],
                env,
            )
            decision = next(
                (line for line in out.splitlines() if line.startswith(("published", "refused"))), "?"
            )
            timings[name] = seconds
            rows.append([f"retrain ({name}), exit {code}", f"{seconds:.0f}", "", decision])
        rows[1][2] = "1.00"
        rows[2][2] = f"{timings['keep-params'] / timings['full']:.2f}"
    print(f"{table.num_rows:,} events, {args.users:,} users x {args.items:,} items; the last 7 days are new")
    print_table(["run", "seconds", "vs full", "decision"], rows)


if __name__ == "__main__":
    main()
