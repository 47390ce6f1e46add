"""`recsys recommend`: the in-process service (`app.inprocess.LocalService`) from the shell.

One user prints a table; `--users-file` answers every user of a file and writes Parquet, one
row per candidate, for offline jobs (e-mails, precomputed feeds) that need no server.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from tqdm import tqdm

from app.inprocess import LocalService, Recommendation
from training.commands.common import app, friendly_errors
from training.errors import TrainingInputError

_COLUMNS = ("user_id", "rank", "item_id", "score", "source", "tier", "method_used", "model_version")


def read_user_ids(path: Path) -> list[str]:
    """Ids from a text file (one per line), or the `user_id` column of a CSV or Parquet file."""
    if not path.is_file():
        raise TrainingInputError(f"--users-file {path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".csv"):
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        table = pq.read_table(path) if suffix == ".parquet" else pacsv.read_csv(path)
        if "user_id" not in table.column_names:
            raise TrainingInputError(f"--users-file {path}: no user_id column (has {table.column_names})")
        column = table.column("user_id").to_pylist()
        return [str(u) for u in column if u is not None and str(u).strip()]
    with path.open(encoding="utf-8") as fh:
        return [line.strip() for line in fh if line.strip()]


def _rows(answers: list[Recommendation]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {name: [] for name in _COLUMNS}
    for answer in answers:
        for rank, cand in enumerate(answer.candidates, start=1):
            for name, value in zip(
                _COLUMNS,
                (
                    answer.user_id,
                    rank,
                    cand.item_id,
                    cand.score,
                    cand.source,
                    answer.tier,
                    answer.method_used,
                    answer.model_version,
                ),
                strict=True,
            ):
                columns[name].append(value)
    return columns


def _chunks(answers: Iterator[Recommendation], size: int) -> Iterator[list[Recommendation]]:
    chunk: list[Recommendation] = []
    for answer in answers:
        chunk.append(answer)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def write_parquet(service: LocalService, users: list[str], out: Path, k: int, **options: Any) -> int:
    """Every user's candidates to `out` (written to a temporary name, then renamed: a job that
    reads `out` never sees half a file). Returns the rows written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("user_id", pa.string()),
            ("rank", pa.int32()),
            ("item_id", pa.string()),
            ("score", pa.float32()),
            ("source", pa.string()),
            ("tier", pa.string()),
            ("method_used", pa.string()),
            ("model_version", pa.string()),
        ]
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    rows = 0
    bar = tqdm(total=len(users), desc="recommend", unit="user", file=sys.stderr, disable=None)
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for chunk in _chunks(iter(service.recommend_many(users, k, **options)), 1_000):
                table = pa.Table.from_pydict(_rows(chunk), schema=schema)
                writer.write_table(table)
                rows += table.num_rows
                bar.update(len(chunk))
        tmp.replace(out)
    finally:
        bar.close()
        tmp.unlink(missing_ok=True)
    return rows


def _table(answer: Recommendation) -> str:
    lines = [
        f"user {answer.user_id}: tier {answer.tier}, method_used {answer.method_used}, "
        f"version {answer.model_version}, variant {answer.variant}"
        + (f" (fallback: {answer.fallback_reason})" if answer.fallback_reason else ""),
        f"{'rank':>4}  {'item_id':<24} {'score':>10}  source",
    ]
    for rank, cand in enumerate(answer.candidates, start=1):
        lines.append(f"{rank:>4}  {cand.item_id:<24} {cand.score:>10.4f}  {cand.source}")
    return "\n".join(lines)


@app.command()
@friendly_errors
def recommend(
    user_id: Annotated[str | None, typer.Argument(help="The user (omit with --users-file).")] = None,
    k: Annotated[int, typer.Option("-k", "--k", help="Candidates per user.")] = 10,
    artifacts: Annotated[
        Path,
        typer.Option(help="A version folder, or the artifacts folder (its active, else latest, version)."),
    ] = Path("artifacts"),
    filters: Annotated[
        str | None, typer.Option(help='The API\'s filters as JSON, e.g. \'{"deny_items": ["i1"]}\'.')
    ] = None,
    include_seen: Annotated[
        bool, typer.Option("--include-seen", help="Keep items the user already interacted with.")
    ] = False,
    variant: Annotated[str | None, typer.Option(help="An A/B variant by name (RECSYS_AB_CONFIG).")] = None,
    users_file: Annotated[
        Path | None,
        typer.Option(
            help="Answer every user of this file: .txt (an id per line), .csv or .parquet (user_id)."
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Parquet file for --users-file's answers.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as /candidates' JSON.")] = False,
) -> None:
    """Candidates for a user, answered in this process exactly as `POST /candidates` would."""
    if (user_id is None) == (users_file is None):
        raise TrainingInputError("give a USER_ID, or --users-file FILE --out FILE.parquet (not both)")
    if users_file is not None and out is None:
        raise TrainingInputError("--users-file needs --out FILE.parquet")
    try:
        parsed = json.loads(filters) if filters is not None else None
    except ValueError as exc:
        raise TrainingInputError(f"--filters is not JSON: {exc}") from None
    if parsed is not None and not isinstance(parsed, dict):
        raise TrainingInputError('--filters must be a JSON object, e.g. \'{"deny_items": ["i1"]}\'')
    options: dict[str, Any] = {"filters": parsed, "exclude_seen": not include_seen, "variant": variant}
    with LocalService(artifacts) as service:
        if users_file is not None and out is not None:
            users = read_user_ids(users_file)
            rows = write_parquet(service, users, out, k, **options)
            typer.echo(f"wrote {rows} candidates of {len(users)} users to {out} (version {service.version})")
            return
        assert user_id is not None
        answer = service.recommend(user_id, k, **options)
        if as_json:
            body = {
                "user_id": answer.user_id,
                "tier": answer.tier,
                "method_used": answer.method_used,
                "model_version": answer.model_version,
                "variant": answer.variant,
                "candidates": [asdict(c) for c in answer.candidates],
            }
            typer.echo(json.dumps(body, indent=2))
        else:
            typer.echo(_table(answer))
