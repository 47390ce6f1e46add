"""The floor under bench/serve_throughput.py: the least a /candidates answer can do with the same
model and store, as the issue measured it before the project existed ("a minimal Redis GET +
HNSW + orjson path"). One GET of the user's packed profile, its stored ALS vector searched in
the version's Faiss index on the event loop (k=100, no exclusion, no filters, no routing, no
metrics, no fallbacks), 100 dicts serialised with orjson. What /candidates adds over this is the
product; what this adds over bench/bare_app.py is the unavoidable minimum.

Configured by MINIMAL_VERSION_DIR, MINIMAL_REDIS_URL and MINIMAL_REDIS_PREFIX.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import faiss
import numpy as np
import orjson
import redis.asyncio as aioredis
from fastapi import FastAPI
from fastapi.responses import Response
from pydantic import BaseModel

from feature_store.index_files import open_faiss_index, read_index_meta, transform_queries
from feature_store.keys import KeySchema
from feature_store.profile_codec import unpack_profile
from feature_store.version_files import load_mapping


class Request(BaseModel):
    user_id: str
    k: int = 100


def create_app() -> FastAPI:
    folder = Path(os.environ["MINIMAL_VERSION_DIR"])
    meta = read_index_meta(folder)["als"]
    index = open_faiss_index(folder, meta)
    faiss.omp_set_num_threads(1)
    # The version's calibrated beam, as /candidates uses it (HNSW at least k wide).
    space = faiss.ParameterSpace()
    if "ef_search" in meta.params:
        space.set_index_parameter(index, "efSearch", max(int(meta.params["ef_search"]), 100))
    if "nprobe" in meta.params:
        space.set_index_parameter(index, "nprobe", int(meta.params["nprobe"]))
    item_ids = load_mapping(folder, "item_mapping.json")
    keys = KeySchema(os.environ.get("MINIMAL_REDIS_PREFIX", "recsys"))
    version = folder.name
    state: dict[str, aioredis.Redis] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state["redis"] = aioredis.Redis.from_url(os.environ["MINIMAL_REDIS_URL"], max_connections=64)
        yield
        await state["redis"].aclose()

    app = FastAPI(lifespan=lifespan)

    @app.post("/minimal")
    async def minimal(body: Request) -> Response:
        packed = await state["redis"].get(keys.user(version, body.user_id) + ":p")
        if not isinstance(packed, bytes):
            return Response(status_code=404)
        vector = unpack_profile(packed).embeddings["als"]
        q = transform_queries(np.asarray(vector, np.float32).reshape(1, -1), meta.transform)
        scores, rows = index.search(q, body.k)
        candidates = [
            {"item_id": item_ids[r], "score": s, "source": "als"}
            for r, s in zip(rows[0].tolist(), scores[0].tolist(), strict=True)
        ]
        out = {"user_id": body.user_id, "method_used": "als", "candidates": candidates}
        return Response(orjson.dumps(out), media_type="application/json")

    return app
