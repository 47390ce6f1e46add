"""Shared fixtures: small synthetic logs, the real data folder, and the real PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from training.synthetic import SyntheticConfig, SyntheticData, generate

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REQUIRE_SERVICES = os.environ.get("RECSYS_REQUIRE_SERVICES") == "1"


def real_data(*parts: str) -> Path:
    """A path under ../shared/data, or a skip saying why (the licence forbids bundling it)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (MovieLens may not be redistributed; it is read in place)")
    return path


@pytest.fixture(scope="session")
def small_synthetic() -> SyntheticData:
    return generate(SyntheticConfig(users=2_000, items=400, interactions=60_000, clusters=8, seed=3))


@pytest.fixture(scope="session")
def pg_url() -> str:
    """URL of a real PostgreSQL; scripts/test.sh starts one when none is running."""
    url = os.environ.get("RECSYS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # pragma: no cover - depends on the machine
        if REQUIRE_SERVICES:
            pytest.fail(f"PostgreSQL at {url} is required but unreachable: {exc}")
        pytest.skip(f"PostgreSQL at {url} unreachable (run scripts/test.sh to start one): {exc}")
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a real redis-server; scripts/test.sh starts one on a spare port when none runs."""
    url = os.environ.get("RECSYS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    import redis

    try:
        redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2).ping()
    except Exception as exc:  # pragma: no cover - depends on the machine
        if REQUIRE_SERVICES:
            pytest.fail(f"Redis at {url} is required but unreachable: {exc}")
        pytest.skip(f"Redis at {url} unreachable (run scripts/test.sh to start one): {exc}")
    return url
