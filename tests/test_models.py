"""The Task model on both dialects: its bulk writes refuse, and what reads give.
(Its own create/save/delete take the repository's path: tests/test_model_writes.py.)"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any

import pytest

from tests.helpers import raw_insert, row_count
from todo_app import ReadOnlyModel, TaskCreate, TaskRepository, check_drift
from todo_app.models import StatusField, Task
from todo_app.rules import TaskStatus
from todo_app.testing import TodoDatabase

WRITES: dict[str, Callable[[Task], Awaitable[Any] | Any]] = {
    "Task.bulk_create()": lambda task: Task.bulk_create([Task(user_id="a", title="t")]),
    "Task.bulk_update()": lambda task: Task.bulk_update([task], fields=["title"]),
    "Task.get_or_create()": lambda task: Task.get_or_create(user_id="alice", title="t"),
    "Task.update_or_create()": lambda task: Task.update_or_create(user_id="alice", title="t"),
    "Task.filter(...).update()": lambda task: Task.filter(id=task.id).update(title="x"),
    "Task.filter(...).delete()": lambda task: Task.filter(id=task.id).delete(),
}


@pytest.mark.parametrize("write", WRITES)
async def test_every_bulk_model_write_is_refused_pointing_at_the_repository(
    todo_db: TodoDatabase, write: str
) -> None:
    created = await TaskRepository("alice").create(TaskCreate(title="kept"))
    task = await Task.get(id=created.id)

    async def attempt() -> None:
        result = WRITES[write](task)
        if hasattr(result, "__await__"):
            await result

    with pytest.raises(ReadOnlyModel, match=r"use TaskRepository\(owner_id\)") as raised:
        await attempt()
    assert str(raised.value).startswith(write)
    assert isinstance(raised.value, TypeError)
    assert await row_count(todo_db) == 1
    assert (await Task.get(id=created.id)).title == "kept"


async def test_reads_give_what_the_repository_wrote(todo_db: TodoDatabase) -> None:
    repo = TaskRepository("alice")
    task = await repo.complete((await repo.create(TaskCreate(title="t"))).id)
    stored = await Task.get(id=task.id)
    assert stored.status is TaskStatus.COMPLETED
    assert stored.version == task.version == 2
    for name in ("created_at", "updated_at", "completed_at"):
        value = getattr(stored, name)
        assert value == getattr(task, name)
        assert value.utcoffset() == dt.timedelta(0)


async def test_filters_compare_instants_not_text(todo_db: TodoDatabase) -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    moment = dt.datetime(2026, 1, 1, 12, 0, tzinfo=plus_two)  # 10:00 UTC
    await raw_insert(todo_db, created_at=moment.astimezone(dt.UTC), version=1)
    assert await Task.filter(created_at__lt=dt.datetime(2026, 1, 1, 10, 30, tzinfo=dt.UTC)).count()
    assert not await Task.filter(
        created_at__gt=dt.datetime(2026, 1, 1, 12, 30, tzinfo=plus_two)
    ).count()


async def test_a_status_this_version_does_not_know_reads_as_its_string(
    todo_db: TodoDatabase,
) -> None:
    task_id = await raw_insert(todo_db, status="archived", version=1)
    stored = await Task.get(id=task_id)
    assert stored.status == "archived"
    assert not isinstance(stored.status, TaskStatus)
    assert "archived" in repr(stored)


async def test_a_new_status_member_needs_no_migration(monkeypatch: pytest.MonkeyPatch) -> None:
    class FutureStatus(StrEnum):
        PENDING = "pending"
        COMPLETED = "completed"
        ARCHIVED = "archived"

    field = Task._meta.fields_map["status"]
    assert isinstance(field, StatusField)
    monkeypatch.setattr(field, "enum_type", FutureStatus)
    # The column, its comment and the recorded models state are untouched.
    assert await check_drift() == []


async def test_repr_keeps_user_text_out(todo_db: TodoDatabase) -> None:
    created = await TaskRepository("alice").create(
        TaskCreate(title="secret plans", description="more")
    )
    task = await Task.get(id=created.id)
    assert "secret" not in repr(task)
    assert "more" not in repr(task)
    assert str(task.id) in repr(task)
    assert str(task) == f"Task {task.id} (pending)"


async def test_connection_is_not_named_default(todo_db: TodoDatabase) -> None:
    assert todo_db.connection.connection_name != "default"
    assert Task._meta.db.connection_name == todo_db.connection.connection_name
