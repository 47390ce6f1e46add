"""Errors the API turns into clear answers: 422s in FastAPI's own format, naming the field."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError

from app.schemas import ID_PATTERN


def field_error(loc: Sequence[str | int], message: str, value: Any = None) -> RequestValidationError:
    """A 422 like pydantic's: `{"detail": [{"loc": [...], "msg": ..., "type": "value_error"}]}`."""
    return RequestValidationError(
        [{"type": "value_error", "loc": tuple(loc), "msg": message, "input": value}]
    )


UNPARSABLE_BODY = {
    "type": "json_invalid",
    "loc": ("body",),
    "msg": "the body could not be parsed: send UTF-8 JSON nested at most a few hundred levels deep",
}


class NoVersionError(Exception):
    """No model version is loaded yet (nothing published, or every candidate refused)."""


class CatalogStaleError(Exception):
    """The store's item catalog changed and this worker could not read the change: answering
    could serve an item that was just hidden, so the request is refused (503) instead."""


def _scalar(value: Any) -> bool:
    """Small enough to echo back, and encodable: JSON allows any integer, orjson only 64-bit ones."""
    if isinstance(value, int) and not isinstance(value, bool):
        return -(2**63) <= value < 2**64
    if isinstance(value, str):
        return len(value) <= 200 and _encodable(value)
    return value is None or isinstance(value, bool | float)


def _encodable(text: str) -> bool:
    """False for lone surrogates (JSON's "\\ud800"), which no UTF-8 answer can carry."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _location(loc: Sequence[str | int]) -> list[str | int]:
    """The path as the client wrote it, without pydantic's validator tags
    (`function-after[_weight_or_type(), InteractionEvent]`) and the tag of the body union's
    branch (`union-batch`, schemas.EventOrBatch)."""
    return [part for part in loc if not (isinstance(part, str) and part.startswith(("function-", "union-")))]


def _message(error: Any) -> Any:
    if error.get("type") == "string_pattern_mismatch" and error.get("ctx", {}).get("pattern") == ID_PATTERN:
        return "ids are printable text: no control characters (U+0000 to U+001F, U+007F)"
    return error.get("msg")


def validation_body(errors: Sequence[Any]) -> dict[str, Any]:
    """FastAPI's 422 shape, made safe to serialise whatever was sent: NaN becomes null, and a
    large offending value is not echoed back (the field path says where it was)."""
    detail = []
    for error in errors:
        item = {"type": error.get("type"), "loc": _location(error.get("loc", ())), "msg": _message(error)}
        if "input" in error and _scalar(error["input"]):
            item["input"] = error["input"]
        if error.get("ctx"):
            item["ctx"] = {k: v if _scalar(v) else str(v) for k, v in error["ctx"].items()}
        detail.append(item)
    return {"detail": detail}
