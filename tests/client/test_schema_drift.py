"""The client's models against the server's OpenAPI document: equal today, and any drift (a
field renamed, retyped, added or made required on the server) is reported by name."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from recsys_client.schema_check import compare

from app.main import create_app


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return create_app().openapi()


def test_the_client_models_match_the_servers_document(spec: dict[str, Any]) -> None:
    assert compare(spec) == []


def _changed(spec: dict[str, Any], schema: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A copy of the document, and the named schema inside it to change."""
    changed = copy.deepcopy(spec)
    return changed, changed["components"]["schemas"][schema]


def test_a_renamed_field_is_reported_on_both_sides(spec: dict[str, Any]) -> None:
    changed, candidate = _changed(spec, "Candidate")
    candidate["properties"]["id"] = candidate["properties"].pop("item_id")
    assert compare(changed) == [
        "Candidate (server: Candidate): the server has field 'id', the client does not",
        "Candidate (server: Candidate): the client has field 'item_id', the server does not",
    ]


def test_a_retyped_field_is_reported(spec: dict[str, Any]) -> None:
    changed, request = _changed(spec, "CandidatesRequest")
    request["properties"]["k"] = {"type": "string"}
    assert compare(changed) == [
        "CandidatesRequest (server: CandidatesRequest).k: client type integer|null, server type string"
    ]


def test_a_field_the_server_starts_to_require_is_reported(spec: dict[str, Any]) -> None:
    changed, event = _changed(spec, "InteractionEvent")
    event["required"] = [*event.get("required", []), "timestamp"]
    assert compare(changed) == [
        "Event (server: InteractionEvent): required fields differ: client ['item_id', 'user_id'], "
        "server ['item_id', 'timestamp', 'user_id']"
    ]


def test_a_new_response_field_and_a_missing_schema_are_reported(spec: dict[str, Any]) -> None:
    changed, answer = _changed(spec, "BatchCandidates")
    answer["properties"]["explanation"] = {"type": "string"}
    del changed["components"]["schemas"]["ItemsWritten"]
    assert compare(changed) == [
        "Candidates (server: BatchCandidates): the server has field 'explanation', the client does not",
        "ItemsWritten (server: ItemsWritten): the server has no such schema",
    ]


def test_the_single_call_answer_is_the_batch_answer_without_its_fallback_field(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    single = set(schemas["CandidatesResponse"]["properties"])
    assert single | {"fallback_reason"} == set(schemas["BatchCandidates"]["properties"])
