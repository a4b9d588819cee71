"""``todo-app makemigration``: it writes a frozen migration with its recorded shapes,
so that the runner takes it at once, and refuses clearly when it cannot.

The full run here is in-process, on a history cut back to migration 0 (the models
then differ from the newest recorded state by migration 1's columns); the
walk-through of a real new field, in a copy of the repository, is
``tests/test_adding_a_field.py``.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import todo_app.makemigration
import todo_app.schema_state
from tests.helpers import FreshURL
from todo_app import migration_history
from todo_app.cli import main
from todo_app.dialects import read_shape
from todo_app.dialects.postgres.connect import drop_database
from todo_app.dialects.sqlite.rebuild import rebuild_scripts, split_statements
from todo_app.dsn import DatabaseURL
from todo_app.makemigration import (
    NothingToMigrate,
    ScratchDatabaseUnavailable,
    make_migration,
    record_shapes,
)
from todo_app.migrator import check_drift, connection_to, run_script, upgrade
from todo_app.models import Task
from todo_app.schema_history import (
    SHAPES,
    SOURCE_DIR,
    load_shapes,
    shape_path,
    shape_to_json,
)
from todo_app.settings import get_settings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def history_at_0(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A migrations folder holding migration 0 only (and its shape), used as the
    package's own for the test; SHAPES is given back as it was afterwards."""
    directory = tmp_path / "migrations" / "todo_app"
    (directory / "shapes").mkdir(parents=True)
    first = migration_history()[0]
    shutil.copy(first.path, directory / first.filename)
    shutil.copy(shape_path(first.path), shape_path(directory / first.filename))
    for module, name in (
        (todo_app.schema_state, "MIGRATIONS_DIR"),
        (todo_app.makemigration, "MIGRATIONS_DIR"),
        (todo_app.makemigration, "SOURCE_DIR"),
    ):
        monkeypatch.setattr(module, name, directory)
    saved = dict(SHAPES)
    yield directory
    SHAPES.clear()
    SHAPES.update(saved)


def _files(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.rglob("*.*"))


def _assert_formatted(path: Path) -> None:
    """The file as ``ruff format`` leaves it: CI's format check passes with it."""
    checked = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--diff", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.postgres
async def test_it_writes_a_frozen_migration_that_the_runner_takes_at_once(
    history_at_0: Path, fresh_database_url: FreshURL
) -> None:
    assert await check_drift(), "the models differ from migration 0's state"
    made = await make_migration("version_again", now=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC))

    assert made.filename == "1_20300102030405_version_again.py"
    assert made.path.parent == history_at_0
    assert [m.filename for m in migration_history()][-1] == made.filename
    assert not await check_drift(), "the new migration records the models' state"
    source = made.path.read_text()
    tree = ast.parse(source)
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported == {"tortoise"}, "frozen: no import of todo_app"
    assert "RUN_IN_TRANSACTION = True" in source
    assert 'ALTER TABLE "todo_app_task" ADD "version" INT NOT NULL DEFAULT 1' in source
    assert 'ADD "completed_at" TIMESTAMPTZ' in source
    assert made.statements["sqlite"]
    assert made.statements["postgres"]
    _assert_formatted(made.path)

    # The recorded shapes are data, loaded as the package loads them, and they are
    # what the runner leaves on fresh databases of both dialects.
    assert json.loads(made.shape_path.read_text()).keys() == {"sqlite", "postgres"}
    assert load_shapes(history_at_0)[made.filename] == made.shapes
    for dialect in ("sqlite", "postgres"):
        url = await fresh_database_url(dialect)
        assert await upgrade(url) == [m.filename for m in migration_history()]
        async with connection_to(url) as db:
            live = await read_shape(db)
        assert live == made.shapes[dialect] == SHAPES[made.filename][dialect]
        assert "completed_at" in live.columns
        assert "version" in live.defaults

    # Frozen history: nothing to add, and a recorded shape is never rewritten.
    with pytest.raises(NothingToMigrate, match="nothing to migrate"):
        await make_migration("again")
    with pytest.raises(todo_app.errors.MigrationPlanError, match="recorded already"):
        await record_shapes()
    assert [name for name in _files(history_at_0) if name.endswith(".py")] == [
        migration_history(SOURCE_DIR)[0].filename,
        made.filename,
    ]


