"""MkDocs hooks: pages generated from the code at build time, never copies that drift. The HTTP API
page shows the app's own OpenAPI document (`reference/openapi.json`), and the settings page the
fields of the pydantic-settings classes."""

from __future__ import annotations

import importlib
import json
import os
import re
from enum import Enum
from pathlib import PurePath
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page


def on_files(files: Files, config: MkDocsConfig, **_: Any) -> Files:
    # The document depends only on the routes and the configured bounds; the defaults are
    # documented, so settings from this shell's environment must not leak into it.
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("RECSYS_")}
    try:
        from app.main import create_app

        document = create_app().openapi()
    finally:
        os.environ.update(saved)
    content = json.dumps(document, indent=1, sort_keys=False)
    files.append(File.generated(config, "reference/openapi.json", content=content))
    return files


SETTINGS_MARKER = re.compile(r"<!-- settings: ([\w.]+) -->")


def _shown(value: Any) -> str:
    """A default as a user would write it in the variable."""
    if value is None:
        return "unset"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, PurePath | str):
        return str(value)
    return json.dumps(value, default=str) if isinstance(value, dict | list) else str(value)


def _settings_table(path: str) -> str:
    """Every field of a pydantic-settings class as a table row: its variable, default and
    description, read from the class itself (the one place settings are declared)."""
    module_name, _, class_name = path.rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    prefix = cls.model_config.get("env_prefix", "")
    rows = ["| variable | default | what it does |", "|---|---|---|"]
    for name, field in cls.model_fields.items():
        default = "required" if field.is_required() else _shown(field.get_default(call_default_factory=True))
        description = " ".join((field.description or "").split()).replace("|", "\\|")
        rows.append(f"| `{prefix}{name.upper()}` | `{default}` | {description} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, page: Page, **_: Any) -> str:
    return SETTINGS_MARKER.sub(lambda m: _settings_table(m.group(1)), markdown)
