"""The Task model: the table's declaration, for Tortoise and for Aerich, read-only.

Tasks are written by ``TaskRepository`` alone: one write path, which scopes every
statement to its owner and keeps ``version``, ``updated_at``, ``completed_at`` and every
rule of ``rules.py`` (the database's named CHECK constraints, which the migrations
create, hold the same rules). The model's own write methods (``save``, ``create``,
``bulk_create``, ``QuerySet.update``, ``delete``...) refuse with
:class:`~todo_app.errors.ReadOnlyModel`, instead of keeping a second copy of the rules
that could drift from the first. Reading through the model (``Task.filter(...)``,
relations from a host's own models) works: datetimes come back UTC-aware, and a
status written by a newer version of todo_app comes back as its string.

The field declarations are also what the repository's SQL is built from
(``todo_app.dialects``): column names, their order and the table name are read from
``Task._meta``, so adding a field here (plus a migration) reaches every statement.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, NoReturn, cast

from tortoise import fields
from tortoise.fields.data import CharEnumFieldInstance
from tortoise.indexes import Index
from tortoise.manager import Manager
from tortoise.models import Model
from tortoise.queryset import QuerySet

from todo_app import rules
from todo_app.errors import ReadOnlyModel
from todo_app.rules import TaskStatus, utc_now

__all__ = ["Task", "TaskStatus", "utc_now"]


def _refuse(what: str) -> NoReturn:
    raise ReadOnlyModel(
        f"{what} is not a write path of todo_app: use TaskRepository(owner_id), which "
        "scopes the write to its owner and keeps version, updated_at, completed_at and "
        "every rule"
    )


class UTCDatetimeField(fields.DatetimeField[dt.datetime]):
    """A datetime that is always UTC-aware, whatever the host's ``use_tz``/timezone.

    SQLite keeps datetimes as ISO text including the offset: values are converted to
    UTC before they are compared in a filter, and come back UTC-aware.
    """

    def to_python_value(self, value: Any) -> dt.datetime | None:
        if value is None:
            return None
        moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
        if moment.tzinfo is None:
            # Every row the repository writes carries its offset: a naive value is
            # UTC as PostgreSQL's "timestamp" or a hand-written row gives it.
            return moment.replace(tzinfo=dt.UTC)
        return moment.astimezone(dt.UTC)

    def to_db_value(self, value: Any, instance: type[Model] | Model) -> Any:
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return super().to_db_value(value, instance)


class StatusField(CharEnumFieldInstance):
    """CharEnumField that reads a status this version does not know (a newer version
    wrote it during a rolling deploy) as the plain string stored, never an error."""

    def to_python_value(self, value: str | None) -> TaskStatus | str | None:  # type: ignore[override]
        try:
            return super().to_python_value(value)  # type: ignore[return-value]
        except ValueError:
            return value


class TaskQuerySet(QuerySet["Task"]):
    """Reads as usual; the bulk writes refuse (see the module docstring)."""

    def update(self, **kwargs: Any) -> NoReturn:
        _refuse("Task.filter(...).update()")

    def delete(self) -> NoReturn:
        _refuse("Task.filter(...).delete()")

    def bulk_create(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("Task.bulk_create()")

    def bulk_update(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("Task.bulk_update()")


class TaskManager(Manager):
    def get_queryset(self) -> TaskQuerySet:
        return TaskQuerySet(self._model)


class Task(Model):
    """A task owned by one user. Read it here; write it with ``TaskRepository``."""

    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    user_id = fields.CharField(
        max_length=rules.USER_ID_MAX_LENGTH,
        description="Opaque id of the owner; every query is scoped by it",
    )
    title = fields.CharField(
        max_length=rules.TITLE_MAX_LENGTH,
        description="Stored stripped of surrounding whitespace",
    )
    description = fields.CharField(
        max_length=rules.DESCRIPTION_MAX_LENGTH,
        null=True,
        description="Optional; an empty string is stored as NULL",
    )
    status = cast(
        "fields.Field[TaskStatus]",
        StatusField(
            TaskStatus,
            max_length=rules.STATUS_MAX_LENGTH,
            default=TaskStatus.PENDING,
            # Fixed, so that adding a member does not change the column comment (and
            # with it Aerich's recorded state).
            description="Task status (a TaskStatus value)",
        ),
    )
    version = fields.IntField(
        default=1, description="Starts at 1, +1 on every write (optimistic concurrency)"
    )
    created_at = UTCDatetimeField(description="UTC; set once on insert")
    updated_at = UTCDatetimeField(description="UTC; moves on every write")
    completed_at = cast(
        "fields.Field[dt.datetime | None]",
        UTCDatetimeField(null=True, description="UTC; set exactly while the status is completed"),
    )

    class Meta:
        table = "todo_app_task"
        table_description = "todo_app tasks"
        manager = TaskManager()
        # user_id leads both indexes, so a lone user_id index would be dead weight.
        indexes = (
            Index(fields=("user_id", "status"), name="todo_app_task_user_status_idx"),
            Index(fields=("user_id", "created_at", "id"), name="todo_app_task_user_created_idx"),
        )

    def __str__(self) -> str:
        return f"Task {self.id} ({self.status})"

    def __repr__(self) -> str:
        # Titles are user data: keep them out of reprs that end up in logs.
        return f"<Task id={self.id} user_id={self.user_id!r} status={self.status}>"

    async def save(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("Task.save()")

    async def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("Task.delete()")

    @classmethod
    async def create(cls, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("Task.create()")

    @classmethod
    def bulk_create(cls, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("Task.bulk_create()")

    @classmethod
    def bulk_update(cls, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("Task.bulk_update()")

    @classmethod
    async def get_or_create(cls, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("Task.get_or_create()")

    @classmethod
    async def update_or_create(cls, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("Task.update_or_create()")
