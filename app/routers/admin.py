"""Admin operations, behind a bearer token from settings (disabled when none is configured).

The token holder may see what anonymous clients may not: the full reasons a version was refused
(paths included), the invalid pointer's value, the store client's own error (`GET /admin/status`).

`POST /admin/activate` validates before it switches: the name follows the version rule (a 422
naming the field otherwise), the version is loaded and validated in full on this server, and only
then does the store's pointer move. A version that does not load is a 409 with the reason and
nothing changed; it used to be a 500 after the pointer had already moved.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import Response
from pydantic import BaseModel, Field

from app.responses import json_response
from app.schemas import ErrorResponse
from app.security import require_admin
from app.state import Services
from app.version_registry import VersionRefusedError
from feature_store.base import StoreUnavailableError
from feature_store.errors import VersionNotReadyError
from feature_store.manifest import ArtifactError
from feature_store.version_names import MAX_VERSION_NAME, VERSION_PATTERN

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    responses={
        401: {"model": ErrorResponse, "description": "Missing or wrong bearer token."},
        404: {"model": ErrorResponse, "description": "Admin endpoints are disabled (no RECSYS_ADMIN_TOKEN)."},
    },
)


class ActivateRequest(BaseModel):
    version: str = Field(
        min_length=4,
        max_length=MAX_VERSION_NAME,
        pattern=VERSION_PATTERN,
        description="A version name, <family>_v<N>: never a path.",
        examples=["als_v3"],
    )


class VersionSwitch(BaseModel):
    changed: bool = Field(description="Whether the serving version changed.")
    model_version: str | None = Field(description="The version serving now.")
    refused: dict[str, str] = Field(description="Versions refused at load, with the full reason.")


class AdminStoreState(BaseModel):
    name: str
    ok: bool
    reason: str | None = Field(description="The store client's own error, hosts included.")


class AdminStatus(BaseModel):
    model_version: str | None
    active_folder: str | None = Field(description="The serving version's folder on this server.")
    store_pointer: str | None = Field(description="The version the store's active pointer names.")
    invalid_pointer: str | None = Field(description="The pointer's value when it names no valid version.")
    pinned_versions: list[str]
    refused: dict[str, str] = Field(description="Versions refused at load, with the full reason.")
    problem: str | None = Field(description="Why the store's active version is not the one serving.")
    store: AdminStoreState


def _state(svc: Services, changed: bool) -> Response:
    active = svc.registry.active
    body = {
        "changed": changed,
        "model_version": active.name if active else None,
        "refused": svc.registry.failed,
    }
    return json_response(body)


@router.get(
    "/status",
    response_model=AdminStatus,
    summary="What this server serves and why not something else, with full reasons",
)
async def status(svc: Annotated[Services, Depends(require_admin)]) -> Response:
    return json_response(
        {
            **svc.registry.status(),
            "store": {"name": svc.store.name, "ok": svc.health.ok, "reason": svc.health.reason},
        }
    )


@router.post(
    "/reload",
    response_model=VersionSwitch,
    summary="Follow the store's active pointer now (retrying refused versions)",
)
async def reload(svc: Annotated[Services, Depends(require_admin)]) -> Response:
    return _state(svc, await svc.registry.refresh(retry_failed=True))


@router.post(
    "/activate",
    response_model=VersionSwitch,
    summary="Switch the store's active version (rollback) and load it",
    responses={
        409: {
            "model": ErrorResponse,
            "description": "That version was never published completely, or does not verify or load "
            "on this server (the reason says which); nothing changed.",
        },
        503: {"model": ErrorResponse, "description": "The store is unreachable; nothing changed."},
    },
)
async def activate(body: ActivateRequest, svc: Annotated[Services, Depends(require_admin)]) -> Response:
    try:
        loaded = await svc.registry.prepare(body.version)  # fully loaded before anything moves
    except VersionRefusedError as exc:
        raise HTTPException(409, f"{body.version} refused, nothing changed: {exc}") from exc
    try:
        await svc.store.activate(body.version)
    except VersionNotReadyError as exc:
        raise HTTPException(409, str(exc)) from exc
    except ArtifactError as exc:  # the embedded store reads the user table when it activates
        raise HTTPException(409, f"{body.version} refused by the store, nothing changed: {exc}") from exc
    except StoreUnavailableError as exc:
        raise HTTPException(503, f"store unavailable: {exc}") from exc
    return _state(svc, await svc.registry.install(loaded))
