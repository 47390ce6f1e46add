"""The ranking stage's features: one definition, the same code in training and in serving.

Each retrieval model sees one signal; the ranker sees all of them for the union of their top
lists, plus context none of them uses. `FEATURES` is the order the model reads them in: a
version stores the list in its manifest beside `ranker.txt`, and the service refuses a ranker
whose list differs from this one, since it could not compute the features the model expects.

Per candidate item, for one user:

| feature | what |
|---|---|
| `als_score`, `als_cosine` | the user's ALS vector against the item's: inner product, cosine |
| `two_tower_score`, `two_tower_cosine` | the same for the Two-Tower's vectors |
| `content_score` | cosine of the user's content profile (mean of their items) and the item's |
| `als_rank`, `two_tower_rank`, `content_rank`, `popularity_rank` | place in that top list, or NaN |
| `als_score_z`, `two_tower_score_z`, `content_score_z` | the score's z-score among the candidates |
| `sources` | how many sources proposed the item |
| `item_count_log` | log(1 + the item's positives in training) |
| `item_trend` | the popularity model's decayed score over its maximum (popular recently) |
| `item_age_days` | days from the item's first interaction to the end of the training data |
| `user_count_log`, `user_tier` | log(1 + the user's distinct items); tier 0 cold, 1 warm, 2 hot |
| `recent_similarity` | mean ALS cosine between the item and the user's most recent items |

Missing values (no Two-Tower in the version, a user with no content profile) are NaN, which
LightGBM routes down each split's learned default branch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

RANKER_FILE = "ranker.txt"  # the model, in LightGBM's text format
RANKER_ITEMS_FILE = "ranker_items.npy"  # float64 items x 3: counts, trend, first_seen
TIERS = ("cold", "warm", "hot")  # user_tier's codes 0, 1, 2
SOURCES = ("als", "two_tower", "content", "popularity")
FEATURES = (
    "als_score",
    "als_cosine",
    "als_rank",
    "als_score_z",
    "two_tower_score",
    "two_tower_cosine",
    "two_tower_rank",
    "two_tower_score_z",
    "content_score",
    "content_rank",
    "content_score_z",
    "popularity_rank",
    "sources",
    "item_count_log",
    "item_trend",
    "item_age_days",
    "user_count_log",
    "user_tier",
    "recent_similarity",
)
RECENT_ITEMS = 10  # most recent items `recent_similarity` averages over
_DAY_S = 86_400.0


@dataclass(frozen=True)
class ItemSide:
    """What a version knows of every item, for the ranker (arrays aligned with its item rows)."""

    als: np.ndarray  # float32 items x f
    two_tower: np.ndarray | None  # float32 items x d
    content: np.ndarray | None  # float32 items x c, unit rows (zero: no metadata)
    counts: np.ndarray  # float32 positives in training
    trend: np.ndarray  # float32 decayed popularity / its max, in [0, 1]
    first_seen: np.ndarray  # float64 epoch seconds of the first interaction (NaN: unknown)
    # Computed once, read on every request: unit ALS rows (recent_similarity) and each vector
    # set's row norms (the cosines).
    als_unit: np.ndarray = field(init=False, repr=False)
    norms: dict[str, np.ndarray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = len(self.als)
        for name in ("counts", "trend", "first_seen"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"ranker item {name}: {len(getattr(self, name))} rows, the ALS vectors {n}")
        norms = {"als": _norms(self.als)}
        if self.two_tower is not None:
            norms["two_tower"] = _norms(self.two_tower)
        if self.content is not None:
            norms["content"] = _norms(self.content)
        object.__setattr__(self, "norms", norms)
        object.__setattr__(self, "als_unit", (self.als / norms["als"][:, None]).astype(np.float32))


@dataclass(frozen=True)
class UserSide:
    """One user at the moment of the request."""

    count: int  # distinct items with a positive weight
    tier: int  # 0 cold, 1 warm, 2 hot (the service's routing thresholds)
    recent: np.ndarray  # item rows, most recent first
    als: np.ndarray | None = None
    two_tower: np.ndarray | None = None
    content: np.ndarray | None = None  # unit content profile (no popularity prior)


def _norms(x: np.ndarray) -> np.ndarray:
    return np.maximum(np.linalg.norm(x, axis=-1), 1e-12).astype(np.float32)


def candidates(lists: Mapping[str, np.ndarray]) -> np.ndarray:
    """The union of the sources' top lists (rows, -1 padding ignored), in first-seen order."""
    joined = np.concatenate(
        [np.asarray(rows, np.int64) for rows in lists.values()] or [np.empty(0, np.int64)]
    )
    joined = joined[joined >= 0]
    _, first = np.unique(joined, return_index=True)
    return joined[np.sort(first)]


