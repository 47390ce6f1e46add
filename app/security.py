"""Who may call what: an optional API key on the public routes and a bearer token on /admin/*.

Secrets come from settings only and are compared in constant time (`hmac.compare_digest`) against
every configured key, so neither the answer's timing nor an early exit tells a caller how much of a
guess was right. Several API keys may be live at once, which is how a key is rotated without a
window of failed requests.
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


def matches_any(given: str, secrets: Iterable[SecretStr]) -> bool:
    """Constant-time membership: every secret is compared, whatever the first ones said."""
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(given.encode(), secret.get_secret_value().encode())
    return found


async def require_api_key(
    svc: Annotated[Services, Depends(services)],
    key: Annotated[str | None, Security(_api_key)] = None,
) -> None:
    """Mounted by `create_app` only when RECSYS_API_KEYS is set (the one place that decides)."""
    if key is None or not matches_any(key, svc.settings.api_keys or []):
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
    if credentials is None or not matches_any(credentials.credentials, [token]):
        raise HTTPException(401, "missing or wrong admin token", headers={"WWW-Authenticate": "Bearer"})
    return svc
