"""The store's health as the service sees it: every store call reports here, `readyz` reads it,
and each transition (degraded, recovered) is logged once, not once per request.

With one master of a Redis Cluster down, the store is down for a third of the users and up for
the rest, so the state changes at nearly every request. Logging each change then wrote two lines
per request, enough to fill a log pipe and stall the worker on its next write (seen in the
cluster failover test). So at most `burst` transition lines are written per `window_s`; a change
held back is written, with the number of changes it stands for, by a later call once the window
allows (`pending` tells callers that a line is waiting, so they call `succeeded` again).

`reason` is the store client's own message (it names the host and port, and goes to the log and
the admin status); `public_reason` is what /readyz shows anyone: whether the store is down, never
where it is.
"""

from __future__ import annotations

import logging
import time
from collections import deque

log = logging.getLogger("recsys.health")


class StoreHealth:
    def __init__(self, burst: int = 4, window_s: float = 10.0) -> None:
        self.ok = True
        self.reason: str | None = None
        self.since = time.time()
        self._down_for = 0.0
        self._window_s = window_s
        self._lines: deque[float] = deque(maxlen=burst)  # time.monotonic() of the last lines
        self._held = 0  # changes that no line has reported yet

    @property
    def public_reason(self) -> str | None:
        """The reason without hosts, ports or paths: only whether the store timed out or failed."""
        if self.ok:
            return None
        reason = (self.reason or "").lower()
        if "timeout" in reason or "timed out" in reason:
            return "the feature store did not answer in time"
        return "the feature store is unreachable or failing"

    @property
    def pending(self) -> bool:
        """Degraded, or a change not yet logged: the next success should be reported."""
        return not self.ok or self._held > 0

    def failed(self, reason: str) -> None:
        if self.ok:
            self.ok, self.since = False, time.time()
            self._held += 1
        self.reason = reason
        self._log()

    def succeeded(self) -> None:
        if not self.ok:
            self._down_for = time.time() - self.since
            self.ok, self.reason, self.since = True, None, time.time()
            self._held += 1
        self._log()

    def _log(self) -> None:
        now = time.monotonic()
        full = len(self._lines) == self._lines.maxlen and now - self._lines[0] < self._window_s
        if not self._held or full:
            return
        more = f" ({self._held - 1} more changes not logged)" if self._held > 1 else ""
        if self.ok:
            log.warning("feature store recovered after %.1f s%s", self._down_for, more)
        else:
            log.warning("feature store degraded, answering with popularity: %s%s", self.reason, more)
        self._lines.append(now)
        self._held = 0
