"""Errors the API turns into clear answers: 422s in FastAPI's own format, naming the field."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError


def field_error(loc: Sequence[str | int], message: str, value: Any = None) -> RequestValidationError:
    """A 422 like pydantic's: `{"detail": [{"loc": [...], "msg": ..., "type": "value_error"}]}`."""
    return RequestValidationError(
        [{"type": "value_error", "loc": tuple(loc), "msg": message, "input": value}]
    )


class NoVersionError(Exception):
    """No model version is loaded yet (nothing published, or every candidate refused)."""


def _scalar(value: Any) -> bool:
    return (
        value is None
        or isinstance(value, bool | int | float)
        or (isinstance(value, str) and len(value) <= 200)
    )


def validation_body(errors: Sequence[Any]) -> dict[str, Any]:
    """FastAPI's 422 shape, made safe to serialise whatever was sent: NaN becomes null, and a
    large offending value is not echoed back (the field path says where it was)."""
    detail = []
    for error in errors:
        item = {"type": error.get("type"), "loc": list(error.get("loc", ())), "msg": error.get("msg")}
        if _scalar(error.get("input")):
            item["input"] = error.get("input")
        if error.get("ctx"):
            item["ctx"] = {k: v if _scalar(v) else str(v) for k, v in error["ctx"].items()}
        detail.append(item)
    return {"detail": detail}
