"""The packaged HTTP API (todo_app.contrib.fastapi): mounted in two lines by a host
with its own owner dependency, spoken to over HTTP on both dialects; then an
OpenAPI-driven property tester (schemathesis) against a real uvicorn server."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import Depends, FastAPI, Header, HTTPException

import todo_app
from tests.helpers import DIALECTS, FreshURL
from todo_app.contrib.fastapi import IDEMPOTENCY_NAMESPACE, task_repository, tasks_router

REPO_ROOT = Path(__file__).resolve().parent.parent
PROBLEM = "application/problem+json"


async def current_user(x_user: Annotated[str | None, Header()] = None) -> str:
    """The host's auth, as a host writes it: 401 without credentials."""
    if x_user is None:
        raise HTTPException(401, "log in first", headers={"WWW-Authenticate": "X-User"})
    return x_user


def host_app(url: str, name: str, **options: Any) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        config = todo_app.tortoise_config(url, connection_name=name)
        async with todo_app.lifespan(config, schema="migrate"):
            yield

    app = FastAPI(lifespan=lifespan)
    app.include_router(tasks_router(current_user, **options))  # the two lines
    return app


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


@asynccontextmanager
async def client_for(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


ALICE = {"X-User": "alice"}
BOB = {"X-User": "bob"}


def assert_problem(
    response: httpx.Response, status: int, field: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:todo-app:problem:")
    assert body["title"]
    assert body["detail"]
    if field is not None:
        assert body.get("field") == field, body
    return body


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_router_speaks_http(
    fresh_database_url: FreshURL, dialect: str, unfrozen: None
) -> None:
    url = (await fresh_database_url(dialect)).reveal()
    async with client_for(host_app(url, f"router_{dialect}")) as client:
        # The host's own dependency decides the owner; its 401 is a problem too.
        unauthorised = await client.get("/tasks")
        assert_problem(unauthorised, 401)
        assert unauthorised.headers["WWW-Authenticate"] == "X-User"

        created = await client.post("/tasks", json={"title": " Buy milk "}, headers=ALICE)
        assert created.status_code == 201, created.text
        task = created.json()
        assert task["title"] == "Buy milk"
        assert created.headers["ETag"] == '"1"'
        path = f"/tasks/{task['id']}"
        assert created.headers["Location"] == path
        assert "X-Consistency-Token" not in created.headers  # no replicas: no token
        assert "set-cookie" not in created.headers

        # Owner isolation: another owner's task is not found, for every verb.
        assert_problem(await client.get(path, headers=BOB), 404)
        assert_problem(await client.patch(path, json={"title": "x"}, headers=BOB), 404)
        assert_problem(await client.delete(path, headers=BOB), 404)
        assert (await client.get("/tasks", headers=BOB)).json()["items"] == []

        # Validation: the repository's and pydantic's both as problem+json.
        assert_problem(
            await client.post("/tasks", json={"title": "  "}, headers=ALICE), 422, "title"
        )
        assert_problem(await client.post("/tasks", json={"nope": 1}, headers=ALICE), 422)
        assert_problem(await client.post("/tasks", content=b"{", headers=ALICE), 422)
        assert_problem(await client.get("/tasks?limit=0", headers=ALICE), 422, "limit")
        assert_problem(await client.get("/tasks?cursor=nope", headers=ALICE), 422, "cursor")
        assert_problem(await client.get("/tasks/not-a-uuid", headers=ALICE), 422, "task_id")
        assert_problem(await client.get("/tasks", headers={"X-User": " "}), 422, "owner_id")

        got = await client.get(path, headers=ALICE)
        assert got.status_code == 200
        assert got.headers["ETag"] == '"1"'
        assert got.json() == task

        done = await client.post(f"{path}/complete", headers={**ALICE, "If-Match": '"1"'})
        assert done.status_code == 200
        assert done.json()["status"] == "completed"
        assert done.headers["ETag"] == '"2"'
        reopened = await client.post(f"{path}/reopen", headers=ALICE)
        assert reopened.json()["status"] == "pending"
        deleted = await client.delete(path, headers={**ALICE, "If-Match": '"3"'})
        assert deleted.status_code == 204
        assert deleted.content == b""
        assert_problem(await client.get(path, headers=ALICE), 404)


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_preconditions_are_never_ignored(
    fresh_database_url: FreshURL, dialect: str, unfrozen: None
) -> None:
    url = (await fresh_database_url(dialect)).reveal()
    async with client_for(host_app(url, f"router_pre_{dialect}")) as client:
        task = (await client.post("/tasks", json={"title": "t"}, headers=ALICE)).json()
        path = f"/tasks/{task['id']}"

        # Not the RFC 9110 grammar: 400, and nothing written.
        for malformed in ("abc", "3", '"3', 'W/"3', '"3" "4"', '"1", "2"'):
            for method in ("PATCH", "DELETE"):
                answer = await client.request(
                    method, path, json={"title": "lost"} if method == "PATCH" else None,
                    headers={**ALICE, "If-Match": malformed},
                )  # fmt: skip
                assert_problem(answer, 400, "If-Match")
            assert_problem(
                await client.post(f"{path}/complete", headers={**ALICE, "If-Match": malformed}),
                400,
                "If-Match",
            )
        # Well formed but never a match (weak tags never match strongly; tags this API
        # never issues): 412, and nothing written.
        for never in ('W/"1"', '"x"', '"0"', '"01"', '"99999999999"', '"x", W/"1"'):
            answer = await client.patch(
                path, json={"title": "lost"}, headers={**ALICE, "If-Match": never}
            )
            assert_problem(answer, 412, "If-Match")
        assert_problem(
            await client.patch(path, json={"title": "lost"}, headers={**ALICE, "If-Match": '"2"'}),
            412,
        )
        current = await client.get(path, headers=ALICE)
        assert current.json()["title"] == "t"
        assert current.headers["ETag"] == '"1"'

        # A matching tag (alone, among never-matching ones, or *) goes through.
        renamed = await client.patch(
            path, json={"title": "u"}, headers={**ALICE, "If-Match": '"x", "1"'}
        )
        assert renamed.status_code == 200
        assert renamed.headers["ETag"] == '"2"'
        star = await client.patch(path, json={"title": "v"}, headers={**ALICE, "If-Match": "*"})
        assert star.status_code == 200
        assert star.headers["ETag"] == '"3"'
        assert_problem(
            await client.patch(
                f"/tasks/{uuid.uuid4()}", json={"title": "v"}, headers={**ALICE, "If-Match": "*"}
            ),
            404,
        )

        # If-None-Match on a read: 304 on a match (weak comparison), 400 when malformed.
        for matching in ('"3"', 'W/"3"', '"1", "3"', "*"):
            answer = await client.get(path, headers={**ALICE, "If-None-Match": matching})
            assert answer.status_code == 304, matching
            assert answer.headers["ETag"] == '"3"'
            assert answer.content == b""
        assert (
            await client.get(path, headers={**ALICE, "If-None-Match": '"2"'})
        ).status_code == 200
        for other in ('"x"', '"2", W/"4"'):
            answer = await client.get(path, headers={**ALICE, "If-None-Match": other})
            assert answer.status_code == 200, other
        for malformed in ("abc", "3", '"3'):
            for where in (path, f"/tasks/{uuid.uuid4()}"):  # checked before the lookup
                answer = await client.get(where, headers={**ALICE, "If-None-Match": malformed})
                assert_problem(answer, 400, "If-None-Match")


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_if_match_can_be_required(
    fresh_database_url: FreshURL, dialect: str, unfrozen: None
) -> None:
    url = (await fresh_database_url(dialect)).reveal()
    app = host_app(url, f"router_req_{dialect}", require_if_match=True)
    async with client_for(app) as client:
        task = (await client.post("/tasks", json={"title": "t"}, headers=ALICE)).json()
        path = f"/tasks/{task['id']}"
        assert_problem(
            await client.patch(path, json={"title": "u"}, headers=ALICE), 428, "If-Match"
        )
        assert_problem(await client.delete(path, headers=ALICE), 428, "If-Match")
        ok = await client.patch(path, json={"title": "u"}, headers={**ALICE, "If-Match": '"1"'})
        assert ok.status_code == 200
        assert "428" in app.openapi()["paths"]["/tasks/{task_id}"]["patch"]["responses"]


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_idempotency_key_replays_the_same_task(
    fresh_database_url: FreshURL, dialect: str, unfrozen: None
) -> None:
    url = (await fresh_database_url(dialect)).reveal()
    async with client_for(host_app(url, f"router_idem_{dialect}")) as client:
        keyed = {**ALICE, "Idempotency-Key": "order-42"}
        first = await client.post("/tasks", json={"title": "Pay"}, headers=keyed)
        again = await client.post("/tasks", json={"title": "Pay"}, headers=keyed)
        assert first.status_code == again.status_code == 201
        assert first.json() == again.json()
        assert first.json()["id"] == str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, "alice\norder-42"))
        listing = (await client.get("/tasks", headers=ALICE)).json()["items"]
        assert len(listing) == 1

        # The same key from another owner is another task.
        bobs = await client.post(
            "/tasks", json={"title": "Pay"}, headers={**BOB, "Idempotency-Key": "order-42"}
        )
        assert bobs.status_code == 201
        assert bobs.json()["id"] != first.json()["id"]

        # The same key with another body: 409 (like a client id reused), nothing changed.
        other = await client.post("/tasks", json={"title": "Pay twice"}, headers=keyed)
        assert_problem(other, 409, "Idempotency-Key")
        assert (await client.get("/tasks", headers=ALICE)).json()["items"] == listing

        # A key and a different client id at once, or a malformed key.
        both = await client.post(
            "/tasks", json={"title": "Pay", "id": str(uuid.uuid4())}, headers=keyed
        )
        assert_problem(both, 409, "id")
        for bad in ("", "a b", "x" * 256):
            answer = await client.post(
                "/tasks", json={"title": "Pay"}, headers={**ALICE, "Idempotency-Key": bad}
            )
            assert_problem(answer, 400, "Idempotency-Key")


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_link_headers_walk_every_page(
    fresh_database_url: FreshURL, dialect: str, unfrozen: None
) -> None:
    url = (await fresh_database_url(dialect)).reveal()
    async with client_for(host_app(url, f"router_link_{dialect}")) as client:
        made = set()
        for n in range(7):
            answer = await client.post("/tasks", json={"title": f"t{n}"}, headers=ALICE)
            made.add(answer.json()["id"])
        await client.post(f"/tasks/{sorted(made)[0]}/complete", headers=ALICE)
        seen: list[str] = []
        next_url: str | None = "/tasks?limit=3&order=oldest"
        pages = 0
        while next_url is not None:
            page = await client.get(next_url, headers=ALICE)
            assert page.status_code == 200, page.text
            seen += [t["id"] for t in page.json()["items"]]
            pages += 1
            link = page.links.get("next")
            assert (link is None) == (page.json()["next_cursor"] is None)
            next_url = link["url"] if link else None
        assert pages == 3
        assert len(seen) == 7
        assert set(seen) == made
        # The link keeps the filter: pending tasks only, in pages of 2.
        first = await client.get("/tasks?status=pending&limit=2", headers=ALICE)
        follow = await client.get(first.links["next"]["url"], headers=ALICE)
        assert all(t["status"] == "pending" for t in follow.json()["items"])
        assert "status=pending" in first.links["next"]["url"]


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_consistency_token_reaches_the_repository(
    fresh_database_url: FreshURL, dialect: str, unfrozen: None
) -> None:
    """Without replicas no token is sent; a token the client sends, as header or
    cookie, is the repository's. One that is not ours (an old or foreign cookie) is no
    error: that request reads on the primary (issue 18)."""
    url = (await fresh_database_url(dialect)).reveal()
    async with client_for(host_app(url, f"router_token_{dialect}")) as client:
        for sent in ({"X-Consistency-Token": "not a token"}, {"Cookie": "todo_consistency=zz!"}):
            answer = await client.get("/tasks", headers={**ALICE, **sent})
            assert answer.status_code == 200, answer.text
        for sent in ({"X-Consistency-Token": "16B374D848"}, {"Cookie": "todo_consistency=primary"}):
            answer = await client.post("/tasks", json={"title": "t"}, headers={**ALICE, **sent})
            assert answer.status_code == 201, answer.text


