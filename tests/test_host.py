"""todo_app inside a host: its own apps, its own connection name, its own Aerich
bookkeeping, and several worker processes migrating at once."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tortoise import Tortoise
from tortoise.context import TortoiseContext

import todo_app
from tests.helpers import DIALECTS, FreshURL
from tests.host_app.models import Note
from todo_app import TaskCreate, TaskRepository
from todo_app.dsn import DatabaseURL
from todo_app.models import Task

HOST_TABLE = {
    "sqlite": 'CREATE TABLE "host_note" ("id" INTEGER PRIMARY KEY, "text" VARCHAR(100) NOT NULL)',
    "postgres": 'CREATE TABLE "host_note" ("id" SERIAL PRIMARY KEY, "text" VARCHAR(100) NOT NULL)',
}


def host_config(url: DatabaseURL, name: str) -> dict[str, Any]:
    return {
        "connections": {name: todo_app.tortoise_config(url)["connections"]["default"]},
        "apps": {
            "host": {
                "models": ["tests.host_app.models", "aerich.models"],
                "default_connection": name,
            },
            "todo_app": todo_app.app_config(name),
        },
    }


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_migrate_inside_a_running_host(fresh_database_url: FreshURL, dialect: str) -> None:
    url = await fresh_database_url(dialect)
    name = f"host_main_{dialect}"
    other = await fresh_database_url(dialect)
    async with TortoiseContext():
        await Tortoise.init(config=host_config(url, name))
        connection = Tortoise.get_connection(name)
        await connection.execute_script(HOST_TABLE[dialect])
        await Note.create(text="the host's own row")

        applied = await todo_app.migrate()  # the running context's connection
        assert applied == [m.filename for m in todo_app.migration_history()]
        await todo_app.ensure_schema_current()

        # Migrating another database by URL opens and closes a context of its own...
        assert await todo_app.migrate(other.reveal()) == applied
        # ...and leaves the host's context, connections and bindings as they were.
        assert Task._meta.default_connection == name
        assert await Note.all().count() == 1
        task = await TaskRepository("alice").create(TaskCreate(title="in the host"))
        assert (await TaskRepository("alice").get(task.id)).title == "in the host"
        assert await todo_app.migrate() == []
        # Drift check inside a running host: also leaves the binding alone.
        assert await todo_app.check_drift() == []
        assert Task._meta.default_connection == name
        # Aerich's table is shared with the host's history; ours is marked by app.
        _, rows = await connection.execute_query('SELECT DISTINCT "app" FROM "aerich"')
        assert [row["app"] for row in rows] == ["todo_app"]
    async with TortoiseContext():
        await Tortoise.init(config=todo_app.tortoise_config(other, connection_name=f"o_{dialect}"))
        assert await Task.all().count() == 0
        assert await todo_app.pending_migrations() == []


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_migrate_with_a_host_config(fresh_database_url: FreshURL, dialect: str) -> None:
    url = await fresh_database_url(dialect)
    config = host_config(url, f"cfg_{dialect}")
    assert len(await todo_app.migrate(config)) == len(todo_app.migration_history())
    assert await todo_app.pending_migrations(config) == []
    every = len(todo_app.migration_history())
    assert len(await todo_app.downgrade(config, steps=every)) == every
    assert await todo_app.applied_migrations(config) == []
    with pytest.raises(todo_app.MigrationError, match="no connection"):
        await todo_app.migrate({"connections": {}, "apps": {"todo_app": todo_app.app_config("x")}})


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_schema_guard_reports_a_database_behind_the_code(
    fresh_database_url: FreshURL, dialect: str
) -> None:
    url = await fresh_database_url(dialect)
    with pytest.raises(todo_app.SchemaOutOfDate, match="behind") as raised:
        await todo_app.ensure_schema_current(url)
    assert raised.value.pending == [m.filename for m in todo_app.migration_history()]
    await todo_app.migrate(url)
    await todo_app.ensure_schema_current(url)
    await todo_app.downgrade(url)
    with pytest.raises(todo_app.SchemaOutOfDate, match="1 migration"):
        await todo_app.ensure_schema_current(url)


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_database_ahead_of_the_code_is_reported(
    fresh_database_url: FreshURL, dialect: str
) -> None:
    url = await fresh_database_url(dialect)
    await todo_app.migrate(url)
    async with TortoiseContext():
        await Tortoise.init(config=todo_app.tortoise_config(url, connection_name=f"a_{dialect}"))
        mark = "$1" if dialect == "postgres" else "?"
        await Task._meta.db.execute_query(
            'INSERT INTO "aerich" ("version", "app", "content")'
            f" VALUES ({mark}, 'todo_app', '{{}}')",
            ["9_20991231000000_future.py"],
        )
        # The table is unchanged, so this version may run on it (a rolling deploy)...
        await todo_app.ensure_schema_current()
        # ...but a caller that wants the exact schema hears that it is ahead.
        with pytest.raises(todo_app.SchemaOutOfDate, match="newer version"):
            await todo_app.ensure_schema_current(allow_newer=False)


WORKER = textwrap.dedent(
    """
    import asyncio, json, sys, time
    import todo_app

    start = float(sys.argv[2])
    time.sleep(max(0.0, start - time.time()))  # all workers start together
    print(json.dumps(asyncio.run(todo_app.migrate(sys.argv[1]))))
    """
)


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_three_processes_migrating_at_once(
    fresh_database_url: FreshURL, dialect: str, tmp_path: Path
) -> None:
    url = await fresh_database_url(dialect)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    loop = asyncio.get_running_loop()
    start = str(loop.time() - loop.time() + __import__("time").time() + 1.5)
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable, str(script), url.reveal(), start,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]  # fmt: skip
    results = [await worker.communicate() for worker in workers]
    for worker, (_, err) in zip(workers, results, strict=True):
        assert worker.returncode == 0, err.decode()
    applied = [name for out, _ in results for name in json.loads(out)]
    names = [m.filename for m in todo_app.migration_history()]
    assert sorted(applied) == sorted(names), "each migration applied exactly once"
    assert await todo_app.applied_migrations(url) == names


SQLITE_WRITER = textwrap.dedent(
    """
    import asyncio, sys, time
    from tortoise import Tortoise
    import todo_app
    from todo_app import TaskRepository, TaskUpdate

    async def main(url, task_id, start):
        await Tortoise.init(config=todo_app.tortoise_config(url))
        time.sleep(max(0.0, start - time.time()))
        repo = TaskRepository("shared")
        for n in range(100):
            await repo.update(task_id, TaskUpdate(description=f"{sys.argv[4]} {n}"))
        await Tortoise.close_connections()

    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
    """
)


async def test_sqlite_writers_in_two_processes_wait_for_each_other(
    fresh_sqlite_url: Callable[[], DatabaseURL], tmp_path: Path
) -> None:
    """Read-then-write transactions from two processes on one SQLite file: they queue
    on the write lock (BEGIN IMMEDIATE) instead of failing with "database is locked"."""
    url = fresh_sqlite_url()
    await todo_app.migrate(url)
    async with TortoiseContext():
        await Tortoise.init(config=todo_app.tortoise_config(url, connection_name="mp_sqlite"))
        task = await TaskRepository("shared").create(TaskCreate(title="contended"))
    script = tmp_path / "writer.py"
    script.write_text(SQLITE_WRITER)
    start = str(__import__("time").time() + 1.0)
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable, str(script), url.reveal(), str(task.id), start, f"p{n}",
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for n in range(2)
    ]  # fmt: skip
    for worker in workers:
        _, err = await worker.communicate()
        assert worker.returncode == 0, err.decode()[-2000:]
    async with TortoiseContext():
        await Tortoise.init(config=todo_app.tortoise_config(url, connection_name="mp_sqlite"))
        assert (await TaskRepository("shared").get(task.id)).version == 201
