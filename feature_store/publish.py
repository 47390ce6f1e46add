"""Publish: make a trained version live in the feature store, all or nothing.

Order matters for safety: verify every file's checksum, open the index the service will open,
write every user under the version's own namespace (marked 'writing'), replay the run-time events
that arrived after the training data was cut, mark it 'complete', and only then flip the active
pointer in one atomic step. A failure or a kill at any point before the flip leaves the old
version live and the new one 'writing' (never activatable); running publish again rewrites it
(every write is an idempotent SET) and completes it. After the flip, versions other than the new
and the previous one are deleted, so a rollback target always remains.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from feature_store.base import FeatureStore, LiveEvent
from feature_store.index_files import open_faiss_index, read_index_meta
from feature_store.manifest import ArtifactError, verify_version
from feature_store.version_files import ITEM_MAPPING, load_mapping, load_profile_table

Say = Callable[[str], None]


@dataclass
class PublishReport:
    version: str
    users: int
    write_seconds: float
    total_seconds: float
    replayed_events: int
    previous: str | None
    store: str = ""
    deleted: list[str] = field(default_factory=list)

    @property
    def users_per_second(self) -> float:
        return self.users / self.write_seconds if self.write_seconds > 0 else float("inf")


def _quiet(_: str) -> None:
    return None


def check_indexes(folder: Path) -> list[str]:
    """Open every index of the version the way the service will; ArtifactError if one fails."""
    names = []
    for name, meta in read_index_meta(folder).items():
        open_faiss_index(folder, meta, mmap=True)
        names.append(name)
    return names


async def replay_events(
    store: FeatureStore, version: str, since: float, item_rows: dict[str, int], page: int = 10_000
) -> int:
    """Apply stream events newer than the training data (`since`, epoch seconds) to `version`, so
    interactions recorded while it trained still count once it is live."""
    applied, after = 0, "0"
    while True:
        entries = await store.read_events(after=after, count=page)
        if not entries:
            return applied
        after = entries[-1].entry_id
        batch = []
        for entry in entries:
            f = entry.fields
            try:
                ts = float(f.get("timestamp", "nan"))
            except ValueError:
                continue
            if not ts > since:  # already in the training data (or no usable time)
                continue
            item = f.get("item_id", "")
            batch.append(
                LiveEvent(
                    user_id=f.get("user_id", ""),
                    item_id=item,
                    weight=float(f.get("weight", "1")),
                    timestamp=ts,
                    event_type=f.get("event_type"),
                    item_row=item_rows.get(item, -1),
                )
            )
        if batch:
            await store.record(version, batch, stream=False)
            applied += len(batch)


async def publish_version(
    folder: Path,
    store: FeatureStore,
    *,
    say: Say = _quiet,
    progress: Callable[[int], None] | None = None,
    replay: bool = True,
    cleanup: bool = True,
) -> PublishReport:
    start = time.perf_counter()
    say(f"verifying {folder}")
    manifest = verify_version(folder)
    version = manifest.version
    if folder.name != version:
        raise ArtifactError(f"{folder}: the manifest names version {version!r}; the folder was renamed.")
    indexes = check_indexes(folder)
    say(f"indexes readable: {', '.join(indexes)}")
    table = load_profile_table(folder)
    status = {
        "status": "writing",
        "users": len(table),
        "fingerprint": manifest.data_fingerprint,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    await store.mark_version(version, status)
    say(f"writing {len(table):,} users to the {store.name} store")
    t0 = time.perf_counter()
    await store.write_version(version, table, progress)
    write_seconds = time.perf_counter() - t0
    replayed = 0
    data_until = manifest.hyperparameters.get("data_until")
    if replay and data_until is not None:
        item_rows = {item: i for i, item in enumerate(load_mapping(folder, ITEM_MAPPING))}
        replayed = await replay_events(store, version, float(data_until), item_rows)
        if replayed:
            say(f"replayed {replayed:,} events recorded after the training data")
    await store.mark_version(version, {**status, "status": "complete", "completed": time.time()})
    previous = await store.activate(version)
    say(f"{version} is live (previous: {previous or 'none'})")
    deleted: list[str] = []
    if cleanup:
        keep = {version, previous}
        for other, info in (await store.version_status()).items():
            if other not in keep and info.get("status") == "complete":
                await store.delete_version(other)
                deleted.append(other)
        if deleted:
            say(f"deleted old versions: {', '.join(sorted(deleted))}")
    return PublishReport(
        version=version,
        users=len(table),
        write_seconds=write_seconds,
        total_seconds=time.perf_counter() - start,
        replayed_events=replayed,
        previous=previous,
        store=store.name,
        deleted=deleted,
    )
