"""The ceiling of the end-to-end HTTP benchmark: the same four routes in FastAPI under
uvicorn, with an owner dependency and the path's UUID parsed as the others do, but no
database: each answers a fixed task. No server that does the work can beat it on this
machine, so it bounds any ratio against the others (``--floor`` in benchmarks/http.py).

    uvicorn benchmarks.http_null:app
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, FastAPI, Header, Request
from starlette.responses import Response

app = FastAPI()

TASK = (
    b'{"id":"00000000-0000-0000-0000-000000000000","user_id":"u1","title":"t",'
    b'"description":null,"status":"pending","version":1,'
    b'"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z",'
    b'"completed_at":null}'
)
PAGE = b'{"items":[' + b",".join([TASK] * 50) + b'],"next_cursor":null}'


async def owner(x_user: Annotated[str, Header()]) -> str:
    return x_user


Owner = Annotated[str, Depends(owner)]


@app.get("/tasks/{task_id}")
async def get(task_id: uuid.UUID, who: Owner) -> Response:
    return Response(TASK, media_type="application/json", headers={"ETag": '"1"'})


@app.get("/tasks")
async def list_tasks(who: Owner, limit: int = 50) -> Response:
    return Response(PAGE, media_type="application/json")


@app.post("/tasks", status_code=201)
async def create(request: Request, who: Owner) -> Response:
    await request.body()
    return Response(TASK, status_code=201, media_type="application/json")


@app.patch("/tasks/{task_id}")
async def update(task_id: uuid.UUID, request: Request, who: Owner) -> Response:
    await request.body()
    return Response(TASK, media_type="application/json")
