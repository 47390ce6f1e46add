"""The blocking client: `RecsysClient(url).candidates(user_id, k)`."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from recsys_client import _calls
from recsys_client._base import ClientConfig
from recsys_client._calls import EventArg, FiltersArg
from recsys_client.errors import UnavailableError
from recsys_client.models import (
    Candidates,
    Item,
    ItemBatchEntry,
    ItemIn,
    ItemPatch,
    ItemsWritten,
    Readiness,
    Recorded,
    Similar,
)
from recsys_client.retry import RetryPolicy, retry_after
from recsys_client.schema_check import compare

M = TypeVar("M", bound=BaseModel)


class RecsysClient:
    """The service over HTTP, blocking calls.

    One instance per process: it holds the connection pool (`max_connections`), so calls reuse
    connections. Reads are retried on connection errors, timeouts and 502/503/504 with
    exponential backoff and jitter (`retry`); writes too, because each is idempotent (items)
    or carries a request id (events). Errors raise `recsys_client.errors` exceptions.
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        admin_token: str | None = None,
        timeout_s: float = 5.0,
        connect_timeout_s: float = 1.0,
        retry: RetryPolicy | None = None,
        max_connections: int = 100,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._config = ClientConfig(
            base_url,
            api_key,
            admin_token,
            timeout_s,
            connect_timeout_s,
            retry or RetryPolicy(),
            max_connections,
        )
        self._http = httpx.Client(
            base_url=self._config.base_url,
            timeout=self._config.timeout,
            limits=self._config.limits,
            headers=self._config.headers(),
            transport=transport,
        )

    def _send(self, call: _calls.Call[M]) -> M:
        policy = self._config.retry
        for attempt in range(1, policy.attempts + 1):
            last = attempt == policy.attempts or not call.retry
            try:
                response = self._http.request(call.method, call.path, **self._config.request_args(call))
            except httpx.TransportError as exc:
                if last:
                    raise self._config.no_answer(call, exc) from exc
                time.sleep(policy.delay(attempt))
                continue
            if response.status_code in policy.statuses and not last:
                time.sleep(policy.delay(attempt, retry_after(response.headers.get("retry-after"))))
                continue
            return _calls.parse(call, response)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def candidates(
        self,
        user_id: str,
        k: int | None = None,
        *,
        filters: FiltersArg = None,
        exclude_seen: bool = True,
        variant: str | None = None,
    ) -> Candidates:
        """`POST /candidates`: the user's top-k, with `method_used`, tier, version, variant and
        the fallback reason (`X-Recsys-Fallback`) when the tier's method did not serve."""
        return self._send(_calls.candidates(user_id, k, filters, exclude_seen, variant))

    def candidates_batch(
        self,
        user_ids: Iterable[str],
        k: int | None = None,
        *,
        filters: FiltersArg = None,
        exclude_seen: bool = True,
        variant: str | None = None,
    ) -> list[Candidates]:
        """`POST /candidates/batch`: each user's answer, in order (at most the server's
        `max_batch_users` per call)."""
        call = _calls.candidates_batch(user_ids, k, filters, exclude_seen, variant)
        return (self._send(call)).results

    def record(self, events: Iterable[EventArg], request_id: str | None = None) -> Recorded:
        """`POST /interactions`: store events, seen by the user's next `candidates`. The request
        id (a new one when none is given) makes a retried batch count once."""
        return self._send(_calls.record(events, request_id))

    def similar(self, item_id: str, k: int = 20, *, filters: FiltersArg = None) -> Similar:
        """Items like this one (`GET`, or `POST` with filters, `/items/{item_id}/similar`)."""
        return self._send(_calls.similar(item_id, k, filters))

    def put_item(self, item_id: str, item: ItemIn | Mapping[str, Any]) -> Item:
        """Create or replace an item (admin token)."""
        return self._send(_calls.put_item(item_id, item))

    def put_items(self, items: Iterable[ItemBatchEntry | Mapping[str, Any]]) -> ItemsWritten:
        """Create or replace up to 1,000 items in one call (admin token)."""
        return self._send(_calls.put_items(items))

    def patch_item(self, item_id: str, patch: ItemPatch | Mapping[str, Any]) -> Item:
        """Change only the fields given, e.g. `{"hidden": True}` (admin token)."""
        return self._send(_calls.patch_item(item_id, patch))

    def delete_item(self, item_id: str) -> Item:
        """Delete an item for good (admin token)."""
        return self._send(_calls.delete_item(item_id))

    def get_item(self, item_id: str) -> Item:
        """What the service knows of an item, and whether it is recommendable now (admin token)."""
        return self._send(_calls.get_item(item_id))

    def ready(self) -> Readiness:
        """`GET /readyz`, not retried: `.ready` is False while no version is loaded."""
        return self._send(_calls.ready())

    def wait_ready(self, timeout_s: float = 30.0, interval_s: float = 0.25) -> Readiness:
        """Poll `GET /readyz` until the service serves a version (a deploy script's, a test's or a
        tour's first step): the answer, or `UnavailableError` after `timeout_s` without one."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                answer = self.ready()
                if answer.ready:
                    return answer
                why = f"status {answer.status}"
            except UnavailableError as exc:
                why = str(exc)
            if time.monotonic() + interval_s > deadline:
                raise UnavailableError(f"{self._config.base_url} not ready after {timeout_s:g}s ({why})")
            time.sleep(interval_s)

    def check_schema(self) -> list[str]:
        """Differences between this client's models and the server's `/openapi.json` (none: [])."""
        response = self._http.get("/openapi.json", headers=self._config.headers())
        response.raise_for_status()
        return compare(response.json())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RecsysClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