# Module level: FastAPI resolves string annotations in the module's namespace.
OwnRepo = Annotated[todo_app.TaskRepository, Depends(task_repository(current_user))]


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_hosts_own_route_gets_the_same_repository(
    fresh_database_url: FreshURL, dialect: str, unfrozen: None
) -> None:
    """task_repository: the owner from the host's dependency, the client's token, and
    problem+json errors when the route is declared on the router."""
    url = (await fresh_database_url(dialect)).reveal()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        config = todo_app.tortoise_config(url, connection_name=f"router_own_{dialect}")
        async with todo_app.lifespan(config, schema="migrate"):
            yield

    app = FastAPI(lifespan=lifespan)
    tasks = tasks_router(current_user)

    @tasks.get("/open-count")
    async def open_count(repo: OwnRepo) -> dict[str, int]:
        return {"pending": (await repo.counts())[todo_app.TaskStatus.PENDING]}

    app.include_router(tasks)
    async with client_for(app) as client:
        await client.post("/tasks", json={"title": "t"}, headers=ALICE)
        assert (await client.get("/open-count", headers=ALICE)).json() == {"pending": 1}
        assert (await client.get("/open-count", headers=BOB)).json() == {"pending": 0}
        foreign = await client.get("/open-count", headers={**ALICE, "X-Consistency-Token": "no"})
        assert foreign.json() == {"pending": 1}, "a token not ours reads on the primary"
        assert_problem(await client.get("/open-count"), 401)


