"""Admin operations, behind a bearer token from settings (disabled when none is configured)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException
from fastapi.responses import Response
from pydantic import BaseModel, Field

from app.responses import json_response
from app.state import Services, services
from feature_store.base import StoreUnavailableError
from feature_store.errors import VersionNotReadyError

router = APIRouter(prefix="/admin", tags=["admin"])


async def require_admin(
    svc: Annotated[Services, Depends(services)],
    authorization: Annotated[str | None, Header(description="Bearer <RECSYS_ADMIN_TOKEN>")] = None,
) -> Services:
    token = svc.settings.admin_token
    if token is None:
        raise HTTPException(404, "admin endpoints are disabled (set RECSYS_ADMIN_TOKEN)")
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise HTTPException(401, "missing or wrong admin token", headers={"WWW-Authenticate": "Bearer"})
    return svc


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


@router.post("/activate", summary="Switch the store's active version (rollback) and load it")
async def activate(body: ActivateRequest, svc: Annotated[Services, Depends(require_admin)]) -> Response:
    try:
        await svc.store.activate(body.version)
    except VersionNotReadyError as exc:
        raise HTTPException(409, str(exc)) from exc
    except StoreUnavailableError as exc:
        raise HTTPException(503, f"store unavailable: {exc}") from exc
    return _state(svc, await svc.registry.refresh(retry_failed=True))
