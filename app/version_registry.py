"""Which versions serve: the active one (the store's pointer) and any an A/B variant pins.

A new active version is loaded on a thread beside the serving one and swapped in with one
assignment; requests already running keep the object they started with, so a reload drops
nothing. A version that fails verification is remembered as failed (an error metric and a log
line name the file) and the old one keeps serving until the pointer moves again or an admin
reload asks for another try.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from pathlib import Path

from app.experiments import Experiment, Variant
from app.metrics import ServiceMetrics
from app.versions import ServingVersion, load_serving_version
from feature_store.base import FeatureStore, StoreUnavailableError
from feature_store.manifest import ArtifactError, read_latest

log = logging.getLogger("recsys.versions")


class VersionRegistry:
    def __init__(
        self,
        artifacts: Path,
        store: FeatureStore,
        experiment: Experiment,
        event_weights: dict[str, float],
        metrics: ServiceMetrics,
        store_timeout_s: float,
    ) -> None:
        self.artifacts = artifacts
        self.store = store
        self.experiment = experiment
        self.event_weights = event_weights
        self.metrics = metrics
        self.store_timeout_s = store_timeout_s
        self.active: ServingVersion | None = None
        self.pinned: dict[str, ServingVersion] = {}
        self.failed: dict[str, str] = {}  # version -> why it was refused
        self._lock = asyncio.Lock()

    def for_variant(self, variant: Variant) -> ServingVersion | None:
        """The version a variant serves: its pin when that loaded, else the active one."""
        if variant.model_version is not None:
            pinned = self.pinned.get(variant.model_version)
            if pinned is not None:
                return pinned
        return self.active

    def served(self) -> list[ServingVersion]:
        """Every distinct version requests can reach (live events are applied to each)."""
        out = [] if self.active is None else [self.active]
        out += [v for v in self.pinned.values() if v is not self.active]
        return out

    async def _pointer(self) -> tuple[bool, str | None]:
        """(reached the store, its active version)."""
        try:
            async with asyncio.timeout(self.store_timeout_s * 5):
                version = await self.store.active_version()
            return True, version
        except (StoreUnavailableError, TimeoutError):
            self.metrics.store_errors.labels("active_version").inc()
            return False, None

    async def _load(self, name: str) -> ServingVersion | None:
        try:
            loaded = await asyncio.to_thread(load_serving_version, self.artifacts, name, self.event_weights)
        except ArtifactError as exc:
            self.failed[name] = str(exc)
            self.metrics.version_loads.labels("refused").inc()
            log.error("version %s refused, keeping %s: %s", name, self._name(), exc)
            return None
        self.failed.pop(name, None)
        # A 1M-item version is millions of long-lived objects (ids, lookup dicts): keep them out
        # of the collector's generations so a full collection does not walk them mid-request.
        gc.freeze()
        self.metrics.version_loads.labels("loaded").inc()
        log.info("version %s loaded from %s", name, loaded.folder)
        return loaded

    def _name(self) -> str:
        return self.active.name if self.active is not None else "none"

    async def refresh(self, retry_failed: bool = False) -> bool:
        """Follow the store's active pointer; return True when the serving version changed."""
        async with self._lock:
            reached, wanted = await self._pointer()
            if not reached and self.active is None:
                # Store down at start-up: serve what training wrote last (popularity answers until
                # the store is back), rather than nothing. A reachable store with nothing
                # published means nothing is live: /candidates says so with a 503.
                wanted = read_latest(self.artifacts)
            changed = False
            if wanted is not None and wanted != self._name() and (retry_failed or wanted not in self.failed):
                loaded = await self._load(wanted)
                if loaded is not None:
                    old, self.active = self.active, loaded
                    if old is not None:
                        self.metrics.active_version.remove(old.name)
                    self.metrics.active_version.labels(loaded.name).set(1)
                    changed = True
            await self._refresh_pins(retry_failed)
            return changed

    async def _refresh_pins(self, retry_failed: bool) -> None:
        wanted = {v.model_version for v in self.experiment.variants if v.model_version is not None}
        for name in list(self.pinned):
            if name not in wanted:
                del self.pinned[name]
        for name in sorted(wanted - set(self.pinned)):
            if self.active is not None and self.active.name == name:
                self.pinned[name] = self.active
            elif retry_failed or name not in self.failed:
                loaded = await self._load(name)
                if loaded is not None:
                    self.pinned[name] = loaded

    async def poll(self, interval_s: float) -> None:
        """Background task: follow the pointer every `interval_s` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.refresh()
            except Exception:  # a bad poll must not end polling; the next one tries again
                log.exception("version poll failed")
