"""todo_app behind FastAPI: the packaged router (``todo_app[fastapi]``) and
``todo_app.lifespan``.

    uvicorn examples.fastapi_app:app       # DATABASE_URL from the environment

The owner comes from an ``X-User`` header here; a real app takes it from its auth.
The router does the HTTP: ETags and ``If-Match`` (malformed: 400; stale: 412),
``Idempotency-Key`` on create, ``Link`` pagination, problem+json errors, and the
consistency token of read replicas (``TODO_APP_READ_URLS``): every write answers
with it as the ``X-Consistency-Token`` header and the ``todo_consistency`` cookie; a
browser sends the cookie back by itself, an API client the header, and the next
request's reads see that client's writes. Without replicas no token is sent.
``/stats`` is a route of the host's own, on the router, with its repository.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException

import todo_app
from todo_app import TaskRepository
from todo_app.contrib.fastapi import (
    CONSISTENCY_COOKIE,
    CONSISTENCY_HEADER,
    task_repository,
    tasks_router,
)

__all__ = ["CONSISTENCY_COOKIE", "CONSISTENCY_HEADER", "app", "create_app"]


async def current_user(x_user: Annotated[str | None, Header()] = None) -> str:
    # `async def` although it awaits nothing: FastAPI runs a plain `def` dependency in
    # a worker thread, two thread hand-offs per request.
    if x_user is None:
        raise HTTPException(401, "send X-User", headers={"WWW-Authenticate": "X-User"})
    return x_user


# Module level: FastAPI resolves (string) annotations in the module's namespace.
Repo = Annotated[TaskRepository, Depends(task_repository(current_user))]


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
        # Tortoise for every request task, the schema checked (or migrated), what
        # start-up made frozen out of the collector's passes, connections closed at exit.
        async with todo_app.lifespan(config, schema="migrate" if migrate else "check"):
            # Look at the replicas once now (logged when one is down or behind the
            # schema), so that the first requests can already read there.
            await todo_app.replica_status()
            yield

    app = FastAPI(title="todo_app example", lifespan=lifespan)
    tasks = tasks_router(current_user)

    @tasks.get("/stats")
    async def stats(repo: Repo) -> dict[str, int]:
        counts = await repo.counts()
        return {str(getattr(status, "value", status)): n for status, n in counts.items()}

    app.include_router(tasks)
    return app


app = create_app()
