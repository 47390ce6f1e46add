"""Admin operations, behind a bearer token from settings (disabled when none is configured)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import Response
from pydantic import BaseModel, Field

from app.responses import json_response
from app.schemas import ErrorResponse
from app.security import require_admin
from app.state import Services
from feature_store.base import StoreUnavailableError
from feature_store.errors import VersionNotReadyError

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    responses={
        401: {"model": ErrorResponse, "description": "Missing or wrong bearer token."},
        404: {"model": ErrorResponse, "description": "Admin endpoints are disabled (no RECSYS_ADMIN_TOKEN)."},
    },
)


class ActivateRequest(BaseModel):
    version: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.\-]+$")


def _state(svc: Services, changed: bool) -> Response:
    active = svc.registry.active
    body = {
        "changed": changed,
        "model_version": active.name if active else None,
        "refused": svc.registry.failed,
    }
    return json_response(body)


@router.post("/reload", summary="Follow the store's active pointer now (retrying refused versions)")
async def reload(svc: Annotated[Services, Depends(require_admin)]) -> Response:
    return _state(svc, await svc.registry.refresh(retry_failed=True))


@router.post(
    "/activate",
    summary="Switch the store's active version (rollback) and load it",
    responses={
        409: {"model": ErrorResponse, "description": "That version was never published completely."},
        503: {"model": ErrorResponse, "description": "The store is unreachable; nothing changed."},
    },
)
async def activate(body: ActivateRequest, svc: Annotated[Services, Depends(require_admin)]) -> Response:
    try:
        await svc.store.activate(body.version)
    except VersionNotReadyError as exc:
        raise HTTPException(409, str(exc)) from exc
    except StoreUnavailableError as exc:
        raise HTTPException(503, f"store unavailable: {exc}") from exc
    return _state(svc, await svc.registry.refresh(retry_failed=True))
