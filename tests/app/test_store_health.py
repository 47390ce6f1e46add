"""Store health logging: one line per change while changes are rare, a bounded number while the
state flaps (a Redis Cluster with one master down), and the final state always reported."""

from __future__ import annotations

import logging

import pytest

from app.health import StoreHealth


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "recsys.health"]


def test_an_outage_and_its_recovery_are_logged_at_once(caplog: pytest.LogCaptureFixture) -> None:
    health = StoreHealth()
    with caplog.at_level(logging.WARNING, logger="recsys.health"):
        health.failed("redis ping: ConnectionError")
        health.failed("redis read profile: ConnectionError")  # still down: no new line
        health.succeeded()
    assert _lines(caplog) == [
        "feature store degraded, answering with popularity: redis ping: ConnectionError",
        "feature store recovered after 0.0 s",
    ]
    assert health.ok and not health.pending


def test_a_flapping_store_logs_a_few_lines_then_a_count_of_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    health = StoreHealth(burst=4, window_s=3_600)
    with caplog.at_level(logging.WARNING, logger="recsys.health"):
        for n in range(1_000):
            health.failed(f"master {n % 3} down")
            health.succeeded()
        assert len(_lines(caplog)) == 4 and health.pending  # the last recovery waits for the window
        health._window_s = 0  # the window has passed
        health.succeeded()  # what the next request or readyz probe calls while `pending`
    assert _lines(caplog)[-1] == "feature store recovered after 0.0 s (1995 more changes not logged)"
    assert not health.pending
