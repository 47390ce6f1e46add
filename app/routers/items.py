"""The items API: the catalog at run time (hide, expire, add, change, delete) and similar items.

Writes and the item description need the admin token (they change or reveal what every user is
served); similar items is a public read, like /candidates, for an item page.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.responses import Response

from app.errors import NoVersionError
from app.item_schemas import (
    MAX_SIMILAR,
    ItemBatch,
    ItemIn,
    ItemOut,
    ItemPatch,
    ItemsWritten,
    SimilarRequest,
    SimilarResponse,
)
from app.items import ItemGoneError, ItemNotFoundError
from app.responses import json_response
from app.schemas import BODY_ERRORS, ID_PATTERN, MAX_ID_LENGTH, ErrorResponse
from app.security import require_admin
from app.state import Services, services
from feature_store.base import StoreUnavailableError
from feature_store.catalog import CatalogConflictError

ItemIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_ID_LENGTH,
        pattern=ID_PATTERN,
        description="The item's id (URL-encoded; an id with a `/` is reached through POST /items).",
    ),
]

_ADMIN: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or wrong bearer token."},
    404: {"model": ErrorResponse, "description": "Unknown item, or admin endpoints disabled."},
    503: {"model": ErrorResponse, "description": "The store did not answer; send the same call again."},
}

admin_router = APIRouter(prefix="/items", tags=["items"], responses={**BODY_ERRORS, **_ADMIN})
public_router = APIRouter(prefix="/items", tags=["items"], responses=BODY_ERRORS)


def _unavailable(exc: StoreUnavailableError) -> HTTPException:
    return HTTPException(503, "the feature store did not answer; retry (an item write is idempotent)")


@admin_router.put("/{item_id}", response_model=ItemOut, summary="Create or replace an item")
async def put_item(
    item_id: ItemIdPath, body: ItemIn, svc: Annotated[Services, Depends(require_admin)]
) -> Response:
    """Stores the item whole (its attributes replace the model's), recommendable from the moment
    this returns unless hidden or outside its availability window. A deleted item is created again."""
    try:
        return json_response((await svc.items.put(item_id, body)).model_dump())
    except StoreUnavailableError as exc:
        raise _unavailable(exc) from exc


@admin_router.post("", response_model=ItemsWritten, summary="Create or replace up to 1,000 items")
async def put_items(body: ItemBatch, svc: Annotated[Services, Depends(require_admin)]) -> Response:
    """The batch form of PUT: all items are written together under one catalog generation, or none."""
    try:
        return json_response((await svc.items.put_batch(body)).model_dump())
    except StoreUnavailableError as exc:
        raise _unavailable(exc) from exc


@admin_router.patch(
    "/{item_id}",
    response_model=ItemOut,
    summary="Change an item's attributes, visibility or window",
    responses={
        409: {"model": ErrorResponse, "description": "The item is being changed concurrently; retry."},
        410: {"model": ErrorResponse, "description": "The item was deleted; PUT creates it again."},
    },
)
async def patch_item(
    item_id: ItemIdPath, body: ItemPatch, svc: Annotated[Services, Depends(require_admin)]
) -> Response:
    """Only the fields sent change (`{"hidden": true}` hides the item everywhere at once, a new
    price is what `lte` filters test from now on). An attribute sent as null is removed."""
    try:
        return json_response((await svc.items.patch(item_id, body)).model_dump())
    except ItemNotFoundError as exc:
        raise HTTPException(404, f"unknown item {item_id!r}: PUT creates it") from exc
    except ItemGoneError as exc:
        raise HTTPException(410, f"item {item_id!r} was deleted; PUT creates it again") from exc
    except CatalogConflictError as exc:
        raise HTTPException(409, str(exc)) from exc
    except StoreUnavailableError as exc:
        raise _unavailable(exc) from exc


@admin_router.delete("/{item_id}", response_model=ItemOut, summary="Delete an item for good")
async def delete_item(item_id: ItemIdPath, svc: Annotated[Services, Depends(require_admin)]) -> Response:
    """Never recommended again by any version, and dropped by the next training run."""
    try:
        return json_response((await svc.items.delete(item_id)).model_dump())
    except ItemNotFoundError as exc:
        raise HTTPException(404, f"unknown item {item_id!r}") from exc
    except StoreUnavailableError as exc:
        raise _unavailable(exc) from exc


@admin_router.get("/{item_id}", response_model=ItemOut, summary="What the service knows of an item")
async def get_item(item_id: ItemIdPath, svc: Annotated[Services, Depends(require_admin)]) -> Response:
    """Its attributes as filters see them, its run-time state, and whether /candidates may
    return it now (and why not)."""
    try:
        return json_response((await svc.items.describe(item_id)).model_dump())
    except ItemNotFoundError as exc:
        raise HTTPException(404, f"unknown item {item_id!r}") from exc
    except StoreUnavailableError as exc:
        raise _unavailable(exc) from exc


async def _similar(svc: Services, item_id: str, body: SimilarRequest) -> Response:
    try:
        answer = await svc.items.similar(item_id, body.k, body.filters)
    except NoVersionError as exc:
        return json_response({"detail": str(exc)}, 503)
    except ItemNotFoundError as exc:
        raise HTTPException(404, f"unknown item: {exc}") from exc
    return json_response(answer.model_dump())


_SIMILAR = {
    "response_model": SimilarResponse,
    "responses": {
        404: {"model": ErrorResponse, "description": "The serving version does not know the item."},
        503: {"model": ErrorResponse, "description": "No model version is loaded yet."},
    },
}


@public_router.get("/{item_id}/similar", summary="Items like this one", **_SIMILAR)  # type: ignore[arg-type]
async def get_similar(
    item_id: ItemIdPath,
    svc: Annotated[Services, Depends(services)],
    k: Annotated[int, Query(ge=1, le=MAX_SIMILAR, description="How many.")] = 20,
) -> Response:
    """The items the version's vectors score highest against this item's (ALS, else Two-Tower,
    else content; `method_used` says which), never the item itself nor a hidden, deleted or
    expired one."""
    return await _similar(svc, item_id, SimilarRequest(k=k))


@public_router.post("/{item_id}/similar", summary="Items like this one, under filters", **_SIMILAR)  # type: ignore[arg-type]
async def post_similar(
    item_id: ItemIdPath, body: SimilarRequest, svc: Annotated[Services, Depends(services)]
) -> Response:
    """As GET, with the filters of /candidates (category, price range, allow and deny lists)."""
    return await _similar(svc, item_id, body)
