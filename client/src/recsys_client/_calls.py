"""Each operation as data (method, path, body, whether a retry is safe) and each answer parsed.

The sync and async clients differ only in how they send and wait; building the calls and
reading the answers lives here once, so the two surfaces cannot drift apart.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from recsys_client.errors import (
    ConflictError,
    GoneError,
    InvalidRequestError,
    NotFoundError,
    RecsysError,
    TooLargeError,
    UnauthorizedError,
    UnavailableError,
)
from recsys_client.models import (
    BatchCandidates,
    BatchCandidatesRequest,
    Candidates,
    CandidatesRequest,
    Event,
    Filters,
    InteractionBatch,
    Item,
    ItemBatch,
    ItemBatchEntry,
    ItemIn,
    ItemPatch,
    ItemsWritten,
    Readiness,
    Recorded,
    Similar,
    SimilarRequest,
)

M = TypeVar("M", bound=BaseModel)
FALLBACK_HEADER = "x-recsys-fallback"
VARIANT_HEADER = "X-AB-Variant"

FiltersArg = Filters | Mapping[str, Any] | None
EventArg = Event | Mapping[str, Any]


@dataclass(frozen=True)
class Call(Generic[M]):
    method: str
    path: str
    model: type[M]
    body: BaseModel | None = None
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    retry: bool = True  # safe to send again: a read, an idempotent write, or one with a request id
    admin: bool = False
    ok: tuple[int, ...] = (200,)

    def json(self) -> Any:
        return (
            None
            if self.body is None
            else self.body.model_dump(mode="json", by_alias=True, exclude_unset=True)
        )

    def content(self) -> bytes:
        """The body as JSON bytes, serialized by pydantic's core (cheaper than `json.dumps`)."""
        assert self.body is not None
        return self.body.model_dump_json(by_alias=True, exclude_unset=True).encode()


def _filters(filters: FiltersArg) -> Filters | None:
    return Filters.model_validate(filters) if isinstance(filters, Mapping) else filters


def _item_path(item_id: str) -> str:
    return "/items/" + quote(item_id, safe="")


def candidates(
    user_id: str, k: int | None, filters: FiltersArg, exclude_seen: bool, variant: str | None
) -> Call[Candidates]:
    body = CandidatesRequest(user_id=user_id, k=k, filters=_filters(filters), exclude_seen=exclude_seen)
    headers = {VARIANT_HEADER: variant} if variant is not None else {}
    return Call("POST", "/candidates", Candidates, body, headers=headers)


def candidates_batch(
    user_ids: Iterable[str], k: int | None, filters: FiltersArg, exclude_seen: bool, variant: str | None
) -> Call[BatchCandidates]:
    body = BatchCandidatesRequest(
        user_ids=list(user_ids), k=k, filters=_filters(filters), exclude_seen=exclude_seen
    )
    headers = {VARIANT_HEADER: variant} if variant is not None else {}
    return Call("POST", "/candidates/batch", BatchCandidates, body, headers=headers)


def record(events: Iterable[EventArg], request_id: str | None) -> Call[Recorded]:
    """A request id is always sent (a new uuid when none is given): it is what makes a retry
    store the batch exactly once, so writes are retried only with it."""
    parsed = [e if isinstance(e, Event) else Event.model_validate(e) for e in events]
    body = InteractionBatch(events=parsed, request_id=request_id or str(uuid.uuid4()))
    return Call("POST", "/interactions", Recorded, body)


def put_item(item_id: str, item: ItemIn | Mapping[str, Any]) -> Call[Item]:
    body = item if isinstance(item, ItemIn) else ItemIn.model_validate(item)
    return Call("PUT", _item_path(item_id), Item, body, admin=True)  # a PUT is idempotent


def put_items(items: Iterable[ItemBatchEntry | Mapping[str, Any]]) -> Call[ItemsWritten]:
    entries = [e if isinstance(e, ItemBatchEntry) else ItemBatchEntry.model_validate(e) for e in items]
    return Call("POST", "/items", ItemsWritten, ItemBatch(items=entries), admin=True)  # replaces: idempotent


def patch_item(item_id: str, patch: ItemPatch | Mapping[str, Any]) -> Call[Item]:
    body = patch if isinstance(patch, ItemPatch) else ItemPatch.model_validate(patch)
    return Call("PATCH", _item_path(item_id), Item, body, admin=True)  # sets fields: idempotent


def delete_item(item_id: str) -> Call[Item]:
    return Call("DELETE", _item_path(item_id), Item, admin=True)


def get_item(item_id: str) -> Call[Item]:
    return Call("GET", _item_path(item_id), Item, admin=True)


def similar(item_id: str, k: int, filters: FiltersArg) -> Call[Similar]:
    parsed = _filters(filters)
    if parsed is None:
        return Call("GET", _item_path(item_id) + "/similar", Similar, params={"k": k})
    return Call("POST", _item_path(item_id) + "/similar", Similar, SimilarRequest(k=k, filters=parsed))


def ready() -> Call[Readiness]:
    return Call("GET", "/readyz", Readiness, retry=False, ok=(200, 503))  # answers now, as it is


def error_for(response: httpx.Response) -> RecsysError:
    """The exception of a non-success answer, with the server's `detail`."""
    try:
        detail: Any = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = response.text[:500]
    status = response.status_code
    if status == 422 and isinstance(detail, list):
        return InvalidRequestError([e for e in detail if isinstance(e, dict)])
    message = f"{status}: {detail}"
    kinds: dict[int, type[RecsysError]] = {
        401: UnauthorizedError,
        403: UnauthorizedError,
        404: NotFoundError,
        409: ConflictError,
        410: GoneError,
        413: TooLargeError,
        502: UnavailableError,
        503: UnavailableError,
        504: UnavailableError,
    }
    return kinds.get(status, RecsysError)(message, status, detail)


def parse(call: Call[M], response: httpx.Response) -> M:
    if response.status_code not in call.ok:
        raise error_for(response)
    result = call.model.model_validate_json(response.content)
    if isinstance(result, Candidates):
        result.fallback_reason = response.headers.get(FALLBACK_HEADER)
    return result
