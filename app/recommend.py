"""The request pipeline behind the routes: profile -> tier route -> strategy -> answer.

Routers stay thin; this module holds the order of things and the fallbacks, so a newcomer can
read one request from store read to response body here. Every failure below the request's
validation degrades to popularity and says so in `method_used`; nothing becomes a 500.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from app.errors import NoVersionError, field_error
from app.experiments import Variant
from app.health import StoreHealth
from app.metrics import ServiceMetrics
from app.retrieval.filters import CompiledFilter, FilterError, compile_filters
from app.retrieval.foldin import profile_interactions
from app.retrieval.routing import Capabilities, Method, Route, Thresholds, route
from app.retrieval.search import SearchParams
from app.schemas import CandidatesRequest, InteractionBatch
from app.settings import ServeSettings
from app.version_registry import VersionRegistry
from app.versions import ServingVersion
from feature_store.base import FeatureStore, LiveEvent, StoreUnavailableError, UserProfile

log = logging.getLogger("recsys.recommend")

_FOLDIN_INLINE_WORK = 2_000_000  # rows x dim^2 below which a fold-in runs on the loop (~0.2 ms)


@dataclass
class Answer:
    body: dict[str, Any]
    fallback_reason: str | None = None


class Recommender:
    def __init__(
        self,
        settings: ServeSettings,
        store: FeatureStore,
        registry: VersionRegistry,
        metrics: ServiceMetrics,
        health: StoreHealth,
        recent_limit: int,
    ) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self.metrics = metrics
        self.health = health
        self.recent_limit = recent_limit
        base = Thresholds(settings.warm_min_interactions, settings.hot_min_interactions)
        variants = registry.experiment.variants
        self._thresholds = {v.name: v.thresholds(base) for v in variants}
        self._params = {v.name: SearchParams(ef_search=v.ef_search or settings.ef_search) for v in variants}

    # -- reading the user --------------------------------------------------------------------

    async def _profile(self, version: ServingVersion, user_id: str) -> UserProfile | None:
        try:
            async with asyncio.timeout(self.settings.store_timeout_s):
                profile = await self.store.get_profile(version.name, user_id, self.recent_limit)
        except (StoreUnavailableError, TimeoutError) as exc:
            self.metrics.store_errors.labels("get_profile").inc()
            self.health.failed(str(exc) or "timed out")
            return None
        if not self.health.ok:
            self.health.succeeded()
        return profile

    async def _als_vector(self, version: ServingVersion, profile: UserProfile) -> np.ndarray | None:
        """The stored vector while it is current; a fold-in once the user has events the
        training run did not see (or has no stored vector at all)."""
        stored = profile.embeddings.get("als") if profile.known else None
        if stored is not None and (profile.live == 0 or version.foldin is None):
            return stored
        if version.foldin is None:
            return None
        rows, weights = profile_interactions(
            profile.seen, profile.recent_items, profile.recent_weights, self.settings.foldin_max_items
        )
        if not len(rows) or not np.any(weights > 0):
            return stored
        foldin = version.foldin
        if len(rows) * version.als.dim**2 <= _FOLDIN_INLINE_WORK:
            return foldin.fold_in(rows, weights)
        return await asyncio.to_thread(foldin.fold_in, rows, weights)

    # -- POST /candidates ----------------------------------------------------------------------

    def _compile(self, req: CandidatesRequest, version: ServingVersion) -> CompiledFilter:
        try:
            return compile_filters(req.filters, version.attributes, version.item_rows)
        except FilterError as exc:
            raise field_error(("body", *exc.field.split(".")), str(exc).split(": ", 1)[-1]) from exc

    async def candidates(self, req: CandidatesRequest, k: int, variant: Variant) -> Answer:
        version = self.registry.for_variant(variant)
        if version is None:
            raise NoVersionError("no model version is loaded yet; publish one (recsys publish)")
        filt = self._compile(req, version)
        profile = await self._profile(version, req.user_id)
        exclude = profile.seen if profile is not None and req.exclude_seen else None
        reason: str | None = None
        vector: np.ndarray | None = None
        if profile is None:
            chosen = route(None, Capabilities(), self._thresholds[variant.name])
            reason = "store unavailable"
        else:
            vector = await self._als_vector(version, profile) if profile.count > 0 else None
            caps = Capabilities(als=vector is not None)
            chosen = route(profile.count, caps, self._thresholds[variant.name])
            if chosen.is_fallback:
                reason = f"{chosen.wanted} unavailable for this user"
        try:
            rows, scores, source = await self._run(chosen, version, vector, k, filt, exclude, variant)
        except Exception:  # a strategy bug must cost this request its model, not a 500
            log.exception("%s failed for user %r; answering with popularity", chosen.method, req.user_id)
            chosen = Route(chosen.tier, Method.popularity_fallback, chosen.wanted)
            reason = f"{chosen.wanted} failed"
            rows, scores = version.popularity.top(k, filt.allowed, self._excluded(filt, exclude))
            source = "popularity"
        self.metrics.candidates.labels(variant.name, chosen.tier.value, chosen.method.value).inc()
        ids = version.item_ids
        body = {
            "user_id": req.user_id,
            "tier": chosen.tier.value,
            "method_used": chosen.method.value,
            "model_version": version.name,
            "variant": variant.name,
            "candidates": [
                {"item_id": ids[r], "score": s, "source": source}
                for r, s in zip(rows.tolist(), scores.tolist(), strict=True)
            ],
        }
        return Answer(body, reason)

    @staticmethod
    def _excluded(filt: CompiledFilter, exclude: np.ndarray | None) -> np.ndarray:
        if exclude is None or not len(exclude):
            return filt.denied
        return np.concatenate([filt.denied, exclude.astype(np.int64)])

    async def _run(
        self,
        chosen: Route,
        version: ServingVersion,
        vector: np.ndarray | None,
        k: int,
        filt: CompiledFilter,
        exclude: np.ndarray | None,
        variant: Variant,
    ) -> tuple[np.ndarray, np.ndarray, str]:
        if chosen.method is Method.als and vector is not None:
            started = time.perf_counter()
            result = await version.als.asearch(vector, k, filt, exclude, self._params[variant.name])
            self.metrics.search_seconds.labels(result.plan.value).observe(time.perf_counter() - started)
            return result.rows, result.scores, "als"
        rows, scores = version.popularity.top(k, filt.allowed, self._excluded(filt, exclude))
        return rows, scores, "popularity"

    # -- POST /interactions ---------------------------------------------------------------------

    def _live_events(self, batch: InteractionBatch, version: ServingVersion | None) -> list[LiveEvent]:
        table = version.event_weights if version is not None else self.settings.event_weights
        now = time.time()
        events = []
        for i, event in enumerate(batch.events):
            weight = event.weight
            if weight is None:
                assert event.event_type is not None
                weight = table.get(event.event_type.strip().lower())
                if weight is None:
                    known = ", ".join(sorted(table))
                    raise field_error(
                        ("body", "events", i, "event_type"),
                        f"unknown event type {event.event_type!r}; known: {known} (or give a weight)",
                        event.event_type,
                    )
            row = version.item_rows.get(event.item_id, -1) if version is not None else -1
            stamp = event.timestamp if event.timestamp is not None else now
            events.append(
                LiveEvent(event.user_id, event.item_id, float(weight), stamp, event.event_type, row)
            )
        return events

    async def record(self, batch: InteractionBatch, request_id: str | None) -> dict[str, Any]:
        """Apply a batch to every served version's profiles and append it to the stream once.
        Raises StoreUnavailableError when nothing could be stored (the caller answers 503)."""
        versions = self.registry.served()
        main = versions[0] if versions else None
        events = self._live_events(batch, main)
        try:
            result = await self.store.record(main.name if main else None, events, request_id)
            if not result.duplicate:
                for other in versions[1:]:
                    own = [replace(e, item_row=other.item_rows.get(e.item_id, -1)) for e in events]
                    await self.store.record(other.name, own, None, stream=False)
        except StoreUnavailableError as exc:
            self.metrics.store_errors.labels("record").inc()
            self.metrics.interactions.labels("not_stored").inc(len(events))
            self.health.failed(str(exc))
            raise
        self.metrics.interactions.labels("duplicate" if result.duplicate else "stored").inc(len(events))
        return {
            "stored": result.stored,
            "duplicate": result.duplicate,
            "unknown_items": sum(1 for e in events if e.item_row < 0),
            "model_version": main.name if main else None,
        }
