"""Reading a JSON body straight into its pydantic model, for the hot route.

FastAPI's own body handling decodes the bytes with the standard library's `json`, validates the
resulting dicts, and solves the route's dependencies on every request: measured at about 50 us a
request over a route that takes `Request` and validates the raw bytes with pydantic-core's JSON
parser (bench/serve_throughput.py, ML-1M, one worker). The route then declares its body to
OpenAPI itself (`openapi_body`, the pattern FastAPI documents as "custom OpenAPI path operation
schema"), and `register_schemas` puts the model's schema where that reference points.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

M = TypeVar("M", bound=BaseModel)

_REF = "#/components/schemas/{model}"


def parse_body(model: type[M], raw: bytes, content_type: str | None) -> M:
    """The model from raw JSON bytes; a 422 in FastAPI's shape (locations under "body") when not.
    Like FastAPI, a body without a content type is read as JSON, one that declares another type
    is not."""
    if content_type is not None and not _is_json(content_type):
        raise RequestValidationError(
            [
                {
                    "type": "model_attributes_type",
                    "loc": ("body",),
                    "msg": "Input should be a valid dictionary or object to extract fields from: "
                    f"send JSON with content-type application/json, not {content_type[:64]!r}",
                }
            ]
        )
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors: list[dict[str, Any]] = [dict(e) for e in exc.errors(include_url=False)]
        for error in errors:
            error["loc"] = ("body", *error["loc"])
            if error["type"] == "json_invalid":
                error["msg"] = _json_message(error)
                error.pop("input", None)
                error.pop("ctx", None)
        raise RequestValidationError(errors) from None


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _json_message(error: Any) -> str:
    reason = str(error.get("ctx", {}).get("error", error.get("msg", "")))
    if "surrogate" in reason or "hex escape" in reason:
        return f"invalid JSON: {reason} (ids must be valid unicode text)"
    if "unicode code point" in reason:
        return f"invalid JSON: {reason} (the body must be UTF-8 text)"
    if "recursion limit" in reason:
        return f"invalid JSON: nested too deeply ({reason})"
    if not reason or "EOF while parsing a value at line 1 column 0" in reason:
        return "the body is empty: send a JSON object"
    return f"invalid JSON: {reason}"


def openapi_body(model: type[BaseModel], description: str) -> dict[str, Any]:
    """`openapi_extra` for a route that parses its body itself with `parse_body`."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}},
        }
    }


def register_schemas(app: FastAPI, models: list[type[BaseModel]]) -> None:
    """Make `app.openapi()` carry the schemas of `models` (and the models they nest) among its
    components, beside those FastAPI found in route signatures."""

    default = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = default()  # FastAPI's document (it caches it in app.openapi_schema)
            _, top = models_json_schema([(m, "validation") for m in models], ref_template=_REF)
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            for name, schema in top.get("$defs", {}).items():
                schemas.setdefault(name, schema)
        return app.openapi_schema or default()

    app.openapi = openapi  # type: ignore[method-assign]


def configured_limits(app: FastAPI, max_k: int, max_events: int, max_batch_users: int) -> None:
    """Make the document state the bounds this server enforces (`RECSYS_MAX_K`,
    `RECSYS_MAX_EVENTS_PER_REQUEST`, `RECSYS_MAX_BATCH_USERS`), not the schema's hard ceilings,
    so a client generated from it never sends what the server refuses."""
    previous = app.openapi

    def openapi() -> dict[str, Any]:
        cached = app.openapi_schema is not None
        spec = previous()
        if not cached:
            schemas = spec.get("components", {}).get("schemas", {})
            for name in ("CandidatesRequest", "BatchCandidatesRequest"):
                k = schemas.get(name, {}).get("properties", {}).get("k", {})
                for branch in [k, *k.get("anyOf", [])]:
                    if "maximum" in branch:
                        branch["maximum"] = max_k
            for name, field, bound in (
                ("InteractionBatch", "events", max_events),
                ("BatchCandidatesRequest", "user_ids", max_batch_users),
            ):
                prop = schemas.get(name, {}).get("properties", {}).get(field, {})
                if "maxItems" in prop:
                    prop["maxItems"] = bound
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
