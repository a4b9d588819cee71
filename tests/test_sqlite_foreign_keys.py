"""A host's rows that refer to tasks survive SQLite's table rebuilds.

A host may give its own models a foreign key to ``todo_app.Task``; Tortoise opens SQLite
with ``PRAGMA foreign_keys=ON``. Migration 1, its revert and the rebuilds that
``todo-app makemigration`` writes drop and re-create the task table: with foreign keys
on, that ``DROP TABLE`` deletes the host's rows (``ON DELETE CASCADE``) or is refused
(``RESTRICT``). Whichever way the migration runs (``todo_app.migrate()``/``downgrade()``,
or Aerich through the installed stubs), the host's rows stay, foreign keys are on again
afterwards, and a migration that would leave a dangling reference is rolled back.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.context import TortoiseContext
from tortoise.transactions import in_transaction

import todo_app
import todo_app.schema_state
from todo_app import MigrationFailed, downgrade, migrate, migration_history
from todo_app.aerich_bridge import aerich_migration
from todo_app.dialects.sqlite.rebuild import rebuild_for
from todo_app.dsn import DatabaseURL
from todo_app.models import Task
from todo_app.schema_history import MIGRATIONS_DIR, SHAPES

TASKS = [str(uuid.UUID(int=n, version=4)) for n in (1, 2, 3)]
HEAD = migration_history()[-1].filename


def host_table(on_delete: str) -> str:
    # What Tortoise generates for ForeignKeyField("todo_app.Task", on_delete=...).
    return (
        'CREATE TABLE "shop_order" ("id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, '
        '"task_id" CHAR(36) NOT NULL REFERENCES "todo_app_task" ("id") '
        f"ON DELETE {on_delete})"
    )


@asynccontextmanager
async def connected(url: DatabaseURL) -> AsyncIterator[BaseDBAsyncClient]:
    async with TortoiseContext() as ctx:
        await ctx.init(config=todo_app.tortoise_config(url, connection_name="fk"))
        yield ctx.connections.get("fk")


async def seed(db: BaseDBAsyncClient, on_delete: str) -> None:
    """Tasks (as migration 1 or its revert left the table) and two orders per task."""
    await db.execute_script(host_table(on_delete))
    for task_id in TASKS:
        await db.execute_query(
            'INSERT INTO "todo_app_task" ("id", "user_id", "title", "status", "created_at", '
            "\"updated_at\") VALUES (?, 'u', 't', 'pending', '2026-01-01 00:00:00+00:00', "
            "'2026-01-01 00:00:00+00:00')",
            [task_id],
        )
        for _ in range(2):
            await db.execute_query('INSERT INTO "shop_order" ("task_id") VALUES (?)', [task_id])


async def scalar(db: BaseDBAsyncClient, sql: str) -> Any:
    _, rows = await db.execute_query(sql)
    return next(iter(dict(rows[0]).values()))


async def assert_intact(db: BaseDBAsyncClient) -> None:
    """Every order and task is there, no reference dangles, foreign keys are on."""
    _, orders = await db.execute_query('SELECT "task_id" FROM "shop_order" ORDER BY "id"')
    assert [row["task_id"] for row in orders] == [t for t in TASKS for _ in range(2)]
    assert await scalar(db, 'SELECT count(*) FROM "todo_app_task"') == len(TASKS)
    _, broken = await db.execute_query("PRAGMA foreign_key_check")
    assert broken == []
    assert await scalar(db, "PRAGMA foreign_keys") == 1


@pytest.mark.parametrize("on_delete", ["CASCADE", "RESTRICT"])
async def test_migrate_and_downgrade_keep_a_hosts_rows(
    fresh_sqlite_url: Callable[[], DatabaseURL], on_delete: str
) -> None:
    async with connected(fresh_sqlite_url()) as db:
        assert await migrate(db)
        await downgrade(db)  # back to migration 0's table, to seed it as it was
        await seed(db, on_delete)
        assert await migrate(db) == [HEAD]  # 0 -> 1: a rebuild
        await assert_intact(db)
        assert await downgrade(db) == [HEAD]  # 1 -> 0: a rebuild
        await assert_intact(db)
        assert await migrate(db) == [HEAD]
        await assert_intact(db)
        await todo_app.ensure_schema_current(db)


async def aerich_step(db: BaseDBAsyncClient, step: Any, name: str, *, record: bool) -> None:
    """What Aerich does with an installed stub: run it in a transaction, then record."""
    async with in_transaction(db.connection_name) as tx:
        await tx.execute_script(await step(tx))
        if record:
            await tx.execute_query(
                'INSERT INTO "aerich" ("version", "app", "content") VALUES (?, ?, \'{}\')',
                [name, "todo_app"],
            )
        else:
            await tx.execute_query(
                'DELETE FROM "aerich" WHERE "version" = ? AND "app" = ?', [name, "todo_app"]
            )


@pytest.mark.parametrize("on_delete", ["CASCADE", "RESTRICT"])
async def test_the_installed_stubs_keep_a_hosts_rows(
    fresh_sqlite_url: Callable[[], DatabaseURL], on_delete: str
) -> None:
    names = [m.filename for m in migration_history()]
    async with connected(fresh_sqlite_url()) as db:
        for filename in names[:-1]:
            upgrade_stub, _, _ = aerich_migration(filename)
            await aerich_step(db, upgrade_stub, filename, record=True)
        await seed(db, on_delete)
        upgrade_stub, downgrade_stub, _ = aerich_migration(HEAD)
        await aerich_step(db, upgrade_stub, HEAD, record=True)
        await assert_intact(db)
        await todo_app.ensure_schema_current(db)
        await aerich_step(db, downgrade_stub, HEAD, record=False)
        await assert_intact(db)
        assert await todo_app.applied_migrations(db) == names[:-1]
        await aerich_step(db, upgrade_stub, HEAD, record=True)
        await assert_intact(db)
        await todo_app.ensure_schema_current(db)


_GENERATED = """
from tortoise import BaseDBAsyncClient

