"""The migrations: what they build, that they round-trip on both dialects, that they
are atomic and race-safe, that Aerich's CLI agrees with them, and the drift check."""

from __future__ import annotations

import ast
import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.context import TortoiseContext

import todo_app.schema_state
from tests.helpers import DIALECTS, FreshURL, raw_insert, row_count
from todo_app import (
    MigrationError,
    TaskCreate,
    TaskRepository,
    applied_migrations,
    check_drift,
    downgrade,
    migration_history,
    pending_migrations,
    tortoise_config,
    upgrade,
)
from todo_app.dsn import DatabaseURL
from todo_app.models import Task
from todo_app.schema_history import MIGRATIONS_DIR, SHAPES
from todo_app.testing import TodoDatabase

REPO_ROOT = Path(__file__).resolve().parent.parent
HEAD = migration_history()[-1].filename
CHECKS = {
    "todo_app_task_user_id_not_blank",
    "todo_app_task_user_id_max_length",
    "todo_app_task_title_not_blank",
    "todo_app_task_title_stripped",
    "todo_app_task_title_max_length",
    "todo_app_task_description_not_empty",
    "todo_app_task_description_max_length",
    "todo_app_task_status_not_empty",
    "todo_app_task_status_max_length",
    "todo_app_task_version_positive",
    "todo_app_task_completed_at_matches_status",
}
SQLITE_ONLY_CHECKS = {
    "todo_app_task_user_id_no_nul",
    "todo_app_task_title_no_nul",
    "todo_app_task_description_no_nul",
}


@asynccontextmanager
async def connected(url: DatabaseURL) -> AsyncIterator[BaseDBAsyncClient]:
    # One name per dialect: Tortoise caches compiled SQL per connection name.
    name = f"migrations_{url.dialect}"
    async with TortoiseContext() as ctx:
        await ctx.init(config=tortoise_config(url, connection_name=name))
        yield ctx.connections.get(name)


async def table_exists(db: BaseDBAsyncClient) -> bool:
    if db.capabilities.dialect == "postgres":
        _, rows = await db.execute_query("SELECT to_regclass('todo_app_task') IS NOT NULL AS t")
        return bool(rows[0]["t"])
    _, rows = await db.execute_query(
        "SELECT count(*) AS t FROM sqlite_master WHERE name = 'todo_app_task'"
    )
    return bool(rows[0]["t"])


async def test_indexes_as_the_database_reports_them(todo_db: TodoDatabase) -> None:
    db = todo_db.connection
    if todo_db.dialect == "postgres":
        _, rows = await db.execute_query(
            "SELECT i.relname AS name, array_agg(a.attname ORDER BY k.n) AS columns"
            " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
            " JOIN pg_class t ON t.oid = x.indrelid"
            " CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, n)"
            " JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum"
            " WHERE t.relname = 'todo_app_task' GROUP BY i.relname"
        )
        indexes = {row["name"]: list(row["columns"]) for row in rows}
        primary = "todo_app_task_pkey"
    else:
        _, rows = await db.execute_query("SELECT name FROM pragma_index_list('todo_app_task')")
        indexes = {}
        for row in rows:
            _, info = await db.execute_query(
                "SELECT name FROM pragma_index_info(?) ORDER BY seqno", [row["name"]]
            )
            indexes[row["name"]] = [column["name"] for column in info]
        primary = "sqlite_autoindex_todo_app_task_1"
    assert indexes == {
        primary: ["id"],
        "todo_app_task_user_status_idx": ["user_id", "status"],
        "todo_app_task_user_created_idx": ["user_id", "created_at", "id"],
    }


async def test_check_constraints_are_named(todo_db: TodoDatabase) -> None:
    db = todo_db.connection
    if todo_db.dialect == "postgres":
        _, rows = await db.execute_query(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'todo_app_task'::regclass"
            " AND contype = 'c'"
        )
        assert {row["conname"] for row in rows} == CHECKS
    else:
        _, rows = await db.execute_query(
            "SELECT sql FROM sqlite_master WHERE name = 'todo_app_task'"
        )
        tree = rows[0]["sql"]
        named = {part.split('"')[1] for part in tree.split("CONSTRAINT ")[1:]}
        assert named == CHECKS | SQLITE_ONLY_CHECKS


