"""The migration runner and the start-up guard trust the live table, not only the
bookkeeping rows: lost rows, hand edits, generator-made tables, foreign ``aerich``
tables, newer versions, other migrators holding the lock. Each case on both dialects."""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.context import TortoiseContext

import todo_app
from tests.helpers import DIALECTS, FreshURL, cli, raw_insert, row_count
from todo_app import (
    ForeignAerichTable,
    MigrationDataError,
    MigrationLockTimeout,
    MigrationPlanError,
    SchemaMismatch,
    SchemaOutOfDate,
    TaskConflict,
    TaskCreate,
    TaskRepository,
    migration_history,
)
from todo_app.config import tortoise_config
from todo_app.dialects import aerich_columns, read_shape
from todo_app.dsn import DatabaseURL
from todo_app.migrator import run_script
from todo_app.schema_history import SHAPES
from todo_app.schema_state import inspect_schema
from todo_app.testing import TodoDatabase

NAMES = [migration.filename for migration in migration_history()]


@asynccontextmanager
async def connected(url: DatabaseURL, **overrides: Any) -> AsyncIterator[TodoDatabase]:
    name = f"guard_{url.dialect}"
    config = tortoise_config(url, connection_name=name)
    config["connections"][name]["credentials"].update(overrides)
    async with TortoiseContext() as ctx:
        await ctx.init(config=config)
        yield TodoDatabase(url.dialect, url, ctx.connections.get(name), ctx)


async def snapshot(db: TodoDatabase) -> list[tuple[str, ...]]:
    """Every stored task, every column, as text: what "nothing changed" compares."""
    _, rows = await db.connection.execute_query('SELECT * FROM "todo_app_task" ORDER BY "id"')
    return [tuple(f"{k}={v}" for k, v in sorted(dict(row).items())) for row in rows]


async def drop_check(db: BaseDBAsyncClient, name: str) -> None:
    """What an operator's hand edit does: the named CHECK is gone, all else kept."""
    if db.capabilities.dialect == "postgres":
        await db.execute_script(f'ALTER TABLE "todo_app_task" DROP CONSTRAINT "{name}"')
        return
    _, rows = await db.execute_query(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'todo_app_task'"
    )
    ddl = str(dict(rows[0])["sql"])
    start = ddl.index(f'CONSTRAINT "{name}"')
    depth, end = 0, ddl.index("(", ddl.index("CHECK", start))
    while True:
        depth += {"(": 1, ")": -1}.get(ddl[end], 0)
        if depth == 0:
            break
        end += 1
    edited = ddl[:start].rstrip().rstrip(",") + ddl[end + 1 :]
    _, indexes = await db.execute_query(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'todo_app_task' "
        "AND sql IS NOT NULL"
    )
    await db.execute_script(
        'ALTER TABLE "todo_app_task" RENAME TO "hand_old";'
        + edited
        + ';INSERT INTO "todo_app_task" SELECT * FROM "hand_old";DROP TABLE "hand_old";'
        + ";".join(str(dict(row)["sql"]) for row in indexes)
    )


async def delete_record(db: BaseDBAsyncClient, name: str) -> None:
    if await aerich_columns(db) is None:
        return
    mark = "$1" if db.capabilities.dialect == "postgres" else "?"
    await db.execute_query(
        f'DELETE FROM "aerich" WHERE "app" = \'todo_app\' AND "version" = {mark}', [name]
    )


# -- the recorded shapes ------------------------------------------------------------------


def test_every_migration_has_a_recorded_shape_per_dialect() -> None:
    for name in NAMES:
        assert set(SHAPES[name]) == {"sqlite", "postgres"}, name


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_recorded_shapes_are_what_the_migrations_make(
    fresh_database_url: FreshURL, dialect: str
) -> None:
    async with connected(await fresh_database_url(dialect)) as db:
        assert await read_shape(db.connection) is None
        for migration in migration_history():
            await run_script(db.connection, await migration.load().upgrade(db.connection))
            live = await read_shape(db.connection)
            recorded = SHAPES[migration.filename][dialect]
            assert live == recorded, migration.filename
            assert live is not None
            assert live.defaults == recorded.defaults


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_downgrades_leave_the_recorded_shape_of_the_level_below(
    fresh_database_url: FreshURL, dialect: str
) -> None:
    async with connected(await fresh_database_url(dialect)) as db:
        await todo_app.migrate(db.connection)
        for level in range(len(NAMES) - 1, -1, -1):
            await todo_app.downgrade(db.connection)
            expected = SHAPES[NAMES[level - 1]][dialect] if level else None
            assert await read_shape(db.connection) == expected


