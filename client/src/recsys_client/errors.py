"""What can go wrong, as exceptions that carry what the server said.

Every error is a `RecsysError`; catch the subclasses for the cases a caller handles
differently: `InvalidRequestError` (fix the call: `.fields` names them), `UnavailableError` (the server or
its store did not answer, after the retries), `NotFoundError`, `ConflictError`, `UnauthorizedError`.
"""

from __future__ import annotations

from typing import Any


class RecsysError(Exception):
    """A call that did not succeed. `status` is the HTTP status (None when no answer came)."""

    def __init__(self, message: str, status: int | None = None, detail: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


class InvalidRequestError(RecsysError):
    """A 422: `errors` is the server's list (`loc`, `msg`, `type` each), `fields` their paths."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        parts = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg')}" for e in errors)
        super().__init__(f"invalid request: {parts}", 422, errors)

    @property
    def fields(self) -> list[str]:
        """Each error's location as dotted text, without the `body`/`query`/`header` prefix."""
        out = []
        for error in self.errors:
            loc = [str(p) for p in error.get("loc", [])]
            out.append(".".join(loc[1:] if loc and loc[0] in ("body", "query", "header", "path") else loc))
        return out


class UnauthorizedError(RecsysError):
    """401: a missing or wrong API key (`X-API-Key`) or admin token."""


class NotFoundError(RecsysError):
    """404: an unknown item, or an admin endpoint this server does not enable."""


class GoneError(RecsysError):
    """410: the item was deleted."""


class ConflictError(RecsysError):
    """409: the item changed concurrently; read it again and retry."""


class TooLargeError(RecsysError):
    """413: the body is larger than the server accepts."""


class UnavailableError(RecsysError):
    """503, or no answer at all (connection refused, timed out), after every retry."""
