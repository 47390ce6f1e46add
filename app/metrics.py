"""Prometheus metrics of one app instance (its own registry, so tests can build many apps).

With several uvicorn workers, `recsys serve` sets PROMETHEUS_MULTIPROC_DIR and /metrics merges
every worker's values (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_SEARCH_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)

# Counted by the HTTP protocol (app/http_limits.py), which runs below the app and has no app object
# to find its metrics through: one counter per process, registered in every app's registry.
HTTP_REFUSED = Counter(
    "recsys_http_refused",
    "Requests the HTTP server refused or cut off before the app answered them, by reason: "
    "header_bytes and header_count (431), read_timeout (408), max_connections (503).",
    ["reason"],
    registry=None,
)


class ServiceMetrics:
    def __init__(self) -> None:
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        r.register(HTTP_REFUSED)
        self.request_seconds = Histogram(
            "recsys_http_request_duration_seconds",
            "HTTP request latency by route template and status.",
            ["route", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.candidates = Counter(
            "recsys_candidates_requests",
            "Answered /candidates requests (exposures) by variant, tier and method used.",
            ["variant", "tier", "method"],
            registry=r,
        )
        self.search_seconds = Histogram(
            "recsys_index_search_seconds",
            "Item index search time by plan.",
            ["plan"],
            buckets=_SEARCH_BUCKETS,
            registry=r,
        )
        self.store_errors = Counter(
            "recsys_store_errors", "Feature store calls that failed or timed out.", ["operation"], registry=r
        )
        self.interactions = Counter(
            "recsys_interactions_events",
            "Events received by POST /interactions by outcome.",
            ["outcome"],
            registry=r,
        )
        self.ranker_failures = Counter(
            "recsys_ranker_failures",
            "Ranked answers that failed and were answered unranked instead.",
            registry=r,
        )
        self.version_loads = Counter(
            "recsys_version_loads", "Model version loads by outcome.", ["outcome"], registry=r
        )
        self.active_version = Gauge(
            "recsys_active_version_info",
            "1 for the version serving by default.",
            ["version"],
            registry=r,
            multiprocess_mode="liveall",
        )

    def child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, remembered: prometheus-client validates and locks on every
        `labels` call, a few microseconds that the per-request metrics pay three times. Every
        label set here is bounded (route templates, statuses, variants, tiers, methods, plans)."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            merged = CollectorRegistry()
            MultiProcessCollector(merged)
            return generate_latest(merged)
        return generate_latest(self.registry)
