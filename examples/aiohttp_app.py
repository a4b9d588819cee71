"""todo_app behind aiohttp, with Tortoise's ``tortoise.contrib.aiohttp`` helper.

python -m aiohttp.web -H 127.0.0.1 -P 8080 examples.aiohttp_app:init_app
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from pydantic import ValidationError
from tortoise.contrib.aiohttp import register_tortoise

import todo_app
from todo_app import TaskConflict, TaskCreate, TaskNotFound, TaskRepository, TaskValidationError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The repository's typed errors as HTTP statuses."""
    try:
        return await handler(request)
    except TaskNotFound as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    except TaskConflict as exc:
        raise web.HTTPConflict(text=str(exc)) from None
    except (TaskValidationError, ValidationError) as exc:
        raise web.HTTPUnprocessableEntity(text=str(exc).splitlines()[0]) from None


def repository(request: web.Request) -> TaskRepository:
    return TaskRepository(request.headers.get("X-User", ""))


async def create(request: web.Request) -> web.Response:
    data = TaskCreate.model_validate_json(await request.read())
    task = await repository(request).create(data)
    return web.json_response(task.model_dump(mode="json"), status=201)


async def list_tasks(request: web.Request) -> web.Response:
    page = await repository(request).list(
        status=request.query.get("status"), cursor=request.query.get("cursor")
    )
    return web.json_response(page.model_dump(mode="json"))


async def complete(request: web.Request) -> web.Response:
    task = await repository(request).complete(request.match_info["task_id"])
    return web.json_response(task.model_dump(mode="json"))


def create_app(db_url: str | None = None, *, connection_name: str = "default") -> web.Application:
    app = web.Application(middlewares=[errors])
    app.router.add_post("/tasks", create)
    app.router.add_get("/tasks", list_tasks)
    app.router.add_post("/tasks/{task_id}/complete", complete)
    register_tortoise(app, config=todo_app.tortoise_config(db_url, connection_name=connection_name))

    async def migrate(app: web.Application) -> None:
        # Runs after register_tortoise's own start-up hook has initialised Tortoise.
        await todo_app.migrate()
        todo_app.freeze_startup_objects()  # last: start-up is done (TODO_APP_GC_FREEZE)

    app.on_startup.append(migrate)
    return app


def init_app(argv: list[str] | None = None) -> web.Application:
    return create_app()
