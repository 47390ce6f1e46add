"""What one running app holds, built by the lifespan and reached by routes via `request.app.state`."""

from __future__ import annotations

import asyncio
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
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

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
