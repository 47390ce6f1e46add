"""A synthetic marketplace: interaction logs realistic enough to measure recommendation quality on.

What makes it realistic, and why each part is there:
- item popularity is Zipf-like (a few items get most events), so popularity is a real baseline;
- user activity is a discretised log-normal long tail, so every tier of the routing table
  (0, 1-4, 5-19, 20+ interactions) occurs in proportions like a real product;
- each user has latent tastes (a main and a side category cluster) and most of their events land
  there, so collaborative filtering has structure to find that popularity cannot;
- event types follow plausible proportions (many views, few applies), and off-taste items draw
  more dislikes, so event weights carry signal;
- timestamps span a window, each user active for a stretch of it, with taste drifting towards the
  side cluster over time, so a time-based split is harder than a random one, as in real logs;
- item metadata (category, tags, a short text, price, creation date) correlates with the clusters,
  so a content model has something to learn for cold users.

Everything is vectorised numpy from one seed: 10 million interactions take a few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CATEGORIES = [
    "fintech",
    "healthtech",
    "edtech",
    "climate",
    "gaming",
    "ecommerce",
    "logistics",
    "ai-tools",
    "biotech",
    "proptech",
    "foodtech",
    "mobility",
    "security",
    "devtools",
    "media",
    "hr-tech",
    "agritech",
    "travel",
    "fashion",
    "robotics",
    "legaltech",
    "insurtech",
    "sports",
    "music",
]
_WORDS = [
    "platform",
    "smart",
    "open",
    "fast",
    "green",
    "secure",
    "local",
    "global",
    "simple",
    "modern",
    "mobile",
    "cloud",
    "data",
    "community",
    "market",
    "studio",
    "lab",
    "network",
    "hub",
    "engine",
    "works",
    "labs",
    "direct",
    "prime",
    "bright",
]

EVENT_TYPES = np.array(["view", "click", "like", "favorite", "apply", "interest", "dislike"])
# Proportions for on-taste events; off-taste events swap some positive mass for dislikes.
_ON_TASTE = np.array([0.52, 0.25, 0.10, 0.05, 0.03, 0.03, 0.02])
_OFF_TASTE = np.array([0.60, 0.22, 0.04, 0.01, 0.01, 0.01, 0.11])


@dataclass(frozen=True)
class SyntheticConfig:
    users: int = 20_000
    items: int = 5_000
    interactions: int = 500_000
    clusters: int = 24
    seed: int = 42
    popularity_exponent: float = 0.9  # Zipf exponent of item popularity
    activity_sigma: float = 1.3  # spread of the log-normal user activity
    taste_share: float = 0.75  # share of a user's events in their main cluster
    side_share: float = 0.15  # share in their side cluster (the rest follows global popularity)
    inactive_share: float = 0.03  # users registered but with no events at all (cold, zero)
    days: int = 180
    start_epoch: int = 1_700_000_000


@dataclass(frozen=True)
class SyntheticData:
    interactions: pa.Table  # user_id, item_id, event_type, timestamp
    items: pa.Table  # item_id, category, tags, text, price, created_at
    all_user_ids: np.ndarray  # including users without events (for cold-start demos)
    user_clusters: np.ndarray
    item_clusters: np.ndarray


def _ids(prefix: str, n: int) -> np.ndarray:
    width = max(6, len(str(n - 1)))
    return np.char.add(prefix, np.char.zfill(np.arange(n).astype(str), width))


def _activity(rng: np.random.Generator, cfg: SyntheticConfig) -> np.ndarray:
    """Events per user: log-normal long tail scaled to the requested total."""
    raw = rng.lognormal(mean=0.0, sigma=cfg.activity_sigma, size=cfg.users)
    active = rng.random(cfg.users) >= cfg.inactive_share
    raw = raw * active
    counts = np.floor(raw / raw.sum() * cfg.interactions).astype(np.int64)
    counts[active] = np.maximum(counts[active], 1)
    # Hand out the rounding remainder (or take back the surplus) among the most active users.
    diff = cfg.interactions - int(counts.sum())
    order = np.argsort(-raw)
    if diff > 0:
        counts[order[: min(diff, cfg.users)]] += 1
        counts[order[0]] += max(0, diff - cfg.users)
    elif diff < 0:
        take = -diff
        for idx in order:
            can = int(counts[idx] - 1)
            step = min(can, take)
            counts[idx] -= step
            take -= step
            if take == 0:
                break
    return counts


def generate(cfg: SyntheticConfig) -> SyntheticData:
    rng = np.random.default_rng(cfg.seed)
    n_clusters = max(1, min(cfg.clusters, cfg.items))

    # Items: a cluster each, Zipf popularity in random order (popularity independent of cluster).
    item_cluster = rng.integers(0, n_clusters, cfg.items)
    popularity = 1.0 / np.arange(1, cfg.items + 1) ** cfg.popularity_exponent
    popularity = popularity[rng.permutation(cfg.items)]
    by_cluster = np.lexsort((np.arange(cfg.items), item_cluster))
    cluster_sizes = np.bincount(item_cluster, minlength=n_clusters)
    cluster_starts = np.concatenate([[0], np.cumsum(cluster_sizes)[:-1]])
    # One array of within-cluster cumulative shares offset by the cluster number: one
    # searchsorted then samples every interaction, whatever its cluster.
    pop_sorted = popularity[by_cluster]
    cluster_totals = np.bincount(item_cluster, weights=popularity, minlength=n_clusters)
    within = pop_sorted / cluster_totals[item_cluster[by_cluster]]
    running = np.cumsum(within)
    # Each cluster's shares sum to 1, so the running total at a cluster's last item minus one is
    # what the earlier clusters contributed; subtracting it restarts the sum at each cluster.
    before = np.repeat(running[cluster_starts + cluster_sizes - 1] - 1.0, cluster_sizes)
    cum = np.clip(running - before, 0.0, 1.0) + item_cluster[by_cluster]
    global_cum = np.cumsum(popularity / popularity.sum())

    # Users: main and side taste cluster, activity, active window.
    user_cluster = rng.integers(0, n_clusters, cfg.users)
    side_cluster = (user_cluster + rng.integers(1, max(2, n_clusters), cfg.users)) % n_clusters
    counts = _activity(rng, cfg)
    users = np.repeat(np.arange(cfg.users, dtype=np.int32), counts)
    n = users.shape[0]

    window = cfg.days * 86_400
    user_start = rng.random(cfg.users) * window * 0.7
    user_span = np.minimum(window - user_start, rng.uniform(0.1, 1.0, cfg.users) * window)
    phase = rng.random(n)  # position of each event within the user's active stretch
    timestamps = cfg.start_epoch + (user_start[users] + phase * user_span[users]).astype(np.int64)

    # Taste drifts toward the side cluster late in a user's history.
    side_p = cfg.side_share * (0.5 + phase)
    main_p = np.clip(cfg.taste_share - (side_p - cfg.side_share), 0.0, 1.0)
    draw = rng.random(n)
    in_main = draw < main_p
    in_side = ~in_main & (draw < main_p + side_p)
    from_taste = in_main | in_side
    target = np.where(in_main, user_cluster[users], side_cluster[users])

    items = np.empty(n, dtype=np.int32)
    u = rng.random(n)
    t_idx = np.flatnonzero(from_taste)
    pos = np.searchsorted(cum, target[t_idx] + u[t_idx] * (1 - 1e-9), side="left")
    pos = np.clip(pos, 0, cfg.items - 1)
    items[t_idx] = by_cluster[pos]
    g_idx = np.flatnonzero(~from_taste)
    items[g_idx] = np.minimum(np.searchsorted(global_cum, u[g_idx]), cfg.items - 1)

    on_taste = item_cluster[items] == user_cluster[users]
    on_taste |= item_cluster[items] == side_cluster[users]
    ev_draw = rng.random(n)
    on_codes = np.searchsorted(np.cumsum(_ON_TASTE), ev_draw)
    off_codes = np.searchsorted(np.cumsum(_OFF_TASTE), ev_draw)
    event_codes = np.minimum(np.where(on_taste, on_codes, off_codes), len(EVENT_TYPES) - 1)

    user_ids = _ids("u", cfg.users)
    item_ids = _ids("i", cfg.items)
    interactions = pa.table(
        {
            "user_id": pa.DictionaryArray.from_arrays(pa.array(users), pa.array(user_ids)),
            "item_id": pa.DictionaryArray.from_arrays(pa.array(items), pa.array(item_ids)),
            "event_type": pa.DictionaryArray.from_arrays(
                pa.array(event_codes.astype(np.int8)), pa.array(EVENT_TYPES)
            ),
            "timestamp": pa.array(timestamps),
        }
    )
    return SyntheticData(
        interactions=interactions,
        items=_item_table(rng, cfg, item_ids, item_cluster, n_clusters),
        all_user_ids=user_ids,
        user_clusters=user_cluster,
        item_clusters=item_cluster,
    )


def _item_table(
    rng: np.random.Generator,
    cfg: SyntheticConfig,
    item_ids: np.ndarray,
    item_cluster: np.ndarray,
    n_clusters: int,
) -> pa.Table:
    names = [
        CATEGORIES[c % len(CATEGORIES)] + ("" if c < len(CATEGORIES) else f"-{c}") for c in range(n_clusters)
    ]
    # Each cluster owns four tags; an item takes two of its cluster's and sometimes a random one.
    cluster_tags = [[f"{names[c]}-{k}" for k in ("core", "pro", "lite", "plus")] for c in range(n_clusters)]
    pick = rng.integers(0, 4, (cfg.items, 2))
    stray = rng.random(cfg.items) < 0.3
    stray_cluster = rng.integers(0, n_clusters, cfg.items)
    stray_tag = rng.integers(0, 4, cfg.items)
    words = np.array(_WORDS)
    w = words[rng.integers(0, len(words), (cfg.items, 2))]
    tags, texts = [], []
    for i in range(cfg.items):
        c = item_cluster[i]
        item_tags = {cluster_tags[c][pick[i, 0]], cluster_tags[c][pick[i, 1]]}
        if stray[i]:
            item_tags.add(cluster_tags[stray_cluster[i]][stray_tag[i]])
        tags.append("|".join(sorted(item_tags)))
        texts.append(f"{w[i, 0]} {names[c]} {w[i, 1]} for {names[c].replace('-', ' ')} teams")
    price = np.round(np.exp(rng.normal(3.5 + 0.1 * (item_cluster % 5), 0.8)), 2)
    created = cfg.start_epoch - rng.integers(0, 2 * 365 * 86_400, cfg.items)
    return pa.table(
        {
            "item_id": pa.array(item_ids),
            "category": pa.array([names[c] for c in item_cluster]),
            "tags": pa.array(tags),
            "text": pa.array(texts),
            "price": pa.array(price),
            "created_at": pa.array(created.astype(np.int64)),
        }
    )


def write(data: SyntheticData, folder: Path, fmt: str = "parquet") -> tuple[Path, Path]:
    """Write `interactions.<fmt>` and `items.<fmt>` into `folder`; return both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    inter = folder / f"interactions.{fmt}"
    items = folder / f"items.{fmt}"
    # Plain strings, not Arrow dictionaries: Parquet would store a dictionary array's whole
    # dictionary again in every row group (10M user ids x 100 row groups at the scale run's size).
    plain = data.interactions.cast(
        pa.schema(
            [
                ("user_id", pa.string()),
                ("item_id", pa.string()),
                ("event_type", pa.string()),
                ("timestamp", pa.int64()),
            ]
        )
    )
    if fmt == "parquet":
        pq.write_table(plain, inter)
        pq.write_table(data.items, items)
    elif fmt == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(plain, inter)
        pacsv.write_csv(data.items, items)
    else:
        raise ValueError(f"unknown format {fmt!r}; use parquet or csv")
    return inter, items
