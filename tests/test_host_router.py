"""The packaged router from the wheel, in a host directory, over real HTTP (issue 19).

The host installs ``todo_app[fastapi]`` (the extra alone brings FastAPI) and uvicorn,
mounts ``tasks_router`` in two lines with its own owner dependency, starts Tortoise
with ``todo_app.lifespan`` next to a model of its own, and serves it with uvicorn.
Real requests then go through create, get, list and PATCH with every header the
router speaks: ``ETag``/``If-None-Match``/``If-Match`` (304, 412, 400),
``Idempotency-Key``, ``Link`` pagination and problem+json errors, on both dialects.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import DIALECTS, FreshURL
from tests.infra import free_port, wheel_venv

HOST_APP = """
    import os
    import uuid
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Header, HTTPException
    from tortoise import connections, fields
    from tortoise.models import Model

    import todo_app
    from todo_app.contrib.fastapi import tasks_router

    TORTOISE_ORM = {
        "connections": {"main": os.environ["DATABASE_URL"]},
        "apps": {
            "todo_app": todo_app.app_config("main"),
            "host": {"models": ["app"], "default_connection": "main"},
        },
    }
    NOTES_DDL = {
        "sqlite": 'CREATE TABLE IF NOT EXISTS "host_note" '
        '("id" CHAR(36) PRIMARY KEY, "text" VARCHAR(100) NOT NULL)',
        "postgres": 'CREATE TABLE IF NOT EXISTS "host_note" '
        '("id" UUID PRIMARY KEY, "text" VARCHAR(100) NOT NULL)',
    }


    class Note(Model):
        id = fields.UUIDField(primary_key=True)
        text = fields.CharField(max_length=100)

        class Meta:
            table = "host_note"


    async def current_user(x_user: str | None = Header(default=None)) -> str:
        if not x_user:
            raise HTTPException(401, "who are you?")
        return x_user


    @asynccontextmanager
    async def lifespan(app):
        async with todo_app.lifespan(TORTOISE_ORM, schema="migrate"):
            db = connections.get("main")
            await db.execute_script(NOTES_DDL[db.capabilities.dialect])
            yield


    app = FastAPI(lifespan=lifespan)
    app.include_router(tasks_router(current_user), prefix="/api")


    @app.post("/notes/{text}", status_code=201)
    async def add_note(text: str) -> dict:
        note = await Note.create(id=uuid.uuid4(), text=text)
        return {"id": str(note.id), "notes": await Note.all().count()}
"""


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built wheel with its ``fastapi`` extra (no FastAPI named here), and uvicorn."""
    return wheel_venv(tmp_path_factory.mktemp("router"), "todo-app[fastapi]", "uvicorn")


