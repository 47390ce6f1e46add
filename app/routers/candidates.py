"""POST /candidates: the product's one read path."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header
from fastapi.responses import Response

from app.errors import NoVersionError, field_error
from app.responses import json_response
from app.schemas import BODY_ERRORS, CandidatesRequest, CandidatesResponse, ErrorResponse
from app.state import Services, services

router = APIRouter(tags=["candidates"], responses=BODY_ERRORS)


@router.post(
    "/candidates",
    response_model=CandidatesResponse,
    summary="Top-k candidates for a user, routed by tier",
    responses={
        422: {"description": "A field is invalid (the body names it), or an unknown X-AB-Variant."},
        503: {"model": ErrorResponse, "description": "No model version is loaded yet."},
    },
)
async def post_candidates(
    body: CandidatesRequest,
    svc: Annotated[Services, Depends(services)],
    x_ab_variant: Annotated[
        str | None,
        Header(max_length=64, description="Pick an A/B variant by name; without it the user id is hashed."),
    ] = None,
) -> Response:
    """Reads the user's profile from the feature store, routes by interaction count (cold, warm,
    hot), searches the item index under the filters and returns the candidates with the method
    that produced them. Store trouble degrades to `popularity_fallback` (reason in the
    `X-Recsys-Fallback` header), never an error."""
    variant = svc.variant_for(x_ab_variant, body.user_id)
    k = body.k if body.k is not None else svc.settings.default_k
    if k > svc.settings.max_k:
        raise field_error(("body", "k"), f"must be at most {svc.settings.max_k} (the configured max_k)", k)
    try:
        answer = await svc.recommender.candidates(body, k, variant)
    except NoVersionError as exc:
        return json_response({"detail": str(exc)}, 503)
    headers = {"X-AB-Variant": variant.name}
    if answer.fallback_reason is not None:
        headers["X-Recsys-Fallback"] = answer.fallback_reason
    return json_response(answer.body, headers=headers)
