"""schemathesis against the app's own OpenAPI document, over HTTP to a real uvicorn on a real
Redis serving a train-all version (every method reachable): thousands of generated requests,
valid and invalid, and not one 500 or one answer that breaks the documented schema."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from app.main import create_app
from app.settings import ServeSettings
from tests.app.conftest import flush, publish, redis_settings, serve_settings
from tests.app.live_server import LiveServer
from tests.builders import train_all_version

ADMIN_TOKEN = "fuzz-admin-token"
# Per operation; the GET routes have no inputs, so they stop after a handful on their own.
EXAMPLES = 500
CASES_RUN: list[str] = []


# The document is the app's own; building the app reads no files (the lifespan does).
schema = schemathesis.openapi.from_dict(create_app(ServeSettings()).openapi())


@pytest.fixture(scope="module")
def live(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    version = train_all_version(tmp_path_factory.mktemp("fuzz"))
    store = redis_settings(redis_url, version.parent)
    publish(store, version)
    app = create_app(serve_settings(version.parent, admin_token=ADMIN_TOKEN), store)
    with LiveServer(app) as server:
        yield server
    flush(store)
    print(f"\nschemathesis: {len(CASES_RUN)} cases")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_generated_request_gets_a_server_error_or_an_off_schema_answer(
    case: schemathesis.Case, live: LiveServer
) -> None:
    CASES_RUN.append(case.operation.label)
    case.call_and_validate(
        checks=[
            checks.not_a_server_error,
            checks.status_code_conformance,
            checks.content_type_conformance,
            checks.response_schema_conformance,
            checks.response_headers_conformance,
        ],
        base_url=live.url,
        timeout=10,
    )
