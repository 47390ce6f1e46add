"""The store's health as the service sees it: every store call reports here, `readyz` reads it,
and each transition (degraded, recovered) is logged once, not once per request."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("recsys.health")


class StoreHealth:
    def __init__(self) -> None:
        self.ok = True
        self.reason: str | None = None
        self.since = time.time()

    def failed(self, reason: str) -> None:
        if self.ok:
            log.warning("feature store degraded, answering with popularity: %s", reason)
            self.ok, self.since = False, time.time()
        self.reason = reason

    def succeeded(self) -> None:
        if not self.ok:
            log.warning("feature store recovered after %.1f s", time.time() - self.since)
            self.ok, self.reason, self.since = True, None, time.time()
