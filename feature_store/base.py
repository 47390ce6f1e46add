"""The one interface serving and publish use to reach user features, whatever holds them.

Two implementations pass the same contract tests (tests/feature_store/test_contract.py):
`RedisStore` for production and `EmbeddedStore` for a single process without Redis. Everything
is async so the service never blocks its event loop on the store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from feature_store.catalog import CatalogChanges, ItemRecord
from feature_store.version_files import ProfileTable

if TYPE_CHECKING:
    from feature_store.live_view import LiveView


class StoreUnavailableError(Exception):
    """The store cannot be reached or answered too late; callers degrade (popularity fallback)."""


@dataclass
class UserProfile:
    """A user as serving sees them in one version: published data plus run-time events."""

    user_id: str
    version: str
    known: bool  # published in this version (has embeddings from training)
    count: int  # distinct known items with a positive net weight, training and live (live_view.py)
    live: int = 0  # events recorded after the version's training data (live_view.py)
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    seen: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    recent_items: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    recent_weights: np.ndarray = field(default_factory=lambda: np.empty(0, np.float32))
    # The store's catalog generation, read in the same round trip (catalog.py); None: not read.
    catalog_generation: int | None = None


@dataclass(frozen=True)
class LiveEvent:
    """One interaction recorded at run time. `item_row` is the item's row in the serving
    version's item mapping, or -1 for an item it does not know; only the answer's `unknown_items`
    uses it: the store keeps the item id, and each version maps it to its own rows (live_view.py)."""

    user_id: str
    item_id: str
    weight: float
    timestamp: float
    event_type: str | None = None
    item_row: int = -1

    def stream_fields(self) -> dict[str, str]:
        fields = {"user_id": self.user_id, "item_id": self.item_id, "weight": repr(self.weight)}
        fields["timestamp"] = repr(self.timestamp)
        if self.event_type is not None:
            fields["event_type"] = self.event_type
        return fields


@dataclass(frozen=True)
class RecordResult:
    stored: int  # events applied to profiles and appended to the stream
    duplicate: bool = False  # the request id was seen before; nothing was applied again


@dataclass(frozen=True)
class StreamEntry:
    entry_id: str
    fields: dict[str, str]


ProgressFn = Callable[[int], None]


@runtime_checkable
class FeatureStore(Protocol):
    """What serving reads per request and what publish writes per version."""

    name: str

    async def ping(self) -> None:
        """Raise StoreUnavailableError when the store cannot answer."""

    async def active_version(self) -> str | None: ...

    async def previous_version(self) -> str | None: ...

    async def activate(self, version: str) -> str | None:
        """Make `version` live in one atomic step, keep the old one as previous; return it."""

    async def write_version(
        self, version: str, table: ProfileTable, progress: ProgressFn | None = None
    ) -> int:
        """Bulk-write every user of a version (not yet live); safe to repeat. Returns users written."""

    async def version_status(self) -> dict[str, dict[str, Any]]:
        """Versions the store holds, with their status ('writing' or 'complete') and size."""

    async def mark_version(self, version: str, status: dict[str, Any]) -> None: ...

    async def delete_version(self, version: str) -> int:
        """Remove a version's keys. Refuses (ValueError) the active, the previous and any pinned
        version: each may be served. Returns how many keys were removed."""

    async def pin(self, holder: str, versions: Sequence[str], ttl_s: float) -> None:
        """Declare that `holder` (a server process) serves `versions` beside the active one (its
        A/B pins), for `ttl_s` seconds; servers repeat it while they run."""

    async def pinned_versions(self) -> set[str]:
        """Versions some running server declared it serves (pins not yet expired)."""

    async def acquire_lock(self, name: str, holder: str, ttl_s: float) -> str | None:
        """Take the named lock for `holder` for `ttl_s` seconds (or renew it, if `holder` has it):
        None when it is ours, else who holds it. A holder that dies loses it after `ttl_s`."""

    async def release_lock(self, name: str, holder: str) -> bool:
        """Give the lock up if `holder` still has it (not one that expired and was taken since)."""

    async def get_profile(
        self, version: str, user_id: str, recent_limit: int = 50, view: LiveView | None = None
    ) -> UserProfile:
        """The user as `version` sees them: its published profile, plus the user's run-time
        events folded in by `view` (live_view.py); without a view, the published part only."""

    async def record(
        self, events: Sequence[LiveEvent], request_id: str | None = None, stream: bool = True
    ) -> RecordResult:
        """Store events under their users (no version: every version folds them in) and append
        them to the stream. A repeated `request_id` applies nothing again."""

    async def read_events(self, after: str = "0", count: int = 10_000) -> list[StreamEntry]:
        """Stream entries after an entry id, oldest first (for training and for replay)."""

    async def put_items(
        self, records: Sequence[ItemRecord], expected: Mapping[str, int] | None = None
    ) -> int:
        """Write item records (catalog.py) under one new catalog generation, all or none, and
        return it. `expected` maps item ids to the seq the caller read (0: absent); when any
        differs, nothing is written and CatalogConflictError names the item."""

    async def get_items(self, item_ids: Sequence[str]) -> dict[str, ItemRecord]:
        """The current records of these items (absent ones left out)."""

    async def catalog_changes(self, after: int) -> CatalogChanges:
        """Every item whose record was written after generation `after`, newest record each."""

    async def catalog_generation(self) -> int: ...

    async def close(self) -> None: ...
