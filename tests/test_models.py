"""The Task model on both dialects: defaults, normalisation, validation, timestamps."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from enum import StrEnum

import pytest
from tortoise.exceptions import ValidationError

from tests.helpers import raw_insert, row_count
from todo_app import check_drift
from todo_app.models import StatusField, Task, TaskStatus
from todo_app.testing import TodoDatabase


async def test_defaults(todo_db: TodoDatabase) -> None:
    task = await Task.create(user_id="alice", title="Buy milk")
    stored = await Task.get(id=task.id)
    assert isinstance(stored.id, uuid.UUID)
    assert stored.id.version == 4
    assert stored.status is TaskStatus.PENDING
    assert stored.description is None
    assert stored.created_at == stored.updated_at == task.created_at


async def test_id_is_generated_in_python_before_insert(todo_db: TodoDatabase) -> None:
    task = Task(user_id="alice", title="t")
    assert isinstance(task.id, uuid.UUID)
    assert await row_count(todo_db) == 0
    await task.save()
    assert (await Task.get(id=task.id)).title == "t"


async def test_title_is_stored_stripped(todo_db: TodoDatabase) -> None:
    task = await Task.create(user_id="alice", title="\u3000\t  Buy milk \n")
    assert task.title == "Buy milk"
    assert (await Task.get(id=task.id)).title == "Buy milk"


async def test_empty_description_is_stored_as_null(todo_db: TodoDatabase) -> None:
    task = await Task.create(user_id="alice", title="t", description="")
    assert task.description is None
    _, rows = await todo_db.connection.execute_query(
        'SELECT count(*) AS n FROM "todo_app_task" WHERE "description" IS NULL'
    )
    assert rows[0]["n"] == 1


async def test_description_is_kept_verbatim(todo_db: TodoDatabase) -> None:
    text = "  line one\n\tline two  "
    task = await Task.create(user_id="alice", title="t", description=text)
    assert (await Task.get(id=task.id)).description == text


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": "lone \ud800 surrogate"}, "title"),
        ({"description": "x" * 1001}, "description"),
        ({"user_id": ""}, "user_id"),
        ({"user_id": "u" * 256}, "user_id"),
        ({"status": "archived"}, "status"),
        ({"status": None}, "status"),
    ],
)
async def test_invalid_values_raise_validation_error_naming_the_field(
    todo_db: TodoDatabase, kwargs: dict[str, object], field: str
) -> None:
    values: dict[str, object] = {"user_id": "alice", "title": "t", **kwargs}
    with pytest.raises(ValidationError) as raised:
        await Task.create(**values)
    assert str(raised.value).startswith(field)
    assert await row_count(todo_db) == 0


async def test_invalid_status_on_assignment_fails_at_save(todo_db: TodoDatabase) -> None:
    task = await Task.create(user_id="alice", title="t")
    task.status = "bogus"  # type: ignore[assignment]
    with pytest.raises(ValidationError, match=r"^status: 'bogus' is not one of pending, completed"):
        await task.save()
    assert (await Task.get(id=task.id)).status is TaskStatus.PENDING


async def test_malformed_uuid_is_a_validation_error(todo_db: TodoDatabase) -> None:
    with pytest.raises(ValidationError):
        Task(id="not-a-uuid", user_id="alice", title="t")


async def test_timestamps_are_utc_aware(todo_db: TodoDatabase) -> None:
    task = await Task.create(user_id="alice", title="t")
    stored = await Task.get(id=task.id)
    for moment in (stored.created_at, stored.updated_at):
        assert moment.tzinfo is not None
        assert moment.utcoffset() == dt.timedelta(0)
    assert abs(stored.created_at - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=30)


async def test_save_moves_updated_at_but_never_created_at(todo_db: TodoDatabase) -> None:
    task = await Task.create(user_id="alice", title="t")
    created, first_update = task.created_at, task.updated_at
    await asyncio.sleep(0.002)
    task.title = "t2"
    await task.save()
    await asyncio.sleep(0.002)
    task.description = "d"
    await task.save(update_fields=["description"])
    stored = await Task.get(id=task.id)
    assert stored.created_at == created
    assert stored.updated_at > first_update
    assert stored.updated_at == task.updated_at
    assert (stored.title, stored.description) == ("t2", "d")


async def test_queryset_update_moves_updated_at_and_validates(todo_db: TodoDatabase) -> None:
    task = await Task.create(user_id="alice", title="t")
    await asyncio.sleep(0.002)
    await Task.filter(id=task.id).update(status=TaskStatus.COMPLETED, title="  new ")
    stored = await Task.get(id=task.id)
    assert stored.status is TaskStatus.COMPLETED
    assert stored.title == "new"
    assert stored.updated_at > task.updated_at
    assert stored.created_at == task.created_at
    with pytest.raises(ValidationError, match="^title"):
        await Task.filter(id=task.id).update(title=" ")
    with pytest.raises(ValidationError, match="^created_at"):
        await Task.filter(id=task.id).update(created_at=dt.datetime.now(dt.UTC))
    with pytest.raises(ValidationError, match="^status"):
        await Task.filter(id=task.id).update(status="bogus")
    assert (await Task.get(id=task.id)).title == "new"


async def test_explicit_timestamps_are_normalised_to_utc(todo_db: TodoDatabase) -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    moment = dt.datetime(2026, 1, 1, 12, 0, tzinfo=plus_two)
    task = await Task.create(user_id="alice", title="t", created_at=moment, updated_at=moment)
    stored = await Task.get(id=task.id)
    assert stored.created_at == moment
    assert stored.created_at.utcoffset() == dt.timedelta(0)
    assert stored.created_at.hour == 10
    # Filters compare instants, not text: on SQLite this needs UTC on disk.
    assert await Task.filter(created_at__lt=dt.datetime(2026, 1, 1, 10, 30, tzinfo=dt.UTC)).count()
    later = dt.datetime(2026, 1, 1, 12, 30, tzinfo=plus_two)  # 10:30 UTC
    assert not await Task.filter(created_at__gt=later).count()


async def test_naive_datetimes_are_refused(todo_db: TodoDatabase) -> None:
    with pytest.raises(ValidationError, match="^created_at: naive datetime"):
        await Task.create(user_id="alice", title="t", created_at=dt.datetime(2026, 1, 1))
    assert await row_count(todo_db) == 0


async def test_a_new_status_member_round_trips_without_a_migration(
    todo_db: TodoDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    class FutureStatus(StrEnum):
        PENDING = "pending"
        COMPLETED = "completed"
        ARCHIVED = "archived"

    field = Task._meta.fields_map["status"]
    assert isinstance(field, StatusField)
    monkeypatch.setattr(field, "enum_type", FutureStatus)
    task = await Task.create(user_id="alice", title="t", status=FutureStatus.ARCHIVED)
    stored = await Task.get(id=task.id)
    assert stored.status is FutureStatus.ARCHIVED
    assert await Task.filter(status=FutureStatus.ARCHIVED).count() == 1
    # The column, its comment and the recorded models state are untouched.
    assert await check_drift() == []


async def test_database_accepts_unknown_status_values_by_design(todo_db: TodoDatabase) -> None:
    """Membership lives in Python so that a new member needs no migration; rows
    written by a newer version of the app are reported clearly, not crashed on."""
    task_id = await raw_insert(todo_db, status="archived")
    with pytest.raises(ValidationError, match="^status: 'archived' is not one of"):
        await Task.get(id=task_id)


async def test_repr_keeps_user_text_out(todo_db: TodoDatabase) -> None:
    task = await Task.create(user_id="alice", title="secret plans", description="more")
    assert "secret" not in repr(task)
    assert "more" not in repr(task)
    assert str(task.id) in repr(task)
    assert str(task) == f"Task {task.id} (pending)"


async def test_connection_is_not_named_default(todo_db: TodoDatabase) -> None:
    assert todo_db.connection.connection_name != "default"
    assert Task._meta.db.connection_name == todo_db.connection.connection_name


async def test_bulk_update_is_refused(todo_db: TodoDatabase) -> None:
    task = await Task.create(user_id="alice", title="t")
    task.status = TaskStatus.COMPLETED
    with pytest.raises(NotImplementedError, match="bypass the task rules"):
        Task.bulk_update([task], fields=["status"])
