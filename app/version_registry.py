"""Which versions serve: the active one (the store's pointer) and any an A/B variant pins.

A new active version is loaded on a thread beside the serving one and swapped in with one
assignment; requests already running keep the object they started with, so a reload drops
nothing. A version that fails verification is remembered as failed (an error metric and a log
line name the file) and the old one keeps serving until the pointer moves again or an admin
reload asks for another try.

The pointer is untrusted data (anyone with write access to the store can set it), so it is held
to the version name rule before it is used at all: a path, `..`, bytes that are not UTF-8 or a
JSON number are an invalid pointer, logged and counted once per change, reported as `degraded`
by /readyz, and the last good version keeps serving (or, at start-up, none: the server still
starts). Any error while loading is a refusal, never an exception out of here: start-up and the
poll go on. A refusal is remembered with the sha256 of the manifest it was refused with, so the
poll does not re-hash a bad version every few seconds, yet retries it as soon as it is replaced.
What unauthenticated clients see (`refused_public`, `problem`) carries no paths, hosts or sizes;
the full reasons are in the log and `GET /admin/status`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
from pathlib import Path

from app.experiments import Experiment, Variant
from app.metrics import ServiceMetrics
from app.versions import ServingVersion, load_serving_version
from feature_store.base import FeatureStore, StoreUnavailableError
from feature_store.manifest import ArtifactError, manifest_digest, read_latest
from feature_store.version_names import is_version_name
from feature_store.version_paths import GENERIC_REFUSAL

INVALID_POINTER = "the store's active pointer does not name a valid version; serving the last good one"


class VersionRefusedError(Exception):
    """An admin asked for a version that does not verify or load; nothing was switched."""


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
        pin_ttl_s: float = 60.0,
    ) -> None:
        self.artifacts = artifacts
        self.store = store
        self.experiment = experiment
        self.event_weights = event_weights
        self.metrics = metrics
        self.store_timeout_s = store_timeout_s
        self.active: ServingVersion | None = None
        self.pinned: dict[str, ServingVersion] = {}
        self.failed: dict[str, str] = {}  # version -> why it was refused (full: log and admin)
        self.refused_public: dict[str, str] = {}  # the same without paths, hosts or sizes
        self._refused_digest: dict[str, str | None] = {}  # its manifest's sha256 when refused
        self.pointer_problem: str | None = None  # the invalid pointer, as repr (admin only)
        self._wanted: str | None = None  # what the store's pointer named at the last read
        self.missing_pins: dict[str, str] = {}  # pinned version -> why its variant cannot have it
        self.pin_ttl_s = pin_ttl_s
        self._holder = f"{socket.gethostname()}:{os.getpid()}"
        self._lock = asyncio.Lock()

    def for_variant(self, variant: Variant) -> ServingVersion | None:
        """The version a variant serves: its pin when that loaded and the store holds its users,
        else the active one (and `pin_problem` says why, for the answer's fallback header)."""
        if variant.model_version is not None and variant.model_version not in self.missing_pins:
            pinned = self.pinned.get(variant.model_version)
            if pinned is not None:
                return pinned
        return self.active

    def pin_problem(self, variant: Variant) -> str | None:
        """Why a variant does not get the version it pins, or None when it does (or pins none)."""
        name = variant.model_version
        if name is None or (name in self.pinned and name not in self.missing_pins):
            return None
        why = self.missing_pins.get(name) or ("refused" if name in self.failed else "not loaded")
        return f"pinned version {name} {why}; serving the active version"

    def served(self) -> list[ServingVersion]:
        """Every distinct version requests can reach (live events are applied to each)."""
        out = [] if self.active is None else [self.active]
        out += [v for v in self.pinned.values() if v is not self.active]
        return out

    async def _pointer(self) -> tuple[bool, str | None]:
        """(reached the store, its active version when that is a valid version name)."""
        try:
            async with asyncio.timeout(self.store_timeout_s * 5):
                raw: object = await self.store.active_version()
        except (StoreUnavailableError, TimeoutError):
            self.metrics.store_errors.labels("active_version").inc()
            return False, None
        except Exception as exc:  # bytes that are not UTF-8, an ACTIVE.json that is not an object
            self._invalid_pointer(f"unreadable value ({exc.__class__.__name__}: {str(exc)[:120]})")
            return True, None
        if raw is None or is_version_name(raw):
            if self.pointer_problem is not None:
                log.warning("the store's active pointer is valid again: %r", raw)
            self.pointer_problem = None
            return True, raw if isinstance(raw, str) else None
        self._invalid_pointer(f"{raw!r:.200}")
        return True, None

    def _invalid_pointer(self, shown: str) -> None:
        """Log and count an invalid pointer once per distinct value, not once per poll."""
        if shown != self.pointer_problem:
            self.metrics.version_loads.labels("invalid_pointer").inc()
            log.error(
                "the store's active pointer %s is not a valid version name; keeping %s", shown, self._name()
            )
        self.pointer_problem = shown

    def _attempt(self, name: str) -> tuple[ServingVersion | ArtifactError, str | None]:
        """Load `name` on a worker thread: the version or why not, and the manifest digest it was
        tried with. Never raises: whatever a malformed version makes a reader raise is a refusal."""
        digest = manifest_digest(self.artifacts / name) if is_version_name(name) else None
        try:
            return (
                load_serving_version(
                    self.artifacts, name, self.event_weights, check_profiles=self.store.name == "embedded"
                ),
                digest,
            )
        except ArtifactError as exc:
            return exc, digest
        except Exception as exc:  # load_serving_version wraps errors already; this is the last line
            log.exception("version %s: unexpected error while loading", name)
            return ArtifactError(f"{exc.__class__.__name__}: {exc}"), digest

    async def _still_refused(self, name: str) -> bool:
        """Refused before, and its manifest is still the one it was refused with."""
        if name not in self.failed:
            return False
        if not is_version_name(name):
            return True
        digest = await asyncio.to_thread(manifest_digest, self.artifacts / name)
        return digest == self._refused_digest.get(name)

    async def _load(self, name: str) -> ServingVersion | None:
        result, digest = await asyncio.to_thread(self._attempt, name)
        if isinstance(result, ArtifactError):
            self.failed[name] = str(result)
            self.refused_public[name] = result.public
            self._refused_digest[name] = digest
            self.metrics.version_loads.labels("refused").inc()
            log.error("version %s refused, keeping %s: %s", name, self._name(), result)
            return None
        loaded = result
        self.failed.pop(name, None)
        self.refused_public.pop(name, None)
        self._refused_digest.pop(name, None)
        # A 1M-item version is millions of long-lived objects (ids, lookup dicts): keep them out
        # of the collector's generations so a full collection does not walk them mid-request.
        gc.freeze()
        self.metrics.version_loads.labels("loaded").inc()
        log.info("version %s loaded from %s", name, loaded.folder)
        return loaded

    def _name(self) -> str:
        return self.active.name if self.active is not None else "none"

    def _install(self, loaded: ServingVersion) -> bool:
        """Make `loaded` the active version (one assignment); True when that changed anything."""
        if self.active is loaded:
            return False
        old, self.active = self.active, loaded
        if old is not None:
            self.metrics.active_version.remove(old.name)
        self.metrics.active_version.labels(loaded.name).set(1)
        return True

    @property
    def problem(self) -> str | None:
        """Why this server does not serve what the store names, for /readyz: no paths, no hosts,
        no sizes (only a valid version name and the public part of a refusal)."""
        if self.pointer_problem is not None:
            return INVALID_POINTER
        wanted = self._wanted
        if wanted is not None and wanted != self._name() and wanted in self.failed:
            why = self.refused_public.get(wanted, GENERIC_REFUSAL)
            return f"the store's active version {wanted} was refused ({why}); serving {self._name()}"
        return None

    def public_refusals(self) -> dict[str, str]:
        """Refused versions with their public reasons (only names that follow the rule)."""
        return {name: why for name, why in self.refused_public.items() if is_version_name(name)}

    def status(self) -> dict[str, object]:
        """Everything, details included: for the authenticated admin endpoints only."""
        return {
            "model_version": self.active.name if self.active else None,
            "active_folder": str(self.active.folder) if self.active else None,
            "store_pointer": self._wanted,
            "invalid_pointer": self.pointer_problem,
            "pinned_versions": sorted(self.pinned),
            "refused": dict(self.failed),
            "problem": self.problem,
        }

    async def prepare(self, name: str) -> ServingVersion:
        """`name` fully loaded and validated, before any pointer moves (admin activate): a version
        already served is reused, anything else is loaded now, retried even if refused before.
        Raises VersionRefusedError with the full reason when it does not load."""
        for served in self.served():
            if served.name == name:
                return served
        loaded = await self._load(name)
        if loaded is None:
            raise VersionRefusedError(self.failed.get(name, GENERIC_REFUSAL))
        return loaded

    async def install(self, loaded: ServingVersion) -> bool:
        """Serve a version `prepare` returned, once the store's pointer names it."""
        async with self._lock:
            self._wanted = loaded.name
            return self._install(loaded)

    async def refresh(self, retry_failed: bool = False) -> bool:
        """Follow the store's active pointer; return True when the serving version changed."""
        async with self._lock:
            reached, wanted = await self._pointer()
            if reached:
                self._wanted = wanted
            elif self.active is None:
                # Store down at start-up: serve what training wrote last (popularity answers until
                # the store is back), rather than nothing. A reachable store with nothing
                # published means nothing is live: /candidates says so with a 503.
                wanted = await asyncio.to_thread(self._latest)
            changed = False
            if (
                wanted is not None
                and wanted != self._name()
                and (retry_failed or not await self._still_refused(wanted))
            ):
                loaded = await self._load(wanted)
                if loaded is not None:
                    changed = self._install(loaded)
            await self._refresh_pins(retry_failed)
            await self._declare_pins()
            return changed

    def _latest(self) -> str | None:
        """`LATEST`, when it names a valid version (it is a file, as untrusted as the pointer)."""
        try:
            name = read_latest(self.artifacts)
        except OSError as exc:
            log.error("cannot read LATEST: %s", exc)
            return None
        if name is not None and not is_version_name(name):
            log.error("LATEST names %r, not a valid version name; ignored", name[:200])
            return None
        return name

    async def _declare_pins(self) -> None:
        """Tell the store which versions this server's variants pin, so publish's cleanup keeps
        them (each replica may hold its own A/B file), and check the store still holds them: a
        pinned version whose users are gone would answer every user as a stranger."""
        wanted = sorted({v.model_version for v in self.experiment.variants if v.model_version is not None})
        if not wanted:
            self.missing_pins = {}
            return
        try:
            async with asyncio.timeout(self.store_timeout_s * 5):
                await self.store.pin(self._holder, wanted, self.pin_ttl_s)
                status = await self.store.version_status()
        except (StoreUnavailableError, TimeoutError):
            self.metrics.store_errors.labels("pin").inc()
            return  # the store is down: health says so already; keep the last known state
        missing = {
            name: "is not in the feature store (deleted, or never published there)"
            for name in wanted
            if status.get(name, {}).get("status") != "complete"
        }
        for name in missing.keys() - self.missing_pins.keys():
            log.error("A/B pinned version %s is not in the store; its variant gets the active one", name)
        self.missing_pins = missing

    async def _refresh_pins(self, retry_failed: bool) -> None:
        wanted = {v.model_version for v in self.experiment.variants if v.model_version is not None}
        for name in list(self.pinned):
            if name not in wanted:
                del self.pinned[name]
        for name in sorted(wanted - set(self.pinned)):
            if self.active is not None and self.active.name == name:
                self.pinned[name] = self.active
            elif retry_failed or not await self._still_refused(name):
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
