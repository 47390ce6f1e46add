"""POST /interactions: events recorded at run time, seen by the very next /candidates call."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header
from fastapi.responses import Response

from app.errors import field_error
from app.responses import json_response
from app.schemas import (
    BODY_ERRORS,
    ErrorResponse,
    EventOrBatch,
    InteractionBatch,
    InteractionsResponse,
)
from app.state import Services, services
from feature_store.base import StoreUnavailableError

router = APIRouter(tags=["interactions"], responses=BODY_ERRORS)


@router.post(
    "/interactions",
    response_model=InteractionsResponse,
    summary="Record one event or a batch",
    responses={
        503: {
            "model": ErrorResponse,
            "description": "The store did not confirm the write: retry with the same request id "
            "(each part of a batch is applied once per request id: on one Redis the batch is one "
            "part, on a Redis Cluster each user and the stream are, so the retry stores what is "
            "missing and nothing twice).",
        },
    },
)
async def post_interactions(
    body: Annotated[EventOrBatch, Body(description="One event, or {events: [...]}.")],
    svc: Annotated[Services, Depends(services)],
    idempotency_key: Annotated[
        str | None,
        Header(max_length=128, description="Same as the body's request_id: a retry stores nothing twice."),
    ] = None,
) -> Response:
    """Stores the events once under their users, where every version that serves them (the
    live one, the next one published, one rolled back to, an A/B pin) counts them from the very
    next /candidates call, and appends them to the stream the next training run reads. Unknown
    item ids are stored and streamed (the next model may know them) and counted in
    `unknown_items`."""
    batch = body if isinstance(body, InteractionBatch) else InteractionBatch(events=[body])
    if len(batch.events) > svc.settings.max_events_per_request:
        raise field_error(
            ("body", "events"), f"at most {svc.settings.max_events_per_request} events per request", None
        )
    request_id = batch.request_id or idempotency_key
    try:
        result = await svc.recommender.record(batch, request_id)
    except StoreUnavailableError:
        # The reason (host, port, the client's error) is logged and counted by the recommender;
        # an unauthenticated answer carries none of it.
        detail = (
            "not stored: the feature store did not confirm the write; retry with the same request "
            "id, which stores the events exactly once whether or not this attempt reached it"
        )
        return json_response({"detail": detail}, 503)
    return json_response(result)
