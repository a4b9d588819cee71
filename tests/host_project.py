"""A small host project that tests itself with todo_app's pytest plugin, as the
README tells a host to: ``pytest_plugins``, the ``todo_extra_apps`` override for its
own models, and ordinary ``@pytest.mark.asyncio`` tests (pytest-asyncio's strict
mode, no loop-scope settings unless a case asks for them)."""

from __future__ import annotations

import textwrap
from pathlib import Path

MODELS = """
from tortoise import fields
from tortoise.models import Model


class Order(Model):
    id = fields.IntField(primary_key=True)
    title = fields.CharField(max_length=100)
    task = fields.ForeignKeyField("todo_app.Task", related_name="orders", null=True)

    class Meta:
        table = "shop_order"
"""

CONFTEST = """
import pytest

pytest_plugins = ["todo_app.testing"]


@pytest.fixture(scope="session")
def todo_extra_apps():
    return {"shop": ["models"]}
"""

TESTS = """
import pytest
from tortoise.exceptions import IntegrityError

import todo_app
from models import Order
from todo_app import TaskCreate, TaskRepository


async def _order_for_a_task() -> None:
    task = await TaskRepository("alice").create(TaskCreate(title="buy milk"))
    await Order.create(title="milk", task_id=task.id)
    order = await Order.get(task_id=task.id).prefetch_related("task")
    assert order.task.title == "buy milk"
    assert [t.title for t in (await TaskRepository("alice").list()).items] == ["buy milk"]


@pytest.mark.asyncio
async def test_sqlite_with_host_model(todo_sqlite):
    await _order_for_a_task()


@pytest.mark.asyncio
async def test_postgres_with_host_model(todo_postgres):
    await _order_for_a_task()


@pytest.mark.asyncio
@pytest.mark.parametrize("round", [1, 2])
async def test_each_test_starts_empty(todo_db, round):
    assert await Order.all().count() == 0
    assert await TaskRepository("alice").counts() == {s: 0 for s in todo_app.TaskStatus}
    await _order_for_a_task()


@pytest.mark.asyncio
async def test_todo_app_table_keeps_its_checks(todo_db):
    await TaskRepository("alice").create(TaskCreate(title="short"))
    mark = "$1" if todo_db.dialect == "postgres" else "?"
    with pytest.raises(IntegrityError):
        await todo_db.connection.execute_query(
            f'UPDATE "todo_app_task" SET "title" = {mark}', ["   "]
        )


@pytest.mark.asyncio
async def test_fresh_postgres_database(fresh_database_url):
    url = await fresh_database_url("postgres")
    assert len(await todo_app.migrate(url.reveal())) == len(todo_app.migration_history())


@pytest.mark.asyncio
@pytest.mark.parametrize("dialect", ["sqlite"])
async def test_fresh_sqlite_database(fresh_database_url, dialect):
    url = await fresh_database_url(dialect)
    assert len(await todo_app.migrate(url.reveal())) == len(todo_app.migration_history())
"""

FAILING = """
import pytest

from models import Order


@pytest.mark.asyncio
async def test_fails_holding_a_connection(todo_sqlite):
    await Order.create(title="left behind")
    assert await Order.all().count() == 0, "fails on purpose"
"""

INTERRUPTED = """
import asyncio
import os
import signal
from pathlib import Path

import pytest

from models import Order


@pytest.mark.asyncio
async def test_interrupted_holding_a_connection(todo_sqlite):
    await Order.create(title="left behind")
    Path("reached").write_text("the test held a connection when interrupted")
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # Started from a background job, which ignores SIGINT: a terminal would not.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C does
    # The signal is handled at the loop's next turn: wait here for it, or a busy
    # machine may let the test finish first and the interrupt be lost.
    await asyncio.sleep(30)
"""

SESSION_LOOPS = """
asyncio_default_fixture_loop_scope = session
asyncio_default_test_loop_scope = session
"""

#: Tests of TESTS that need PostgreSQL (deselected by --no-postgres).
POSTGRES_TESTS = 5  # postgres_with_host_model, 2 + 1 todo_db[postgres], fresh_postgres
SQLITE_TESTS = 5  # sqlite_with_host_model, 2 + 1 todo_db[sqlite], fresh_sqlite


def write(root: Path, *, ini: str = "", broken: str | None = None) -> Path:
    """Lay the host project out under ``root`` (outside the repository); ``ini``:
    extra ``[pytest]`` settings, ``broken``: FAILING or INTERRUPTED."""
    root.mkdir(parents=True, exist_ok=True)
    ini = "[pytest]\n" + ini.lstrip()
    files = {
        "pytest.ini": ini,
        "models.py": MODELS,
        "conftest.py": CONFTEST,
        "test_shop.py": TESTS,
    }
    if broken is not None:
        files["test_broken.py"] = broken
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text).lstrip())
    return root
