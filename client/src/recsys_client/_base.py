"""What the sync and async clients share: configuration, headers, and the operations' calls."""

from __future__ import annotations

from typing import Any

import httpx

from recsys_client import _calls
from recsys_client.retry import RetryPolicy


class ClientConfig:
    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        admin_token: str | None,
        timeout_s: float,
        connect_timeout_s: float,
        retry: RetryPolicy,
        max_connections: int,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.admin_token = admin_token
        self.timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        self.retry = retry
        self.limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)

    def headers(self) -> dict[str, str]:
        """Sent with every call: the API key when the server requires one."""
        return {"X-API-Key": self.api_key} if self.api_key else {}

    def request_args(self, call: _calls.Call[Any]) -> dict[str, Any]:
        headers = dict(call.headers)
        if call.admin and self.admin_token:
            headers["Authorization"] = f"Bearer {self.admin_token}"
        args: dict[str, Any] = {"headers": headers}
        if call.body is not None:
            headers["Content-Type"] = "application/json"
            args["content"] = call.content()
        if call.params:
            args["params"] = call.params
        return args

    def no_answer(self, call: _calls.Call[Any], exc: Exception) -> Exception:
        from recsys_client.errors import UnavailableError

        return UnavailableError(
            f"{call.method} {self.base_url}{call.path}: no answer ({type(exc).__name__}: {exc})"
        )
