"""One write path, two APIs: the same behaviour tests run through ``TaskRepository``
and through the model's own ``Task.create`` / ``task.save()`` / ``task.delete()``,
on both dialects. Every rule (validation and its errors, the owner's scope,
``version``, ``updated_at``, ``completed_at``, conditional writes) has one
implementation, the repository's; these tests prove the model takes it."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Protocol

import pytest

from todo_app import (
    ReadOnlyModel,
    TaskConflict,
    TaskCreate,
    TaskNotFound,
    TaskRead,
    TaskRepository,
    TaskStatus,
    TaskUpdate,
    TaskValidationError,
)
from todo_app.models import Task
from todo_app.testing import TodoDatabase


class API(Protocol):
    async def create(self, owner: str, **fields: Any) -> TaskRead: ...
    async def change(self, owner: str, task: TaskRead, **changes: Any) -> TaskRead: ...
    async def delete(self, owner: str, task: TaskRead) -> None: ...


class Repository:
    """The repository, given input as raw as the model's (``model_construct``: the
    repository validates it again, so both APIs meet the same checks)."""

    async def create(self, owner: str, **fields: Any) -> TaskRead:
        return await TaskRepository(owner).create(TaskCreate.model_construct(**fields))

    async def change(self, owner: str, task: TaskRead, **changes: Any) -> TaskRead:
        data = TaskUpdate.model_construct(_fields_set=set(changes), **changes)
        return await TaskRepository(owner).update(task.id, data, expected_version=task.version)

    async def delete(self, owner: str, task: TaskRead) -> None:
        await TaskRepository(owner).delete(task.id)


class Model:
    """The model, the Tortoise way: create, change attributes and save, delete."""

    async def create(self, owner: str, **fields: Any) -> TaskRead:
        return TaskRead.model_validate(await Task.create(user_id=owner, **fields))

    async def change(self, owner: str, task: TaskRead, **changes: Any) -> TaskRead:
        # An instance as the caller last read it (its version decides the write).
        instance = Task.construct(_saved_in_db=True, **task.model_dump())
        instance.user_id = owner
        for name, value in changes.items():
            setattr(instance, name, value)
        await instance.save(update_fields=list(changes))
        return TaskRead.model_validate(instance)

    async def delete(self, owner: str, task: TaskRead) -> None:
        instance = Task.construct(_saved_in_db=True, **task.model_dump())
        instance.user_id = owner
        await instance.delete()


APIS: dict[str, API] = {"repository": Repository(), "model": Model()}


@pytest.fixture(params=list(APIS))
def api(request: pytest.FixtureRequest, todo_db: TodoDatabase) -> API:
    return APIS[request.param]


async def stored(task_id: uuid.UUID, owner: str = "alice") -> TaskRead:
    return await TaskRepository(owner).get(task_id)


async def test_create_stores_what_the_repository_stores(api: API) -> None:
    task = await api.create("alice", title="  buy milk  ", description="")
    assert task == await stored(task.id)
    assert (task.title, task.description, task.status) == ("buy milk", None, TaskStatus.PENDING)
    assert (task.version, task.completed_at) == (1, None)
    assert task.created_at == task.updated_at
    done = await api.create("alice", title="done already", status=TaskStatus.COMPLETED)
    assert done.completed_at == done.created_at


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": "nul\x00"}, "title"),
        ({"title": "ok", "description": "d" * 1001}, "description"),
        ({"title": "ok", "status": "archived"}, "status"),
    ],
)
async def test_bad_input_is_the_same_validation_error_and_stores_nothing(
    api: API, fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(TaskValidationError) as raised:
        await api.create("alice", **fields)
    assert raised.value.field == field
    assert (await TaskRepository("alice").list()).items == []


@pytest.mark.parametrize("title", ["   ", "x" * 201, "nul\x00"])
async def test_the_very_same_message_through_both_apis(todo_db: TodoDatabase, title: str) -> None:
    messages = set()
    for api in APIS.values():
        with pytest.raises(TaskValidationError) as raised:
            await api.create("alice", title=title)
        messages.add(str(raised.value))
    assert len(messages) == 1, messages


async def test_a_change_moves_version_and_updated_at_and_keeps_completed_at(api: API) -> None:
    task = await api.create("alice", title="t")
    await asyncio.sleep(0.002)
    done = await api.change("alice", task, status=TaskStatus.COMPLETED)
    assert (done.version, done.status) == (2, TaskStatus.COMPLETED)
    assert done.updated_at > task.updated_at
    assert done.completed_at == done.updated_at
    renamed = await api.change("alice", done, title="t2")
    assert renamed.completed_at == done.completed_at, "completed_at kept while completed"
    reopened = await api.change("alice", renamed, status=TaskStatus.PENDING)
    assert (reopened.version, reopened.completed_at) == (4, None)
    assert reopened == await stored(task.id)


async def test_a_change_that_changes_nothing_is_not_a_write(api: API) -> None:
    task = await api.create("alice", title="same")
    assert await api.change("alice", task, title="same") == task


async def test_a_stale_version_is_a_conflict_and_changes_nothing(api: API) -> None:
    task = await api.create("alice", title="v1")
    await api.change("alice", task, title="v2")
    with pytest.raises(TaskConflict):
        await api.change("alice", task, title="lost update")  # read at version 1
    assert (await stored(task.id)).title == "v2"


async def test_another_owner_never_reaches_the_task(api: API) -> None:
    task = await api.create("alice", title="mine")
    with pytest.raises(TaskNotFound):
        await api.change("bob", task, title="yours now")
    with pytest.raises(TaskNotFound):
        await api.delete("bob", task)
    assert (await stored(task.id)).title == "mine"


async def test_delete_deletes_once(api: API) -> None:
    task = await api.create("alice", title="gone soon")
    await api.delete("alice", task)
    with pytest.raises(TaskNotFound):
        await api.delete("alice", task)


# -- what only the model has ----------------------------------------------------------------


async def test_an_instance_saved_the_tortoise_way_is_refreshed(todo_db: TodoDatabase) -> None:
    task = Task(user_id="alice", title="  new  ")
    await task.save()
    assert (task.title, task.version) == ("new", 1)
    loaded = await Task.get(id=task.id)
    loaded.title = "renamed"
    loaded.status = TaskStatus.COMPLETED
    await loaded.save()
    assert (loaded.version, loaded.completed_at is not None) == (2, True)
    with pytest.raises(TaskConflict):
        await task.save()  # still at version 1: nothing lost
    assert (await Task.get(id=task.id)).title == "renamed"


async def test_fields_kept_by_todo_app_cannot_be_set(todo_db: TodoDatabase) -> None:
    with pytest.raises(TaskValidationError, match="version"):
        await Task.create(user_id="alice", title="t", version=7)
    with pytest.raises(TaskValidationError, match="user_id"):
        await Task.create(title="no owner")
    task = await Task.create(user_id="alice", title="t")
    with pytest.raises(TaskValidationError, match="created_at"):
        await task.save(update_fields=["created_at"])


async def test_another_connection_is_refused(todo_db: TodoDatabase) -> None:
    with pytest.raises(ReadOnlyModel, match="in_transaction"):
        await Task.create(using_db=object(), user_id="alice", title="t")  # type: ignore[arg-type]


async def test_model_writes_join_the_callers_transaction(todo_db: TodoDatabase) -> None:
    from tortoise.transactions import in_transaction

    class Rollback(Exception):
        pass

    async def create_then_fail() -> None:
        async with in_transaction(todo_db.connection.connection_name) as tx:
            await Task.create(using_db=tx, user_id="alice", title="rolled back")
            raise Rollback

    with pytest.raises(Rollback):
        await create_then_fail()
    assert (await TaskRepository("alice").list()).items == []
