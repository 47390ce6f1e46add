"""Does this client still speak the server's language? Compare its models with `/openapi.json`.

Each model in `models.SERVER_NAMES` is compared with the server's component of that name:
the same fields (by their JSON names), the same types (constraints aside), and required fields
that agree. A request model must match exactly (the client must send what the server needs and
nothing it refuses); a response model may be more lenient than the server (a default where the
server always sends the field) but must know every field the server sends.

`RecsysClient.check_schema()` runs it against a live server; the service's tests run it on
every change, so a server change that the client does not follow fails CI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel

from recsys_client.models import SERVER_NAMES, _Request

Schema = Mapping[str, Any]


def shape(node: Schema, ref_name: Callable[[str], str]) -> str:
    """A type as comparable text: `array[string]`, `null|number`, `ref:Filters`; bounds,
    descriptions, titles and examples are left out (they may differ without breaking anything)."""
    if "$ref" in node:
        return "ref:" + ref_name(str(node["$ref"]).rsplit("/", 1)[-1])
    for key in ("anyOf", "oneOf"):
        if key in node:
            return "|".join(sorted({shape(branch, ref_name) for branch in node[key]}))
    if "allOf" in node and len(node["allOf"]) == 1:
        return shape(node["allOf"][0], ref_name)
    if "enum" in node:
        return "enum(" + ",".join(sorted(str(v) for v in node["enum"])) + ")"
    if "const" in node:
        return f"enum({node['const']})"
    kind = node.get("type")
    if kind == "array":
        return f"array[{shape(node.get('items', {}), ref_name)}]"
    if kind == "object":
        extra = node.get("additionalProperties")
        patterns = node.get("patternProperties")
        if extra is None and isinstance(patterns, Mapping) and len(patterns) == 1:
            extra = next(iter(patterns.values()))  # keys under a pattern: the values' type counts
        return f"object[{shape(extra, ref_name) if isinstance(extra, Mapping) else ''}]"
    if isinstance(kind, list):
        return "|".join(sorted(kind))
    if kind == "string" and node.get("format") == "date-time":
        return "string"
    return str(kind) if kind else "any"


def _server_component(components: Schema, name: str) -> Schema | None:
    """FastAPI splits a model whose input and output schemas differ into `X-Input`/`X-Output`."""
    for candidate in (name, f"{name}-Input", f"{name}-Output"):
        if candidate in components:
            found: Schema = components[candidate]
            return found
    return None


def _server_ref(name: str) -> str:
    return name.removesuffix("-Input").removesuffix("-Output")


def compare(openapi: Schema, models: Mapping[type[BaseModel], str] = SERVER_NAMES) -> list[str]:
    """Every difference between the client's models and the server's document, one line each;
    an empty list means the client matches."""
    components: Schema = openapi.get("components", {}).get("schemas", {})
    client_names = {model.__name__: server for model, server in models.items()}
    problems: list[str] = []
    for model, server_name in models.items():
        where = f"{model.__name__} (server: {server_name})"
        server = _server_component(components, server_name)
        if server is None:
            problems.append(f"{where}: the server has no such schema")
            continue
        mine = model.model_json_schema(by_alias=True)
        ours: Schema = mine.get("properties", {})
        theirs: Schema = server.get("properties", {})
        for field in sorted(theirs.keys() - ours.keys()):
            problems.append(f"{where}: the server has field {field!r}, the client does not")
        for field in sorted(ours.keys() - theirs.keys()):
            problems.append(f"{where}: the client has field {field!r}, the server does not")
        for field in sorted(ours.keys() & theirs.keys()):
            a = shape(ours[field], lambda n: client_names.get(n, n))
            b = shape(theirs[field], _server_ref)
            if a != b:
                problems.append(f"{where}.{field}: client type {a}, server type {b}")
        our_required, their_required = set(mine.get("required", [])), set(server.get("required", []))
        if issubclass(model, _Request):
            if our_required != their_required:
                problems.append(
                    f"{where}: required fields differ: client {sorted(our_required)}, "
                    f"server {sorted(their_required)}"
                )
        elif not our_required <= their_required:
            problems.append(
                f"{where}: the client requires {sorted(our_required - their_required)}, "
                "which the server may leave out"
            )
    return problems
