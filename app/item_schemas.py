"""Request and response bodies of the items API (`/items`), with their bounds and examples."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    field_validator,
    model_validator,
)

from app.retrieval.filters import Filters
from feature_store.catalog import LATEST_TIME, Attributes, AttributeValue, ItemId

MAX_ITEM_BATCH = 1_000
MAX_SIMILAR = 1_000


def _text_moment(value: object) -> object:
    """A date is taken from ISO 8601 text only: pydantic reads a large number as milliseconds,
    which would let 1.7e12 (a millisecond timestamp sent by mistake) through as a date."""
    if isinstance(value, str | datetime):
        return value
    raise ValueError("give epoch seconds (a number up to 1e11) or an ISO 8601 date as text")


# A moment as epoch seconds or an ISO 8601 string ("2026-12-24T00:00:00Z"; no zone means UTC).
Moment = (
    Annotated[float, Field(ge=0, le=LATEST_TIME, allow_inf_nan=False)]
    | Annotated[datetime, BeforeValidator(_text_moment)]
)


def epoch(value: float | datetime | None) -> float | None:
    if value is None or isinstance(value, float | int):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


_EXAMPLE_ATTRIBUTES: dict[str, JsonValue] = {"category": "fintech", "tags": ["b2b", "pay"], "price": 49.0}


class ItemWindow(BaseModel):
    """Availability: when the item may be recommended. Both ends optional."""

    available_from: Moment | None = Field(
        None, description="Not recommended before this moment (epoch seconds or ISO 8601)."
    )
    available_until: Moment | None = Field(
        None, description="Not recommended from this moment on: it expires with no further call."
    )

    @model_validator(mode="after")
    def _ordered(self) -> ItemWindow:
        start, end = epoch(self.available_from), epoch(self.available_until)
        if start is not None and end is not None and end <= start:
            raise ValueError("available_until must be after available_from")
        for name in ("available_from", "available_until"):
            moment = epoch(getattr(self, name))
            if moment is not None and not 0 <= moment <= LATEST_TIME:
                raise ValueError(f"{name} is out of range (epoch seconds, not milliseconds)")
        return self


class ItemIn(ItemWindow):
    """An item, whole: what `PUT /items/{item_id}` stores in place of what was there."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"attributes": _EXAMPLE_ATTRIBUTES, "available_until": 1798761600}]},
    )

    attributes: Attributes = Field(
        default_factory=dict,
        description="The item's attributes, replacing the model's: categories (text), tags (a "
        "list of text), numbers, dates (epoch seconds or ISO 8601), free text. Filters test them at "
        "once.",
    )
    hidden: bool = Field(False, description="Never recommended while true.")


class ItemBatchEntry(ItemIn):
    model_config = ConfigDict(extra="forbid")

    item_id: ItemId = Field(description="The item's id.", examples=["i000311"])


class ItemBatch(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"items": [{"item_id": "i000311", "attributes": _EXAMPLE_ATTRIBUTES}]}]
        },
    )

    items: list[ItemBatchEntry] = Field(min_length=1, max_length=MAX_ITEM_BATCH)

    @field_validator("items")
    @classmethod
    def _distinct(cls, items: list[ItemBatchEntry]) -> list[ItemBatchEntry]:
        seen: set[str] = set()
        for entry in items:
            if entry.item_id in seen:
                raise ValueError(f"item {entry.item_id!r} appears twice; send each item once")
            seen.add(entry.item_id)
        return items


class ItemPatch(ItemWindow):
    """A partial change: only the fields sent change. An attribute set to null is removed;
    `available_from` / `available_until` set to null clear that end of the window."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"hidden": True}, {"attributes": {"price": 39.0}}]},
    )

    attributes: dict[str, AttributeValue] | None = Field(
        None, max_length=64, description="Attributes to set (merged into the item's)."
    )
    hidden: bool | None = Field(None, description="Hide (true) or show again (false).")


class ItemOut(BaseModel):
    item_id: str
    recommendable: bool = Field(description="Whether /candidates may return it now (model version below).")
    reason: str | None = Field(description="Why not, when it is not.")
    model_version: str | None = Field(description="The version this answer describes.")
    in_model: bool = Field(description="The version was trained with this item.")
    indexes: list[str] = Field(description="The version's indexes that hold a vector of it.")
    hidden: bool
    deleted: bool
    available_from: float | None = Field(description="Epoch seconds.")
    available_until: float | None = Field(description="Epoch seconds.")
    attributes: dict[str, AttributeValue] = Field(description="Its attributes as filters see them now.")
    attributes_from: str = Field(description="`catalog` (set at run time), `model` or `none`.")
    updated_at: float | None = Field(description="When the items API last changed it (epoch seconds).")
    generation: int = Field(description="The catalog generation of its last change (0: never changed).")


class ItemsWritten(BaseModel):
    written: int = Field(description="Items stored by this request.")
    generation: int = Field(description="The catalog generation they were written at.")


class SimilarRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"k": 20, "filters": {"attributes": {"category": {"in": ["fintech"]}}}}]
        },
    )

    k: int = Field(20, ge=1, le=MAX_SIMILAR, description="How many similar items.")
    filters: Filters | None = Field(None, description="The same filters as /candidates.")


class SimilarItem(BaseModel):
    item_id: str
    score: float = Field(
        description="The model's score for the pair (ALS: the inner product of their vectors)."
    )


class SimilarResponse(BaseModel):
    item_id: str
    method_used: str = Field(
        description="The vectors compared: als, two_tower, content_based, or popularity when the "
        "version has no vector of the item."
    )
    model_version: str
    items: list[SimilarItem]
