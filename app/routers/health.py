"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.responses import json_response
from app.schemas import Liveness, Readiness
from app.state import Services, services
from feature_store.base import StoreUnavailableError

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Liveness, summary="The process is alive")
async def healthz() -> Response:
    return json_response({"status": "alive"})


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="A model version is loaded; says whether the store is reachable",
    responses={
        503: {"model": Readiness, "description": "No model version is loaded: do not send traffic yet."}
    },
)
async def readyz(svc: Annotated[Services, Depends(services)]) -> Response:
    """200 `ready`, or 200 `degraded` while the store is unreachable (requests still get popularity
    answers, so a load balancer should keep sending them) or this server does not serve what the
    store names (an invalid pointer, a refused version: the last good one keeps serving), or 503
    `not_ready` with no version.

    Anyone can read this, so it names versions and files of a version at most: no paths, no
    hosts, no ports, no sizes. The full reasons are in the log and in `GET /admin/status`."""
    try:
        async with asyncio.timeout(svc.settings.store_timeout_s):
            await svc.store.ping()
        svc.health.succeeded()
    except (StoreUnavailableError, TimeoutError) as exc:
        svc.metrics.store_errors.labels("ping").inc()
        svc.health.failed(str(exc) or "ping timed out")
    active = svc.registry.active
    problem = svc.registry.problem
    healthy = svc.health.ok and not svc.registry.missing_pins and problem is None
    body = {
        "status": "not_ready" if active is None else ("ready" if healthy else "degraded"),
        "model_version": active.name if active else None,
        "pinned_versions": sorted(svc.registry.pinned),
        "missing_pinned_versions": sorted(svc.registry.missing_pins),
        "refused_versions": svc.registry.public_refusals(),
        "versions_problem": problem,
        "store": {"name": svc.store.name, "ok": svc.health.ok, "reason": svc.health.public_reason},
    }
    return json_response(body, 503 if active is None else 200)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(svc: Annotated[Services, Depends(services)]) -> Response:
    return Response(svc.metrics.render(), media_type=CONTENT_TYPE_LATEST)
