"""todo_app behind FastAPI, with Tortoise's own ``RegisterTortoise`` lifespan.

    uvicorn examples.fastapi_app:app       # DATABASE_URL from the environment

The owner comes from an ``X-User`` header here; a real app takes it from its auth.
The task ``version`` travels as the ETag; ``If-Match`` makes writes conditional.

With read replicas (``TODO_APP_READ_URLS``), reads run on a replica and every write
answers with a consistency token, as the ``X-Consistency-Token`` header and the
``todo_consistency`` cookie. A browser sends the cookie back by itself; an API
client sends the header. The next request's reads then see that client's writes,
on a replica that has replayed them or else on the primary. Without replicas no
token is sent: every read is on the primary and current.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Cookie, Depends, FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse
from tortoise.contrib.fastapi import RegisterTortoise

import todo_app
from todo_app import (
    TaskConflict,
    TaskCreate,
    TaskNotFound,
    TaskPage,
    TaskRead,
    TaskRepository,
    TaskStatus,
    TaskUpdate,
    TaskValidationError,
)

CONSISTENCY_HEADER = "X-Consistency-Token"
CONSISTENCY_COOKIE = "todo_consistency"
#: A token matters only until every replica allowed to serve reads has replayed it,
#: that is for about TODO_APP_REPLICA_MAX_LAG seconds (5): a minute is ample.
CONSISTENCY_MAX_AGE = 60


async def repository(
    x_user: Annotated[str, Header()],
    x_consistency_token: Annotated[str | None, Header()] = None,
    todo_consistency: Annotated[str | None, Cookie()] = None,
) -> TaskRepository:
    # `async def` although it awaits nothing: FastAPI runs a plain `def` dependency in
    # a worker thread, two thread hand-offs per request (measured: 10% of the
    # server's samples under load were the thread pool's).
    # A token that is not one of ours (an old or foreign cookie) is no error: that
    # request reads on the primary.
    return TaskRepository(x_user, consistency=x_consistency_token or todo_consistency)


def stamp(repo: TaskRepository, response: Response) -> None:
    """After a write: hand the client the token that makes its next reads see it."""
    token = repo.consistency_token
    if token is not None:
        response.headers[CONSISTENCY_HEADER] = token
        response.set_cookie(
            CONSISTENCY_COOKIE, token, max_age=CONSISTENCY_MAX_AGE, httponly=True, samesite="lax"
        )


# Module level: FastAPI resolves (string) annotations in the module's namespace.
Repo = Annotated[TaskRepository, Depends(repository)]


def create_app(
    db_url: str | None = None,
    *,
    connection_name: str = "default",
    migrate: bool = True,
    read_urls: list[str] | None = None,
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        config = todo_app.tortoise_config(
            db_url, connection_name=connection_name, read_urls=read_urls
        )
        async with RegisterTortoise(app, config=config):
            if migrate:
                await todo_app.migrate()  # on the primary, always
            await todo_app.ensure_schema_current()  # fail at start-up, not per request
            # Look at the replicas once now (logged when one is down or behind the
            # schema), so that the first requests can already read there.
            await todo_app.replica_status()
            # Last: what start-up made stays out of the collector's full passes, which
            # otherwise pause every request in flight (TODO_APP_GC_FREEZE=0: off).
            todo_app.freeze_startup_objects()
            yield

    app = FastAPI(title="todo_app example", lifespan=lifespan)

    def version(if_match: str | None) -> int | None:
        return int(if_match.strip('"')) if if_match and if_match.strip('"').isdigit() else None

    def tagged(task: TaskRead, response: Response, repo: TaskRepository) -> TaskRead:
        response.headers["ETag"] = f'"{task.version}"'
        stamp(repo, response)
        return task

    @app.exception_handler(TaskNotFound)
    async def not_found(request: Request, exc: TaskNotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(TaskConflict)
    async def conflict(request: Request, exc: TaskConflict) -> JSONResponse:
        status = 412 if request.headers.get("if-match") else 409
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(TaskValidationError)
    async def invalid(request: Request, exc: TaskValidationError) -> JSONResponse:
        return JSONResponse({"detail": exc.message, "field": exc.field}, status_code=422)

    @app.post("/tasks", status_code=201)
    async def create(data: TaskCreate, repo: Repo, response: Response) -> TaskRead:
        return tagged(await repo.create(data), response, repo)

    @app.get("/tasks")
    async def list_tasks(
        repo: Repo, status: TaskStatus | None = None, limit: int = 50, cursor: str | None = None
    ) -> TaskPage:
        return await repo.list(status=status, limit=limit, cursor=cursor)

    @app.get("/tasks/{task_id}")
    async def get(task_id: uuid.UUID, repo: Repo, response: Response) -> TaskRead:
        task = await repo.get(task_id)
        response.headers["ETag"] = f'"{task.version}"'
        return task

    @app.patch("/tasks/{task_id}")
    async def update(
        task_id: uuid.UUID,
        data: TaskUpdate,
        repo: Repo,
        response: Response,
        if_match: Annotated[str | None, Header()] = None,
    ) -> TaskRead:
        task = await repo.update(task_id, data, expected_version=version(if_match))
        return tagged(task, response, repo)

    @app.post("/tasks/{task_id}/complete")
    async def complete(
        task_id: uuid.UUID,
        repo: Repo,
        response: Response,
        if_match: Annotated[str | None, Header()] = None,
    ) -> TaskRead:
        task = await repo.complete(task_id, expected_version=version(if_match))
        return tagged(task, response, repo)

    @app.delete("/tasks/{task_id}", status_code=204)
    async def delete(
        task_id: uuid.UUID,
        repo: Repo,
        response: Response,
        if_match: Annotated[str | None, Header()] = None,
    ) -> None:
        await repo.delete(task_id, expected_version=version(if_match))
        stamp(repo, response)

    @app.get("/stats")
    async def stats(repo: Repo) -> dict[str, int]:
        return {status.value: n for status, n in (await repo.counts()).items()}

    return app


app = create_app()
