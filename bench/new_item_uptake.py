"""How soon a new item reaches the users who would like it: on the synthetic log's true clusters.

    python bench/new_item_uptake.py                  # 6,000 users, 1,500 items, 12 clusters
    python bench/new_item_uptake.py --items-per-run 4 --k 20

A train-all version (ALS, content, Two-Tower) of a synthetic log is published to a real Redis and
served by the real app (uvicorn in a thread, the item fold-in reading the stream every 0.2 s).
Per run, a new item is added through `PUT /items/{id}` with the metadata of a random item of one
cluster (so its content places it in that cluster), never trained on. Then users of that cluster
take it through `POST /interactions`, one event at a time, and after 0, 1, 2, 5, 10, 20, 30, 50, 100
events the table gives the share of answers (`POST /candidates`, k as given) that hold it:
- cold users (1 to 4 events, served `content_based`): of its cluster, and of other clusters;
- warm users (5 to 19 events, served `als`): of its cluster, and of other clusters.
A cold fan sees it from the first second (its metadata); a warm fan once the item fold-in has
enough of its takers' vectors (no retrain). Other clusters are the control: they should not.
Needs Redis (RECSYS_TEST_REDIS_URL or redis://127.0.0.1:6379/0).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import print_table

TOKEN = "bench-uptake-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHECKPOINTS = (0, 1, 2, 5, 10, 20, 30, 50, 100)
SAMPLE = 40  # users asked per group


def _train(folder: Path, users: int, items: int, clusters: int) -> tuple[Path, object]:
    from training.dataset import build_dataset
    from training.events import DEFAULT_EVENT_WEIGHTS
    from training.interaction_log import from_table
    from training.pipeline import train_all
    from training.readers.items import ItemOptions, prepare_items
    from training.settings import TrainSettings
    from training.synthetic import SyntheticConfig, generate

    data = generate(
        SyntheticConfig(users=users, items=items, interactions=users * 25, clusters=clusters, seed=9)
    )
    dataset = build_dataset(from_table(data.interactions, DEFAULT_EVENT_WEIGHTS))
    settings = TrainSettings(
        artifacts=folder,
        test_split=0.0,
        factors=64,
        regularization=5.0,
        alpha=4.0,
        iterations=10,
        two_tower_epochs=5,
    )
    prepared = prepare_items(data.items, ItemOptions()).table
    report = train_all(dataset, settings, items=prepared, progress=lambda m: print(m, flush=True))
    assert report.version_dir is not None
    return report.version_dir, data


class Served:
    """The app on a free port in a thread, as the tests run it."""

    def __init__(self, version: Path, redis_url: str, prefix: str) -> None:
        import uvicorn

        from app.main import create_app
        from app.settings import ServeSettings
        from feature_store.publish import publish_version
        from feature_store.redis_store import RedisStore
        from feature_store.settings import StoreSettings

        store_settings = StoreSettings(redis_url=redis_url, redis_prefix=prefix, artifacts=version.parent)

        async def publish() -> None:
            store = RedisStore.from_settings(store_settings, bulk=True)
            try:
                await publish_version(version, store)
            finally:
                await store.close()

        asyncio.run(publish())
        settings = ServeSettings(
            artifacts=version.parent, reload_poll_s=0, admin_token=TOKEN, new_item_poll_s=0.2
        )
        self.store_settings = store_settings
        self.port = 18_700
        config = uvicorn.Config(
            create_app(settings, store_settings), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> httpx.Client:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        return self.client

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(timeout=30)

        async def flush() -> None:
            from feature_store.redis_store import RedisStore

            store = RedisStore.from_settings(self.store_settings)
            try:
                await store.flush_namespace()
            finally:
                await store.close()

        asyncio.run(flush())


def _share(client: httpx.Client, users: list[str], item: str, k: int) -> float:
    hits = 0
    for user in users:
        body = client.post("/candidates", json={"user_id": user, "k": k, "exclude_seen": True}).json()
        hits += item in [c["item_id"] for c in body["candidates"]]
    return hits / max(1, len(users))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=6_000)
    parser.add_argument("--items", type=int, default=1_500)
    parser.add_argument("--clusters", type=int, default=12)
    parser.add_argument("--items-per-run", type=int, default=3, help="new items (runs) averaged")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument(
        "--redis-url", default=os.environ.get("RECSYS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="uptake-"))
    started = time.perf_counter()
    version, data = _train(folder, args.users, args.items, args.clusters)
    print(f"trained {version.name} in {time.perf_counter() - started:.0f}s", flush=True)
    counts = np.load(version / "profile_counts.npy")
    from feature_store.version_files import load_mapping

    published = load_mapping(version, "user_mapping.json")
    cluster_of = dict(zip([str(u) for u in data.all_user_ids], data.user_clusters.tolist(), strict=True))
    tiers = {
        "cold": [u for u, n in zip(published, counts.tolist(), strict=True) if 1 <= n < 5],
        "warm": [u for u, n in zip(published, counts.tolist(), strict=True) if 5 <= n < 20],
    }
    item_rows = data.items.to_pylist()
    item_cluster = data.item_clusters.tolist()
    rng = np.random.default_rng(3)
    sums: dict[tuple[int, str], list[float]] = {}
    with Served(version, args.redis_url, f"bench-uptake-{uuid.uuid4().hex[:8]}") as client:
        for run in range(args.items_per_run):
            cluster = int(rng.integers(args.clusters))
            source = item_rows[int(rng.choice(np.flatnonzero(np.array(item_cluster) == cluster)))]
            attributes = {k: v for k, v in source.items() if k not in ("item_id", "created_at")}
            attributes["tags"] = str(attributes["tags"]).split("|")
            item = f"new-{run}"
            assert (
                client.put(f"/items/{item}", json={"attributes": attributes}, headers=AUTH).status_code == 200
            )
            groups = {}
            for tier, users in tiers.items():
                fans = [u for u in users if cluster_of[u] == cluster]
                others = [u for u in users if cluster_of[u] != cluster]
                groups[(tier, "fans")] = list(rng.choice(fans, min(SAMPLE, len(fans)), replace=False))
                groups[(tier, "others")] = list(rng.choice(others, min(SAMPLE, len(others)), replace=False))
            asked = {u for g in groups.values() for u in g}
            takers = [u for u in published if cluster_of[u] == cluster and u not in asked]
            takers = list(rng.permutation(takers))
            given = 0
            for point in CHECKPOINTS:
                while given < point:
                    event = {"user_id": takers[given], "item_id": item, "event_type": "like"}
                    client.post("/interactions", json=event)
                    given += 1
                time.sleep(0.5)  # two polls of the item fold-in
                for (tier, who), users in groups.items():
                    sums.setdefault((point, f"{tier} {who}"), []).append(_share(client, users, item, args.k))
            print(f"run {run}: cluster {cluster} done", flush=True)
    columns = ["cold fans", "cold others", "warm fans", "warm others"]
    rows = [[point, *(round(float(np.mean(sums[(point, c)])), 3) for c in columns)] for point in CHECKPOINTS]
    print()
    print(f"share of answers (k={args.k}) holding the new item, mean of {args.items_per_run} new items:")
    print_table(["events on it", *columns], rows)


if __name__ == "__main__":
    main()
