"""Serving settings, all in one place (env prefix RECSYS_, the same names as `recsys serve` options).

The feature store's own settings (RECSYS_REDIS_URL and friends) live in
`feature_store/settings.py`; the app reads both once, at start-up, and hands them down.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from feature_store.confidence import DEFAULT_EVENT_WEIGHTS
from feature_store.fusion import SOURCES as FUSION_SOURCES


class ServeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECSYS_", extra="ignore")

    artifacts: Path = Field(Path("artifacts"), description="Folder of model versions (index files).")
    host: str = Field("127.0.0.1", description="Address uvicorn binds (`recsys serve --host`).")
    port: int = Field(8000, ge=1, le=65535, description="Port uvicorn binds.")
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="uvicorn worker processes; one per core is the measured sweet spot "
        "(docs/benchmarks/speed.md).",
    )
    search_threads: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Threads per worker for index searches and fold-ins too long for the event loop; "
        "default: the cores this process may use divided by `workers`, at least 1.",
    )
    # -- the request ------------------------------------------------------------------------
    max_k: int = Field(1_000, ge=1, le=10_000, description="Largest `k` a request may ask for.")
    default_k: int = Field(100, ge=1, description="`k` when a request gives none.")
    max_batch_users: int = Field(
        1_000, ge=1, le=10_000, description="Users per POST /candidates/batch request."
    )
    max_body_bytes: int = Field(1 << 20, ge=1_024, description="Larger request bodies get a 413.")
    max_events_per_request: int = Field(1_000, ge=1, le=100_000, description="Events per POST /interactions.")
    # -- routing (DESIGN.md's tier table) ---------------------------------------------------
    warm_min_interactions: int = Field(5, ge=1, description="Users with fewer interactions are cold.")
    hot_min_interactions: int = Field(20, ge=2, description="Users with at least this many are hot.")
    ab_config: Path | None = Field(
        None, description="A/B variants file (TOML or JSON); unset = one variant named 'default'."
    )
    # -- the store and search budget ------------------------------------------------------
    store_timeout_s: float = Field(
        0.2, gt=0, le=30, description="Budget of one feature-store call; past it the answer degrades."
    )
    ef_search: int | None = Field(
        None,
        ge=1,
        le=65_536,
        description="HNSW efSearch / IVF nprobe; unset = the version's calibrated value.",
    )
    ensemble_weights: dict[str, float] | None = Field(
        None,
        description='Hot-tier fusion weights per source, e.g. {"als": 0.6, "two_tower": 0.4}; '
        "unset = the weights the version fitted on validation data.",
    )
    ensemble_rrf_k: float | None = Field(
        None, gt=0, le=10_000, description="Reciprocal rank fusion constant; unset = the version's."
    )
    ranker: bool = Field(
        True,
        description="Order candidates with the version's ranker where it has one (in the tiers it "
        "won on validation); an A/B variant's `ranker` overrides it.",
    )
    ranker_inline_max_work: int = Field(
        100_000,
        ge=0,
        le=100_000_000,
        description="Candidates x the ranker's split tests per candidate below which a request's "
        "features and trees run on the event loop instead of a search thread (a hand-off cost more "
        "than 200 candidates through a 55-tree model; 0 = always on a search thread).",
    )
    ranker_tiers: list[Literal["cold", "warm", "hot"]] | None = Field(
        None,
        description='Tiers the ranker orders, e.g. ["warm", "hot"]; unset = the tiers where it beat '
        "every unranked method on the version's validation users (its manifest says which).",
    )
    content_prior: float | None = Field(
        None,
        ge=0,
        le=100,
        description="Weight of item popularity in content-based scores; unset = the version's fitted one.",
    )
    event_weights: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS),
        description="Event weights for versions whose manifest records none.",
    )
    foldin_max_items: int = Field(
        2_000, ge=1, description="Most recent items a fold-in uses (bounds its cost for huge histories)."
    )
    # -- versions -------------------------------------------------------------------------
    reload_poll_s: float = Field(
        5.0, ge=0, description="How often the active-version pointer is checked; 0 = only on admin reload."
    )
    catalog_timeout_s: float = Field(
        1.0,
        gt=0,
        description="Budget of reading the items API's changes when a request finds the catalog "
        "changed; past it (twice) the request is a 503: an answer could hold an item just hidden.",
    )
    new_item_poll_s: float = Field(
        2.0,
        ge=0,
        description="How often each worker reads the event stream for events on items added through "
        "the items API, to fold them into ALS vectors; 0 = never.",
    )
    admin_token: SecretStr | None = Field(
        None, description="Bearer token of /admin/*; unset = admin endpoints are disabled."
    )
    api_keys: list[SecretStr] | None = Field(
        None,
        description="Keys accepted in X-API-Key by /candidates and /interactions, as a JSON list "
        '(\'["key-a", "key-b"]\'; two at once rotate a key); unset = the public routes are open.',
    )
    # -- the HTTP server: limits every worker enforces (app/http_limits.py) ---------------------
    max_header_bytes: int = Field(
        16_384,
        ge=512,
        le=1 << 20,
        description="Request line and headers together (trailers included); a larger head gets a 431 "
        "and the connection is closed as soon as it is over, not once it ends.",
    )
    max_headers: int = Field(
        100,
        ge=8,
        le=10_000,
        description="Header fields per request (trailers included); more get a 431 and the connection "
        "closes.",
    )
    read_timeout_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description="A request's head and body must both arrive within this many seconds of its first "
        "byte; a slower one gets a 408 and the connection closes.",
    )
    keep_alive_timeout_s: int = Field(
        5,
        ge=1,
        le=3_600,
        description="A connection with no request in progress (before its first one, or between two) is "
        "closed after this many seconds.",
    )
    max_connections: int = Field(
        1_000,
        ge=1,
        le=1_000_000,
        description="Open connections (and requests in flight) per worker; past it a request gets a 503 "
        "and its connection is closed.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ServeSettings:
        if self.hot_min_interactions <= self.warm_min_interactions:
            raise ValueError("hot_min_interactions must be greater than warm_min_interactions")
        if self.default_k > self.max_k:
            raise ValueError("default_k must not exceed max_k")
        if self.ensemble_weights is not None:
            unknown = set(self.ensemble_weights) - set(FUSION_SOURCES)
            if unknown:
                raise ValueError(
                    f"ensemble_weights: unknown sources {sorted(unknown)}; known: {', '.join(FUSION_SOURCES)}"
                )
            if not any(w > 0 for w in self.ensemble_weights.values()):
                raise ValueError("ensemble_weights: at least one weight must be positive")
        return self
