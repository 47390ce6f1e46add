"""When and how long to wait before trying a call again: a pure policy, used by both clients.

Exponential backoff with full jitter (a random wait between 0 and the exponential bound): a
fleet of clients that failed together does not come back together. A `Retry-After` header, when
the server sends one, is a floor.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4  # tries in all, the first included
    backoff_s: float = 0.05  # the bound of the first wait; doubles each time
    max_backoff_s: float = 2.0
    statuses: frozenset[int] = frozenset({502, 503, 504})

    def delay(
        self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """The wait after failed try number `attempt` (1-based)."""
        bound = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        wait = (rng or random).uniform(0, bound)
        return max(wait, retry_after) if retry_after is not None else wait


NO_RETRY = RetryPolicy(attempts=1)


def retry_after(value: str | None, cap_s: float = 30.0) -> float | None:
    """A `Retry-After` of seconds (a date is ignored), bounded: a server never parks a client."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return min(max(seconds, 0.0), cap_s)
