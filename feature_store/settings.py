"""Feature store settings (env prefix RECSYS_): which store, how to reach it, how hard to push it."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class StoreSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECSYS_", extra="ignore")

    redis_url: SecretStr | None = Field(
        None,
        description="redis://[:password@]host:port/db or rediss:// for TLS; unset = the embedded store.",
    )
    redis_cluster: bool = Field(
        False,
        description="The URL names one node of a Redis Cluster: the client discovers the others, "
        "routes each key to its master and follows failovers.",
    )
    redis_tls_ca_file: Path | None = Field(
        None, description="CA bundle that signed the server's certificate (rediss:// only)."
    )
    redis_tls_cert_file: Path | None = Field(
        None, description="Client certificate, for servers that require one (rediss:// only)."
    )
    redis_tls_key_file: Path | None = Field(None, description="Key of the client certificate.")
    redis_prefix: str = Field(
        "recsys",
        min_length=1,
        max_length=64,
        pattern=r"^[^{}]+$",
        description="Key namespace prefix (no braces: they would pin every key to one cluster slot).",
    )
    redis_pool_size: int = Field(
        32,
        ge=1,
        le=10_000,
        description="Connections in the pool; on a cluster, per node, and a request past it falls "
        "back at once instead of waiting for a free connection.",
    )
    redis_timeout_s: float = Field(0.25, gt=0, description="Socket timeout of serving reads.")
    redis_connect_timeout_s: float = Field(1.0, gt=0, description="Connection timeout.")
    publish_chunk: int = Field(1_000, ge=1, le=100_000, description="Users per MSET during publish.")
    publish_pipeline: int = Field(8, ge=1, le=1_000, description="MSET commands per pipelined round trip.")
    publish_timeout_s: float = Field(60.0, gt=0, description="Socket timeout of bulk writes.")
    recent_limit: int = Field(50, ge=1, le=10_000, description="Recent items kept and read per user.")
    stream_maxlen: int = Field(10_000_000, ge=1_000, description="Approximate cap of the event stream.")
    idempotency_ttl_s: int = Field(86_400, ge=1, description="How long a request id is remembered.")
    live_events_per_user: int = Field(
        1_000,
        ge=1,
        le=100_000,
        description="Run-time events kept per user for serving (the newest; all go to the stream).",
    )
    pin_ttl_s: float = Field(
        60.0, gt=0, description="How long a server's declared A/B version pins protect those versions."
    )
    artifacts: Path = Field(Path("artifacts"), description="Folder of model versions (embedded store).")
