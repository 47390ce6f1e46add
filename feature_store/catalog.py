"""The run-time catalog: what the items API changed since a version was trained.

A model version freezes the catalog it was trained on. At run time a shop hides a sold-out item,
lets an offer expire, changes a price, adds an item, deletes one for good. Each change is one
`ItemRecord` per item id, kept by the store beside the users (never under a version), so every
version that serves, the live one, one published later, one rolled back to, reads the same
records and applies them to its own rows (`app/retrieval/catalog.py`).

Every write bumps the store's catalog **generation** and stamps the records it wrote with it
(`seq`). Serving reads the generation with each user's profile (the same round trip on one Redis)
and fetches the records changed since the generation it holds, so a change is in force in every
worker from the moment the write returned. Expiry needs no write: a record's availability window
is evaluated against the clock at request time.

Records come back from the store and from a file anyone with access to the artifacts folder can
write: they are parsed with the same bounded model as the API's input, never trusted as they are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

MAX_ITEM_ID = 256
MAX_ATTRIBUTES = 64
MAX_ATTRIBUTE_NAME = 64
MAX_TEXT = 4_096  # a free-text attribute (a description) may be long; filters never read it
MAX_TAGS = 256
MAX_TAG = 256
MAX_RECORD_BYTES = 65_536  # one stored record, JSON; anything longer is not ours
LATEST_TIME = 1e11  # epoch seconds (year 5138): bounds availability times, refuses milliseconds

ItemId = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_ITEM_ID, pattern=r"^[^\x00-\x1f\x7f]+$")
]
AttributeName = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_ATTRIBUTE_NAME, pattern=r"^[^\x00-\x1f\x7f]+$")
]
Tag = Annotated[str, StringConstraints(max_length=MAX_TAG)]
# A value as the attribute table knows them: a category or text, a number or a date (epoch
# seconds, or an ISO date string the filters convert), tags (multi-valued), or missing.
AttributeValue = (
    Annotated[float, Field(allow_inf_nan=False)]
    | Annotated[str, StringConstraints(max_length=MAX_TEXT)]
    | Annotated[list[Tag], Field(max_length=MAX_TAGS)]
    | None
)
Attributes = Annotated[dict[AttributeName, AttributeValue], Field(max_length=MAX_ATTRIBUTES)]


class CatalogConflictError(Exception):
    """A conditional write found the item changed since it was read; nothing was written."""

    def __init__(self, item_id: str) -> None:
        super().__init__(f"item {item_id!r} changed concurrently; read it again and retry")
        self.item_id = item_id


class ItemRecord(BaseModel):
    """One item's run-time state. `attributes` None means the version's own attributes stand; a
    dict replaces them whole (what `PUT /items/{id}` sends; PATCH merges before it writes)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    item_id: ItemId
    attributes: Attributes | None = None
    hidden: bool = False
    deleted: bool = False
    available_from: float | None = Field(None, ge=0, le=LATEST_TIME)
    available_until: float | None = Field(None, ge=0, le=LATEST_TIME)
    updated_at: float = Field(0.0, ge=0, le=LATEST_TIME)
    seq: int = Field(0, ge=0, description="The catalog generation that wrote it (set by the store).")

    @field_validator("available_from", "available_until", "updated_at")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    def blocked_reason(self, now: float) -> str | None:
        """Why the item may not be recommended at `now`, or None when it may."""
        if self.deleted:
            return "deleted"
        if self.hidden:
            return "hidden"
        if self.available_from is not None and now < self.available_from:
            return "not available yet"
        if self.available_until is not None and now >= self.available_until:
            return "expired"
        return None

    def next_change(self, now: float) -> float:
        """The first moment after `now` when `blocked_reason` may answer differently."""
        times = [t for t in (self.available_from, self.available_until) if t is not None and t > now]
        return min(times, default=math.inf)

    def encode(self) -> str:
        return self.model_dump_json(exclude={"seq"})

    @classmethod
    def decode(cls, raw: bytes | str, seq: int) -> ItemRecord | None:
        """A stored record, or None when the bytes are not one (someone else's write, a torn
        line): the caller skips it and counts it, never crashes on it."""
        if len(raw) > MAX_RECORD_BYTES:
            return None
        try:
            record = cls.model_validate_json(raw)
        except ValidationError:
            return None
        return record.model_copy(update={"seq": seq})


@dataclass(frozen=True)
class CatalogChanges:
    """Records written after a generation, and the generation they bring the reader to."""

    generation: int
    records: list[ItemRecord]


def latest(records: Iterable[ItemRecord]) -> dict[str, ItemRecord]:
    """The newest record per item id (by seq; a later one of equal seq wins)."""
    out: dict[str, ItemRecord] = {}
    for record in records:
        held = out.get(record.item_id)
        if held is None or record.seq >= held.seq:
            out[record.item_id] = record
    return out
