"""Fixtures of the client tests: a trained version on a real Redis (fresh prefix), served by a
real uvicorn with the items API enabled."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.main import create_app
from feature_store.settings import StoreSettings
from tests.app.conftest import flush, publish, redis_settings, serve_settings
from tests.app.live_server import LiveServer
from tests.builders import train_versions

ADMIN_TOKEN = "client-tests-token"


@pytest.fixture(scope="package")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("client-artifacts")
    train_versions(folder)
    return folder


@pytest.fixture(scope="package")
def store_settings(redis_url: str, artifacts: Path) -> Iterator[StoreSettings]:
    settings = redis_settings(redis_url, artifacts)
    publish(settings, artifacts / "als_v1")
    yield settings
    flush(settings)


@pytest.fixture(scope="package")
def server(artifacts: Path, store_settings: StoreSettings) -> Iterator[LiveServer]:
    app = create_app(serve_settings(artifacts, admin_token=ADMIN_TOKEN), store_settings)
    with LiveServer(app) as live:
        yield live
