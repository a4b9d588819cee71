"""Rows whose stored values do not read back as a task (issue 17, case 7).

SQLite types values per row, not per column: a generator-made table (Tortoise's
``generate_schemas()`` / ``aerich init-db``) can hold ``created_at = 'yesterday'`` or
``version = 'abc'``, and ``CHECK ("version" >= 1)`` takes the text. PostgreSQL's column
types refuse those, but a ``timestamptz`` holds years Python cannot (10000, BC).

What must hold: adoption completes only a table whose rows have the right types, and
refuses otherwise with nothing changed; a write never commits a row it cannot read
back; reads name the bad row instead of leaking pydantic's or the driver's error.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from tortoise.context import TortoiseContext

import todo_app
from tests.helpers import DIALECTS, FreshURL, raw_insert
from todo_app import (
    MigrationDataError,
    SchemaMismatch,
    TaskRepository,
    TaskUpdate,
    TodoAppError,
    migration_history,
)
from todo_app.cli import main
from todo_app.config import tortoise_config
from todo_app.dialects import read_shape
from todo_app.dsn import DatabaseURL
from todo_app.schema_history import SHAPES
from todo_app.testing import TodoDatabase

NAMES = [migration.filename for migration in migration_history()]

#: Values of the wrong type for a column, as SQL literals, that SQLite stores as given.
SQLITE_BAD: list[tuple[str, str]] = [
    ("created_at", "'yesterday'"),
    ("version", "'abc'"),
    ("version", "2.5"),
    ("updated_at", "'2026-02-31 10:00:00+00:00'"),  # no such day
    ("created_at", "'10000-01-01 00:00:00+00:00'"),  # a year Python cannot hold
    ("created_at", "1767261600"),  # a number, not todo_app's text
    ("title", "x'00ff'"),  # a blob (todo_app's CHECKs refuse it in a title, not here)
    ("description", "x'41'"),  # a blob that todo_app's CHECKs let in
    ("id", "'not-a-uuid'"),
]
#: The PostgreSQL values a column's type accepts and Python cannot read back.
POSTGRES_BAD: list[tuple[str, str]] = [
    ("created_at", "'10000-01-01 00:00:00+00'"),
    ("updated_at", "'0001-01-01 00:00:00+00 BC'"),
]


def bad_values(dialect: str) -> list[tuple[str, str]]:
    return SQLITE_BAD if dialect == "sqlite" else POSTGRES_BAD


def getting_in(dialect: str) -> list[tuple[str, str]]:
    """The bad values that todo_app's own table (its CHECKs) lets in by raw SQL."""
    return [(c, v) for c, v in bad_values(dialect) if c != "title"]


#: Values a read still takes (pydantic parses them), though a write refuses them.
READABLE = {("created_at", "1767261600"), ("description", "x'41'")}


@asynccontextmanager
async def connected(url: DatabaseURL) -> AsyncIterator[TodoDatabase]:
    name = f"stored_{url.dialect}"
    async with TortoiseContext() as ctx:
        await ctx.init(config=tortoise_config(url, connection_name=name))
        yield TodoDatabase(url.dialect, url, ctx.connections.get(name), ctx)


async def generated_table(db: TodoDatabase, *, replace: tuple[str, str] | None = None) -> None:
    """The table Tortoise's schema generator makes (no CHECK constraint); ``replace``
    edits its DDL first."""
    from tortoise.utils import get_schema_sql

    ddl = get_schema_sql(db.connection, safe=True)
    if replace is not None:
        assert replace[0] in ddl
        ddl = ddl.replace(*replace)
    await db.connection.execute_script(ddl)


async def store(db: TodoDatabase, task_id: uuid.UUID, column: str, literal: str) -> str:
    """Set one column of a row with raw SQL, bypassing the package; the row's id after."""
    mark = "$1" if db.dialect == "postgres" else "?"
    await db.connection.execute_query(
        f'UPDATE "todo_app_task" SET "{column}" = {literal} WHERE "id" = {mark}',
        [task_id if db.dialect == "postgres" else str(task_id)],
    )
    return literal.strip("'") if column == "id" else str(task_id)