async def upgrade(db: BaseDBAsyncClient) -> str:
    return {upgrade!r}

async def downgrade(db: BaseDBAsyncClient) -> str:
    return {downgrade!r}

MODELS_STATE = {state}
"""


def history_with(directory: Path, name: str, text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The package's history plus ``name``, which leaves the table as the head did."""
    shutil.copytree(MIGRATIONS_DIR, directory)
    (directory / name).write_text(text)
    monkeypatch.setattr(todo_app.schema_state, "MIGRATIONS_DIR", directory)
    monkeypatch.setitem(SHAPES, name, SHAPES[HEAD])


async def test_a_generated_rebuild_keeps_a_hosts_rows(
    fresh_sqlite_url: Callable[[], DatabaseURL],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = "2_20990101000000_rebuilt.py"
    state = migration_history()[-1].path.read_text().split("MODELS_STATE = ")[1]
    async with connected(fresh_sqlite_url()) as db:
        assert await migrate(db)
        await downgrade(db)
        await seed(db, "CASCADE")
        assert await migrate(db) == [HEAD]
        rebuild = await rebuild_for(db, "todo_app_task", Task)
        assert 'DROP TABLE "todo_app_task"' in rebuild.upgrade
        text = _GENERATED.format(upgrade=rebuild.upgrade, downgrade=rebuild.downgrade, state=state)
        history_with(tmp_path / "migrations", name, text, monkeypatch)
        assert await migrate(db) == [name]
        await assert_intact(db)
        assert await downgrade(db) == [name]
        await assert_intact(db)


#: Deletes a task that a host's rows refer to: it orphans them with foreign keys off.
ORPHANING = f'DELETE FROM "todo_app_task" WHERE "id" = \'{TASKS[0]}\';'


async def test_a_migration_that_leaves_a_dangling_reference_is_rolled_back(
    fresh_sqlite_url: Callable[[], DatabaseURL],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Foreign keys are off while a migration runs, so the check before its commit is
    what refuses one that would orphan a host's rows; the setting comes back on."""
    name = "2_20990101000000_orphaning.py"
    state = migration_history()[-1].path.read_text().split("MODELS_STATE = ")[1]
    async with connected(fresh_sqlite_url()) as db:
        assert await migrate(db)
        await downgrade(db)
        await seed(db, "CASCADE")
        assert await migrate(db) == [HEAD]
        history_with(
            tmp_path / "migrations",
            name,
            _GENERATED.format(upgrade=ORPHANING, downgrade="SELECT 1;", state=state),
            monkeypatch,
        )
        with pytest.raises(MigrationFailed, match=r'2 row\(s\) of "shop_order" refer to missing'):
            await migrate(db)
        await assert_intact(db)
        assert name not in await todo_app.applied_migrations(db)


async def test_an_aerich_revert_that_leaves_a_dangling_reference_is_rolled_back(
    fresh_sqlite_url: Callable[[], DatabaseURL],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The revert's SQL runs in the script handed to Aerich: a row of that script
    checks the references before its commit, and fails the whole run."""
    name = "2_20990101000000_orphaning.py"
    state = migration_history()[-1].path.read_text().split("MODELS_STATE = ")[1]
    text = _GENERATED.format(upgrade="SELECT 1;", downgrade=ORPHANING, state=state)
    history_with(tmp_path / "migrations", name, text, monkeypatch)
    async with connected(fresh_sqlite_url()) as db:
        assert await migrate(db)
        await seed(db, "CASCADE")
        _, downgrade_stub, _ = aerich_migration(name)
        with pytest.raises(Exception, match="referring to tasks that are gone"):
            await aerich_step(db, downgrade_stub, name, record=False)
        await db.execute_query("PRAGMA foreign_keys = ON")  # left off: see docs/migrations.md
        await assert_intact(db)
        assert name in await todo_app.applied_migrations(db)


async def test_inside_a_callers_transaction_the_migration_is_refused(
    fresh_sqlite_url: Callable[[], DatabaseURL],
) -> None:
    """Foreign keys cannot be switched inside a transaction: rather than rebuild with
    them on (and delete the host's rows), nothing is done."""
    async with connected(fresh_sqlite_url()) as db:
        assert await migrate(db)
        await downgrade(db)
        await seed(db, "CASCADE")
        with pytest.raises(todo_app.MigrationPlanError, match="outside the caller's transaction"):
            async with in_transaction(db.connection_name):
                await migrate()
        assert await todo_app.pending_migrations(db) == [HEAD]
        await assert_intact(db)