@pytest.mark.postgres
async def test_postgres_column_types(todo_postgres: TodoDatabase) -> None:
    _, rows = await todo_postgres.connection.execute_query(
        "SELECT column_name, data_type, character_maximum_length AS len, is_nullable"
        " FROM information_schema.columns WHERE table_name = 'todo_app_task'"
    )
    columns = {
        row["column_name"]: (row["data_type"], row["len"], row["is_nullable"]) for row in rows
    }
    assert set(columns) == set(SHAPES[HEAD]["postgres"].columns), "the newest migration's"
    expected = {
        "id": ("uuid", None, "NO"),
        "user_id": ("character varying", 255, "NO"),
        "title": ("character varying", 200, "NO"),
        "description": ("character varying", 1000, "YES"),
        "status": ("character varying", 32, "NO"),
        "created_at": ("timestamp with time zone", None, "NO"),
        "updated_at": ("timestamp with time zone", None, "NO"),
        "version": ("integer", None, "NO"),
        "completed_at": ("timestamp with time zone", None, "YES"),
    }
    assert {name: columns[name] for name in expected} == expected


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_round_trip_upgrade_downgrade_upgrade(
    fresh_database_url: FreshURL, dialect: str
) -> None:
    url = await fresh_database_url(dialect)
    names = [m.filename for m in migration_history()]
    async with connected(url) as db:
        assert await pending_migrations(db) == names
        assert await upgrade(db) == names
        assert await upgrade(db) == [], "upgrade is idempotent"
        assert await applied_migrations(db) == names
        assert await table_exists(db)
        await TaskRepository("alice").create(TaskCreate(title="survives nothing: dropped"))

        assert await downgrade(db, steps=len(names)) == names[::-1]
        assert not await table_exists(db)
        assert await applied_migrations(db) == []
        with pytest.raises(MigrationError, match="only 0 are applied"):
            await downgrade(db)

        assert await upgrade(db) == names
        assert await table_exists(db)
        assert await Task.all().count() == 0
        await TaskRepository("alice").create(TaskCreate(title="works again"))
        assert await Task.all().count() == 1