async def snapshot(db: TodoDatabase) -> list[str]:
    """Every row, every column, with its storage type: what "nothing changed" compares."""
    if db.dialect == "sqlite":
        _, rows = await db.connection.execute_query(
            'SELECT * FROM "todo_app_task" ORDER BY CAST("id" AS TEXT)'
        )
        return [repr(sorted((k, type(v).__name__, v) for k, v in dict(r).items())) for r in rows]
    _, rows = await db.connection.execute_query(
        'SELECT CAST(t AS TEXT) AS row FROM "todo_app_task" t ORDER BY "id"'
    )
    return [str(row["row"]) for row in rows]


# -- adoption --------------------------------------------------------------------------


@pytest.mark.parametrize(("column", "literal"), SQLITE_BAD, ids=[f"{c}={v}" for c, v in SQLITE_BAD])
async def test_adoption_refuses_a_sqlite_table_with_values_of_the_wrong_type(
    fresh_database_url: FreshURL, column: str, literal: str
) -> None:
    url = await fresh_database_url("sqlite")
    async with connected(url) as db:
        await generated_table(db)
        good = await raw_insert(db, title="fine", version=1)
        bad = []
        for n in range(2):
            task_id = await raw_insert(db, title=f"bad {n}", version=1)
            # Two rows cannot share one (bad) id: the second gets its own.
            value = f"'not-a-uuid-{n}'" if column == "id" else literal
            bad.append(await store(db, task_id, column, value))
        before = await snapshot(db)
        with pytest.raises(MigrationDataError) as raised:
            await todo_app.migrate(db.connection)
        message = str(raised.value)
        assert '"todo_app_task"' in message
        assert column in message
        assert "2 row(s)" in message
        for task_id in bad:
            assert task_id in message
        assert str(good) not in message
        assert "nothing was changed" in message
        assert len(raised.value.violations) == 2
        assert all(column in line for line in raised.value.violations)
        assert await snapshot(db) == before
        assert await read_shape(db.connection) == SHAPES[NAMES[-1]]["sqlite"].without_checks()
        assert await todo_app.applied_migrations(db.connection) == []


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_adoption_refuses_timestamps_python_cannot_hold_on_both_dialects(
    fresh_database_url: FreshURL, dialect: str
) -> None:
    url = await fresh_database_url(dialect)
    async with connected(url) as db:
        await generated_table(db)
        await raw_insert(db, title="fine", version=1)
        column, literal = bad_values(dialect)[0]
        bad = await store(db, await raw_insert(db, title="far future", version=1), column, literal)
        before = await snapshot(db)
        with pytest.raises(MigrationDataError, match=f"{column}.*1 row\\(s\\).*{bad}"):
            await todo_app.migrate(db.connection)
        assert await snapshot(db) == before
        assert await todo_app.applied_migrations(db.connection) == []


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_generator_made_table_cannot_hold_what_postgresql_types_refuse(
    fresh_database_url: FreshURL, dialect: str
) -> None:
    """Parity: the values SQLite keeps in a generator-made table, PostgreSQL's column
    types refuse on insert; adoption refuses them on SQLite, so neither dialect ends
    up with them in todo_app's table."""
    url = await fresh_database_url(dialect)
    async with connected(url) as db:
        await generated_table(db)
        # ('yesterday' itself is a valid timestamp to PostgreSQL: midnight before today.)
        for column, literal in [("created_at", "'not a time'"), ("version", "'abc'")]:
            task_id = await raw_insert(db, title="row", version=1)
            if dialect == "postgres":
                with pytest.raises(Exception, match="invalid input syntax"):
                    await store(db, task_id, column, literal)
            else:
                await store(db, task_id, column, literal)
        if dialect == "sqlite":
            with pytest.raises(MigrationDataError):
                await todo_app.migrate(db.connection)
        else:
            assert await todo_app.migrate(db.connection) == NAMES


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_table_with_a_text_timestamp_column_is_refused_by_name(
    fresh_database_url: FreshURL, dialect: str
) -> None:
    """A table whose ``created_at`` is text (not the generator's type) is no generator-made
    table: refused, naming the column, on both dialects."""
    url = await fresh_database_url(dialect)
    timestamp = '"created_at" TIMESTAMP' + ("TZ" if dialect == "postgres" else "")
    async with connected(url) as db:
        await generated_table(db, replace=(timestamp, '"created_at" TEXT'))
        task_id = await raw_insert(db, title="row", version=1, created_at="2026-01-01")
        await store(db, task_id, "created_at", "'yesterday'")
        before = await snapshot(db)
        with pytest.raises(SchemaMismatch, match='column "created_at" is (TEXT|text)'):
            await todo_app.migrate(db.connection)
        assert await snapshot(db) == before