@pytest.fixture
def server(
    venv: Path, tmp_path: Path
) -> Iterator[Any]:  # a function starting the host app on a database URL
    started: list[subprocess.Popen[str]] = []

    def start(url: str) -> str:
        root = tmp_path / "host"
        root.mkdir()
        (root / "app.py").write_text(textwrap.dedent(HOST_APP).lstrip())
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
        env |= {"PATH": f"{venv / 'bin'}{os.pathsep}{env['PATH']}", "DATABASE_URL": url}
        port = free_port()
        process = subprocess.Popen(
            ["uvicorn", "app:app", "--port", str(port), "--log-level", "warning"],
            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        started.append(process)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/openapi.json", timeout=5).close()
                return base
            except OSError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "the host app did not start"
                time.sleep(0.2)

    yield start
    for process in started:
        process.terminate()
        assert process.wait(timeout=30) in (0, -15)
        errors = process.stderr.read() if process.stderr else ""
        assert "Traceback" not in errors, errors


class Answer:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.json: Any = json.loads(body) if body else None


def call(
    base: str, method: str, path: str, body: object = None, *, user: str | None = "alice",
    **headers: str,
) -> Answer:  # fmt: skip
    sent = {name.replace("_", "-"): value for name, value in headers.items()}
    if user is not None:
        sent["X-User"] = user
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        sent["Content-Type"] = "application/json"
    request = urllib.request.Request(base + path, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return Answer(answer.status, answer.headers, answer.read())
    except urllib.error.HTTPError as failed:
        return Answer(failed.code, failed.headers, failed.read())


def problem(answer: Answer, status: int) -> dict[str, Any]:
    assert answer.status == status, (answer.status, answer.json)
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert answer.json["status"] == status
    document: dict[str, Any] = answer.json
    return document


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_the_router_from_the_wheel_serves_a_host(
    dialect: str, fresh_database_url: FreshURL, server: Any
) -> None:
    # (The database fixture first: it is dropped after the server has stopped.)
    base = server((await fresh_database_url(dialect)).reveal())

    # The host's owner dependency guards every route; its 401 is problem+json.
    assert problem(call(base, "GET", "/api/tasks", user=None), 401)["detail"] == "who are you?"

    # Create: 201, Location, ETag, the stored (cleaned) row, equal to what GET returns.
    created = call(base, "POST", "/api/tasks", {"title": "  Buy milk  "})
    assert created.status == 201
    task = created.json
    assert (task["title"], task["version"]) == ("Buy milk", 1)
    assert created.headers["ETag"] == '"1"'
    assert created.headers["Location"] == f"/api/tasks/{task['id']}"
    got = call(base, "GET", f"/api/tasks/{task['id']}")
    assert (got.status, got.json, got.headers["ETag"]) == (200, task, '"1"')
    assert call(base, "GET", f"/api/tasks/{task['id']}", if_none_match='"1"').status == 304
    assert problem(call(base, "GET", f"/api/tasks/{task['id']}", user="bob"), 404)

    # PATCH under If-Match: the right version writes; a stale one is 412; a weak or
    # foreign tag can never match (412); a value that is no entity tag is 400.
    path = f"/api/tasks/{task['id']}"
    renamed = call(base, "PATCH", path, {"title": "Buy oat milk"}, if_match='"1"')
    assert (renamed.status, renamed.json["version"], renamed.headers["ETag"]) == (200, 2, '"2"')
    assert problem(call(base, "PATCH", path, {"title": "x"}, if_match='"1"'), 412)
    assert problem(call(base, "PATCH", path, {"title": "x"}, if_match='W/"2"'), 412)
    assert problem(call(base, "PATCH", path, {"title": "x"}, if_match="abc"), 400)["field"] == (
        "If-Match"
    )
    invalid = problem(call(base, "PATCH", path, {"title": "   "}, if_match='"2"'), 422)
    assert invalid["field"] == "title"
    assert call(base, "GET", path).json == renamed.json  # none of the refused writes landed
    # The same change again changes nothing: not a write, the version stays.
    again = call(base, "PATCH", path, {"title": "Buy oat milk"}, if_match='"2"')
    assert (again.status, again.json) == (200, renamed.json)

    # Idempotency-Key: a retry returns the first task; another body is 409; a
    # malformed key is 400.
    first = call(base, "POST", "/api/tasks", {"title": "once"}, idempotency_key="k-1")
    retry = call(base, "POST", "/api/tasks", {"title": "once"}, idempotency_key="k-1")
    assert (first.status, retry.status, retry.json) == (201, 201, first.json)
    assert problem(call(base, "POST", "/api/tasks", {"title": "other"}, idempotency_key="k-1"), 409)
    assert problem(call(base, "POST", "/api/tasks", {"title": "x"}, idempotency_key="a b"), 400)

    # Cursor pagination: a Link to the next page, until the last one.
    seen: list[str] = []
    page = call(base, "GET", "/api/tasks?limit=1&order=oldest")
    while True:
        assert page.status == 200
        seen += [item["title"] for item in page.json["items"]]
        link = page.headers["Link"]
        if link is None:
            assert page.json["next_cursor"] is None
            break
        assert link.endswith('>; rel="next"')
        page = call(base, "GET", link[1 : link.index(">")])
    assert seen == ["Buy oat milk", "once"]
    assert call(base, "GET", "/api/tasks", user="bob").json["items"] == []

    # The host's own model lives beside todo_app's on the same connection.
    assert call(base, "POST", "/notes/hello").json["notes"] == 1
