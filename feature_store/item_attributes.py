"""The item-attribute table of a version: what filters can test (category in, price between).

Written at training time from the item metadata (`--items`), aligned with the item mapping, as
plain arrays: a categorical column is int32 codes into its value list (-1 = missing), a
multi-valued one (tags) a CSR of codes, a numeric or date column float64 (NaN = missing; dates as
epoch seconds). Free text is not filterable and is not stored here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np

from feature_store.manifest import ArtifactError
from feature_store.version_files import load_array

ATTRIBUTES_META = "item_attributes.json"


class ColumnKind(StrEnum):
    categorical = "categorical"
    multi = "multi"
    numeric = "numeric"


@dataclass
class AttributeColumn:
    name: str
    kind: ColumnKind
    values: list[str] = field(default_factory=list)  # categorical and multi: code -> value
    codes: np.ndarray | None = None  # categorical: per item; multi: flat codes
    indptr: np.ndarray | None = None  # multi: per item slice of `codes`
    numbers: np.ndarray | None = None  # numeric


def _file(name: str, part: str) -> str:
    return f"attr_{name}_{part}.npy"


def write_attributes(folder: Path, columns: list[AttributeColumn]) -> None:
    meta: dict[str, dict[str, object]] = {}
    for col in columns:
        meta[col.name] = {"kind": col.kind.value, "values": col.values}
        arrays = {"codes": col.codes, "indptr": col.indptr, "numbers": col.numbers}
        for part, array in arrays.items():
            if array is not None:
                np.save(folder / _file(col.name, part), array, allow_pickle=False)
    (folder / ATTRIBUTES_META).write_text(json.dumps({"columns": meta}, ensure_ascii=False) + "\n")


def read_attributes(folder: Path) -> dict[str, AttributeColumn]:
    """The version's attribute columns; empty when it was trained without item metadata."""
    path = folder / ATTRIBUTES_META
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text())["columns"]
    except (ValueError, KeyError) as exc:
        raise ArtifactError(f"{path}: unreadable attribute table ({exc.__class__.__name__}).") from exc
    out: dict[str, AttributeColumn] = {}
    for name, info in meta.items():
        kind = ColumnKind(info["kind"])
        col = AttributeColumn(name, kind, list(info.get("values", [])))
        if kind is ColumnKind.numeric:
            col.numbers = load_array(folder, _file(name, "numbers"))
        else:
            col.codes = load_array(folder, _file(name, "codes"))
        if kind is ColumnKind.multi:
            col.indptr = load_array(folder, _file(name, "indptr"))
        out[name] = col
    return out