async def test_a_well_typed_generator_made_table_is_still_adopted(
    fresh_database_url: FreshURL,
) -> None:
    """The check refuses only what is wrong: rows as todo_app writes them (microseconds
    or none, completed or not, NULL where allowed) are adopted."""
    url = await fresh_database_url("sqlite")
    async with connected(url) as db:
        await generated_table(db)
        plain = await raw_insert(db, title="on the second", version=1)
        await store(db, plain, "created_at", "'2026-01-31 12:00:00+00:00'")
        done = await raw_insert(db, title="done", version=7, status="completed")
        await store(db, done, "completed_at", "'2026-02-01 08:30:00.000001+00:00'")
        await store(db, done, "description", "'notes'")
        assert await todo_app.migrate(db.connection) == NAMES
        page = await TaskRepository("owner").list()
        assert {task.id for task in page.items} == {plain, done}


# -- writes and reads on a bad row that got in by raw SQL --------------------------------


async def test_a_write_to_a_row_that_does_not_read_back_changes_nothing(
    todo_db: TodoDatabase,
) -> None:
    repo = TaskRepository("owner")
    for column, literal in getting_in(todo_db.dialect):
        if column == "id":
            continue  # the repository cannot address a row whose id is no UUID
        task_id = await raw_insert(todo_db, title="bad", version=1)
        await store(todo_db, task_id, column, literal)
        for write in (
            partial(repo.complete, task_id),
            partial(repo.update, task_id, TaskUpdate(title="renamed")),
            partial(repo.update, task_id, TaskUpdate(title="bad")),  # changes nothing
            partial(repo.reopen, task_id, expected_version=1),
        ):
            before = await snapshot(todo_db)
            with pytest.raises(TodoAppError) as raised:
                await write()
            assert type(raised.value).__name__ == "TaskDataError", (column, literal)
            assert isinstance(raised.value, todo_app.TaskStoreError)
            assert str(task_id) in str(raised.value)
            assert column in str(raised.value)
            assert await snapshot(todo_db) == before, (column, literal)
        await repo.delete(task_id)  # what the error tells an operator to do


