"""A host project that deploys with Aerich, built from the wheel outside this repository.

The host (FastAPI, its own ``shop`` app managed by Aerich, todo_app on the same
connection ``main``) follows the README: ``aerich --app shop init-db`` once, when the
project is set up, which writes ``todo_app_task`` into the host's own migration as
Tortoise's generator makes it; ``todo-app install-migrations``; then, per deployment,
``aerich --app shop upgrade`` and ``aerich --app todo_app upgrade``. Whichever runs
first on a fresh database (or ``generate_schemas()`` before both), the end state is
todo_app's real schema, the host's table is intact, and the app serves requests
under uvicorn with two workers that migrate at start-up.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import DIALECTS, FreshURL, bookkeeping
from tests.infra import run, wheel_venv
from todo_app import migration_history
from todo_app.dsn import DatabaseURL

ORDERS = ["host first", "todo_app first", "generate_schemas first"]

FILES = {
    # Aerich's section is written by `aerich init` itself (see write_host).
    "pyproject.toml": """
        [project]
        name = "shop-host"
        version = "0"
    """,
    "shop/__init__.py": "",
    "shop/models.py": """
        from tortoise import fields
        from tortoise.models import Model


        class Order(Model):
            id = fields.IntField(primary_key=True)
            item = fields.CharField(max_length=100)

            class Meta:
                table = "shop_order"
    """,
    "settings.py": """
        import os

        import todo_app

        TORTOISE_ORM = {
            "connections": {"main": os.environ["DATABASE_URL"]},
            "apps": {
                "shop": {"models": ["shop.models", "aerich.models"], "default_connection": "main"},
                "todo_app": todo_app.app_config("main"),
            },
            "use_tz": True,
            "timezone": "UTC",
        }
    """,
    "app.py": """
        from contextlib import asynccontextmanager

        from fastapi import FastAPI
        from tortoise.contrib.fastapi import RegisterTortoise

        import todo_app
        from settings import TORTOISE_ORM
        from shop.models import Order


        @asynccontextmanager
        async def lifespan(app: FastAPI):
            async with RegisterTortoise(app, config=TORTOISE_ORM):
                await todo_app.migrate()  # every worker: one applies, the others wait
                await todo_app.ensure_schema_current()
                yield


        app = FastAPI(lifespan=lifespan)


        @app.post("/{owner}/tasks/{title}")
        async def add(owner: str, title: str) -> dict:
            task = await todo_app.TaskRepository(owner).create(todo_app.TaskCreate(title=title))
            return {"id": str(task.id), "version": task.version}


        @app.get("/{owner}/tasks")
        async def titles(owner: str) -> list[str]:
            page = await todo_app.TaskRepository(owner).list(order="oldest")
            return [task.title for task in page.items]


        @app.get("/orders")
        async def orders() -> list[str]:
            return [order.item for order in await Order.all().order_by("id")]
    """,
    "make_schema.py": """
        from tortoise import Tortoise, run_async

        from settings import TORTOISE_ORM


        async def main() -> None:
            await Tortoise.init(config=TORTOISE_ORM)
            await Tortoise.generate_schemas()


        run_async(main())
    """,
    "probe.py": """
        # Raw SQL, no todo_app: what the database itself enforces.
        import asyncio, json, os, sqlite3, sys

        URL = os.environ["DATABASE_URL"]
        LONG = "x" * 201
        INSERT = (
            'INSERT INTO "todo_app_task" ("id", "user_id", "title", "status", "version",'
            ' "created_at", "updated_at") VALUES ({}, {}, {}, {}, 1, {}, {})'
        )

        async def postgres() -> dict:
            import asyncpg
            db = await asyncpg.connect(URL)
            try:
                await db.execute("INSERT INTO shop_order (item) VALUES ('raw')")
                try:
                    await db.execute(INSERT.format("gen_random_uuid()", "'u'", "$1", "'pending'",
                                                   "now()", "now()"), LONG)
                    refused = None
                except asyncpg.PostgresError as exc:
                    refused = type(exc).__name__ + ": " + str(exc)
                orders = [r["item"] for r in await db.fetch("SELECT item FROM shop_order")]
                rows = await db.fetch("SELECT version FROM aerich WHERE app = 'todo_app'")
                return {"refused": refused, "orders": orders, "todo_rows": len(rows)}
            finally:
                await db.close()

        def sqlite() -> dict:
            db = sqlite3.connect(URL.removeprefix("sqlite://"))
            db.execute("INSERT INTO shop_order (item) VALUES ('raw')")
            try:
                db.execute(INSERT.format("'00000000-0000-4000-8000-000000000001'", "'u'", "?",
                                         "'pending'", "'2026-01-01'", "'2026-01-01'"), [LONG])
                refused = None
            except sqlite3.IntegrityError as exc:
                refused = str(exc)
            db.commit()
            orders = [r[0] for r in db.execute("SELECT item FROM shop_order")]
            rows = db.execute("SELECT version FROM aerich WHERE app = 'todo_app'").fetchall()
            return {"refused": refused, "orders": orders, "todo_rows": len(rows)}

        result = asyncio.run(postgres()) if URL.startswith("postgres") else sqlite()
        print(json.dumps(result))
    """,
}


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv outside the repository with the built wheel, FastAPI and uvicorn."""
    return wheel_venv(tmp_path_factory.mktemp("aerich-host"), "fastapi", "uvicorn")


