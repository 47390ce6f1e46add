"""uvicorn's httptools protocol with the limits it lacks: head size, header count, read time, idle time.

httptools (llhttp) has no limit of its own on a request's head: a header that never ends is kept
growing in memory, one concatenation per read (quadratic), which is how one connection took a
worker from 158 to 599 MB and /healthz from 1 ms to seconds. uvicorn has no read timeout either:
a client that declares a body and never sends it, or drips a byte every few seconds, holds its
connection (and the app's task waiting for the body) for as long as it likes. h11, uvicorn's other
parser, bounds the head but not the time, and is several times slower; so this keeps httptools and
adds, per connection (so in every worker):

- **head size** (`RECSYS_MAX_HEADER_BYTES`): the request line and every header, counted as they
  arrive, including the part of a header that httptools is still buffering; past the limit the
  client gets a 431 and the connection closes at once, whatever is still on its way.
- **header count** (`RECSYS_MAX_HEADERS`): one more than allowed is a 431.
- **read time** (`RECSYS_READ_TIMEOUT_S`): from a request's first byte, its head and its body must
  have arrived within this time, else a 408 and the connection closes. An app already waiting for
  that body sees the client leave (it is counted as a 408, see `app/middleware.py`).
- **idle time** (`RECSYS_KEEP_ALIVE_TIMEOUT_S`, uvicorn's keep-alive timeout): also before a
  connection's first request, which uvicorn leaves unbounded, and bytes that start no request
  (blank lines) do not restart it.

uvicorn's own `limit_concurrency` (`RECSYS_MAX_CONNECTIONS`) answers 503 past the connection cap;
this only counts those. Every refusal is one INFO line and `recsys_http_refused_total{reason}`.
The limits are read once per process from RECSYS_* variables (`recsys serve` sets them before the
workers start), because uvicorn builds this class itself, once per connection, from its `Config`.
"""

from __future__ import annotations

import functools
import logging
from asyncio import TimerHandle
from dataclasses import dataclass
from typing import Any

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from app.metrics import HTTP_REFUSED
from app.middleware import REFUSED_STATE_KEY
from app.settings import ServeSettings

log = logging.getLogger("recsys.http")


@dataclass(frozen=True)
class HttpLimits:
    max_header_bytes: int
    max_headers: int
    read_timeout_s: float

    @classmethod
    def from_settings(cls, settings: ServeSettings) -> HttpLimits:
        return cls(settings.max_header_bytes, settings.max_headers, settings.read_timeout_s)


@functools.cache
def process_limits() -> HttpLimits:
    """The limits of this process, read once: uvicorn makes one protocol object per connection."""
    return HttpLimits.from_settings(ServeSettings())