@pytest.mark.postgres
async def test_record_shapes_records_a_hand_written_migration(history_at_0: Path) -> None:
    made = await make_migration("by_hand")
    recorded = made.shape_path.read_text()
    made.shape_path.unlink()  # as if the file had been written by hand
    del SHAPES[made.filename]
    assert await record_shapes() == made.shape_path
    assert made.shape_path.read_text() == recorded


async def test_an_unreachable_server_is_named_with_its_password_masked(
    history_at_0: Path,
) -> None:
    with pytest.raises(ScratchDatabaseUnavailable) as raised:
        await make_migration("x", pg_url="postgres://postgres:hunter2@127.0.0.1:1/test")
    assert "127.0.0.1:1" in str(raised.value)
    assert "hunter2" not in str(raised.value)
    first = migration_history(SOURCE_DIR)[0]
    assert _files(history_at_0) == [
        shape_path(first.path).name,
        first.filename,
    ], "nothing left written"


def _server_with_password() -> DatabaseURL:
    """The test server's URL with a password in it (the trusting test server ignores
    it): what must never appear in an error."""
    raw = get_settings().test_database_url.reveal()
    return DatabaseURL(f"{raw}{'&' if '?' in raw else '?'}password=hunter2")


async def _exists(name: str) -> bool:
    async with connection_to(get_settings().test_database_url) as db:
        _, rows = await db.execute_query("SELECT 1 FROM pg_database WHERE datname = $1", [name])
    return bool(rows)