def write_host(root: Path, env: dict[str, str]) -> None:
    """The host's files, and its Aerich config as ``aerich init`` writes it (on
    Tortoise 1.x: ``[tool.tortoise]``)."""
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    run("aerich", "init", "-t", "settings.TORTOISE_ORM", cwd=root, env=env)
    assert "[tool.tortoise]" in (root / "pyproject.toml").read_text()


def host_env(venv: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    env["DATABASE_URL"] = url
    env["AERICH_NO_TORTOISE_V1_WARNING"] = "1"
    return env


@pytest.fixture(params=DIALECTS)
async def project(
    request: pytest.FixtureRequest,
    venv: Path,
    tmp_path: Path,
    fresh_database_url: FreshURL,
) -> tuple[Path, str]:
    """The host project as its developers set it up once: files, the shop app's
    initial migration (written by ``aerich init-db`` on a scratch database), and
    todo_app's migrations installed next to it."""
    dialect: str = request.param
    root = tmp_path / "host"
    scratch = await fresh_database_url(dialect)
    env = host_env(venv, scratch.reveal())
    write_host(root, env)
    run("aerich", "--app", "shop", "init-db", cwd=root, env=env)
    (shop_init,) = (root / "migrations" / "shop").glob("0_*_init.py")
    assert '"todo_app_task"' in shop_init.read_text(), "Aerich wrote todo_app's table into shop's"
    installed = run("todo-app", "install-migrations", cwd=root, env=env)
    assert "installed 0_" in installed
    assert "next: aerich --app todo_app upgrade" in installed
    return root, dialect


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(method: str, url: str) -> object:
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def serve() -> Iterator[Callable[[Path, dict[str, str]], str]]:
    servers: list[subprocess.Popen[bytes]] = []

    def start(root: Path, env: dict[str, str]) -> str:
        port = free_port()
        server = subprocess.Popen(
            ["uvicorn", "app:app", "--workers", "2", "--port", str(port), "--log-level", "warning"],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        servers.append(server)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                http("GET", f"{base}/orders")
                return base
            except OSError:
                assert server.poll() is None, server.stderr.read() if server.stderr else b""
                assert time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.2)

    yield start
    for server in servers:
        server.terminate()
        server.wait(timeout=30)
        if server.stderr:
            server.stderr.close()


@pytest.mark.parametrize("order", ORDERS)
async def test_deployment_in_any_order_ends_in_the_real_schema(
    project: tuple[Path, str],
    order: str,
    venv: Path,
    fresh_database_url: FreshURL,
    serve: Callable[[Path, dict[str, str]], str],
) -> None:
    root, dialect = project
    url = (await fresh_database_url(dialect)).reveal()
    env = host_env(venv, url)
    shop = ("aerich", "--app", "shop", "upgrade")
    todo = ("aerich", "--app", "todo_app", "upgrade")
    steps = {
        "host first": [shop, todo],
        "todo_app first": [todo, shop],
        "generate_schemas first": [("python", "make_schema.py"), shop, todo],
    }[order]
    for step in steps:
        run(*step, cwd=root, env=env)
    assert "database is at head" in run("todo-app", "--db", url, "check", cwd=root, env=env)

    probe = json.loads(run("python", "probe.py", cwd=root, env=env))
    assert probe["refused"] is not None, "a 201-character title must be refused by a CHECK"
    assert "todo_app_task_title_max_length" in probe["refused"] or "too long" in probe["refused"]
    assert probe["orders"] == ["raw"], "the host's own table is intact"
    assert probe["todo_rows"] == len(migration_history()), "one row per migration"

    base = serve(root, env)
    for title in ("first", "second"):
        created = http("POST", f"{base}/alice/tasks/{title}")
        assert isinstance(created, dict)
        assert created["version"] == 1
    assert http("GET", f"{base}/alice/tasks") == ["first", "second"]
    assert http("GET", f"{base}/bob/tasks") == []
    assert http("GET", f"{base}/orders") == ["raw"]


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_the_host_copy_behind_the_package_is_reported_and_completed(
    dialect: str, venv: Path, tmp_path: Path, fresh_database_url: FreshURL
) -> None:
    root = tmp_path / "host"
    url = (await fresh_database_url(dialect)).reveal()
    env = host_env(venv, url)
    write_host(root, env)
    assert "note: no todo_app migrations in" in run(
        "todo-app", "check", "--drift-only", cwd=root, env=env
    )
    run("todo-app", "install-migrations", cwd=root, env=env)
    installed = sorted((root / "migrations" / "todo_app").glob("*.py"))
    newest = installed[-1]
    newest.unlink()  # the copy an older todo_app installed
    run("aerich", "--app", "todo_app", "upgrade", cwd=root, env=env)
    behind = run("todo-app", "--db", url, "check", cwd=root, env=env, code=7)
    assert f"missing {newest.name}" in behind
    assert "todo-app install-migrations" in behind
    installed[0].write_text(installed[0].read_text() + "# edited by hand\n")
    again = run("todo-app", "install-migrations", cwd=root, env=env)
    assert f"installed {newest.name}" in again
    assert f"kept {installed[0].name}" in again
    assert installed[0].read_text().endswith("# edited by hand\n"), "never overwritten"
    assert f"Success upgrading to {newest.name}" in run(
        "aerich", "--app", "todo_app", "upgrade", cwd=root, env=env
    )
    assert "database is at head" in run("todo-app", "--db", url, "check", cwd=root, env=env)
    assert "Success downgrading" in run(
        "aerich", "--app", "todo_app", "downgrade", "--yes", cwd=root, env=env
    )
    assert "behind" in run("todo-app", "--db", url, "check", cwd=root, env=env, code=7)


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_aerich_and_todo_app_migrate_at_once_leave_one_row_each(
    dialect: str, venv: Path, tmp_path: Path, fresh_database_url: FreshURL
) -> None:
    """Issue 17's command, as an operator types it, from the wheel:
    ``aerich --app todo_app upgrade & todo-app migrate & wait`` on a fresh database.
    (tests/test_migration_races.py runs many more interleavings, in-process runners.)"""
    root = tmp_path / "host"
    env = host_env(venv, (await fresh_database_url(dialect)).reveal())
    write_host(root, env)
    run("aerich", "--app", "shop", "init-db", cwd=root, env=env)
    run("todo-app", "install-migrations", cwd=root, env=env)
    names = [p.name for p in sorted((root / "migrations" / "todo_app").glob("*.py"))]
    for delay in (0.0, 0.3, 0.6):
        url = await fresh_database_url(dialect)
        env = host_env(venv, url.reveal())
        command = (
            f'aerich --app todo_app upgrade & (sleep {delay}; todo-app --db "$DATABASE_URL" '
            "migrate) & wait"
        )
        run("sh", "-c", command, cwd=root, env=env)
        assert await bookkeeping(url) == names, f"after a start {delay} s apart"
        assert "database is at head" in run(
            "todo-app", "--db", url.reveal(), "check", cwd=root, env=env
        )


# -- the installed stubs, in-process (what Aerich calls, without the subprocess) -----------


async def _aerich_step(db: Any, step: Any, name: str, *, record: bool) -> None:
    """What Aerich does with a migration file: run it in a transaction, then record it."""
    from tortoise.transactions import in_transaction

    async with in_transaction(db.connection_name) as tx:
        await tx.execute_script(await step(tx))
        mark = ("$1", "$2") if db.capabilities.dialect == "postgres" else ("?", "?")
        if record:
            await tx.execute_query(
                'INSERT INTO "aerich" ("version", "app", "content") '
                f"VALUES ({mark[0]}, {mark[1]}, '{{}}')",
                [name, "todo_app"],
            )
        else:
            await tx.execute_query(
                f'DELETE FROM "aerich" WHERE "version" = {mark[0]} AND "app" = {mark[1]}',
                [name, "todo_app"],
            )


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_installed_stubs_complete_a_generated_table_and_revert(
    fresh_database_url: FreshURL, dialect: str, tmp_path: Path
) -> None:
    from tortoise.context import TortoiseContext
    from tortoise.utils import get_schema_sql

    import todo_app
    from todo_app.aerich_bridge import aerich_migration, install_migrations
    from todo_app.dialects import read_shape
    from todo_app.schema_history import SHAPES

    names = [m.filename for m in todo_app.migration_history()]
    report = install_migrations(tmp_path / "migrations" / "todo_app")
    assert report.installed == names
    assert install_migrations(report.directory).unchanged == names
    url = await fresh_database_url(dialect)
    name = f"stubs_{dialect}"
    async with TortoiseContext() as ctx:
        await ctx.init(config=todo_app.tortoise_config(url, connection_name=name))
        db = ctx.connections.get(name)
        await db.execute_script(get_schema_sql(db, safe=True))  # a host's init-db did this
        for filename in names:
            upgrade, _, state = aerich_migration(filename)
            assert state, "MODELS_STATE for Aerich's own bookkeeping"
            await _aerich_step(db, upgrade, filename, record=True)
        assert await read_shape(db) == SHAPES[names[-1]][dialect]
        await todo_app.ensure_schema_current(db)

        _, downgrade, _ = aerich_migration(names[-1])
        await _aerich_step(db, downgrade, names[-1], record=False)
        assert await read_shape(db) == SHAPES[names[-2]][dialect]
        with pytest.raises(todo_app.SchemaMismatch, match="cannot revert"):
            await _aerich_step(db, downgrade, names[-1], record=False)
        upgrade, _, _ = aerich_migration(names[-1])
        await _aerich_step(db, upgrade, names[-1], record=True)
        await todo_app.ensure_schema_current(db)

        mark = "$1" if dialect == "postgres" else "?"
        await db.execute_query(
            'INSERT INTO "aerich" ("version", "app", "content") '
            + f"VALUES ({mark}, 'todo_app', '{{}}')",
            ["7_20991231000000_future.py"],
        )
        with pytest.raises(todo_app.SchemaAhead):
            await _aerich_step(db, upgrade, names[-1], record=True)


async def test_installed_stub_refuses_a_table_that_is_something_else(
    fresh_sqlite_url: Callable[[], DatabaseURL],
) -> None:
    from tortoise.context import TortoiseContext

    import todo_app
    from todo_app.aerich_bridge import aerich_migration

    async with TortoiseContext() as ctx:
        await ctx.init(config=todo_app.tortoise_config(fresh_sqlite_url(), connection_name="s"))
        db = ctx.connections.get("s")
        await db.execute_script('CREATE TABLE "todo_app_task" ("id" INTEGER PRIMARY KEY)')
        first = todo_app.migration_history()[0].filename
        upgrade, _, _ = aerich_migration(first)
        with pytest.raises(todo_app.SchemaMismatch, match='column "title" is missing'):
            await _aerich_step(db, upgrade, first, record=True)
    with pytest.raises(todo_app.MigrationPlanError, match="not a migration"):
        aerich_migration("5_20990101000000_unknown.py")


def test_install_locations(tmp_path: Path) -> None:
    import todo_app
    from todo_app.aerich_bridge import host_migrations_dir, install_migrations
    from todo_app.schema_history import MIGRATIONS_DIR

    pyproject = tmp_path / "pyproject.toml"
    assert host_migrations_dir(pyproject) is None  # no file
    # As Aerich reads it: [tool.aerich] when it is there and not empty, else
    # [tool.tortoise] (what `aerich init` writes on Tortoise 1.x); location relative to
    # the working directory, whichever file -c names.
    pyproject.write_text('[tool.aerich]\nlocation = "./db/{app}/versions"\n')
    assert host_migrations_dir(pyproject) == Path("db/todo_app/versions")
    pyproject.write_text('[tool.tortoise]\ntortoise_orm = "s.T"\nlocation = "./migrations"\n')
    assert host_migrations_dir(pyproject) == Path("migrations/todo_app")
    pyproject.write_text('[tool.aerich]\n\n[tool.tortoise]\nlocation = "m"\n')
    assert host_migrations_dir(pyproject) == Path("m/todo_app")
    pyproject.write_text('[tool.aerich]\nlocation = "a"\n[tool.tortoise]\nlocation = "t"\n')
    assert host_migrations_dir(pyproject) == Path("a/todo_app")
    pyproject.write_text("[tool.other]\nx = 1\n")
    assert host_migrations_dir(pyproject) is None
    pyproject.write_text("not toml [")
    assert host_migrations_dir(pyproject) is None
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "3_20990101000000_hosts_own.py").write_text("")
    report = install_migrations(tmp_path / "m")
    assert report.unknown == ["3_20990101000000_hosts_own.py"]
    if MIGRATIONS_DIR.parent.name == "migrations":  # a source checkout
        with pytest.raises(todo_app.MigrationPlanError, match="own source folder"):
            install_migrations(MIGRATIONS_DIR)