BROKEN_MIGRATION = '''
from tortoise import BaseDBAsyncClient

async def upgrade(db: BaseDBAsyncClient) -> str:
    return """
        CREATE TABLE "todo_app_half_done" ("id" INTEGER NOT NULL PRIMARY KEY);
        INSERT INTO "todo_app_no_such_table" VALUES (1);
    """

async def downgrade(db: BaseDBAsyncClient) -> str:
    return ""

MODELS_STATE = ""
'''


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_failing_migration_leaves_nothing_behind(
    fresh_database_url: FreshURL,
    dialect: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    (directory / "99_20990101000000_broken.py").write_text(BROKEN_MIGRATION)
    monkeypatch.setattr(todo_app.schema_state, "MIGRATIONS_DIR", directory)
    # It leaves todo_app's table as the newest real migration made it.
    monkeypatch.setitem(SHAPES, "99_20990101000000_broken.py", SHAPES[HEAD])
    url = await fresh_database_url(dialect)
    async with connected(url) as db:
        with pytest.raises(Exception, match="todo_app_no_such_table"):
            await upgrade(db)
        # Everything before the broken migration committed; nothing of it did.
        assert await pending_migrations(db) == ["99_20990101000000_broken.py"]
        probe = (
            "SELECT to_regclass('todo_app_half_done') IS NULL AS gone"
            if dialect == "postgres"
            else "SELECT count(*) = 0 AS gone FROM sqlite_master WHERE name = 'todo_app_half_done'"
        )
        _, rows = await db.execute_query(probe)
        assert rows[0]["gone"]


async def test_an_empty_downgrade_is_an_error(
    todo_sqlite: TodoDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, directory)
    state = migration_history()[-1].path.read_text().split("MODELS_STATE = ")[1]
    (directory / "98_20990101000000_noop.py").write_text(
        BROKEN_MIGRATION.replace('INSERT INTO "todo_app_no_such_table" VALUES (1);', "").replace(
            'MODELS_STATE = ""', f"MODELS_STATE = {state}"
        )
    )
    monkeypatch.setattr(todo_app.schema_state, "MIGRATIONS_DIR", directory)
    monkeypatch.setitem(SHAPES, "98_20990101000000_noop.py", SHAPES[HEAD])
    assert await upgrade(todo_sqlite.connection) == ["98_20990101000000_noop.py"]
    with pytest.raises(MigrationError, match="empty downgrade"):
        await downgrade(todo_sqlite.connection)
    assert "98_20990101000000_noop.py" in await applied_migrations(todo_sqlite.connection)


@pytest.mark.postgres
async def test_concurrent_upgrades_apply_each_migration_once(fresh_database_url: FreshURL) -> None:
    url = await fresh_database_url("postgres")
    names = ["a", "b", "c"]
    config = tortoise_config(url, connection_name="a")
    connection = config["connections"]["a"]
    config["connections"] = dict.fromkeys(names, connection)
    async with TortoiseContext() as ctx:
        await ctx.init(config=config)
        results = await asyncio.gather(*(upgrade(ctx.connections.get(n)) for n in names))
        applied_by_someone = [filename for result in results for filename in result]
        # Every migration applied exactly once, whichever runner got to it.
        assert sorted(applied_by_someone) == sorted(m.filename for m in migration_history())
        assert await applied_migrations(ctx.connections.get("a")) == [
            m.filename for m in migration_history()
        ]


async def test_migrations_are_frozen_history() -> None:
    """No migration imports todo_app: its SQL cannot change when the code does."""
    for migration in migration_history():
        tree = ast.parse(migration.path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            assert all(m.split(".")[0] in {"tortoise", "__future__"} for m in modules), (
                f"{migration.filename} imports {modules}"
            )


async def test_drift_check_passes() -> None:
    assert await check_drift() == []


async def test_drift_check_sees_a_model_change(monkeypatch: pytest.MonkeyPatch) -> None:
    assert await check_drift() == []
    monkeypatch.setattr(Task._meta.fields_map["title"], "max_length", 300)
    monkeypatch.setattr(Task._meta.fields_map["title"], "description", "changed")
    differences = await check_drift()
    assert any("title" in line or "data_fields" in line for line in differences), differences
    assert differences


async def test_drift_check_ignores_docstrings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Task, "__doc__", "A different docstring")
    assert await check_drift() == []


def _aerich(*args: str, url: DatabaseURL) -> str:
    env = {**os.environ, "DATABASE_URL": url.reveal()}
    aerich = Path(sys.executable).parent / "aerich"
    result = subprocess.run(
        [str(aerich), *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_aerich_cli_from_the_repo_root(fresh_database_url: FreshURL, dialect: str) -> None:
    url = await fresh_database_url(dialect)
    names = [m.filename for m in migration_history()]
    assert all(name in _aerich("history", url=url) for name in names)
    assert "Success upgrading" in _aerich("upgrade", url=url)
    assert "No available heads" in _aerich("heads", url=url)
    async with connected(url) as db:
        # One bookkeeping table: what Aerich applied, todo_app sees, and vice versa.
        assert await applied_migrations(db) == names
        assert await upgrade(db) == []
        task_id = await raw_insert(TodoDatabase(dialect, url, db, None), title="from raw SQL")  # type: ignore[arg-type]
        assert await Task.filter(id=task_id).count() == 1
    assert "Success downgrading" in _aerich("downgrade", "--yes", url=url)
    async with connected(url) as db:
        assert await applied_migrations(db) == names[:-1]
        assert await upgrade(db) == names[-1:]
        # Reverting and re-applying the newest migration kept the row.
        assert await row_count(TodoDatabase(dialect, url, db, None)) == 1  # type: ignore[arg-type]


SEED_ROWS = [
    ("11111111-1111-4111-8111-111111111111", "alice", "pending one", None, "pending"),
    ("22222222-2222-4222-8222-222222222222", "alice", "done one", "with text", "completed"),
    ("33333333-3333-4333-8333-333333333333", "bob", "bob's", None, "pending"),
]


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_version_migration_keeps_existing_rows(
    fresh_database_url: FreshURL, dialect: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 1 applied to a database that already holds rows, then reverted and
    re-applied: every row survives, completed rows get a completion time."""
    # The history as it stood when migration 1 was the newest: later ones are theirs.
    only_first, first_two = tmp_path / "only_first", tmp_path / "first_two"
    first, second = migration_history()[:2]
    for directory, migrations in ((only_first, [first]), (first_two, [first, second])):
        directory.mkdir()
        for migration in migrations:
            shutil.copy(migration.path, directory / migration.filename)
    url = await fresh_database_url(dialect)
    async with connected(url) as db:
        monkeypatch.setattr(todo_app.schema_state, "MIGRATIONS_DIR", only_first)
        assert await upgrade(db) == [first.filename]
        marks = ["$1", "$2", "$3", "$4", "$5"] if dialect == "postgres" else ["?"] * 5
        for row in SEED_ROWS:
            await db.execute_query(
                'INSERT INTO "todo_app_task" ("id", "user_id", "title", "description", "status",'
                f' "created_at", "updated_at") VALUES ({", ".join(marks)},'
                " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
                list(row),
            )
        monkeypatch.setattr(todo_app.schema_state, "MIGRATIONS_DIR", first_two)

        async def snapshot() -> list[tuple[object, ...]]:
            _, rows = await db.execute_query(
                'SELECT "id", "user_id", "title", "description", "status" FROM "todo_app_task"'
                ' ORDER BY "id"'
            )
            columns = ("id", "user_id", "title", "description", "status")
            return [tuple(None if r[k] is None else str(r[k]) for k in columns) for r in rows]

        before = await snapshot()
        assert await upgrade(db) == [second.filename]
        assert await snapshot() == before
        _, rows = await db.execute_query(
            'SELECT "status", "version", "completed_at" FROM "todo_app_task" ORDER BY "id"'
        )
        assert [(r["status"], r["version"], r["completed_at"] is not None) for r in rows] == [
            ("pending", 1, False),
            ("completed", 1, True),
            ("pending", 1, False),
        ]
        assert await downgrade(db) == [second.filename]
        assert await snapshot() == before
        assert await upgrade(db) == [second.filename]
        assert await snapshot() == before
        assert await Task.filter(user_id="alice").count() == 2