@pytest.mark.postgres
async def test_a_failed_drop_does_not_hide_the_error_that_came_first(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The throw-away database is made and dropped by the same functions as the
    test plugin's; a drop that fails after an error is a note on that error and a
    warning, never the error raised, and names the server with its password masked."""

    async def unreachable(url: DatabaseURL, name: str) -> None:
        raise todo_app.errors.TaskStoreUnavailable("connection refused")

    server = _server_with_password()
    made: list[str] = []

    async def use_scratch(error: Exception | None) -> None:
        async with todo_app.makemigration._scratch("postgres", server) as url:
            made.append(str(url.database))
            assert await _exists(made[-1]), "a real database on the server"
            if error is not None:
                raise error

    monkeypatch.setattr(todo_app.makemigration, "drop_database", unreachable)
    with pytest.raises(RuntimeError, match="the original failure") as raised:
        await use_scratch(RuntimeError("the original failure"))
    (note,) = raised.value.__notes__
    assert f"the throw-away database {made[0]} was not dropped" in note
    assert str(server) in note, "the server, masked"
    assert "hunter2" not in note
    assert f"{made[0]} was not dropped" in caplog.text
    assert "hunter2" not in caplog.text

    # Without an earlier error the failed drop is the error, masked as well.
    with pytest.raises(ScratchDatabaseUnavailable) as unavailable:
        await use_scratch(None)
    assert str(server) in str(unavailable.value)
    assert "hunter2" not in str(unavailable.value)

    monkeypatch.undo()
    for leftover in made:
        await drop_database(server, leftover)
        assert not await _exists(leftover)


def test_every_migration_has_one_shape_file_in_the_form_makemigration_writes() -> None:
    files = sorted(path.name for path in (SOURCE_DIR / "shapes").iterdir())
    assert files == [f"{m.path.stem}.json" for m in migration_history()], "no more, no less"
    for migration in migration_history():
        path = shape_path(migration.path)
        assert path.read_text() == shape_to_json(SHAPES[migration.filename]), path.name
        assert set(SHAPES[migration.filename]) == {"sqlite", "postgres"}


def test_unchanged_models_are_nothing_to_migrate(capsys: pytest.CaptureFixture[str]) -> None:
    before = _files(SOURCE_DIR)
    with pytest.raises(SystemExit) as exited:
        # An unreachable server: were the models changed, still nothing could be written.
        main(["makemigration", "anything", "--pg-url", "postgres://postgres@127.0.0.1:1/x"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("todo-app: error: nothing to migrate:")
    assert migration_history()[-1].filename in err
    assert _files(SOURCE_DIR) == before


@pytest.mark.parametrize("name", ["Due-At", "due at", "2_due", "due;drop", "", "é"])
def test_a_name_that_is_not_an_identifier_is_refused(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["makemigration", name])
    assert exited.value.code == 2
    assert "is not a lower-case identifier" in capsys.readouterr().err


async def test_the_python_function_refuses_such_a_name_too() -> None:
    with pytest.raises(todo_app.errors.MigrationPlanError, match="not a lower-case identifier"):
        await make_migration("../escape")


def test_name_and_record_go_alone(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["makemigration"], ["makemigration", "x", "--record"]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
        assert "give a migration NAME, or --record" in capsys.readouterr().err


def test_the_unreachable_exit_code_names_the_server(
    history_at_0: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["makemigration", "x", "--pg-url", "postgres://u:hunter2@127.0.0.1:1/db"])
    assert exited.value.code == 6
    err = capsys.readouterr().err
    assert "127.0.0.1:1" in err
    assert "hunter2" not in err


def test_the_default_server_is_the_test_database_url() -> None:
    server = todo_app.makemigration._postgres_server(None)
    assert server == get_settings().test_database_url


async def test_a_sqlite_rebuild_changes_the_column_and_keeps_rows_checks_and_indexes(
    fresh_sqlite_url: Callable[[], DatabaseURL],
) -> None:
    """What SQLite cannot ALTER (here: description made NOT NULL) is a rebuild whose
    downgrade gives back the table it started from (the same shape: its text is laid
    out anew, which differs in whitespace once a column was added by ALTER TABLE)."""
    url = fresh_sqlite_url()
    assert await upgrade(url)
    async with connection_to(url) as db:
        # A column added in place, as a later migration may: SQLite keeps its text as typed.
        await db.execute_script('ALTER TABLE "todo_app_task" ADD "note" VARCHAR(10)')
        before = await read_shape(db)
        await db.execute_script(
            'INSERT INTO "todo_app_task" ("id", "user_id", "title", "description", "status", '
            '"version", "created_at", "updated_at") VALUES (\'00000000-0000-4000-8000-'
            "000000000001', 'u', 't', 'd', 'pending', 3, '2026-01-01', '2026-01-01')"
        )
        _, rows = await db.execute_query(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'todo_app_task'"
        )
        old = rows[0]["sql"]
        generated = db.schema_generator(db)._get_table_sql(Task, safe=False)
        statements = split_statements(generated["table_creation_string"])
        nullable = '"description" VARCHAR(1000) /*'
        assert nullable in statements[0]
        new = statements[0].replace(nullable, '"description" VARCHAR(1000) NOT NULL /*')
        indexes = [s for s in statements[1:] if s.startswith("CREATE INDEX")]
        rebuild = rebuild_scripts("todo_app_task", old, indexes, new, indexes)

        await run_script(db, rebuild.upgrade)
        after = await read_shape(db)
        assert before is not None
        assert after is not None
        assert after.columns["description"] == "VARCHAR(1000) NOT NULL"
        assert after.checks == before.checks, "every named CHECK kept"
        assert after.indexes == before.indexes
        assert "version" in after.defaults, "an unchanged column keeps its default"
        _, kept = await db.execute_query('SELECT "version", "description" FROM "todo_app_task"')
        assert [(row["version"], row["description"]) for row in kept] == [(3, "d")]

        await run_script(db, rebuild.downgrade)
        assert await read_shape(db) == before


def test_statements_split_outside_quotes_and_comments() -> None:
    script = 'CREATE TABLE "a" ("x" INT /* one; two */, "y" TEXT DEFAULT \';\');\nSELECT 1;'
    assert split_statements(script) == [
        'CREATE TABLE "a" ("x" INT /* one; two */, "y" TEXT DEFAULT \';\')',
        "SELECT 1",
    ]
