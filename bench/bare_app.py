"""The baseline of bench/serve_throughput.py: a bare FastAPI endpoint that parses the same request
body and returns 100 fixed candidates serialised the fast way (orjson, per request), so the ratio shows
what our pipeline adds on top of FastAPI, uvicorn and JSON themselves."""

from __future__ import annotations

import orjson
from fastapi import FastAPI
from fastapi.responses import Response
from pydantic import BaseModel

BODY = {
    "user_id": "u",
    "tier": "warm",
    "method_used": "als",
    "model_version": "als_v1",
    "variant": "default",
    "candidates": [{"item_id": f"i{i:06d}", "score": 1.0 / (i + 1), "source": "als"} for i in range(100)],
}


class Request(BaseModel):
    user_id: str
    k: int = 100


def create_app() -> FastAPI:
    app = FastAPI()

    @app.post("/bare")
    async def bare(body: Request) -> Response:
        return Response(orjson.dumps(BODY), media_type="application/json")  # serialised per request

    return app