# -- 1. validate, then act ----------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_downgrade_of_more_steps_than_applied_changes_nothing(
    fresh_database_url: FreshURL, dialect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = await fresh_database_url(dialect)
    async with connected(url) as db:
        await todo_app.migrate(db.connection)
        await TaskRepository("alice").create(TaskCreate(title="keep me"))
        before = await snapshot(db)
        too_many = len(NAMES) + 1
        with pytest.raises(
            MigrationPlanError, match=f"nothing reverted: asked to revert {too_many}"
        ):
            await todo_app.downgrade(db.connection, steps=too_many)
        assert await snapshot(db) == before
        assert await todo_app.applied_migrations(db.connection) == NAMES
    code, output = await cli(url, "downgrade", "--steps", str(too_many), "--yes", capsys=capsys)
    assert code == 7
    assert "nothing reverted" in output
    assert "reverted " not in output
    async with connected(url) as db:
        assert await snapshot(db) == before


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_downgrade_shows_its_plan_and_the_data_it_drops_before_yes(
    fresh_database_url: FreshURL, dialect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = await fresh_database_url(dialect)
    async with connected(url) as db:
        await todo_app.migrate(db.connection)
        for title in ("a", "b", "c"):
            await TaskRepository("alice").create(TaskCreate(title=title))
        plan = await todo_app.plan_downgrade(db.connection, steps=len(NAMES))
        assert [step.filename for step in plan.steps] == NAMES[::-1]
        # The last two steps revert migrations 1 and 0, after any later ones.
        assert plan.describe()[-2:] == [
            f"revert {NAMES[1]}: drops column(s) version, completed_at of 3 task(s)",
            f'revert {NAMES[0]}: drops the table "todo_app_task" and its 3 task(s)',
        ]
    code, output = await cli(url, "downgrade", "--steps", str(len(NAMES)), capsys=capsys)
    assert code == 2
    assert f"database: {url.masked}" in output
    assert "drops the table" in output
    assert "repeat with --yes" in output
    async with connected(url) as db:
        assert await row_count(db) == 3
        assert await todo_app.applied_migrations(db.connection) == NAMES


# -- 3. lost bookkeeping is recorded, never re-run -----------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_lost_bookkeeping_row_is_recorded_not_rerun(
    fresh_database_url: FreshURL, dialect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = await fresh_database_url(dialect)
    async with connected(url) as db:
        await todo_app.migrate(db.connection)
        repo = TaskRepository("alice")
        task = await repo.create(TaskCreate(title="write"))
        task = await repo.complete(task.id)
        assert task.version == 2
        await delete_record(db.connection, NAMES[1])
        before = await snapshot(db)
        with pytest.raises(SchemaOutOfDate, match="aerich rows of .* are missing"):
            await todo_app.ensure_schema_current(db.connection)
    code, output = await cli(url, "check", capsys=capsys)
    assert code == 7
    assert "records them without running them again" in output
    code, output = await cli(url, "migrate", capsys=capsys)
    assert code == 0, output
    assert f"recorded {NAMES[1]}" in output
    async with connected(url) as db:
        assert await snapshot(db) == before, "no version reset, no completed_at rewritten"
        await todo_app.ensure_schema_current(db.connection)
        with pytest.raises(TaskConflict):  # a stale writer still loses
            await TaskRepository("alice").update(
                task.id, todo_app.TaskUpdate(title="stale"), expected_version=1
            )


# -- 4. the guard reads the live table ------------------------------------------------------


def _hand_edits(dialect: str) -> dict[str, tuple[str, str]]:
    """edit name -> (SQL, a fragment the guard must name)."""
    return {
        "add a NOT NULL column": (
            'ALTER TABLE "todo_app_task" ADD COLUMN "priority" INT NOT NULL DEFAULT 0',
            'unexpected column "priority"',
        ),
        "drop the table": ('DROP TABLE "todo_app_task"', 'table "todo_app_task" does not exist'),
        "drop an index": (
            'DROP INDEX "todo_app_task_user_status_idx"',
            'index "todo_app_task_user_status_idx" is missing',
        ),
    }


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("edit", ["add a NOT NULL column", "drop the table", "drop an index"])
async def test_the_guard_names_what_a_hand_edit_changed(
    fresh_database_url: FreshURL, dialect: str, edit: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = await fresh_database_url(dialect)
    sql, named = _hand_edits(dialect)[edit]
    async with connected(url) as db:
        await todo_app.migrate(db.connection)
        await db.connection.execute_script(sql)
        with pytest.raises(SchemaOutOfDate) as raised:
            await todo_app.ensure_schema_current(db.connection)
        assert named in str(raised.value)
        assert any(named in line for line in raised.value.differences)
        with pytest.raises(SchemaMismatch, match=re.escape(named)):
            await todo_app.migrate(db.connection)
    code, output = await cli(url, "check", capsys=capsys)
    assert code == 7
    assert named in output


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_dropped_check_or_column_is_named_and_migrate_refuses(
    fresh_database_url: FreshURL, dialect: str
) -> None:
    url = await fresh_database_url(dialect)
    async with connected(url) as db:
        await todo_app.migrate(db.connection)
        await TaskRepository("alice").create(TaskCreate(title="kept"))
        await drop_check(db.connection, "todo_app_task_title_stripped")
        before = await snapshot(db)
        with pytest.raises(SchemaOutOfDate, match='CHECK constraint "todo_app_task_title_stripped'):
            await todo_app.ensure_schema_current(db.connection)
        with pytest.raises(SchemaMismatch):
            await todo_app.migrate(db.connection)
        with pytest.raises(SchemaMismatch):
            await todo_app.downgrade(db.connection)
        assert await snapshot(db) == before


@pytest.mark.postgres
async def test_a_dropped_version_column_is_named(fresh_database_url: FreshURL) -> None:
    async with connected(await fresh_database_url("postgres")) as db:
        await todo_app.migrate(db.connection)
        await db.connection.execute_script(
            'ALTER TABLE "todo_app_task" DROP COLUMN "version" CASCADE'
        )
        with pytest.raises(SchemaOutOfDate, match='column "version" is missing'):
            await todo_app.ensure_schema_current(db.connection)


# -- newer versions -------------------------------------------------------------------------


async def _record_future(db: BaseDBAsyncClient) -> None:
    mark = "$1" if db.capabilities.dialect == "postgres" else "?"
    await db.execute_query(
        'INSERT INTO "aerich" ("version", "app", "content") '
        + f"VALUES ({mark}, 'todo_app', '{{}}')",
        ["9_20991231000000_future.py"],
    )


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_newer_compatible_schema_runs_and_is_reported(
    fresh_database_url: FreshURL,
    dialect: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = await fresh_database_url(dialect)
    async with connected(url) as db:
        await todo_app.migrate(db.connection)
        # The expand step of a newer version: a nullable column, recorded as its own
        # (named so that no migration of this version can have added it).
        await db.connection.execute_script(
            'ALTER TABLE "todo_app_task" ADD COLUMN "added_by_a_newer_version" TEXT'
        )
        await _record_future(db.connection)
        with caplog.at_level(logging.WARNING, logger="todo_app.migrations"):
            await todo_app.ensure_schema_current(db.connection)
        assert "newer version" in caplog.text
        with pytest.raises(SchemaOutOfDate, match="9_20991231000000_future.py unknown here"):
            await todo_app.ensure_schema_current(db.connection, allow_newer=False)
        assert await todo_app.migrate(db.connection) == []
        await TaskRepository("alice").create(TaskCreate(title="old code still writes"))
    code, output = await cli(url, "migrate", capsys=capsys)
    assert code == 0
    assert "ahead of this todo_app" in output
    assert "at head" not in output
    code, output = await cli(url, "check", capsys=capsys)
    assert code == 7
    assert "newer version" in output


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_newer_schema_this_version_cannot_write_is_refused(
    fresh_database_url: FreshURL, dialect: str
) -> None:
    async with connected(await fresh_database_url(dialect)) as db:
        await todo_app.migrate(db.connection)
        await db.connection.execute_script(
            'ALTER TABLE "todo_app_task" ADD COLUMN "tenant" VARCHAR(20) NOT NULL DEFAULT \'x\''
        )
        await db.connection.execute_script(
            'CREATE TABLE "hold" ("id" INT)'
        )  # something else happening on the database is none of the guard's business
        await _record_future(db.connection)
        await todo_app.ensure_schema_current(db.connection)  # a default: still writable
        await drop_check(db.connection, "todo_app_task_title_stripped")
        with pytest.raises(SchemaOutOfDate, match="no longer takes this version's writes"):
            await todo_app.ensure_schema_current(db.connection)


# -- 5. migration timeouts and the lock ---------------------------------------------------


@pytest.mark.postgres
async def test_migrations_run_without_the_application_statement_timeout(
    fresh_database_url: FreshURL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "migrations"
    directory.mkdir()
    for migration in migration_history():
        (directory / migration.filename).write_text(migration.path.read_text())
    slow = f"{len(NAMES)}_20990101000000_slow.py"  # the next number, whatever the history
    state = migration_history()[-1].path.read_text().split("MODELS_STATE = ")[1]
    (directory / slow).write_text(
        "async def upgrade(db):\n    return 'SELECT pg_sleep(1.5);'\n\n"
        "async def downgrade(db):\n    return 'SELECT 1;'\n\n"
        f"MODELS_STATE = {state}"
    )
    monkeypatch.setattr(todo_app.schema_state, "MIGRATIONS_DIR", directory)
    monkeypatch.setitem(SHAPES, slow, SHAPES[NAMES[-1]])
    url = await fresh_database_url("postgres")
    # The application's limits: 0.5 s on the server, 1 s on the client.
    async with connected(
        url, server_settings={"statement_timeout": "500"}, command_timeout=1.0
    ) as db:
        with pytest.raises(asyncpg.QueryCanceledError):
            await db.connection.execute_query("SELECT pg_sleep(1.5)")
        assert await todo_app.migrate(db.connection) == [*NAMES, slow]


@pytest.mark.postgres
async def test_waiting_for_the_lock_says_who_holds_it_and_gives_up(
    fresh_database_url: FreshURL, caplog: pytest.LogCaptureFixture
) -> None:
    url = await fresh_database_url("postgres")
    holder = await asyncpg.connect(url.reveal().replace("postgres://", "postgresql://", 1))
    try:
        await holder.execute("SET application_name = 'other-migrator'")
        key = int.from_bytes(b"todo_app", "big", signed=True)
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("SELECT pg_advisory_xact_lock($1)", key)
        async with connected(url) as db:
            with (
                caplog.at_level(logging.WARNING, logger="todo_app.migrations"),
                pytest.raises(MigrationLockTimeout, match="'other-migrator'") as raised,
            ):
                await todo_app.migrate(db.connection, lock_timeout=3.5)
            assert "held by PostgreSQL backend" in str(raised.value)
            assert "waiting for the migration lock" in caplog.text
            assert await todo_app.applied_migrations(db.connection) == []
            await transaction.rollback()
            assert await todo_app.migrate(db.connection, lock_timeout=3.5) == NAMES
    finally:
        await holder.close()


async def test_sqlite_waits_for_the_write_lock_then_gives_up(
    fresh_sqlite_url: Callable[[], DatabaseURL], capsys: pytest.CaptureFixture[str]
) -> None:
    url = fresh_sqlite_url()
    async with connected(url) as db:
        await todo_app.migrate(db.connection)
    other = sqlite3.connect(url.reveal().removeprefix("sqlite://"), isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        async with connected(url) as db:
            with pytest.raises(MigrationLockTimeout, match="SQLite write lock"):
                await todo_app.migrate(db.connection, lock_timeout=1.5)
        other.execute("ROLLBACK")
        code, output = await cli(url, "migrate", "--lock-timeout", "2", capsys=capsys)
        assert code == 0, output
    finally:
        other.close()


async def test_lock_timeout_is_its_own_exit_code(
    fresh_sqlite_url: Callable[[], DatabaseURL], capsys: pytest.CaptureFixture[str]
) -> None:
    url = fresh_sqlite_url()
    async with connected(url) as db:  # the file exists, in WAL mode, as the package makes it
        await db.connection.execute_query("SELECT 1")
    other = sqlite3.connect(url.reveal().removeprefix("sqlite://"), isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute('CREATE TABLE "holding" ("id" INT)')
        code, output = await cli(url, "migrate", "--lock-timeout", "1", capsys=capsys)
        assert code == 8
        assert "gave up after 1 s" in output
    finally:
        other.execute("ROLLBACK")
        other.close()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, "300", True])
async def test_a_lock_timeout_that_is_no_bound_is_refused_before_connecting(bad: Any) -> None:
    """nan never compares past the deadline (a held lock is waited for forever) and
    a negative one means nothing: refused by name before any connection is made."""
    unreachable = "postgresql://postgres@127.0.0.1:1/x?connect_timeout=1"
    for call in (todo_app.upgrade, todo_app.migrate, todo_app.downgrade):
        with pytest.raises(MigrationPlanError, match="lock_timeout must be a finite number"):
            await asyncio.wait_for(call(unreachable, lock_timeout=bad), 10)


async def test_cli_refuses_a_lock_timeout_that_is_no_bound(
    fresh_sqlite_url: Callable[[], DatabaseURL], capsys: pytest.CaptureFixture[str]
) -> None:
    url = fresh_sqlite_url()
    async with connected(url) as db:
        await db.connection.execute_query("SELECT 1")
    other = sqlite3.connect(url.reveal().removeprefix("sqlite://"), isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # a held lock: nan used to wait for it forever
        for verb in (["migrate"], ["downgrade", "--yes"]):
            for bad in ("nan", "inf", "-1", "-0.5"):
                code, output = await asyncio.wait_for(
                    cli(url, *verb, "--lock-timeout", bad, capsys=capsys), 10
                )
                assert code == 2, output
                assert "--lock-timeout" in output
                assert "finite number of seconds, 0 or more" in output
    finally:
        other.execute("ROLLBACK")
        other.close()


# -- 6. a foreign aerich table ---------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_foreign_aerich_table_is_one_typed_error(
    fresh_database_url: FreshURL, dialect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = await fresh_database_url(dialect)
    async with connected(url) as db:
        await db.connection.execute_script(
            'CREATE TABLE "aerich" ("id" INTEGER PRIMARY KEY, "name" VARCHAR(20))'
        )
        for call in (todo_app.migrate, todo_app.ensure_schema_current, todo_app.applied_migrations):
            with pytest.raises(ForeignAerichTable, match='table "aerich" is not Aerich'):
                await call(db.connection)
    for command in ("migrate", "check", "history"):
        code, output = await cli(url, command, capsys=capsys)
        assert code == 7, command
        assert 'the table "aerich" is not Aerich' in output
        assert "Traceback" not in output


# -- the host's generator-made table (issue: order does not matter) --------------------------


async def _generated_table(db: TodoDatabase) -> None:
    """What a host's ``aerich init-db`` / ``generate_schemas()`` leaves: the model's
    table from Tortoise's generator, with no CHECK constraint."""
    from tortoise.utils import get_schema_sql

    await db.connection.execute_script(get_schema_sql(db.connection, safe=True))


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_generator_made_table_is_completed_with_its_rows(
    fresh_database_url: FreshURL, dialect: str
) -> None:
    url = await fresh_database_url(dialect)
    async with connected(url) as db:
        await _generated_table(db)
        task_id = await raw_insert(db, title="made before todo_app migrated", version=3)
        with pytest.raises(SchemaOutOfDate, match="schema generator"):
            await todo_app.ensure_schema_current(db.connection)
        before = await snapshot(db)
        assert await todo_app.migrate(db.connection) == NAMES
        state = await inspect_schema(db.connection)
        assert state.level == len(NAMES)
        assert state.live == SHAPES[NAMES[-1]][dialect]
        assert sorted(await snapshot(db)) == sorted(before)
        await todo_app.ensure_schema_current(db.connection)
        task = await TaskRepository("owner").get(task_id)
        assert task.version == 3
        with pytest.raises(Exception, match="todo_app_task_title_max_length|value too long"):
            await raw_insert(db, title="x" * 201)


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_generator_made_table_with_rows_breaking_a_rule_is_reported_unchanged(
    fresh_database_url: FreshURL, dialect: str
) -> None:
    url = await fresh_database_url(dialect)
    async with connected(url) as db:
        await _generated_table(db)
        good = await raw_insert(db, title="fine", version=1)
        bad = await raw_insert(db, title="  padded  ", version=1)
        before = await snapshot(db)
        with pytest.raises(MigrationDataError) as raised:
            await todo_app.migrate(db.connection)
        assert raised.value.violations == [f"task {bad}: todo_app_task_title_stripped"]
        assert str(good) not in str(raised.value)
        assert await snapshot(db) == before
        assert (await read_shape(db.connection)) == SHAPES[NAMES[-1]][dialect].without_checks()
        assert await todo_app.applied_migrations(db.connection) == []


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_table_that_is_something_else_is_refused_with_what_differs(
    fresh_database_url: FreshURL, dialect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = await fresh_database_url(dialect)
    async with connected(url) as db:
        await db.connection.execute_script(
            'CREATE TABLE "todo_app_task" ("id" INTEGER PRIMARY KEY, "note" TEXT)'
        )
        with pytest.raises(SchemaMismatch, match='unexpected column "note"') as raised:
            await todo_app.migrate(db.connection)
        assert 'column "title" is missing' in str(raised.value)
    code, output = await cli(url, "migrate", capsys=capsys)
    assert code == 7
    assert output.count("\n") == 1
    assert "Traceback" not in output


# -- 2. rolling deploys: a status this version does not know --------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_rows_with_a_newer_status_are_readable_and_writable(
    fresh_database_url: FreshURL, dialect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = await fresh_database_url(dialect)
    async with connected(url) as db:
        await todo_app.migrate(db.connection)
        archived = await raw_insert(db, user_id="alice", status="archived", version=1)
        repo = TaskRepository("alice")
        await repo.create(TaskCreate(title="known"))
        task = await repo.get(archived)
        assert task.status == "archived"
        assert not isinstance(task.status, todo_app.TaskStatus)
        page = await repo.list()
        assert {str(item.status) for item in page.items} == {"archived", "pending"}
        counts = await repo.counts()
        assert counts["archived"] == 1
        assert counts[todo_app.TaskStatus.PENDING] == 1
        updated = await repo.update(archived, todo_app.TaskUpdate(title="renamed"))
        assert (updated.status, updated.version, updated.title) == ("archived", 2, "renamed")
        completed = await repo.complete(archived, expected_version=2)
        assert completed.status == todo_app.TaskStatus.COMPLETED
        assert completed.version == 3
        await raw_insert(db, user_id="alice", status="snoozed", version=1)
        assert [str(t.status) for t in (await repo.list()).items].count("snoozed") == 1
    for command in (("list",), ("stats",), ("export",), ("list", "--json")):
        code, output = await cli(url, *command, capsys=capsys)
        assert code == 0, (command, output)
        assert ("[s]" if command == ("list",) else "snoozed") in output, command


# -- the property: nothing committed is lost or altered; the verdict is the truth --------

CHECKS_0 = sorted(SHAPES[NAMES[0]]["postgres"].checks)
operations = st.lists(
    st.one_of(
        st.just(("migrate", 0)),
        st.tuples(st.just("downgrade"), st.integers(1, 3)),
        st.tuples(st.just("lose record"), st.integers(0, len(NAMES) - 1)),
        st.tuples(st.just("drop check"), st.integers(0, len(CHECKS_0) - 1)),
        st.tuples(st.just("insert"), st.integers(0, 2)),
    ),
    max_size=8,
)


class Model:
    """What the database must hold after each operation, by this test's own account."""

    def __init__(self) -> None:
        self.level = 0
        self.records: set[str] = set()
        self.tampered = False
        self.tasks: dict[str, str] = {}  # id -> title: the columns no migration touches

    @property
    def consistent(self) -> bool:
        return not self.tampered and self.records == set(NAMES[: self.level])


async def _reset(db: TodoDatabase) -> None:
    await db.connection.execute_script(
        'DROP TABLE IF EXISTS "todo_app_task"; DROP TABLE IF EXISTS "aerich";'
    )


async def _apply(db: TodoDatabase, model: Model, op: str, arg: int) -> None:
    conn = db.connection
    if op == "migrate":
        if model.tampered:
            with pytest.raises(SchemaMismatch):
                await todo_app.migrate(conn)
        else:
            await todo_app.migrate(conn)
            model.level, model.records = len(NAMES), set(NAMES)
    elif op == "downgrade":
        if not model.consistent:
            with pytest.raises(SchemaMismatch):
                await todo_app.downgrade(conn, steps=arg)
        elif arg > model.level:
            with pytest.raises(MigrationPlanError):
                await todo_app.downgrade(conn, steps=arg)
        else:
            await todo_app.downgrade(conn, steps=arg)
            model.level -= arg
            model.records = set(NAMES[: model.level])
            if model.level == 0:
                model.tasks.clear()  # announced: the revert drops the table
    elif op == "lose record":
        await delete_record(conn, NAMES[arg])
        model.records.discard(NAMES[arg])
    elif op == "drop check" and model.level and not model.tampered:
        await drop_check(conn, CHECKS_0[arg])
        model.tampered = True
    elif op == "insert" and model.level:
        title = f"task {len(model.tasks)}"
        extra = {"version": 1} if model.level >= 2 else {}
        task_id = await raw_insert(db, title=title, **extra)
        model.tasks[str(task_id)] = title


async def _verify(db: TodoDatabase, model: Model) -> None:
    from todo_app.schema_state import schema_verdict

    state = await inspect_schema(db.connection)
    verdict = schema_verdict(state)
    at_head = model.consistent and model.level == len(NAMES)
    assert (verdict is None) == at_head, (verdict, vars(model))
    if state.live is None:
        assert model.tasks == {}
        assert model.level == 0
        return
    _, rows = await db.connection.execute_query('SELECT "id", "title" FROM "todo_app_task"')
    assert {str(row["id"]): row["title"] for row in rows} == model.tasks


async def _run_sequence(db: TodoDatabase, steps: list[tuple[str, int]]) -> None:
    await _reset(db)
    model = Model()
    for op, arg in steps:
        await _apply(db, model, op, arg)
        await _verify(db, model)


@settings(max_examples=40)
@given(steps=operations)
async def test_no_sequence_loses_a_task_and_the_verdict_is_the_truth_sqlite(
    fresh_sqlite_url: Callable[[], DatabaseURL], steps: list[tuple[str, int]]
) -> None:
    async with connected(fresh_sqlite_url()) as db:
        await _run_sequence(db, steps)


@pytest.mark.postgres
@settings(max_examples=15)
@given(steps=operations)
async def test_no_sequence_loses_a_task_and_the_verdict_is_the_truth_postgres(
    postgres_scratch: DatabaseURL, steps: list[tuple[str, int]]
) -> None:
    async with connected(postgres_scratch) as db:
        await _run_sequence(db, steps)


@pytest.fixture
async def postgres_scratch(fresh_database_url: FreshURL) -> DatabaseURL:
    return await fresh_database_url("postgres")
