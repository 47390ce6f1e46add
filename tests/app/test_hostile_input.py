"""Hostile and odd input over HTTP to a real uvicorn: every one gets a 4xx that says what is wrong
(or a 200 where the input is merely unusual, like unicode ids), never a 500, a hang or a memory
spike. The ids of the cases are the list the README and the closing note report."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

MB = 1 << 20


@dataclass(frozen=True)
class Hostile:
    path: str
    body: bytes
    status: int
    says: str  # a fragment of the answer: the field's location or the message
    headers: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def _nested(depth: int) -> bytes:
    return b'{"user_id": "u1", "filters": ' + b"[" * depth + b"]" * depth + b"}"


CASES = {
    "nested-arrays-200k-deep": Hostile("/candidates", _nested(200_000), 422, "nested"),
    "nested-objects-50k-deep": Hostile(
        "/candidates",
        b'{"user_id": "u1", "filters": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_000 + b"}",
        422,
        "nested",
    ),
    "body-over-1mb-declared": Hostile(
        "/candidates", _json({"user_id": "u", "pad": "x" * 2 * MB}), 413, "bytes"
    ),
    "invalid-utf8-bytes": Hostile("/candidates", b'{"user_id": "\xff\xfe"}', 422, "UTF-8"),
    "not-json": Hostile("/candidates", b"user_id=u1&k=10", 422, "json_invalid"),
    "json-but-a-list": Hostile("/candidates", b'[{"user_id": "u1"}]', 422, '"body"'),
    "wrong-content-type": Hostile(
        "/candidates", b'{"user_id": "u1"}', 422, "dictionary", (("content-type", "text/plain"),)
    ),
    "k-is-10-to-the-30": Hostile("/candidates", b'{"user_id": "u1", "k": 1' + b"0" * 30 + b"}", 422, '"k"'),
    "k-above-max-k": Hostile("/candidates", _json({"user_id": "u1", "k": 5_000}), 422, "max_k"),
    "k-negative": Hostile("/candidates", _json({"user_id": "u1", "k": -1}), 422, '"k"'),
    "k-nan": Hostile("/candidates", b'{"user_id": "u1", "k": NaN}', 422, "finite"),
    "k-infinity": Hostile("/candidates", b'{"user_id": "u1", "k": Infinity}', 422, '"k"'),
    "id-with-nul": Hostile("/candidates", _json({"user_id": "a\x00b"}), 422, "control characters"),
    "id-with-newline": Hostile("/candidates", _json({"user_id": "a\nb"}), 422, "control characters"),
    "id-with-escape-sequence": Hostile(
        "/candidates", _json({"user_id": "\x1b[2J"}), 422, "control characters"
    ),
    "id-lone-surrogate": Hostile("/candidates", b'{"user_id": "\\ud800"}', 422, "unicode"),
    "id-10k-chars": Hostile("/candidates", _json({"user_id": "x" * 10_000}), 422, "at most 256"),
    "id-empty": Hostile("/candidates", _json({"user_id": ""}), 422, '"user_id"'),
    "id-is-a-number": Hostile("/candidates", _json({"user_id": 12345}), 422, '"user_id"'),
    "unknown-field": Hostile("/candidates", _json({"user_id": "u1", "admin": True}), 422, '"admin"'),
    "deny-list-100k": Hostile(
        "/candidates", _json({"user_id": "u1", "filters": {"deny_items": ["i"] * 100_000}}), 422, "at most"
    ),
    "attributes-5k-keys": Hostile(
        "/candidates",
        _json({"user_id": "u1", "filters": {"attributes": {f"c{i}": {"in": ["a"]} for i in range(5_000)}}}),
        422,
        "at most 32",
    ),
    "range-bound-1e400": Hostile(
        "/candidates",
        b'{"user_id": "u1", "filters": {"attributes": {"price": {"gte": 1e400}}}}',
        422,
        "price",
    ),
    "variant-header-10k-chars": Hostile(
        "/candidates",
        _json({"user_id": "u1"}),
        422,
        "x-ab-variant",
        (("content-type", "application/json"), ("x-ab-variant", "v" * 10_000)),
    ),
    "variant-header-unknown": Hostile(
        "/candidates",
        _json({"user_id": "u1"}),
        422,
        "known: default",
        (("content-type", "application/json"), ("x-ab-variant", "nope")),
    ),
    "events-over-the-cap": Hostile(
        "/interactions",
        _json({"events": [{"user_id": "u", "item_id": "i", "event_type": "view"}] * 1_001}),
        422,
        "at most 1000",
    ),
    "event-weight-huge-int": Hostile(
        "/interactions",
        b'{"user_id": "u", "item_id": "i", "weight": 1' + b"0" * 40 + b"}",
        422,
        "weight",
    ),
    "event-timestamp-string": Hostile(
        "/interactions",
        _json({"user_id": "u", "item_id": "i", "weight": 1, "timestamp": "yesterday"}),
        422,
        "timestamp",
    ),
    "event-lone-surrogate": Hostile(
        "/interactions", b'{"user_id": "\\udfff", "item_id": "i", "event_type": "view"}', 422, "user_id"
    ),
    "request-id-with-control-chars": Hostile(
        "/interactions",
        _json({"request_id": "a\tb", "events": [{"user_id": "u", "item_id": "i", "event_type": "view"}]}),
        422,
        "control characters",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_hostile_input_gets_a_clear_4xx(client: httpx.Client, case: Hostile) -> None:
    response = client.post(case.path, content=case.body, headers=dict(case.headers))
    assert response.status_code == case.status, response.text[:500]
    assert response.headers["content-type"] == "application/json"
    assert case.says in response.text, response.text[:500]
    assert "Traceback" not in response.text and len(response.content) < 8_192


@pytest.mark.parametrize(
    "user_id",
    [
        "😀-user",
        "Zoë Ünïcødé",
        "\u202eevil-rtl",
        "用户一二三",
        "e\u0301-combining",
        "'; DROP TABLE users;--",
        "{{7*7}}",
    ],
)
def test_unusual_but_valid_ids_are_served_and_echoed_unchanged(client: httpx.Client, user_id: str) -> None:
    response = client.post("/candidates", json={"user_id": user_id, "k": 5})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_id"] == user_id and body["tier"] == "cold" and len(body["candidates"]) == 5


def test_a_stream_of_hostile_bodies_leaves_memory_bounded(client: httpx.Client) -> None:
    """The server shares this process: its resident memory after a hundred 1 MB hostile bodies (the
    body cap) grows by a small fraction of what they weigh together."""
    big = [_nested(400_000), _json({"user_id": "u1", "filters": {"deny_items": ["i" * 90] * 10_001}})]
    assert all(len(body) < MB for body in big)
    before = _rss()
    for i in range(100):
        body = big[i % 2]
        assert (
            client.post("/candidates", content=body, headers={"content-type": "application/json"}).status_code
            == 422
        )
    grown = _rss() - before
    assert grown < 40 * MB, f"resident memory grew by {grown / MB:.0f} MB"


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    pytest.skip("no /proc/self/status on this system")
