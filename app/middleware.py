"""Pure ASGI middleware (no per-request task or body copy, unlike BaseHTTPMiddleware): request
latency by route template and status, and a hard cap on request body size.

A client that leaves before its request was answered (mostly: while its body was being read, where
Starlette raises ClientDisconnect) is nobody's error: it is counted as status 499 (nginx's "client
closed request") and logged as one INFO line, where it used to escape as a 500 with an ERROR
traceback. One the server cut off for being too slow (app/http_limits.py) counts as the 408 it got.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.metrics import ServiceMetrics

log = logging.getLogger("recsys.http")

CLIENT_CLOSED_REQUEST = 499
# Where app/http_limits.py leaves the status it sent when it, not the client, ended a request.
REFUSED_STATE_KEY = "recsys.refused_status"


class ObservedLimitedMiddleware:
    def __init__(self, app: ASGIApp, metrics: ServiceMetrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        answered = gone = False  # gone: the client left before an answer started

        async def send_observed(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status, answered = message["status"], True
            await send(message)

        async def receive_observed() -> Message:
            # FastAPI turns a ClientDisconnect met while parsing a body into a 400 (then a 422 here),
            # so the disconnect is noticed where it arrives, not by the exception it may become.
            nonlocal gone
            message = await receive()
            if message["type"] == "http.disconnect" and not answered:
                gone = True
            return message

        try:
            declared = _content_length(scope)
            if declared is not None and declared > self.max_body:
                status = 413
                await _too_large(send, self.max_body)
                return
            app_receive: Receive = receive_observed
            if declared is None and scope.get("method") in ("POST", "PUT", "PATCH"):
                body = await _read_capped(receive_observed, self.max_body)
                if body is None:
                    status = 413
                    await _too_large(send, self.max_body)
                    return
                app_receive = _replay(body)
            await self.app(scope, app_receive, send_observed)
        except ClientDisconnect:
            gone = True  # nothing to answer and nothing went wrong: not re-raised, so no traceback
        finally:
            if gone:
                status = _status_of_gone(scope)
            route: Any = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            self.metrics.child(self.metrics.request_seconds, label, str(status)).observe(
                time.perf_counter() - started
            )


def _status_of_gone(scope: Scope) -> int:
    """499, or the status the server sent when it cut the request off itself (it logged that)."""
    refused = scope.get("state", {}).get(REFUSED_STATE_KEY)
    if refused is not None:
        return int(refused)
    client = scope.get("client")
    log.info(
        "%s%d: the client closed the connection before %s %s was answered",
        f"{client[0]}:{client[1]} - " if client else "",
        CLIENT_CLOSED_REQUEST,
        scope.get("method", ""),
        scope.get("path", ""),
    )
    return CLIENT_CLOSED_REQUEST


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _read_capped(receive: Receive, limit: int) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()  # a partial body is no body
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _too_large(send: Send, limit: int) -> None:
    body = orjson.dumps({"detail": f"request body larger than {limit} bytes (RECSYS_MAX_BODY_BYTES)"})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