class _RefusedError(Exception):
    """Raised from a parser callback to stop parsing at once (httptools re-raises it as the context
    of an HttpParserCallbackError)."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` plus the limits above. A request that arrives whole in one read (the
    usual case) costs no timer at all: the read timer is only armed when a read ends inside a
    request."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = process_limits()
        self._max_head, self._max_headers = self.limits.max_header_bytes, self.limits.max_headers
        self._read_timer: TimerHandle | None = None
        self._open = False  # a request has begun and has not been received whole
        self._headers_done = False  # ... and its head is complete (the app has it)
        self._began = 0.0  # loop time of the open request's first byte
        self._head_bytes = 0  # request line and complete headers of the open request
        self._header_count = 0
        # Bytes of consecutive reads in which the parser reported nothing: a header (or blank
        # lines) that httptools is still buffering. Undercounts by at most the read in which it
        # started, so memory stays bounded by the limit plus one read.
        self._pending = 0
        self._progress = False

    # -- connection --------------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        # uvicorn arms its keep-alive timer only after a response: a connection that never sends a
        # request would stay open for good.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """uvicorn's, except that bytes alone no longer cancel the idle timer (a request
        beginning does), and the head's size and the read time are checked after each read."""
        if self.transport.is_closing():  # refused earlier: what is still coming is not parsed
            return
        self._progress = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _RefusedError):
                refused = exc.__context__
                self._refuse(refused.status, refused.reason, refused.detail)
            else:
                msg = "Invalid HTTP request received."
                self.logger.warning(msg)
                self.send_400_response(msg)
            return
        self._pending = 0 if self._progress else self._pending + len(data)
        if self._head_bytes + self._pending > self._max_head:
            self._refuse(431, "header_bytes", self._too_large_detail())
        elif self._open and self._read_timer is None and not self.transport.is_closing():
            self._read_timer = self.loop.call_at(
                self._began + self.limits.read_timeout_s, self._read_timed_out
            )

    # -- parser callbacks ----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._unset_keepalive_if_required()  # a request began: the read timeout governs from here
        self._open, self._headers_done, self._progress = True, False, True
        self._head_bytes = self._header_count = 0
        self._began = self.loop.time()

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._progress = True
        self._head_bytes += len(url)
        if self._head_bytes > self._max_head:
            raise self._head_refusal()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._progress = True
        self._head_bytes += len(name) + len(value) + 4  # ": " and CRLF
        self._header_count += 1
        if self._head_bytes > self._max_head or self._header_count > self._max_headers:
            raise self._head_refusal()
        # uvicorn's own on_header, inlined: it runs for every header of every request.
        name = name.lower()
        value = value.rstrip(b" \t")  # llhttp keeps trailing whitespace, which RFC 9110 excludes
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._headers_done = self._progress = True
        limit = self.limit_concurrency
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            HTTP_REFUSED.labels("max_connections").inc()  # uvicorn answers 503 (same condition)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._progress = True
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._open, self._progress = False, True
        self._head_bytes = 0  # blank lines before the next request count on their own
        self._cancel_read_timer()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._open:  # the next request has begun already: its read timeout governs, not idling
            self._unset_keepalive_if_required()

    # -- refusing ------------------------------------------------------------------------------
    def _too_large_detail(self) -> str:
        return f"request head larger than {self._max_head} bytes (RECSYS_MAX_HEADER_BYTES)"

    def _head_refusal(self) -> _RefusedError:
        if self._header_count > self._max_headers:
            return _RefusedError(
                431, "header_count", f"more than {self._max_headers} header fields (RECSYS_MAX_HEADERS)"
            )
        return _RefusedError(431, "header_bytes", self._too_large_detail())

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self._open and not self.transport.is_closing():
            self._refuse(
                408,
                "read_timeout",
                f"request not received within {self.limits.read_timeout_s:g} s (RECSYS_READ_TIMEOUT_S)",
            )

    def _cancel_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _refuse(self, status: int, reason: str, detail: str) -> None:
        """Answer `status` if nothing else is being answered on this connection, and close it.

        If the app already has this request (its head was complete) and has not answered, it is
        told the client left, and its metrics learn the status the client was really sent."""
        self._cancel_read_timer()
        HTTP_REFUSED.labels(reason).inc()
        prefix = f"{self.client[0]}:{self.client[1]} - " if self.client else ""
        log.info("%s%d, connection closed: %s", prefix, status, detail)
        cycle = self.cycle
        if not (self._open and self._headers_done):  # never reached the app
            # Only an earlier request's answer could be on the wire; never cut into one.
            writable = (cycle is None or cycle.response_complete) and not self.pipeline
        elif cycle is not None and not cycle.response_started and not self.pipeline:
            writable = True
            self.scope["state"][REFUSED_STATE_KEY] = status
            cycle.disconnected = True  # the app's answer, if any, goes nowhere
            cycle.message_event.set()  # an app waiting for the body gets http.disconnect now
        else:  # the app is answering (or answered, and this is the rest of the body): just close
            writable = False
        if writable:
            self._write_refusal(status, detail)
        self._open = False
        self.transport.close()

    def _write_refusal(self, status: int, detail: str) -> None:
        body = orjson.dumps({"detail": detail})
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