async def test_reads_name_the_row_that_does_not_read_back(todo_db: TodoDatabase) -> None:
    repo = TaskRepository("owner")
    for column, literal in getting_in(todo_db.dialect):
        if (column, literal) in READABLE:
            continue
        good = await raw_insert(todo_db, title="good", version=1)
        row_id = await store(
            todo_db, await raw_insert(todo_db, title="bad", version=1), column, literal
        )
        reads: list[Any] = [repo.list, partial(repo.list, order="oldest")]
        if column != "id":
            reads.append(partial(repo.get, row_id))
        for read in reads:
            with pytest.raises(TodoAppError) as raised:
                await read()
            assert type(raised.value).__name__ == "TaskDataError", (column, literal)
            assert row_id in str(raised.value), (column, literal)
            assert column in str(raised.value), (column, literal)
        assert (await repo.get(good)).title == "good"
        await repo.delete_all()


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_the_cli_answers_a_bad_row_in_one_line_and_changes_nothing(
    fresh_database_url: FreshURL, dialect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = await fresh_database_url(dialect)
    async with connected(url) as db:
        await todo_app.migrate(db.connection)
        task_id = await raw_insert(db, user_id="alice", title="bad", version=1)
        await store(db, task_id, *bad_values(dialect)[0])
        before = await snapshot(db)

        def run(*args: str) -> int:
            try:
                return main(["--db", url.reveal(), "--user", "alice", *args])
            except SystemExit as exc:
                return int(exc.code or 0)

        for command in (("done", str(task_id)), ("list",)):
            code = await asyncio.to_thread(run, *command)
            out, err = capsys.readouterr()
            assert code == 1, (command, out, err)
            assert "Traceback" not in out + err
            assert "validation error" not in out + err
            assert str(task_id) in out + err
            assert (out + err).strip().count("\n") == 0, out + err
        assert await snapshot(db) == before


# -- the checks agree with what reads back ---------------------------------------------

#: Declared types as todo_app's SQLite table has them: SQLite converts a value by them.
_DECLARED = {"uuid": "CHAR(36)", "text": "VARCHAR(255)", "integer": "INT", "timestamp": "TIMESTAMP"}
_SOUND_ROW: dict[str, Any] = {
    "id": "00000000-0000-4000-8000-000000000000",
    "user_id": "owner",
    "title": "title",
    "description": None,
    "status": "pending",
    "version": 1,
    "created_at": "2026-01-31 12:00:00+00:00",
    "updated_at": "2026-01-31 12:00:00+00:00",
    "completed_at": None,
}
_NEAR_TIMESTAMPS = st.builds(
    lambda moment, sep, offset, cut: (moment.isoformat(sep) + offset)[: cut or None],
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)),
    st.sampled_from([" ", "T", "_"]),
    st.sampled_from(["", "+00:00", "Z", "-05:00", "+24:00", "+00:60"]),
    st.integers(-8, 0),
)
_ODD_DIGITS = st.from_regex(
    r"\A[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{6})?(\+00:00)?\Z"
)
_ANY_VALUE = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.binary(max_size=20),
    _NEAR_TIMESTAMPS,
    _ODD_DIGITS,
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
)


@settings(max_examples=400)
@given(column=st.sampled_from(sorted(_SOUND_ROW)), value=_ANY_VALUE)
@example(column="created_at", value="0000-01-01 00:00:00+00:00")
@example(column="created_at", value="2026-02-29 00:00:00+00:00")
@example(column="updated_at", value="2026-01-01 24:00:00")
@example(column="version", value="3")
@example(column="version", value=2.0)
@example(column="version", value=2**31)
@example(column="id", value="3F2504E0-4F89-11D3-9A0C-0305E82C3301")
def test_a_value_the_sqlite_checks_pass_reads_back(column: str, value: Any) -> None:
    """Whatever SQLite stores in a column, the dialect's check passes it only if the
    row then reads back (so adoption and writes never let in what reads refuse)."""
    from todo_app.dialects.base import column_kinds
    from todo_app.dialects.sqlite.dialect import SQLiteDialect
    from todo_app.schemas import TaskRead

    kind, nullable = column_kinds()[column]
    sound = SQLiteDialect().statements.checks[column][0]
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        db.execute(f'CREATE TABLE t ("{column}" {_DECLARED[kind]})')
        db.execute("INSERT INTO t VALUES (?)", [value])
        stored, passed = db.execute(f'SELECT "{column}", {sound} FROM t').fetchone()
    if passed:
        TaskRead.model_validate({**_SOUND_ROW, column: stored})
    else:
        assert stored is not None or not nullable


