"""todo_app behind FastAPI, with Tortoise's own ``RegisterTortoise`` lifespan.

    uvicorn examples.fastapi_app:app       # DATABASE_URL from the environment

The owner comes from an ``X-User`` header here; a real app takes it from its auth.
The task ``version`` travels as the ETag; ``If-Match`` makes writes conditional.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Header, Request, Response
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


def repository(x_user: Annotated[str, Header()]) -> TaskRepository:
    return TaskRepository(x_user)


# Module level: FastAPI resolves (string) annotations in the module's namespace.
Repo = Annotated[TaskRepository, Depends(repository)]


def create_app(
    db_url: str | None = None, *, connection_name: str = "default", migrate: bool = True
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        config = todo_app.tortoise_config(db_url, connection_name=connection_name)
        async with RegisterTortoise(app, config=config):
            if migrate:
                await todo_app.migrate()
            await todo_app.ensure_schema_current()  # fail at start-up, not per request
            yield

    app = FastAPI(title="todo_app example", lifespan=lifespan)

    def version(if_match: str | None) -> int | None:
        return int(if_match.strip('"')) if if_match and if_match.strip('"').isdigit() else None

    def tagged(task: TaskRead, response: Response) -> TaskRead:
        response.headers["ETag"] = f'"{task.version}"'
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
        return tagged(await repo.create(data), response)

    @app.get("/tasks")
    async def list_tasks(
        repo: Repo, status: TaskStatus | None = None, limit: int = 50, cursor: str | None = None
    ) -> TaskPage:
        return await repo.list(status=status, limit=limit, cursor=cursor)

    @app.get("/tasks/{task_id}")
    async def get(task_id: uuid.UUID, repo: Repo, response: Response) -> TaskRead:
        return tagged(await repo.get(task_id), response)

    @app.patch("/tasks/{task_id}")
    async def update(
        task_id: uuid.UUID,
        data: TaskUpdate,
        repo: Repo,
        response: Response,
        if_match: Annotated[str | None, Header()] = None,
    ) -> TaskRead:
        task = await repo.update(task_id, data, expected_version=version(if_match))
        return tagged(task, response)

    @app.post("/tasks/{task_id}/complete")
    async def complete(
        task_id: uuid.UUID,
        repo: Repo,
        response: Response,
        if_match: Annotated[str | None, Header()] = None,
    ) -> TaskRead:
        return tagged(await repo.complete(task_id, expected_version=version(if_match)), response)

    @app.delete("/tasks/{task_id}", status_code=204)
    async def delete(
        task_id: uuid.UUID, repo: Repo, if_match: Annotated[str | None, Header()] = None
    ) -> None:
        await repo.delete(task_id, expected_version=version(if_match))

    @app.get("/stats")
    async def stats(repo: Repo) -> dict[str, int]:
        return {status.value: n for status, n in (await repo.counts()).items()}

    return app


app = create_app()
