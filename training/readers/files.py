"""CSV and Parquet interaction logs and item metadata, read through pyarrow (multi-threaded, typed)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from training.errors import TrainingInputError

# Ids must stay strings even when they look numeric ("007" is not 7).
_STRING_COLUMNS = ("user_id", "item_id", "event_type")


def read_table(path: Path) -> pa.Table:
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            table = pq.read_table(path)
        elif suffix in (".csv", ".csv.gz", ".tsv", ".txt"):
            delimiter = "\t" if suffix == ".tsv" else ","
            table = pacsv.read_csv(
                path,
                parse_options=pacsv.ParseOptions(delimiter=delimiter),
                convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in _STRING_COLUMNS}),
            )
        else:
            raise TrainingInputError(
                f"{path}: unknown file type '{suffix}'; use .csv, .tsv, .csv.gz or .parquet."
            )
    except (pa.ArrowInvalid, OSError) as exc:
        hint = " Save it as UTF-8." if "UTF8" in str(exc) or "utf-8" in str(exc).lower() else ""
        raise TrainingInputError(f"{path}: could not be read ({exc}).{hint}") from None
    return table


def read_items_table(path: Path) -> pa.Table:
    """The raw metadata table; `readers.items.prepare_items` gives it meaning (names, nulls, lists)."""
    return read_table(path)
