"""The app factory: `uvicorn --factory app.main:create_app` or `recsys serve`.

The lifespan opens the feature store, loads the active version (verified, index read once),
starts polling the active pointer, and closes everything on shutdown. Settings are read once,
here, from RECSYS_* variables (or passed in by tests and the CLI).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.body import configured_limits, register_schemas
from app.errors import UNPARSABLE_BODY, CatalogStaleError, validation_body
from app.experiments import load_experiment
from app.metrics import ServiceMetrics
from app.middleware import ObservedLimitedMiddleware
from app.responses import json_response
from app.routers import admin, candidates, health, interactions, items
from app.schemas import CandidatesRequest
from app.security import API_KEY_ERRORS, require_api_key
from app.settings import ServeSettings
from app.state import open_services
from feature_store.factory import open_store
from feature_store.settings import StoreSettings

DESCRIPTION = """
Candidate generation for recommendations. `POST /candidates` routes each user by interaction count
(cold: popularity or content, warm: ALS, hot: ensemble) and searches the item index under filters;
every answer names the `method_used`, the `model_version` and the A/B `variant`.
`POST /interactions` records events that the next request already sees.
"""


def search_threads(settings: ServeSettings) -> int:
    """One search thread per core, shared by the workers. The count matters little (1M-item
    model, wrk at 32 connections: 1, 2 or 6 threads gave 921-963 requests/s with one worker,
    1,379-1,392 with two); what matters is that searches have threads of their own."""
    if settings.search_threads is not None:
        return settings.search_threads
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // settings.workers)


def pin_blas_threads() -> None:
    """One BLAS thread per worker, as Faiss gets one OpenMP thread: concurrency comes from
    requests and workers, and a BLAS call that fans out to a core busy with another request (or
    the load generator) waits for it. Measured on ML-1M: the 3,706 x 64 product takes 13 us on
    one thread and 14 us on two, and one worker served 7% more requests a second pinned."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


def create_app(settings: ServeSettings | None = None, store_settings: StoreSettings | None = None) -> FastAPI:
    settings = settings or ServeSettings()
    store_settings = store_settings or StoreSettings(artifacts=settings.artifacts)
    experiment = load_experiment(settings.ab_config)  # a bad A/B file stops start-up with its reason
    metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pin_blas_threads()
        svc = await open_services(
            settings,
            store_settings,
            experiment,
            metrics,
            search_threads(settings),
            open_store(store_settings),
        )
        if settings.reload_poll_s > 0:
            svc.tasks.append(asyncio.create_task(svc.registry.poll(settings.reload_poll_s)))
        if settings.new_item_poll_s > 0:
            svc.tasks.append(asyncio.create_task(svc.recommender.follow_new_items(settings.new_item_poll_s)))
        app.state.services = svc
        try:
            yield
        finally:
            await svc.close()

    # Swagger UI from files the service serves itself (fastapi-offline ships them): the default
    # page loads them from a public CDN, and was blank on a machine without internet. ReDoc is
    # not served: it still fetches its logo from cdn.redoc.ly, and Swagger UI shows the same.
    app = FastAPIOffline(
        redoc_url=None,
        title="recsys candidate service",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    # The API-key check costs a dependency on every request, so it is only mounted when keys exist
    # (and only then does the OpenAPI document show the scheme).
    public: dict[str, Any] = (
        {"dependencies": [Depends(require_api_key)], "responses": API_KEY_ERRORS} if settings.api_keys else {}
    )
    for router in (candidates.router, interactions.router, items.public_router):
        app.include_router(router, **public)
    for router in (health.router, admin.router, items.admin_router):
        app.include_router(router)
    register_schemas(app, [CandidatesRequest])  # parsed by its route itself (app/body.py)
    configured_limits(app, settings.max_k, settings.max_events_per_request, settings.max_batch_users)

    @app.exception_handler(CatalogStaleError)
    async def catalog_stale(request: Request, exc: CatalogStaleError) -> Response:
        return json_response({"detail": str(exc)}, 503)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return json_response(validation_body(exc.errors()), 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:  # FastAPI's "error parsing the body": bytes that are not UTF-8
            return json_response(validation_body([UNPARSABLE_BODY]), 422)
        return await http_exception_handler(request, exc)

    app.add_middleware(ObservedLimitedMiddleware, metrics=metrics, max_body_bytes=settings.max_body_bytes)
    return app