def test_openapi_describes_every_status() -> None:
    app = FastAPI()
    app.include_router(tasks_router(current_user, responses={401: {"description": "log in"}}))
    paths = app.openapi()["paths"]
    expect = {
        ("/tasks", "get"): {"200", "401", "422", "500", "503", "504"},
        ("/tasks", "post"): {"201", "400", "401", "409", "422", "500", "503", "504"},
        ("/tasks/{task_id}", "get"): {
            "200",
            "304",
            "400",
            "401",
            "404",
            "422",
            "500",
            "503",
            "504",
        },
        ("/tasks/{task_id}", "patch"): {
            "200",
            "400",
            "401",
            "404",
            "409",
            "412",
            "422",
            "500",
            "503",
            "504",
        },
        ("/tasks/{task_id}", "delete"): {
            "204",
            "400",
            "401",
            "404",
            "409",
            "412",
            "422",
            "500",
            "503",
            "504",
        },
    }
    for (path, method), statuses in expect.items():
        responses = paths[path][method]["responses"]
        assert set(responses) == statuses, (path, method, sorted(responses))
        for status, response in responses.items():
            if int(status) >= 400 and status != "401":
                assert list(response["content"]) == [PROBLEM], (path, method, status)


def test_without_fastapi_the_error_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['fastapi'] = None\n"
        "try:\n    import todo_app.contrib.fastapi\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, timeout=60, capture_output=True, text=True
    ).stdout
    assert "pip install 'todo-app[fastapi]'" in out, out


