"""Publish: make a trained version live in the feature store, all or nothing.

Order matters for safety: verify every file's checksum, open the index the service will open,
write every user under the version's own namespace (marked 'writing'), mark it 'complete', and
only then flip the active pointer in one atomic step. A failure or a kill at any point before the
flip leaves the old version live and the new one 'writing' (never activatable); running publish
again rewrites it (every write is an idempotent SET) and completes it. After the flip, versions
other than the new one, the previous one and any a running server pins for an A/B variant are
deleted, so a rollback target always remains and no served version disappears.

Run-time events need no step here: they are stored under users, not versions, and every version
folds in those newer than its training data when it reads a user (live_view.py), so events
recorded while this version was written, or while it was live, count in it and in a rollback.

The version name is checked first (`version_names`): it becomes a segment of every key the
version writes and the pattern its cleanup deletes by, so a name such as `{meta}` once deleted
the store's own pointer keys. Everything publish reads is opened under the verified manifest
(`version_paths.manifest_scope`): listed entries inside the folder, nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from feature_store.base import FeatureStore
from feature_store.index_files import IndexMeta, open_faiss_index, read_index_meta
from feature_store.manifest import ArtifactError, verify_version
from feature_store.version_files import ProfileTable, check_item_rows, load_profile_table
from feature_store.version_names import check_version_name
from feature_store.version_paths import manifest_scope

Say = Callable[[str], None]


@dataclass
class PublishReport:
    version: str
    users: int
    write_seconds: float
    total_seconds: float
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
    return list(_open_indexes(folder))


def _open_indexes(folder: Path) -> dict[str, IndexMeta]:
    metas = read_index_meta(folder)
    for meta in metas.values():
        open_faiss_index(folder, meta, mmap=True)
    return metas


def check_user_dims(table: ProfileTable, metas: dict[str, IndexMeta]) -> None:
    """Each published user embedding has its item index's dimension: a mismatch would fail every
    request of that model (a matrix product of the wrong shape), so it is refused before writing."""
    for name, users in table.embeddings.items():
        meta = metas.get(name)
        if meta is not None and users.shape[1] != meta.dim:
            raise ArtifactError(
                f"user embedding '{name}' has dimension {users.shape[1]}, its item index {meta.dim}.",
                public=f"user embedding '{name}' does not match its item index",
            )


async def publish_version(
    folder: Path,
    store: FeatureStore,
    *,
    say: Say = _quiet,
    progress: Callable[[int], None] | None = None,
    cleanup: bool = True,
) -> PublishReport:
    start = time.perf_counter()
    check_version_name(folder.name, "version folder name")
    say(f"verifying {folder}")
    manifest = verify_version(folder)
    version = check_version_name(manifest.version, "the manifest's version")
    if folder.name != version:
        raise ArtifactError(f"{folder}: the manifest names version {version!r}; the folder was renamed.")
    with manifest_scope(folder, manifest.files):
        metas = _open_indexes(folder)
        say(f"indexes readable: {', '.join(metas)}")
        table = load_profile_table(folder)
        if "als" not in metas:
            raise ArtifactError(f"{folder}: indexes.json has no 'als' index.", public="no 'als' index")
        check_user_dims(table, metas)
        check_item_rows(table, metas["als"].ntotal)
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
    await store.mark_version(version, {**status, "status": "complete", "completed": time.time()})
    previous = await store.activate(version)
    say(f"{version} is live (previous: {previous or 'none'})")
    deleted: list[str] = []
    if cleanup:
        pinned = await store.pinned_versions()
        rollback = await store.previous_version()  # republishing the live version keeps its previous
        keep = {version, previous, rollback, *pinned}
        if pinned - {version, previous, rollback}:
            say(
                f"kept versions A/B variants pin: {', '.join(sorted(pinned - {version, previous, rollback}))}"
            )
        for other, info in (await store.version_status()).items():
            if other not in keep and info.get("status") == "complete":
                try:
                    await store.delete_version(other)
                except ValueError as exc:  # pinned or activated since the pins were read
                    say(f"kept {other}: {exc}")
                    continue
                deleted.append(other)
        if deleted:
            say(f"deleted old versions: {', '.join(sorted(deleted))}")
    return PublishReport(
        version=version,
        users=len(table),
        write_seconds=write_seconds,
        total_seconds=time.perf_counter() - start,
        previous=previous,
        store=store.name,
        deleted=deleted,
    )