def _ranks(rows: np.ndarray, lists: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per source, each row's position in that source's list (0 = first), NaN where it is absent.
    One sort of the rows serves every source (this runs on every ranked request)."""
    n = len(rows)
    by_row = np.argsort(rows, kind="stable")
    sorted_rows = rows[by_row]
    out = {}
    for name in SOURCES:
        ranks = np.full(n, np.nan, np.float32)
        listed = lists.get(name)
        if listed is not None and len(listed) and n:
            listed = np.asarray(listed, np.int64)
            positions = np.flatnonzero(listed >= 0)
            wanted = listed[positions]
            at = np.minimum(np.searchsorted(sorted_rows, wanted), n - 1)
            found = sorted_rows[at] == wanted
            # Reversed, so a row listed twice keeps its first (best) place.
            ranks[by_row[at[found]][::-1]] = positions[found][::-1]
        out[name] = ranks
    return out


def _dot_cos(
    user: np.ndarray | None, items: np.ndarray | None, norms: np.ndarray | None, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    if user is None or items is None or norms is None:
        nan = np.full(len(rows), np.nan, np.float32)
        return nan, nan
    dots = (items[rows] @ user).astype(np.float32)
    return dots, dots / (norms[rows] * max(float(np.linalg.norm(user)), 1e-12))


def _z(scores: np.ndarray) -> np.ndarray:
    """Scores as z-scores within one user's candidates: raw inner products differ in scale from
    user to user, and a tree splits on one threshold for all of them. A source the version lacks
    scores NaN everywhere and stays NaN. (Mean and spread by hand: np.mean and np.std cost more
    in their argument handling than in the arithmetic on 200 values.)"""
    n = len(scores)
    if n < 2 or np.isnan(scores[0]):
        return np.full(n, np.nan, np.float32)
    centred = scores.astype(np.float64) - float(np.add.reduce(scores, dtype=np.float64)) / n
    spread = math.sqrt(float(centred @ centred) / n)
    return (centred / (spread if spread > 0 else 1.0)).astype(np.float32)


def candidate_features(
    rows: np.ndarray,
    lists: Mapping[str, np.ndarray],
    user: UserSide,
    items: ItemSide,
    now: float,
) -> np.ndarray:
    """float32 `len(rows) x len(FEATURES)`: the features of each candidate row for `user`.
    `lists` holds each source's top list (rows, best first) the candidates came from; `now` is
    epoch seconds of the end of the training data, in training and in serving alike."""
    rows = np.asarray(rows, np.int64)
    out = np.empty((len(rows), len(FEATURES)), np.float32)
    als_dot, als_cos = _dot_cos(user.als, items.als, items.norms["als"], rows)
    tt_dot, tt_cos = _dot_cos(user.two_tower, items.two_tower, items.norms.get("two_tower"), rows)
    content_dot, _ = _dot_cos(user.content, items.content, items.norms.get("content"), rows)
    ranks = _ranks(rows, lists)
    proposed = sum((~np.isnan(r)).astype(np.float32) for r in ranks.values())
    recent = np.asarray(user.recent[:RECENT_ITEMS], np.int64)
    if len(recent):
        # The mean of cosines is the cosine against the mean of the recent unit vectors.
        centre = items.als_unit[recent].mean(axis=0)
        similarity = (items.als_unit[rows] @ centre).astype(np.float32)
    else:
        similarity = np.full(len(rows), np.nan, np.float32)
    columns = {
        "als_score": als_dot,
        "als_cosine": als_cos,
        "als_rank": ranks["als"],
        "als_score_z": _z(als_dot),
        "two_tower_score": tt_dot,
        "two_tower_cosine": tt_cos,
        "two_tower_rank": ranks["two_tower"],
        "two_tower_score_z": _z(tt_dot),
        "content_score": content_dot,
        "content_rank": ranks["content"],
        "content_score_z": _z(content_dot),
        "popularity_rank": ranks["popularity"],
        "sources": proposed,
        "item_count_log": np.log1p(items.counts[rows]),
        "item_trend": items.trend[rows],
        "item_age_days": (now - items.first_seen[rows]) / _DAY_S,
        "user_count_log": np.full(len(rows), np.log1p(user.count), np.float32),
        "user_tier": np.full(len(rows), user.tier, np.float32),
        "recent_similarity": similarity,
    }
    for j, name in enumerate(FEATURES):
        out[:, j] = columns[name]
    return out


def feature_mismatch(names: list[str] | tuple[str, ...]) -> str | None:
    """Why a ranker trained on the features `names` cannot be served by this code, or None."""
    if tuple(names) == FEATURES:
        return None
    unknown = [n for n in names if n not in FEATURES]
    missing = [n for n in FEATURES if n not in names]
    if unknown:
        return f"the ranker needs features this service cannot compute: {', '.join(unknown[:5])}"
    if missing:
        return f"the ranker lacks features this service computes: {', '.join(missing[:5])}"
    return "the ranker's features are in another order than this service computes them"
