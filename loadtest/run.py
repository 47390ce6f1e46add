"""Run locust headless against a locally started server and print what matters.

    python loadtest/run.py --users 50 --duration 60             # one run
    python loadtest/run.py --sweep 10,25,50,100 --duration 60   # where does p99 cross the target?
    python loadtest/run.py --tags hot --users 20                # one scenario (locust tags)
    python loadtest/run.py --host http://127.0.0.1:8000         # a server you started yourself

The server is `recsys serve` on 127.0.0.1 (embedded store, or Redis when RECSYS_REDIS_URL is
set), on the latest published version of `--artifacts`. Locust writes its CSV files and HTML
report under `--out`; this prints requests/s, failures and p50/p95/p99 per endpoint, and for a
sweep one line per user count with the verdict against `--p99-target-ms` (and a PNG of it).
Locust and the server share this machine's cores: on 2 cores the client takes about one of them.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"


@dataclass(frozen=True)
class Row:
    name: str
    requests: int
    failures: int
    rps: float
    p50: float
    p95: float
    p99: float
    p_max: float


def read_stats(path: Path) -> list[Row]:
    """Locust's `<prefix>_stats.csv`: one row per request name, then `Aggregated`."""
    rows = []
    with path.open(newline="") as fh:
        for r in csv.DictReader(fh):
            if not r["Request Count"] or r["Request Count"] == "0":
                continue
            rows.append(
                Row(
                    name=r["Name"] if r["Name"] != "Aggregated" else "all",
                    requests=int(r["Request Count"]),
                    failures=int(r["Failure Count"]),
                    rps=float(r["Requests/s"]),
                    p50=_ms(r["50%"]),
                    p95=_ms(r["95%"]),
                    p99=_ms(r["99%"]),
                    p_max=_ms(r["100%"]),
                )
            )
    return rows


def _ms(value: str) -> float:
    return float(value) if value not in ("", "N/A") else float("nan")


COLUMNS = ("requests", "failures", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms")


def table(rows: list[Row]) -> str:
    head = f"{'endpoint':<26}" + "".join(f"{c:>10}" for c in COLUMNS)
    lines = [head, "-" * len(head)]
    for r in rows:
        cells = (f"{r.requests:,}", f"{r.failures:,}", f"{r.rps:.1f}")
        cells += tuple(f"{v:.0f}" for v in (r.p50, r.p95, r.p99, r.p_max))
        lines.append(f"{r.name:<26}" + "".join(f"{c:>10}" for c in cells))
    return "\n".join(lines)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes] | None, seconds: float = 120) -> str:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                return str(json.loads(response.read())["model_version"])
        except urllib.error.HTTPError as exc:
            if exc.code == 503:
                raise SystemExit(
                    "the server has no model version: train and publish one first "
                    "(`./scripts/demo.sh --no-serve`, or `recsys publish artifacts/als_vN`)"
                ) from exc
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode} before it was ready")
        if time.monotonic() > deadline:
            raise SystemExit(f"{url} was not ready within {seconds:.0f} s")
        time.sleep(0.2)


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-m", "training.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(args.workers), "--artifacts", str(args.artifacts)]
    log = (args.out / "server.log").open("wb")
    proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}"


def run_locust(args: argparse.Namespace, url: str, users: int) -> list[Row]:
    prefix = args.out / f"users{users}"
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", url]
    command += ["-u", str(users), "-r", str(args.spawn_rate or max(1, users // 5)), "-t", f"{args.duration}s"]
    command += ["--csv", str(prefix), "--html", f"{prefix}.html", "--only-summary", "--loglevel", "WARNING"]
    command += ["--artifacts", str(args.artifacts), "--k", str(args.k), "--stop-timeout", "5"]
    if args.tags:
        command += ["--tags", *args.tags.split(",")]
    if args.variants:
        command += ["--variants", args.variants]
    if os.environ.get("RECSYS_LOADTEST_API_KEY"):
        command += ["--api-key", os.environ["RECSYS_LOADTEST_API_KEY"]]
    with (args.out / f"users{users}.log").open("wb") as log:
        done = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=False)
    stats = Path(f"{prefix}_stats.csv")
    if not stats.is_file():
        raise SystemExit(
            f"locust wrote no statistics (exit {done.returncode}); see {args.out}/users{users}.log"
        )
    return read_stats(stats)


def plot_sweep(results: dict[int, Row], target_ms: float, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    users = sorted(results)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for label, pick in (("p50", "p50"), ("p95", "p95"), ("p99", "p99")):
        left.plot(users, [getattr(results[u], pick) for u in users], marker="o", label=label)
    left.axhline(target_ms, color="red", linestyle="--", label=f"target {target_ms:.0f} ms")
    left.set(xlabel="locust users", ylabel="latency (ms)", title="latency, all requests")
    left.legend()
    right.plot(users, [results[u].rps for u in users], marker="o")
    right.set(xlabel="locust users", ylabel="requests/s", title="throughput")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=25, help="Concurrent locust users (default 25).")
    parser.add_argument("--sweep", default="", help="Comma-separated user counts to run one after another.")
    parser.add_argument(
        "--spawn-rate", type=float, default=0, help="Users started per second (default users/5)."
    )
    parser.add_argument("--duration", type=int, default=60, help="Seconds per run (default 60).")
    parser.add_argument("--tags", default="", help="Only these locust tags, e.g. hot or filters,ab.")
    parser.add_argument("--variants", default="", help="A/B variant names to send in X-AB-Variant.")
    parser.add_argument("--k", type=int, default=100, help="k of each /candidates request (default 100).")
    parser.add_argument(
        "--artifacts", type=Path, default=ROOT / "artifacts", help="Folder of model versions."
    )
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers of the started server.")
    parser.add_argument("--host", default="", help="Use this running server instead of starting one.")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "loadtest" / "results", help="CSV/HTML/PNG folder."
    )
    parser.add_argument("--p99-target-ms", type=float, default=50.0, help="The latency target of a sweep.")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    counts = [int(c) for c in args.sweep.split(",") if c] or [args.users]

    proc = None
    if args.host:
        url = args.host.rstrip("/")
    else:
        proc, url = start_server(args)
    try:
        version = wait_ready(url, proc)
        print(f"server {url} serving {version}; {args.duration} s per run; results in {args.out}")
        sweep: dict[int, Row] = {}
        for users in counts:
            rows = run_locust(args, url, users)
            print(f"\n{users} users, {args.duration} s:\n{table(rows)}")
            sweep[users] = next(r for r in rows if r.name == "all")
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    if len(sweep) > 1:
        print(f"\nsweep (all requests; target p99 < {args.p99_target_ms:.0f} ms):")
        print(f"{'users':>6} {'req/s':>8} {'failures':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}  verdict")
        for users, r in sweep.items():
            verdict = "ok" if r.p99 < args.p99_target_ms and r.failures == 0 else "over"
            cells = f"{r.rps:>8.1f} {r.failures:>8,} {r.p50:>7.0f} {r.p95:>7.0f} {r.p99:>7.0f}"
            print(f"{users:>6} {cells}  {verdict}")
        if plot_sweep(sweep, args.p99_target_ms, args.out / "sweep.png"):
            print(f"plot: {args.out / 'sweep.png'}")


if __name__ == "__main__":
    main()