def test_importing_todo_app_does_not_import_fastapi() -> None:
    code = "import sys, todo_app; todo_app.TaskRepository; assert 'fastapi' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT, timeout=60)


# -- schemathesis against a real server ----------------------------------------------

SERVER = """
import os
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, Header

import todo_app
from todo_app.contrib.fastapi import tasks_router


async def current_user(x_user: Annotated[str, Header(pattern=r"^[a-z]{1,8}$")]) -> str:
    return x_user


@asynccontextmanager
async def lifespan(app):
    async with todo_app.lifespan(todo_app.tortoise_config(os.environ["DATABASE_URL"]),
                                 schema="migrate"):
        yield


app = FastAPI(lifespan=lifespan)
app.include_router(tasks_router(current_user))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_schemathesis_finds_no_500_and_no_schema_mismatch(
    fresh_database_url: FreshURL, dialect: str, tmp_path: Path
) -> None:
    url = (await fresh_database_url(dialect)).reveal()
    if dialect == "sqlite":  # a file both the server and nobody else uses
        url = f"sqlite://{tmp_path / 'api.sqlite3'}"
    await asyncio.to_thread(run_schemathesis, url, tmp_path)


def run_schemathesis(url: str, tmp_path: Path) -> None:
    (tmp_path / "host_api.py").write_text(SERVER)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO_ROOT}"}
    env.pop("TODO_APP_READ_URLS", None)
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "host_api:app", "--port", str(port), "--log-level",
         "warning"],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/openapi.json", timeout=5):
                    break
            except OSError:
                assert server.poll() is None, (tmp_path / "server.log").read_text()
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        (tmp_path / "schemathesis.toml").write_text(SCHEMATHESIS_CONFIG)
        run = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "--config-file",
             str(tmp_path / "schemathesis.toml"), "run", f"{base}/openapi.json",
             "--checks", "all", "--max-examples", "25", "--seed", "19", "--workers", "1",
             "--max-response-time", "10",
             # A positive (schema-valid) request may still be refused: an opaque cursor
             # or an entity tag is valid only when this API issued it. The coverage
             # phase also takes "0" for a valid If-Match, whatever the pattern says.
             "--exclude-checks", "positive_data_acceptance"],
            cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    finally:
        server.terminate()
        server.wait(30)
        log.close()
    served = (tmp_path / "server.log").read_text()
    assert "Traceback" not in served, served[-4000:]


SCHEMATHESIS_CONFIG = ""
