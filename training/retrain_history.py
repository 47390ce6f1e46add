"""Every retrain's record, one JSON line each in `RETRAINS.jsonl` beside the versions: data size,
chosen parameters, candidate and live scores, the decision and why, timings. `recsys history`
prints it and draws the metric over runs. Appended with one write per line, so a retrain killed
half way leaves the file readable (a torn last line is skipped when read)."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

HISTORY_FILE = "RETRAINS.jsonl"
MAX_LINE_BYTES = 1 << 20  # a record is a few KiB; anything longer is not one of ours


def append(artifacts: Path, record: dict[str, Any]) -> None:
    artifacts.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, default=str) + "\n").encode()
    fd = os.open(artifacts / HISTORY_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read(artifacts: Path) -> list[dict[str, Any]]:
    """The records, oldest first; lines that are not a record (torn, foreign) are skipped."""
    path = artifacts / HISTORY_FILE
    if not path.is_file():
        return []
    records = []
    with path.open("rb") as fh:
        for raw in fh:
            if len(raw) > MAX_LINE_BYTES:
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict) and "decision" in record and "started" in record:
                records.append(record)
    return records


def _score(record: dict[str, Any], side: str) -> float | None:
    value = (record.get(side) or {}).get("recall")
    return float(value) if isinstance(value, int | float) else None


def rows(records: list[dict[str, Any]]) -> list[list[str]]:
    """One table row per retrain, as `recsys history` prints it."""
    out = []
    for r in records:
        cand, live = _score(r, "candidate"), _score(r, "live")
        out.append(
            [
                str(r.get("started", ""))[:19],
                str(r.get("live_version") or "-"),
                str(r.get("published") or "-"),
                str(r.get("decision")),
                "-" if cand is None else f"{cand:.4f}",
                "-" if live is None else f"{live:.4f}",
                f"{(r.get('data') or {}).get('events', 0):,}",
                "; ".join(r.get("reasons") or [])[:80],
            ]
        )
    return out


def plot(records: list[dict[str, Any]], path: Path) -> Path:
    """Recall@k of each candidate and of the live version it was held against, over the runs;
    refused candidates marked with a cross."""
    from training.plots import _figure

    fig = _figure(max(6.0, 0.5 * len(records) + 3), 4)
    ax = fig.subplots()
    when = [datetime.fromisoformat(str(r["started"])) for r in records]
    cand = [_score(r, "candidate") for r in records]
    live = [_score(r, "live") for r in records]
    ax.plot(
        when, [float("nan") if v is None else v for v in live], "o-", color="tab:gray", label="live version"
    )
    ax.plot(when, [float("nan") if v is None else v for v in cand], "o-", color="tab:blue", label="candidate")
    refused = [
        (w, c) for w, c, r in zip(when, cand, records, strict=True) if r["decision"] != "published" and c
    ]
    if refused:
        ax.scatter(
            [w for w, _ in refused],
            [c for _, c in refused],
            marker="x",
            s=90,
            color="tab:red",
            label="refused",
            zorder=3,
        )
    k = next((r["candidate"].get("k") for r in records if r.get("candidate")), "k")
    ax.set_ylabel(f"Recall@{k} on the fresh holdout")
    ax.set_title("retrains: candidate vs live on the newest days")
    ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
    return path