@settings(max_examples=200)
@given(
    moment=st.datetimes(
        min_value=dt.datetime(1, 1, 1),
        max_value=dt.datetime(9999, 12, 31),
        timezones=st.just(dt.UTC),
    ),
    task_id=st.uuids(),
    version=st.integers(1, 2**31 - 1),
)
def test_what_todo_app_writes_passes_the_sqlite_checks(
    moment: dt.datetime, task_id: uuid.UUID, version: int
) -> None:
    from todo_app.dialects.sqlite.dialect import SQLiteDialect

    dialect = SQLiteDialect()
    checks = dialect.statements.checks
    row = {"id": task_id, "version": version, "created_at": moment, "completed_at": moment}
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        db.execute(
            'CREATE TABLE t ("id" CHAR(36), "version" INT, "created_at" TIMESTAMP, '
            '"completed_at" TIMESTAMP)'
        )
        db.execute("INSERT INTO t VALUES (?, ?, ?, ?)", [dialect.value(v) for v in row.values()])
        for column in row:
            assert db.execute(f"SELECT {checks[column][0]} FROM t").fetchone() == (1,), column


_POSTGRES_TIMESTAMPS = st.one_of(
    st.just("infinity"),
    st.just("-infinity"),
    st.builds(
        lambda year, era: f"{year:04d}-12-31 23:59:59.999999+00{era}",
        st.integers(1, 20000),
        st.sampled_from(["", " BC"]),
    ),
)


@settings(max_examples=60)
@given(data=st.data())
async def test_a_write_commits_only_a_row_that_reads_back(
    todo_db: TodoDatabase, data: st.DataObject
) -> None:
    """Any value raw SQL leaves in a column: ``complete`` returns the row it wrote, which
    reads back, or raises ``TaskDataError`` having written nothing; ``list`` returns the
    page or raises ``TaskDataError``. Never pydantic's or the driver's error."""
    repo = TaskRepository(f"owner-{uuid.uuid4()}")
    task_id = await raw_insert(todo_db, user_id=repo.owner_id, title="t", version=1)
    if todo_db.dialect == "sqlite":
        column = data.draw(st.sampled_from([c for c in _SOUND_ROW if c not in ("id", "user_id")]))
        value = data.draw(_ANY_VALUE)
        assignment, args = f'"{column}" = ?', [value, str(task_id)]
        where = '"id" = ?'
    else:
        column = data.draw(st.sampled_from(["created_at", "updated_at"]))
        assignment, args = (
            f'"{column}" = CAST($1 AS TEXT)::timestamptz',
            [
                data.draw(_POSTGRES_TIMESTAMPS),
                task_id,
            ],
        )
        where = '"id" = $2'
    try:
        await todo_db.connection.execute_query(
            f'UPDATE "todo_app_task" SET {assignment} WHERE {where}', args
        )
    except Exception:
        return  # todo_app's CHECKs (or the column's type) refused it: it is not stored
    before = await snapshot(todo_db)
    try:
        done = await repo.complete(task_id)
    except todo_app.TaskDataError as exc:
        assert exc.column == column
        assert await snapshot(todo_db) == before
    else:
        assert await repo.get(task_id) == done
    try:
        await repo.list()
    except todo_app.TaskDataError as exc:
        assert exc.column == column


@pytest.mark.parametrize("length", [19, 26])
async def test_a_blob_of_a_timestamps_length_is_named_not_decoded(
    todo_sqlite: TodoDatabase, length: int
) -> None:
    """The UTC reading of offsetless SQLite text leaves a blob alone: reads and writes
    name the column (``TaskDataError``), never the driver's decoding error."""
    repo = TaskRepository("owner")
    task_id = await raw_insert(todo_sqlite, user_id="owner")
    await todo_sqlite.connection.execute_query(
        'UPDATE "todo_app_task" SET "created_at" = ? WHERE "id" = ?',
        [b"\xff" * length, str(task_id)],
    )
    before = await snapshot(todo_sqlite)
    with pytest.raises(todo_app.TaskDataError) as written:
        await repo.complete(task_id)
    assert written.value.column == "created_at"
    assert await snapshot(todo_sqlite) == before
    with pytest.raises(todo_app.TaskDataError) as read:
        await repo.get(task_id)
    assert read.value.column == "created_at"
