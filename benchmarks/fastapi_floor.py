"""The floor any FastAPI service pays on this machine: a `/predict` that parses the JSON body
and answers a fixed prediction, served by the same uvicorn as `lifeboat serve`.

`benchmarks.serving` measures it beside Lifeboat, so the share of a request's time that is
the framework and the server (not scoring, logging or metrics) is a figure, not a guess.

    uvicorn benchmarks.fastapi_floor:app
"""

from __future__ import annotations

import json

from fastapi import FastAPI, Request, Response

ANSWER = json.dumps({"model": {"name": "floor", "version": "1"}, "predictions": [
    {"id": "00000000-0000-4000-8000-000000000000", "prediction": 0, "label": "died",
     "probability": 0.5}], "errors": []}).encode()

app = FastAPI()


@app.post("/predict")
async def predict(request: Request) -> Response:
    json.loads(await request.body())
    return Response(ANSWER, media_type="application/json")
