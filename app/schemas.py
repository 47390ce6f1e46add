"""Request and response bodies of the public API, with the bounds and examples OpenAPI shows."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from app.retrieval.filters import Filters

# Ids are opaque strings (UUIDs in real life): printable, bounded.
ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"
MAX_ID_LENGTH = 256
HARD_MAX_K = 10_000  # the schema's bound; the configured `max_k` is checked per request


def _id_field(description: str, example: str) -> object:
    return Field(
        min_length=1,
        max_length=MAX_ID_LENGTH,
        pattern=ID_PATTERN,
        description=description,
        examples=[example],
    )


class CandidatesRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"user_id": "u000042", "k": 100},
                {
                    "user_id": "u000042",
                    "k": 20,
                    "exclude_seen": True,
                    "filters": {"attributes": {"category": {"in": ["fintech"]}}, "deny_items": ["i000017"]},
                },
            ]
        },
    )

    user_id: str = _id_field("The user to find candidates for; unknown ids get popularity.", "u000042")  # type: ignore[assignment]
    k: int | None = Field(
        None, ge=1, le=HARD_MAX_K, description="How many candidates (1 to the configured max_k; default 100)."
    )
    filters: Filters | None = Field(None, description="Attribute conditions and allow/deny item lists.")
    exclude_seen: bool = Field(True, description="Leave out items the user already interacted with.")


class Candidate(BaseModel):
    item_id: str
    score: float = Field(description="Higher is better; comparable within one answer.")
    source: str = Field(
        description="The model that proposed the item (als, popularity, ...), or ranker when the ranking "
        "stage ordered the merged candidates."
    )


class CandidatesResponse(BaseModel):
    user_id: str
    tier: str = Field(description="cold, warm or hot by interaction count; unknown when the store failed.")
    method_used: str = Field(
        description="What produced the candidates: popularity, content_based, als, two_tower, ensemble, "
        "or popularity_fallback when the tier's method could not serve; `+ranker` appended (e.g. "
        "ensemble+ranker) when the version's ranker ordered every source's candidates."
    )
    model_version: str = Field(description="The model version that answered, e.g. als_v3.")
    variant: str = Field(description="The A/B variant (also in the X-AB-Variant response header).")
    candidates: list[Candidate]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "user_id": "u000042",
                    "tier": "warm",
                    "method_used": "als",
                    "model_version": "als_v3",
                    "variant": "default",
                    "candidates": [{"item_id": "i000311", "score": 0.83, "source": "als"}],
                }
            ]
        }
    )


HARD_MAX_BATCH_USERS = 10_000  # the schema's bound; the configured `max_batch_users` is checked per request


class BatchCandidatesRequest(BaseModel):
    """Many users under one k and one set of filters: for offline jobs (e-mails, precomputed
    feeds) that would otherwise pay one HTTP round trip per user."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"user_ids": ["u000042", "u000043"], "k": 20}]},
    )

    user_ids: list[Annotated[str, _id_field("A user.", "u000042")]] = Field(
        min_length=1,
        max_length=HARD_MAX_BATCH_USERS,
        description="The users, answered in this order (1 to the configured max_batch_users).",
    )
    k: int | None = Field(
        None, ge=1, le=HARD_MAX_K, description="Candidates per user (1 to the configured max_k; default 100)."
    )
    filters: Filters | None = Field(None, description="Attribute conditions and allow/deny item lists.")
    exclude_seen: bool = Field(True, description="Leave out items each user already interacted with.")

    def for_user(self, user_id: str) -> CandidatesRequest:
        return CandidatesRequest(
            user_id=user_id, k=self.k, filters=self.filters, exclude_seen=self.exclude_seen
        )


class BatchCandidates(CandidatesResponse):
    fallback_reason: str | None = Field(
        description="Why the tier's method did not serve (the X-Recsys-Fallback header of a single call)."
    )


class BatchCandidatesResponse(BaseModel):
    results: list[BatchCandidates] = Field(description="One answer per user id, in the request's order.")


class InteractionEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = _id_field("Who interacted.", "u000042")  # type: ignore[assignment]
    item_id: str = _id_field("With which item.", "i000311")  # type: ignore[assignment]
    event_type: str | None = Field(
        None,
        max_length=64,
        description="view, click, like, dislike, favorite, apply, interest (the version's table).",
    )
    weight: float | None = Field(
        None, ge=-1e6, le=1e6, description="An explicit weight instead of event_type."
    )
    timestamp: float | None = Field(
        None, ge=0, le=1e11, description="Unix seconds; default: when the server receives it."
    )

    @field_validator("weight", "timestamp")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @model_validator(mode="after")
    def _weight_or_type(self) -> InteractionEvent:
        if self.event_type is None and self.weight is None:
            raise ValueError("give event_type or weight")
        return self


class InteractionBatch(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "request_id": "7f0c1e6a-batch-1",
                    "events": [
                        {"user_id": "u000042", "item_id": "i000311", "event_type": "like"},
                        {"user_id": "u000042", "item_id": "i000017", "event_type": "view"},
                    ],
                }
            ]
        },
    )

    events: list[InteractionEvent] = Field(min_length=1, max_length=100_000)
    request_id: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        pattern=ID_PATTERN,
        description="Idempotency key: a repeated id stores nothing again (also the Idempotency-Key header).",
    )


class InteractionsResponse(BaseModel):
    stored: int = Field(description="Events applied and appended to the stream by this request.")
    duplicate: bool = Field(description="The request id was seen before; nothing was stored again.")
    unknown_items: int = Field(
        description="Events whose item the serving model does not know (still stored)."
    )
    model_version: str | None = Field(description="The version whose profiles were updated.")


class Liveness(BaseModel):
    status: Literal["alive"]


class StoreState(BaseModel):
    name: str = Field(description="redis, redis-cluster or embedded.")
    ok: bool = Field(description="The last store call succeeded.")
    reason: str | None = Field(description="Why not, without hosts or ports.")


class Readiness(BaseModel):
    status: Literal["ready", "degraded", "not_ready"] = Field(
        description="ready; degraded (serving, but the store is unreachable or a version was "
        "refused); not_ready (no version loaded: 503)."
    )
    model_version: str | None = Field(description="The version serving, when one is.")
    pinned_versions: list[str] = Field(description="Versions A/B variants pin, loaded.")
    missing_pinned_versions: list[str] = Field(description="Pinned versions the store does not hold.")
    refused_versions: dict[str, str] = Field(description="Versions refused at load, with the public reason.")
    versions_problem: str | None = Field(description="Why the store's active version is not the one serving.")
    store: StoreState


class ErrorResponse(BaseModel):
    detail: str


BODY_ERRORS: dict[int | str, dict[str, object]] = {
    413: {"model": ErrorResponse, "description": "The body is larger than RECSYS_MAX_BODY_BYTES."},
}


def _event_or_batch(body: Any) -> str:
    """A body with `events` is a batch, anything else one event: validating both (a plain
    union) answered a bad batch with errors about the other model too."""
    return "union-batch" if isinstance(body, dict) and "events" in body else "union-event"


EventOrBatch = Annotated[
    Annotated[InteractionEvent, Tag("union-event")] | Annotated[InteractionBatch, Tag("union-batch")],
    Discriminator(_event_or_batch),
]
