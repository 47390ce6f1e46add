"""The MovieLens folders of `../shared/data` (never redistributed: read in place).

- ml-100k: `u.data` (user, item, rating 1-5, timestamp) -> weight = rating; `u.item` genres/titles.
- ml-1m: `ratings.dat` when present, else `user_movie_pairs.dat` (binary pairs, no rating).
- ncf-ml-1m: the NCF leave-one-out split: training pairs, one test item per user, 99 negatives.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from training.errors import TrainingInputError


def _read_delimited(path: Path, names: list[str], delimiter: str) -> pa.Table:
    # '::' is two characters; pyarrow wants one, so the doubled delimiter yields empty columns.
    if delimiter == "::":
        raw = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=[f"c{i}" for i in range(2 * len(names) - 1)]),
            parse_options=pacsv.ParseOptions(delimiter=":"),
            convert_options=pacsv.ConvertOptions(
                column_types={f"c{2 * i}": pa.string() for i in range(len(names))}
            ),
        )
        return pa.table({n: raw[f"c{2 * i}"] for i, n in enumerate(names)})
    return pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=names),
        parse_options=pacsv.ParseOptions(delimiter=delimiter),
        convert_options=pacsv.ConvertOptions(column_types={names[0]: pa.string(), names[1]: pa.string()}),
    )


def read_movielens(folder: Path) -> pa.Table:
    """An interaction table from a MovieLens folder (ml-100k or ml-1m layout)."""
    if (folder / "u.data").is_file():
        t = _read_delimited(folder / "u.data", ["user_id", "item_id", "weight", "timestamp"], "\t")
        return t
    if (folder / "ratings.dat").is_file():
        return _read_delimited(folder / "ratings.dat", ["user_id", "item_id", "weight", "timestamp"], "::")
    if (folder / "ml-1m.test.negative").is_file():
        return read_ncf(folder).train
    if (folder / "user_movie_pairs.dat").is_file():
        t = _read_delimited(folder / "user_movie_pairs.dat", ["user_id", "item_id"], "::")
        return t.append_column("weight", pa.array(np.ones(t.num_rows, np.float32)))
    raise TrainingInputError(
        f"{folder}: not a MovieLens folder (expected u.data, ratings.dat or user_movie_pairs.dat)."
    )


def read_movielens_items(folder: Path) -> pa.Table | None:
    """Item metadata (title, year, genres as tags) for the content model and filters."""
    if (folder / "u.item").is_file():
        genres = [
            line.split("|")[0]
            for line in (folder / "u.genre").read_text(encoding="latin-1").splitlines()
            if line.strip()
        ]
        ids, titles, tags = [], [], []
        for line in (folder / "u.item").read_text(encoding="latin-1").splitlines():
            fields = line.split("|")
            ids.append(fields[0])
            titles.append(fields[1])
            flags = fields[5:]
            tags.append([g for g, f in zip(genres, flags, strict=False) if f == "1"])
    elif (folder / "movies.dat").is_file():
        ids, titles, tags = [], [], []
        for line in (folder / "movies.dat").read_text(encoding="latin-1").splitlines():
            movie_id, title, genre_field = line.split("::")
            ids.append(movie_id)
            titles.append(title)
            tags.append(genre_field.split("|"))
    else:
        return None
    return pa.table(
        {
            "item_id": ids,
            "text": titles,
            "category": [t[0] if t else "unknown" for t in tags],
            "tags": ["|".join(t) for t in tags],
        }
    )


@dataclass(frozen=True)
class NcfSplit:
    """The NCF paper's leave-one-out evaluation of ML-1M, ids kept as strings."""

    train: pa.Table  # user_id, item_id, weight
    test_users: list[str]
    test_items: list[str]
    negatives: list[list[str]]  # 99 per user, the test item removed where the file repeats it


def read_ncf(folder: Path) -> NcfSplit:
    pairs = folder / "ml-1m.train.pairs"
    if not pairs.is_file():
        pairs = folder / "ml-1m.train.rating"
    if not pairs.is_file():
        raise TrainingInputError(f"{folder}: no ml-1m.train.pairs or ml-1m.train.rating.")
    train = pacsv.read_csv(
        pairs,
        read_options=pacsv.ReadOptions(autogenerate_column_names=True),
        parse_options=pacsv.ParseOptions(delimiter="\t"),
        convert_options=pacsv.ConvertOptions(column_types={"f0": pa.string(), "f1": pa.string()}),
    )
    train = pa.table(
        {
            "user_id": train["f0"],
            "item_id": train["f1"],
            "weight": pa.array(np.ones(train.num_rows, np.float32)),
        }
    )
    users, items, negatives = [], [], []
    for line in (folder / "ml-1m.test.negative").read_text().splitlines():
        head, *negs = line.split("\t")
        user, item = head.strip("()").split(",")
        users.append(user)
        items.append(item)
        negatives.append([n for n in negs if n and n != item])
    return NcfSplit(train, users, items, negatives)
