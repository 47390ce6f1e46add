"""What one running app holds, built by the lifespan and reached by routes via `request.app.state`."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from fastapi import Request

from app.errors import field_error
from app.experiments import Experiment, Variant
from app.health import StoreHealth
from app.items import ItemsService
from app.metrics import ServiceMetrics
from app.recommend import Recommender
from app.settings import ServeSettings
from app.version_registry import VersionRegistry
from feature_store.base import FeatureStore
from feature_store.settings import StoreSettings

log = logging.getLogger("recsys.app")


@dataclass
class Services:
    settings: ServeSettings
    store: FeatureStore
    experiment: Experiment
    registry: VersionRegistry
    recommender: Recommender
    metrics: ServiceMetrics
    health: StoreHealth
    items: ItemsService
    searches: ThreadPoolExecutor
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def close(self) -> None:
        """Stop the background tasks, close the store and the search threads."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.store.close()
        self.searches.shutdown(wait=False, cancel_futures=True)

    def variant_for(self, header: str | None, user_id: str) -> Variant:
        """The header's variant (422 naming the known ones when it names none), else the hash's."""
        if header is None:
            return self.experiment.assign(user_id)
        variant = self.experiment.get(header.strip())
        if variant is None:
            known = ", ".join(self.experiment.names)
            raise field_error(
                ("header", "X-AB-Variant"), f"unknown variant {header!r}; known: {known}", header
            )
        return variant


async def services(request: Request) -> Services:
    """An async dependency on purpose: FastAPI runs sync ones on a thread pool, per request."""
    svc: Services = request.app.state.services
    return svc


async def open_services(
    settings: ServeSettings,
    store_settings: StoreSettings,
    experiment: Experiment,
    metrics: ServiceMetrics,
    threads: int,
    store: FeatureStore,
) -> Services:
    """Everything a request needs, with the active version loaded: what the HTTP app's lifespan
    builds, and what the in-process service (`app.inprocess`) builds, so both answer through
    the same objects. Background polling is the caller's choice."""
    health = StoreHealth()
    registry = VersionRegistry(
        settings.artifacts,
        store,
        experiment,
        settings.event_weights,
        metrics,
        settings.store_timeout_s,
        pin_ttl_s=store_settings.pin_ttl_s,
    )
    # Searches get threads of their own: a version loading on the default executor (seconds)
    # must never hold them up, and more search threads than cores only time-slice them.
    searches = ThreadPoolExecutor(threads, thread_name_prefix="recsys-search")
    recommender = Recommender(
        settings, store, registry, metrics, health, store_settings.recent_limit, searches
    )
    items = ItemsService(store, registry, recommender, searches)
    svc = Services(settings, store, experiment, registry, recommender, metrics, health, items, searches)
    await registry.refresh()
    if registry.active is None:
        log.warning("no model version loaded yet (publish one); /candidates answers 503 until then")
    return svc
