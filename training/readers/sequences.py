"""Item sequences, one user a line: `user item item ...` (the S3-Rec / CoSeRec / ICLRec files of
Amazon Beauty and Sports in `../shared/data`, read in place, never redistributed).

The format carries no times and no ratings, only each user's order (oldest first). Every line
becomes that user's pairs with weight 1, and the order becomes the `timestamp` column: the line's
first item at ORDER_EPOCH, each next one a second later. That keeps what the order says (a
per-user latest-items split holds out what the user did next; the ranker's recency features see
the last items) and nothing it does not: lines start at the same instant, so times compare only
within one user, and a decay measured in days sees the whole log as one moment.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from training.errors import TrainingInputError

ORDER_EPOCH = 946_684_800  # 2000-01-01T00:00:00Z: where every line's order starts


def looks_like_sequences(path: Path) -> bool:
    """A text file whose first line is two or more integers separated by single spaces."""
    try:
        with path.open("rb") as f:
            first = f.readline(1 << 16).strip()
    except OSError:
        return False
    parts = first.split(b" ")
    return len(parts) >= 2 and all(p.isdigit() for p in parts)


def sequence_file(folder: Path) -> Path | None:
    """The one sequence file of a folder (Beauty.txt, Sports_and_Outdoors.txt), if it has one.

    Several are refused rather than guessed between: the published LightGCN and KGAT splits keep
    `train.txt` beside `test.txt` in one folder, and training on both would leak the test set.
    """
    found = [p for p in sorted(folder.glob("*.txt")) if looks_like_sequences(p)]
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        example = next((p for p in found if "train" in p.name.lower()), found[0])
        raise TrainingInputError(
            f"{folder}: {len(found)} sequence files ({names}); pass the one to train on, e.g. -i {example}."
        )
    return found[0] if found else None


def read_sequences(path: Path) -> pa.Table:
    users: list[str] = []
    items: list[str] = []
    order: list[int] = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                raise TrainingInputError(f"{path}: line {number} has a user but no items.")
            users.extend([parts[0]] * (len(parts) - 1))
            items.extend(parts[1:])
            order.extend(range(len(parts) - 1))
    if not users:
        raise TrainingInputError(f"{path}: no sequences found.")
    return pa.table(
        {
            "user_id": pa.array(users, pa.string()),
            "item_id": pa.array(items, pa.string()),
            "weight": pa.array(np.ones(len(users), np.float32)),
            "timestamp": pa.array(ORDER_EPOCH + np.asarray(order, np.int64), pa.timestamp("s", tz="UTC")),
        }
    )
