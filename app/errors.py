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
