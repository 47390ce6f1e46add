"""Interactions from a SQL table through SQLAlchemy (any database with a driver; PostgreSQL tested).

The default query reads the seed's `UserInteraction` table. Rows are fetched in chunks and turned
into Arrow arrays as they come, so a large table never exists as a list of Python tuples.
"""

from __future__ import annotations

import pyarrow as pa
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from training.errors import TrainingInputError

DEFAULT_QUERY = 'SELECT user_id, item_id, event_type, timestamp FROM "UserInteraction"'


def read_sql(url: str, query: str | None = None, chunk_rows: int = 200_000) -> pa.Table:
    engine = create_engine(url)
    batches: list[pa.RecordBatch] = []
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True).execute(text(query or DEFAULT_QUERY))
            columns = [str(c).lower() for c in result.keys()]  # noqa: SIM118 (iterating a Result yields rows)
            while rows := result.fetchmany(chunk_rows):
                data = list(zip(*rows, strict=True))
                arrays = []
                for name, values in zip(columns, data, strict=True):
                    if name in ("user_id", "item_id", "event_type"):
                        arrays.append(pa.array([None if v is None else str(v) for v in values]))
                    else:
                        arrays.append(pa.array(values))
                batches.append(pa.RecordBatch.from_arrays(arrays, names=columns))
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        safe_url = engine.url.render_as_string(hide_password=True)
        raise TrainingInputError(f"SQL source {safe_url}: {reason}") from None
    finally:
        engine.dispose()
    if not batches:
        return pa.table({c: pa.array([], pa.string()) for c in columns})
    return pa.Table.from_batches(batches)
