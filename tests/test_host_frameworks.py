"""``todo_app.lifespan`` in four frameworks, from the wheel, outside this repository.

Each host app (FastAPI, Starlette, Litestar, Quart) wraps its framework's own
start-up hook around ``async with todo_app.lifespan(TORTOISE_ORM, schema="migrate")``
and nothing else of Tortoise's; uvicorn serves it, and real HTTP requests create
and list tasks in request handlers (tasks the start-up never saw). Without the
global fallback the helper sets, those handlers fail with "No TortoiseContext is
currently active" (issue 19; tests/test_startup.py shows it with the switch off).
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import DIALECTS, FreshURL
from tests.infra import wheel_venv

SETTINGS = """
    import os

    import todo_app

    TORTOISE_ORM = {
        "connections": {"main": os.environ["DATABASE_URL"]},
        "apps": {"todo_app": todo_app.app_config("main")},
        "use_tz": True,
        "timezone": "UTC",
    }
"""

APPS = {
    "fastapi": """
        from contextlib import asynccontextmanager

        from fastapi import FastAPI

        import todo_app
        from settings import TORTOISE_ORM


        @asynccontextmanager
        async def lifespan(app):
            async with todo_app.lifespan(TORTOISE_ORM, schema="migrate"):
                yield


        app = FastAPI(lifespan=lifespan)


        @app.post("/{owner}/tasks/{title}", status_code=201)
        async def add(owner: str, title: str) -> dict:
            task = await todo_app.TaskRepository(owner).create(todo_app.TaskCreate(title=title))
            return {"title": task.title}


        @app.get("/{owner}/tasks")
        async def titles(owner: str) -> list[str]:
            page = await todo_app.TaskRepository(owner).list(order="oldest")
            return [task.title for task in page.items]
    """,
    "starlette": """
        from contextlib import asynccontextmanager

        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        import todo_app
        from settings import TORTOISE_ORM


        @asynccontextmanager
        async def lifespan(app):
            async with todo_app.lifespan(TORTOISE_ORM, schema="migrate"):
                yield


        async def add(request):
            owner, title = request.path_params["owner"], request.path_params["title"]
            task = await todo_app.TaskRepository(owner).create(todo_app.TaskCreate(title=title))
            return JSONResponse({"title": task.title}, status_code=201)


        async def titles(request):
            page = await todo_app.TaskRepository(request.path_params["owner"]).list(order="oldest")
            return JSONResponse([task.title for task in page.items])


        app = Starlette(
            routes=[
                Route("/{owner}/tasks/{title}", add, methods=["POST"]),
                Route("/{owner}/tasks", titles),
            ],
            lifespan=lifespan,
        )
    """,
    "litestar": """
        from contextlib import asynccontextmanager

        from litestar import Litestar, get, post

        import todo_app
        from settings import TORTOISE_ORM


        @asynccontextmanager
        async def lifespan(app):
            async with todo_app.lifespan(TORTOISE_ORM, schema="migrate"):
                yield


        @post("/{owner:str}/tasks/{title:str}")
        async def add(owner: str, title: str) -> dict:
            task = await todo_app.TaskRepository(owner).create(todo_app.TaskCreate(title=title))
            return {"title": task.title}


        @get("/{owner:str}/tasks")
        async def titles(owner: str) -> list[str]:
            page = await todo_app.TaskRepository(owner).list(order="oldest")
            return [task.title for task in page.items]


        app = Litestar([add, titles], lifespan=[lifespan])
    """,
    "quart": """
        from quart import Quart

        import todo_app
        from settings import TORTOISE_ORM

        app = Quart(__name__)


        @app.while_serving
        async def lifespan():
            async with todo_app.lifespan(TORTOISE_ORM, schema="migrate"):
                yield


        @app.post("/<owner>/tasks/<title>")
        async def add(owner, title):
            task = await todo_app.TaskRepository(owner).create(todo_app.TaskCreate(title=title))
            return {"title": task.title}, 201


        @app.get("/<owner>/tasks")
        async def titles(owner):
            page = await todo_app.TaskRepository(owner).list(order="oldest")
            return [task.title for task in page.items]
    """,
}


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv outside the repository: the built wheel, the four frameworks, uvicorn."""
    return wheel_venv(
        tmp_path_factory.mktemp("frameworks"),
        "uvicorn", "fastapi", "starlette", "litestar", "quart",
    )  # fmt: skip


def _http(method: str, url: str) -> tuple[int, object]:
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


@pytest.fixture
def servers() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for server in started:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("framework", sorted(APPS))
@pytest.mark.parametrize("dialect", DIALECTS)
async def test_the_lifespan_helper_serves_requests_in_any_framework(
    framework: str,
    dialect: str,
    venv: Path,
    tmp_path: Path,
    fresh_database_url: FreshURL,
    servers: list[subprocess.Popen[str]],
) -> None:
    root = tmp_path / "host"
    root.mkdir()
    (root / "settings.py").write_text(textwrap.dedent(SETTINGS).lstrip())
    (root / "app.py").write_text(textwrap.dedent(APPS[framework]).lstrip())
    url = await fresh_database_url(dialect)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env |= {"PATH": f"{venv / 'bin'}{os.pathsep}{env['PATH']}", "DATABASE_URL": url.reveal()}
    _serve_and_use(framework, root, env, servers)


def _serve_and_use(
    framework: str, root: Path, env: dict[str, str], servers: list[subprocess.Popen[str]]
) -> None:
    """Start uvicorn on the host's app, make the requests, stop it gracefully."""
    from tests.infra import free_port

    port = free_port()
    server = subprocess.Popen(
        ["uvicorn", "app:app", "--port", str(port), "--log-level", "warning"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    servers.append(server)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            _http("GET", f"{base}/nobody/tasks")
            break
        except OSError:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline, f"{framework} did not start"
            time.sleep(0.2)

    for title in ("first", "second"):
        assert _http("POST", f"{base}/alice/tasks/{title}") == (201, {"title": title})
    assert _http("GET", f"{base}/alice/tasks") == (200, ["first", "second"])
    assert _http("GET", f"{base}/bob/tasks") == (200, [])
    server.terminate()
    # uvicorn shuts down gracefully (the lifespan closes the connections), then
    # re-raises the signal it caught.
    assert server.wait(timeout=30) in (0, -15)
    assert "Traceback" not in (server.stderr.read() if server.stderr else "")
