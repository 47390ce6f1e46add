"""The request and response bodies of the service, as typed objects.

They mirror the server's OpenAPI document (`/openapi.json`); `recsys_client.schema_check`
compares the two, and the service's test suite fails when they drift apart. Requests forbid
unknown fields (a typo fails here, not as a 422 a round trip later); responses ignore fields a
newer server adds, so an old client keeps working.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

AttributeValue = float | str | list[str] | None


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore")


# -- /candidates ---------------------------------------------------------------------------------


class AttributeCondition(_Request):
    """One attribute's condition; all given parts must hold (`in` is `in_` in Python)."""

    in_: list[str | int] | None = Field(None, alias="in")
    not_in: list[str | int] | None = None
    gte: float | None = None
    gt: float | None = None
    lte: float | None = None
    lt: float | None = None


class Filters(_Request):
    allow_items: list[str] | None = None
    deny_items: list[str] = Field(default_factory=list)
    attributes: dict[str, AttributeCondition] = Field(default_factory=dict)


class CandidatesRequest(_Request):
    user_id: str
    k: int | None = None
    filters: Filters | None = None
    exclude_seen: bool = True


class BatchCandidatesRequest(_Request):
    user_ids: list[str]
    k: int | None = None
    filters: Filters | None = None
    exclude_seen: bool = True


class Candidate(_Response):
    item_id: str
    score: float
    source: str


class Candidates(_Response):
    """One user's answer. `fallback_reason` is the `X-Recsys-Fallback` header of a single call
    (in the body of a batch answer): why the tier's method did not serve, when it did not."""

    user_id: str
    tier: str
    method_used: str
    model_version: str
    variant: str
    candidates: list[Candidate]
    fallback_reason: str | None = None

    @property
    def items(self) -> list[str]:
        return [c.item_id for c in self.candidates]


class BatchCandidates(_Response):
    results: list[Candidates]


# -- /interactions -------------------------------------------------------------------------------


class Event(_Request):
    user_id: str
    item_id: str
    event_type: str | None = None
    weight: float | None = None
    timestamp: float | None = Field(None, description="Unix seconds; default: when the server receives it.")


class InteractionBatch(_Request):
    events: list[Event]
    request_id: str | None = None


class Recorded(_Response):
    stored: int
    duplicate: bool
    unknown_items: int
    model_version: str | None


# -- /items --------------------------------------------------------------------------------------


class ItemIn(_Request):
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)
    hidden: bool = False
    available_from: float | str | None = None
    available_until: float | str | None = None


class ItemBatchEntry(ItemIn):
    item_id: str


class ItemBatch(_Request):
    items: list[ItemBatchEntry]


class ItemPatch(_Request):
    attributes: dict[str, AttributeValue] | None = None
    hidden: bool | None = None
    available_from: float | str | None = None
    available_until: float | str | None = None


class Item(_Response):
    item_id: str
    recommendable: bool
    reason: str | None
    model_version: str | None
    in_model: bool
    indexes: list[str]
    hidden: bool
    deleted: bool
    available_from: float | None
    available_until: float | None
    attributes: dict[str, AttributeValue]
    attributes_from: str
    updated_at: float | None
    generation: int


class ItemsWritten(_Response):
    written: int
    generation: int


class SimilarRequest(_Request):
    k: int = 20
    filters: Filters | None = None


class SimilarItem(_Response):
    item_id: str
    score: float


class Similar(_Response):
    item_id: str
    method_used: str
    model_version: str
    items: list[SimilarItem]


# -- operations ----------------------------------------------------------------------------------


class StoreState(_Response):
    name: str
    ok: bool
    reason: str | None


class Readiness(_Response):
    status: Literal["ready", "degraded", "not_ready"]
    model_version: str | None
    pinned_versions: list[str]
    missing_pinned_versions: list[str]
    refused_versions: dict[str, str]
    versions_problem: str | None
    store: StoreState

    @property
    def ready(self) -> bool:
        """Serving (a degraded server still answers, with popularity where the store is down)."""
        return self.status != "not_ready"


# The server's name (its OpenAPI components) of each model here: what `schema_check` compares.
SERVER_NAMES: dict[type[BaseModel], str] = {
    AttributeCondition: "AttributeCondition",
    Filters: "Filters",
    CandidatesRequest: "CandidatesRequest",
    BatchCandidatesRequest: "BatchCandidatesRequest",
    Candidate: "Candidate",
    Candidates: "BatchCandidates",
    BatchCandidates: "BatchCandidatesResponse",
    Event: "InteractionEvent",
    InteractionBatch: "InteractionBatch",
    Recorded: "InteractionsResponse",
    ItemIn: "ItemIn",
    ItemBatchEntry: "ItemBatchEntry",
    ItemBatch: "ItemBatch",
    ItemPatch: "ItemPatch",
    Item: "ItemOut",
    ItemsWritten: "ItemsWritten",
    SimilarRequest: "SimilarRequest",
    SimilarItem: "SimilarItem",
    Similar: "SimilarResponse",
    StoreState: "StoreState",
    Readiness: "Readiness",
}
