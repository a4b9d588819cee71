"""Secrets never leak; SQL-looking input is data, never code."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import uuid

import pytest
from tortoise import Tortoise
from tortoise.context import TortoiseContext

import todo_app
from tests.helpers import FreshURL, postgres_url, row_count
from todo_app import (
    DatabaseURL,
    Settings,
    TaskCreate,
    TaskNotFound,
    TaskRepository,
    TaskStoreUnavailable,
    TaskUpdate,
    TaskValidationError,
)
from todo_app.testing import TodoDatabase

SECRET = "Sup3r-S3cret_pw"
INJECTIONS = [
    "'; DROP TABLE todo_app_task; --",
    '" OR "1"="1',
    "' OR '1'='1",
    "Robert'); DELETE FROM todo_app_task WHERE ('1'='1",
    "$1 $2 ?; SELECT pg_sleep(10); --",
    "%s %(x)s {0} \\x00",
    "owner' UNION SELECT * FROM aerich --",
    "\\'; TRUNCATE todo_app_task; --",
]


@pytest.mark.postgres
async def test_the_password_appears_nowhere(
    fresh_database_url: FreshURL, caplog: pytest.LogCaptureFixture
) -> None:
    """Tortoise's and our loggers at DEBUG, error texts, reprs, the CLI's output and
    --help: the password is in none of them, whatever happens."""
    caplog.set_level(logging.DEBUG)
    database = await fresh_database_url("postgres")
    url = postgres_url(database, password=SECRET)
    seen: list[str] = [
        repr(DatabaseURL(url)),
        str(DatabaseURL(url)),
        repr(Settings(database_url=url)),
    ]
    seen.append(repr(todo_app.tortoise_config(url)))
    await todo_app.migrate(url)
    async with TortoiseContext():
        await Tortoise.init(config=todo_app.tortoise_config(url, connection_name="secret_ok"))
        repo = TaskRepository("alice")
        task = await repo.create(TaskCreate(title="t"))
        await repo.update(task.id, TaskUpdate(title="t2"))
        for failing in (
            repo.get(uuid.uuid4()),
            repo.update(task.id, TaskUpdate(title="x"), expected_version=9),
        ):
            try:
                await failing
            except Exception as exc:  # the text of any error is checked
                seen.append(f"{exc!r} {exc}")
    dead = f"postgresql://postgres:{SECRET}@127.0.0.1:1/{database.database}?connect_timeout=1"
    async with TortoiseContext():
        await Tortoise.init(config=todo_app.tortoise_config(dead, connection_name="secret_dead"))
        with pytest.raises(TaskStoreUnavailable) as raised:
            await TaskRepository("alice").counts()
        seen.append(f"{raised.value!r} {raised.value} {raised.value.__cause__!r}")
    for args in (["--db", url, "list"], ["--db", dead, "list"], ["--db", url, "demo"], ["--help"]):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "todo_app", *args,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "DATABASE_URL": url},
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        seen += [out.decode(), err.decode()]
    seen.append(caplog.text)
    assert "tortoise" in caplog.text.lower(), "DEBUG logging was not captured"
    leaks = [text for text in seen if SECRET in text or SECRET[: len(SECRET) // 3] + "***" in text]
    assert leaks == []


@pytest.mark.parametrize("text", INJECTIONS)
async def test_sql_in_every_input_is_stored_literally_or_refused(
    todo_db: TodoDatabase, text: str
) -> None:
    bystander = TaskRepository("bystander")
    kept = await bystander.create(TaskCreate(title="untouched"))
    try:
        repo = TaskRepository(text)
    except TaskValidationError:
        assert "\x00" in text
        repo = TaskRepository("attacker")
    try:
        task = await repo.create(TaskCreate.model_construct(title=text, description=text))
    except TaskValidationError:
        assert "\x00" in text  # the only refusal: NUL is never storable
    else:
        stored = await repo.get(task.id)
        assert (stored.title, stored.description) == (text.strip(), text)
        assert (await repo.update(task.id, TaskUpdate(title=text[::-1]))).title == text[
            ::-1
        ].strip()
        assert [t.title for t in (await repo.list()).items] == [text[::-1].strip()]
    for hostile in (text, f"{uuid.uuid4()}' OR '1'='1"):
        with pytest.raises(TaskNotFound):
            await repo.get(hostile)
        with pytest.raises(TaskNotFound):
            await repo.delete(hostile)
    with pytest.raises(TaskValidationError):
        await repo.list(cursor=text)
    with pytest.raises(TaskValidationError):
        await repo.list(status=text)
    # The table, and the other owner's row, are intact.
    assert await bystander.get(kept.id) == kept
    assert await row_count(todo_db) in (1, 2)
