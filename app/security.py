"""Who may call what: an optional API key on the public routes and a bearer token on /admin/*.

Secrets come from settings only and are compared in constant time (`hmac.compare_digest`) against
every configured key, so neither the answer's timing nor an early exit tells a caller how much of a
guess was right. Several API keys may be live at once, which is how a key is rotated without a
window of failed requests.

Secrets are compared as UTF-8 bytes. An HTTP header reaches the app as the str Starlette decoded
as Latin-1, byte for byte, so it is turned back into the bytes the client sent (`header_bytes`)
before the comparison: a non-ASCII token sent as UTF-8, as every client library sends it, then
matches, and the same token sent in Latin-1 does not (it used to be the other way round).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Annotated

from fastapi import Depends, HTTPException, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from app.schemas import ErrorResponse
from app.state import Services, services

API_KEY_HEADER = "X-API-Key"

_api_key = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="One of RECSYS_API_KEYS; not needed when none is configured.",
)
_bearer = HTTPBearer(auto_error=False, description="RECSYS_ADMIN_TOKEN")

API_KEY_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse, "description": "RECSYS_API_KEYS is set and X-API-Key is not one of them."}
}


def header_bytes(value: str) -> bytes:
    """The bytes a client sent for a header value that the ASGI server decoded as Latin-1."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:  # not from the wire (no header decodes to this): its UTF-8 then
        return value.encode("utf-8", "surrogateescape")


def _secret_bytes(secret: SecretStr) -> bytes:
    """A configured secret as UTF-8; surrogateescape gives back the bytes of an environment
    variable that was not valid UTF-8, instead of failing the comparison with an exception."""
    return secret.get_secret_value().encode("utf-8", "surrogateescape")


def matches_any(given: str | bytes, secrets: Iterable[SecretStr]) -> bool:
    """Constant-time membership: every secret is compared, whatever the first ones said.

    `given` as bytes is what the client sent (see `header_bytes`); as str it is text, compared as
    its UTF-8."""
    raw = given if isinstance(given, bytes) else given.encode("utf-8", "surrogateescape")
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(raw, _secret_bytes(secret))
    return found


async def require_api_key(
    svc: Annotated[Services, Depends(services)],
    key: Annotated[str | None, Security(_api_key)] = None,
) -> None:
    """Mounted by `create_app` only when RECSYS_API_KEYS is set (the one place that decides)."""
    if key is None or not matches_any(header_bytes(key), svc.settings.api_keys or []):
        raise HTTPException(
            401, f"missing or wrong {API_KEY_HEADER}", headers={"WWW-Authenticate": API_KEY_HEADER}
        )


async def require_admin(
    svc: Annotated[Services, Depends(services)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> Services:
    token = svc.settings.admin_token
    if token is None:
        raise HTTPException(404, "admin endpoints are disabled (set RECSYS_ADMIN_TOKEN)")
    if credentials is None or not matches_any(header_bytes(credentials.credentials), [token]):
        raise HTTPException(401, "missing or wrong admin token", headers={"WWW-Authenticate": "Bearer"})
    return svc