# -- a Starlette host on the package's connection entry: the fair, bounded pool --------

STARLETTE_FILES = {
    "pyproject.toml": """
        [project]
        name = "starlette-host"
        version = "0"
    """,
    "shop/__init__.py": "",
    "shop/models.py": FILES["shop/models.py"],
    "settings.py": """
        import os

        import todo_app

        TORTOISE_ORM = {
            "connections": {
                "main": todo_app.connection_entry(
                    todo_app.get_settings(), os.environ["DATABASE_URL"]
                )
            },
            "apps": {
                "shop": {"models": ["shop.models", "aerich.models"], "default_connection": "main"},
                "todo_app": todo_app.app_config("main"),
            },
            "use_tz": True,
            "timezone": "UTC",
        }
    """,
    "app.py": """
        import gc
        from contextlib import asynccontextmanager

        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route
        from tortoise import Tortoise

        import todo_app
        from settings import TORTOISE_ORM


        @asynccontextmanager
        async def lifespan(app):
            # No Tortoise helper for Starlette: request handlers run in other tasks.
            await Tortoise.init(config=TORTOISE_ORM, _enable_global_fallback=True)
            await todo_app.migrate()
            todo_app.freeze_startup_objects()
            yield
            await Tortoise.close_connections()


        async def engine(request):
            module = type(Tortoise.get_connection("main")).__module__
            return JSONResponse({"engine": module, "frozen": gc.get_freeze_count()})


        async def hold(request):
            await Tortoise.get_connection("main").execute_query("SELECT pg_sleep(4)")
            return JSONResponse({"held": True})


        async def add(request):
            repo = todo_app.TaskRepository(request.path_params["owner"])
            task = await repo.create(todo_app.TaskCreate(title=request.path_params["title"]))
            return JSONResponse({"title": task.title}, status_code=201)


        async def timeout(request, exc):
            return JSONResponse({"detail": str(exc)}, status_code=504)


        app = Starlette(
            routes=[
                Route("/engine", engine),
                Route("/hold", hold),
                Route("/{owner}/tasks/{title}", add, methods=["POST"]),
            ],
            lifespan=lifespan,
            exception_handlers={todo_app.TaskStoreTimeout: timeout},
        )
    """,
}


