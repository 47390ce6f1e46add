"""One entry point for every interaction source: a file, a MovieLens folder, or a SQL URL."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from training.errors import TrainingInputError
from training.interaction_log import InteractionLog, from_table
from training.readers.files import read_items_table, read_table
from training.readers.items import ItemOptions, ItemTable, prepare_items
from training.readers.movielens import read_movielens, read_movielens_items
from training.readers.sequences import looks_like_sequences, read_sequences, sequence_file
from training.timestamps import EpochUnit

if TYPE_CHECKING:
    from feature_store.catalog import ItemRecord

_SQL_SCHEMES = ("postgresql", "postgres", "sqlite", "mysql", "mssql", "oracle")


def is_sql_url(source: str) -> bool:
    scheme = source.split(":", 1)[0].split("+", 1)[0].lower()
    return "://" in source and scheme in _SQL_SCHEMES


def read_source_table(source: str, query: str | None = None) -> pa.Table:
    if is_sql_url(source):
        from training.readers.sql import read_sql

        return read_sql(source.replace("postgres://", "postgresql://", 1), query)
    path = Path(source).expanduser()
    if not path.exists():
        raise TrainingInputError(f"{path}: no such file or folder.")
    if path.is_dir():
        sequences = sequence_file(path)
        return read_sequences(sequences) if sequences is not None else read_movielens(path)
    if path.suffix.lower() == ".txt" and looks_like_sequences(path):
        return read_sequences(path)
    return read_table(path)


def read_interactions(
    source: str,
    event_weights: dict[str, float],
    *,
    query: str | None = None,
    drop_unknown_events: bool = False,
    drop_invalid_rows: bool = False,
    timestamp_unit: EpochUnit = EpochUnit.auto,
) -> InteractionLog:
    """Read and validate an interaction log from a path (CSV, Parquet, MovieLens folder) or SQL URL."""
    table = read_source_table(source, query)
    return from_table(
        table,
        event_weights,
        drop_unknown_events=drop_unknown_events,
        drop_invalid_rows=drop_invalid_rows,
        timestamp_unit=timestamp_unit,
        source=source,
    )


def read_items(
    source: str | None,
    options: ItemOptions | None = None,
    catalog: Mapping[str, ItemRecord] | None = None,
) -> ItemTable:
    """Item metadata from a file or a MovieLens folder, with the run-time catalog's attributes
    merged in (training/catalog_state.py), prepared by the rules of `readers.items`.

    Every command that takes `--items` reads it here, so a folder without metadata is the same
    error for `train` as for `train-all`."""
    options = options or ItemOptions()
    table: pa.Table | None = None
    where = "the run-time catalog"
    if source is not None:
        path = Path(source).expanduser()
        where = str(path)
        if path.is_dir():
            table = read_movielens_items(path)
            if table is None:
                raise TrainingInputError(
                    f"{path}: no item metadata found there (movies.dat, u.item); give a CSV or Parquet file."
                )
        elif path.is_file():
            table = read_items_table(path)
        else:
            raise TrainingInputError(f"{path}: no such item metadata file or folder.")
    if catalog:
        from training.catalog_state import merge_items

        table = merge_items(table, catalog, options.list_separator)
    if table is None:
        raise TrainingInputError("no item metadata: give --items, or set attributes through the items API")
    return prepare_items(table, options, source=where)
