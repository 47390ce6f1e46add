"""MkDocs hook: the HTTP API page shows the service's own OpenAPI document, generated from the
app at build time (never a copy that drifts), as `reference/openapi.json` in the site."""

from __future__ import annotations

import json
import os
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files


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
