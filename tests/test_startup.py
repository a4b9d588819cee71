"""``freeze_startup_objects``: what start-up made leaves the collector's full passes,
unless ``TODO_APP_GC_FREEZE`` says no."""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

import todo_app
from tests.helpers import DIALECTS, FreshURL
from todo_app.dsn import DatabaseURL
from todo_app.settings import Settings, get_settings

T = TypeVar("T")


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    """Each test starts and ends with nothing frozen (the test process lives on)."""
    gc.unfreeze()
    yield
    gc.unfreeze()


class Survivor:
    """A start-up object in a reference cycle: only the cyclic collector sees it."""

    def __init__(self) -> None:
        self.me = self


def test_start_up_objects_are_frozen_out_of_full_collections() -> None:
    survivor = Survivor()
    assert todo_app.freeze_startup_objects(Settings()) > 0
    # Frozen objects are in no generation the collector walks.
    assert not any(survivor is obj for obj in gc.get_objects())
    gc.unfreeze()
    assert any(survivor is obj for obj in gc.get_objects())


def test_garbage_is_collected_before_the_freeze() -> None:
    import weakref

    garbage = Survivor()
    gone = weakref.ref(garbage)
    del garbage
    todo_app.freeze_startup_objects(Settings())
    assert gone() is None, "unreachable start-up garbage must not be frozen for ever"


def test_the_switch_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TODO_APP_GC_FREEZE", "0")
    assert get_settings().gc_freeze is False
    assert todo_app.freeze_startup_objects() == 0
    assert gc.get_freeze_count() == 0
    monkeypatch.setenv("TODO_APP_GC_FREEZE", "1")
    assert todo_app.freeze_startup_objects() > 0


# -- lifespan: Tortoise for a whole process of any framework -------------------------------


def _config(url: DatabaseURL) -> dict[str, Any]:
    return todo_app.tortoise_config(url)


async def _in_a_handler_task(call: Awaitable[T]) -> T:
    """Run ``coro`` as a framework runs a request: in a task that never saw start-up's
    context variables (a fresh ``contextvars.Context``)."""
    import asyncio
    import contextvars

    async def handler() -> T:
        return await call

    return await asyncio.create_task(handler(), context=contextvars.Context())


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_lifespan_serves_handlers_in_other_tasks_and_closes(
    dialect: str, fresh_database_url: FreshURL
) -> None:
    from tortoise.exceptions import ConfigurationError

    url = await fresh_database_url(dialect)
    with pytest.raises(todo_app.SchemaOutOfDate, match="migrate"):
        async with todo_app.lifespan(_config(url)):  # "check" is the default
            pytest.fail("started on a database at no schema")

    async with todo_app.lifespan(_config(url), schema="migrate") as context:
        assert gc.get_freeze_count() > 0, "start-up objects are frozen"
        repo = todo_app.TaskRepository("alice")
        created = await _in_a_handler_task(repo.create(todo_app.TaskCreate(title="from a handler")))
        page = await _in_a_handler_task(repo.list())
        assert [task.title for task in page.items] == ["from a handler"]
        assert created.title == "from a handler"
        assert context.inited
    # Closed: no fallback context is left for a later task to find.
    with pytest.raises((ConfigurationError, RuntimeError)):
        await _in_a_handler_task(todo_app.TaskRepository("alice").list())

    async with todo_app.lifespan(_config(url)):  # checks, now at head; a second lifespan
        page = await _in_a_handler_task(todo_app.TaskRepository("alice").list())
        assert len(page.items) == 1


async def test_lifespan_refuses_an_unknown_schema_mode(
    fresh_sqlite_url: Callable[[], DatabaseURL],
) -> None:
    with pytest.raises(ValueError, match="schema must be"):
        async with todo_app.lifespan(_config(fresh_sqlite_url()), schema="later"):  # type: ignore[arg-type]
            pass