@pytest.mark.postgres
async def test_a_starlette_host_gets_the_fair_bounded_pool_from_the_wheel(
    venv: Path, tmp_path: Path, fresh_database_url: FreshURL
) -> None:
    """Aerich's own ``aerich init`` config, a host app of its own on the package's
    connection entry (so Aerich loads ``todo_app.dialects.postgres.engine``), Starlette
    under uvicorn: the pool is the package's, start-up froze its objects, an exhausted pool answers
    504 naming itself instead of hanging, and a bad setting is refused by name."""
    url = (await fresh_database_url("postgres")).reveal()
    await asyncio.to_thread(walk_starlette_host, venv, tmp_path / "starlette-host", url)


def walk_starlette_host(venv: Path, root: Path, url: str) -> None:
    import concurrent.futures

    for name, text in STARLETTE_FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    env = {**host_env(venv, url), "TODO_APP_POOL_MAX_SIZE": "2", "TODO_APP_POOL_TIMEOUT": "1"}
    run("aerich", "init", "-t", "settings.TORTOISE_ORM", cwd=root, env=env)
    run("aerich", "--app", "shop", "init-db", cwd=root, env=env)

    refused = run("python", "-c", "import settings", cwd=root, code=1,
                  env={**env, "TODO_APP_POOL_TIMEOUT": "-1"})  # fmt: skip
    assert "TODO_APP_POOL_TIMEOUT" in refused

    port = free_port()
    server = subprocess.Popen(
        ["uvicorn", "app:app", "--port", str(port), "--log-level", "warning"],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                started = http("GET", f"{base}/engine")
                break
            except OSError:
                assert server.poll() is None, server.stderr.read() if server.stderr else b""
                assert time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.2)
        assert isinstance(started, dict)
        assert started["engine"] == "todo_app.dialects.postgres.engine"
        assert started["frozen"] > 0

        with concurrent.futures.ThreadPoolExecutor(2) as holders:
            held = [holders.submit(http, "GET", f"{base}/hold") for _ in range(2)]
            time.sleep(1)  # both holds in flight (they last 4 s)
            with pytest.raises(urllib.error.HTTPError) as exhausted:
                http("POST", f"{base}/alice/tasks/waits")
            assert exhausted.value.code == 504
            detail = json.loads(exhausted.value.read())["detail"]
            assert "the pool's 2 connections all in use" in detail
            assert [f.result(timeout=30) for f in held] == [{"held": True}] * 2
        assert http("POST", f"{base}/alice/tasks/served") == {"title": "served"}
    finally:
        server.terminate()
        server.wait(timeout=30)
        if server.stderr:
            server.stderr.close()


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_check_reads_the_config_aerich_is_given_and_allows_newer_when_asked(
    dialect: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fresh_database_url: FreshURL,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import todo_app
    from todo_app.cli import main

    def cli(*args: str) -> tuple[int, str]:
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out + err

    monkeypatch.chdir(tmp_path)
    (tmp_path / "deploy").mkdir()
    config = tmp_path / "deploy" / "aerich.toml"  # as in `aerich -c deploy/aerich.toml`
    config.write_text('[tool.tortoise]\ntortoise_orm = "s.T"\nlocation = "./db"\n')
    code, output = await asyncio.to_thread(cli, "install-migrations")
    assert (code, "no Aerich location in pyproject.toml" in output) == (2, True), output
    code, output = await asyncio.to_thread(cli, "install-migrations", "-c", str(config))
    assert (code, "installed 0_" in output) == (0, True), output
    newest = sorted((tmp_path / "db" / "todo_app").glob("*.py"))[-1]
    newest.unlink()
    code, output = await asyncio.to_thread(cli, "check", "--drift-only", "-c", str(config))
    assert (code, f"missing {newest.name}" in output) == (7, True), output
    assert (await asyncio.to_thread(cli, "install-migrations", "-c", str(config)))[0] == 0

    url = await fresh_database_url(dialect)
    await todo_app.migrate(url)
    future = "9_20991231000000_future_column.py"  # a newer todo_app's, expand phase
    mark = "$1" if dialect == "postgres" else "?"
    async with todo_app.migrator.connection_to(url) as db:
        await db.execute_query(
            f'INSERT INTO "aerich" ("version", "app", "content") VALUES ({mark}, '
            "'todo_app', '{}')",
            [future],
        )
    code, output = await asyncio.to_thread(cli, "--db", url.reveal(), "check", "-c", str(config))
    assert code == 7, output
    assert "--allow-newer" in output
    code, output = await asyncio.to_thread(
        cli, "--db", url.reveal(), "check", "-c", str(config), "--allow-newer"
    )
    assert code == 0, output
