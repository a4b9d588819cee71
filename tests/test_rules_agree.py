"""Python and the database enforce the same rules, and agree at every boundary.

Each case is a value in its stored form. The write path (the schemas, then
``TaskRepository``) must accept it exactly when the database (reached with raw SQL
that skips it) accepts it, and when the
database refuses it, it must be the named CHECK constraint that does.
"""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tortoise.exceptions import IntegrityError, OperationalError

from tests.helpers import raw_insert, row_count
from todo_app import TaskCreate, TaskRepository, TaskValidationError, rules
from todo_app.testing import TodoDatabase

NOT_NULL = "NOT NULL"
NUL = "NUL"  # SQLite: a named CHECK; PostgreSQL: text cannot hold it at all
# PostgreSQL checks VARCHAR(n) before any CHECK constraint: there the type refuses an
# over-long value first, and the named *_max_length CHECK is the backstop that SQLite
# (which ignores VARCHAR lengths) relies on.
VARCHAR = "VARCHAR"

T, D, U = rules.TITLE_MAX_LENGTH, rules.DESCRIPTION_MAX_LENGTH, rules.USER_ID_MAX_LENGTH

CASES: list[tuple[str, Any, str | None]] = [
    # field, value, None if both accept it, else what refuses it in the database
    ("title", "a", None),
    ("title", "x" * T, None),
    ("title", "x" * (T + 1), "todo_app_task_title_max_length"),
    ("title", "é" * T, None),
    ("title", "😀" * T, None),  # characters, not bytes nor UTF-16 units
    ("title", "😀" * (T + 1), "todo_app_task_title_max_length"),
    ("title", "", "todo_app_task_title_not_blank"),
    ("title", " ", "todo_app_task_title_not_blank"),
    ("title", "\u3000\t\n\u00a0", "todo_app_task_title_not_blank"),
    ("title", "\u200b", None),  # a zero-width space is not whitespace to str.strip()
    ("title", None, NOT_NULL),
    ("title", "a\x00b", NUL),
    ("description", None, None),
    ("description", " ", None),
    ("description", "x" * D, None),
    ("description", "x" * (D + 1), "todo_app_task_description_max_length"),
    ("description", "d\x00", NUL),
    ("user_id", "u", None),
    ("user_id", " padded ", None),  # owner ids are opaque: kept verbatim
    ("user_id", "u" * U, None),
    ("user_id", "u" * (U + 1), "todo_app_task_user_id_max_length"),
    ("user_id", "", "todo_app_task_user_id_not_blank"),
    ("user_id", "\u00a0\u2028", "todo_app_task_user_id_not_blank"),
    ("user_id", None, NOT_NULL),
    ("user_id", "u\x00", NUL),
    ("status", "pending", None),
    ("status", "", "todo_app_task_status_not_empty"),
    ("status", "s" * (rules.STATUS_MAX_LENGTH + 1), "todo_app_task_status_max_length"),
    ("status", None, NOT_NULL),
    ("created_at", None, NOT_NULL),
    ("updated_at", None, NOT_NULL),
]


def _case_id(case: tuple[str, Any, str | None]) -> str:
    field, value, verdict = case
    shown = repr(value) if value is None or len(value) < 8 else f"len{len(value)}"
    return f"{field}={shown}-{'ok' if verdict is None else 'rejected'}"


async def _python_accepts(field: str, value: Any) -> bool:
    """Whether the write path (schema, then repository) takes ``value``; a refusal
    must name the field."""
    try:
        if field == "user_id":
            await TaskRepository(value).create(TaskCreate(title="title"))
        else:
            await TaskRepository("owner").create(TaskCreate(**{"title": "title", field: value}))
    except (pydantic.ValidationError, TaskValidationError) as exc:
        named = (
            exc.field if isinstance(exc, TaskValidationError) else str(exc.errors()[0]["loc"][0])
        )
        assert named in (field, "owner_id"), f"error does not name the field: {exc}"
        return False
    return True


async def _database_verdict(db: TodoDatabase, field: str, value: Any) -> str | None:
    try:
        await raw_insert(db, **{field: value})
    except IntegrityError as exc:
        message = str(exc)
        if "NOT NULL" in message.upper() or "null value" in message:
            return NOT_NULL
        if "_no_nul" in message:
            return NUL
        for name in (case[2] for case in CASES if case[2] and case[2].startswith("todo_app")):
            if name in message:
                return name
        raise AssertionError(f"unexpected integrity error: {message}") from exc
    except OperationalError as exc:
        assert db.dialect == "postgres", exc
        if "value too long for type character varying" in str(exc):
            return VARCHAR
        # PostgreSQL refuses NUL in text before any constraint is evaluated.
        assert "0x00" in str(exc), exc
        return NUL
    return None


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
async def test_python_and_database_agree(
    todo_db: TodoDatabase, case: tuple[str, Any, str | None]
) -> None:
    field, value, expected = case
    verdict = await _database_verdict(todo_db, field, value)
    if verdict == VARCHAR:
        assert expected is not None
        assert expected.endswith("_max_length")
    else:
        assert verdict == expected
    before = await row_count(todo_db)
    # Timestamps are set by the model itself; None there is a database-only case.
    if field not in ("created_at", "updated_at"):
        assert await _python_accepts(field, value) is (expected is None)
    if expected is not None:
        assert await row_count(todo_db) == before, "a rejected write changed the table"


@given(char=st.characters(codec="utf-8", exclude_characters="\x00"))
async def test_blank_means_the_same_in_python_and_sql(todo_db: TodoDatabase, char: str) -> None:
    """Any single character: a title made of it is blank for Python exactly when the
    database's not-blank CHECK says so (SQL's own trim() strips spaces only)."""
    try:
        await raw_insert(todo_db, title=char * 3)
    except IntegrityError as exc:
        assert "todo_app_task_title_not_blank" in str(exc) or "title_stripped" in str(exc)
        database_blank = "todo_app_task_title_not_blank" in str(exc)
    else:
        database_blank = False
    assert (not char.strip()) is database_blank


async def test_whitespace_set_is_exactly_what_str_strip_removes() -> None:
    assert set(rules.WHITESPACE) == {chr(code) for code in range(0x110000) if chr(code).isspace()}
