"""The dialect layer: one description of a task drives every statement, and each
dialect's error table maps its driver's codes to the package's errors."""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

import pytest
from tortoise.exceptions import BaseORMException

from tests.helpers import raw_insert
from todo_app import (
    TaskConflict,
    TaskCreate,
    TaskRead,
    TaskStoreError,
    TaskStoreUnavailable,
    TaskUpdate,
    TaskValidationError,
    migration_history,
)
from todo_app.dialects import classify, dialect_named
from todo_app.dialects.base import field_of_constraint, model_columns
from todo_app.models import Task
from todo_app.schema_history import SHAPES
from todo_app.testing import TodoDatabase

HEAD = migration_history()[-1].filename


@pytest.mark.parametrize("name", ["sqlite", "postgres"])
def test_the_model_the_sql_the_schemas_and_the_migrations_agree(name: str) -> None:
    statements = dialect_named(name).statements
    columns = model_columns()
    assert statements.columns == columns
    assert statements.table == f'"{Task._meta.db_table}"'
    assert set(columns) == set(TaskRead.model_fields), "TaskRead returns every column"
    assert set(columns) == set(SHAPES[HEAD][name].columns), "the newest migration made them"
    assert set(TaskCreate.model_fields) <= set(columns)
    assert set(TaskUpdate.model_fields) <= set(columns)
    for column in columns:
        assert f'"{column}"' in statements.insert
        assert f'"{column}"' in statements.get
    other = "?1" if name == "postgres" else "$1"
    for sql in (statements.get, statements.insert, statements.counts, statements.ids_like):
        assert other not in sql, "one dialect's placeholders in the other's SQL"
    update = statements.update(frozenset({"title", "status"}), with_version=True)
    assert update.count(dialect_named(name).param(6)) == 1, "the expected version is last"


def test_constraint_names_lead_to_their_column() -> None:
    assert field_of_constraint("todo_app_task_title_not_blank") == "title"
    assert field_of_constraint("todo_app_task_user_id_max_length") == "user_id"
    assert field_of_constraint("todo_app_task_completed_at_matches_status") == "completed_at"
    assert field_of_constraint("todo_app_task_version_positive") == "version"
    assert field_of_constraint("someone_elses_check") == "data"
    assert field_of_constraint(None) == "data"
    for name in SHAPES[HEAD]["sqlite"].checks:
        assert field_of_constraint(name) in model_columns(), name


def _sqlite_error(kind: type[sqlite3.Error], code: int, message: str) -> sqlite3.Error:
    error = kind(message)
    error.sqlite_errorcode = code  # type: ignore[attr-defined]
    return error


@pytest.mark.parametrize(
    ("error", "expected", "field"),
    [
        (
            _sqlite_error(
                sqlite3.IntegrityError,
                sqlite3.SQLITE_CONSTRAINT_CHECK,
                "CHECK constraint failed: todo_app_task_description_max_length",
            ),
            TaskValidationError,
            "description",
        ),
        (
            _sqlite_error(
                sqlite3.IntegrityError,
                sqlite3.SQLITE_CONSTRAINT_NOTNULL,
                "NOT NULL constraint failed: todo_app_task.title",
            ),
            TaskValidationError,
            "title",
        ),
        (
            _sqlite_error(
                sqlite3.IntegrityError,
                sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY,
                "UNIQUE constraint failed: todo_app_task.id",
            ),
            TaskConflict,
            None,
        ),
        (
            _sqlite_error(sqlite3.OperationalError, sqlite3.SQLITE_BUSY, "database is locked"),
            TaskStoreUnavailable,
            None,
        ),
        (
            _sqlite_error(sqlite3.OperationalError, sqlite3.SQLITE_ERROR, "no such table: x"),
            TaskStoreError,
            None,
        ),
    ],
)
def test_sqlite_errors_are_classified_by_result_code(
    error: sqlite3.Error, expected: type[Exception], field: str | None
) -> None:
    dialect = dialect_named("sqlite")
    # Wrapped as Tortoise wraps it: the driver's error as context and first argument.
    try:
        try:
            raise error
        except sqlite3.Error as exc:
            raise RuntimeError(exc) from None
    except RuntimeError as wrapped:
        typed = dialect.classify(wrapped)
    assert type(typed) is expected
    if field is not None:
        assert isinstance(typed, TaskValidationError)
        assert typed.field == field


def test_an_error_no_driver_raised_is_not_a_database_answer() -> None:
    dialect_named("sqlite")
    assert classify(KeyError("a bug")) is None


@pytest.mark.parametrize(
    ("values", "expected", "field"),
    [
        ({"title": "  padded  "}, TaskValidationError, "title"),
        ({"user_id": " "}, TaskValidationError, "user_id"),
        ({"version": 0}, TaskValidationError, "version"),
        ({"status": "completed"}, TaskValidationError, "completed_at"),
        ({"status": ""}, TaskValidationError, "status"),
        ({"title": None}, TaskValidationError, "title"),
    ],
)
async def test_live_refusals_are_named_by_the_error_table(
    todo_db: TodoDatabase, values: dict[str, Any], expected: type[Exception], field: str
) -> None:
    with pytest.raises(BaseORMException) as raised:
        await raw_insert(todo_db, **{"version": 1, **values})
    typed = classify(raised.value)
    assert type(typed) is expected, raised.value
    assert isinstance(typed, TaskValidationError)
    assert typed.field == field


async def test_a_taken_id_is_a_conflict_on_both(todo_db: TodoDatabase) -> None:
    task_id = uuid.uuid4()
    await raw_insert(todo_db, id=task_id, version=1)
    with pytest.raises(BaseORMException) as raised:
        await raw_insert(todo_db, id=task_id, version=1)
    assert type(classify(raised.value)) is TaskConflict


@pytest.mark.parametrize(
    ("values", "what"),
    [
        ({"title": "  padded  "}, "todo_app_task_title_stripped"),
        ({"version": 0}, "todo_app_task_version_positive"),
        ({"status": "completed"}, "todo_app_task_completed_at_matches_status"),
        ({"title": None}, "NOT NULL title"),
    ],
)
async def test_what_refused_a_row_is_named_from_the_drivers_fields(
    todo_db: TodoDatabase, values: dict[str, Any], what: str
) -> None:
    """The migrator's report of rows a table refuses (``MigrationDataError``) names the
    constraint the same way on both dialects."""
    with pytest.raises(BaseORMException) as raised:
        await raw_insert(todo_db, **{"version": 1, **values})
    dialect = dialect_named(todo_db.dialect)
    assert dialect.refused_by(raised.value) == what
    assert dialect.refused_by(KeyError("a bug")) is None
