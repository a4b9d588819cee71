"""The Task model: the table's declaration, for Tortoise and for Aerich.

Tasks have one write path, ``TaskRepository``'s: it scopes every statement to its
owner and keeps ``version``, ``updated_at``, ``completed_at`` and every rule of
``rules.py`` (the database's named CHECK constraints, which the migrations create,
hold the same rules). The model's own writes take that path too: ``Task.create``,
``task.save()`` and ``task.delete()`` hand their fields to the repository (the same
validation, the same errors, ``save`` conditional on the version the instance was
read at) and refresh the instance from the stored row, so fixtures, admin tools and
data migrations written the Tortoise way keep the rules. The bulk forms that could
not keep them per row (``QuerySet.update``/``delete``, ``bulk_create``,
``bulk_update``, ``get_or_create``, ``update_or_create``) refuse with
:class:`~todo_app.errors.ReadOnlyModel`. Reading through the model
(``Task.filter(...)``, relations from a host's own models) works: datetimes come back
UTC-aware, and a status written by a newer version of todo_app comes back as its
string.

The field declarations are also what the repository's SQL is built from
(``todo_app.dialects``): column names, their order and the table name are read from
``Task._meta``, so adding a field here (plus a migration) reaches every statement.
"""

from __future__ import annotations

import datetime as dt
import importlib
import uuid
from collections.abc import Iterable
from typing import Any, ClassVar, NoReturn, Protocol, cast

from tortoise import fields
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.fields.data import CharEnumFieldInstance
from tortoise.indexes import Index
from tortoise.manager import Manager
from tortoise.models import Model
from tortoise.queryset import QuerySet

from todo_app import compat, rules
from todo_app.errors import ReadOnlyModel
from todo_app.rules import TaskStatus

__all__ = [
    "Task",
]


def _refuse(what: str) -> NoReturn:
    raise ReadOnlyModel(
        f"{what} is not a write path of todo_app: use TaskRepository(owner_id), which "
        "scopes the write to its owner and keeps version, updated_at, completed_at and "
        "every rule (or Task.create, task.save(), task.delete(), which go through it)"
    )


class ModelWrites(Protocol):
    """The repository's write path, as the model's write methods use it."""

    async def create(self, values: dict[str, Any]) -> Any: ...

    async def update(
        self, owner: str, task_id: uuid.UUID, version: int, changes: dict[str, Any]
    ) -> Any: ...

    async def delete(self, owner: str, task_id: uuid.UUID) -> None: ...


def _write_path() -> ModelWrites:
    if Task._writes is None:
        # The write path is the repository's, a layer above this one: it registers
        # itself when imported, so import it by name (a static import would point up).
        importlib.import_module("todo_app.repository")
    assert Task._writes is not None
    return Task._writes


def _same_connection(using_db: BaseDBAsyncClient | None) -> None:
    if using_db is not None and using_db is not Task._meta.db:
        raise ReadOnlyModel(
            "using_db: todo_app writes on the connection Task is bound to, in the "
            "caller's transaction if there is one: write inside "
            "`async with in_transaction(<that connection's name>)` instead"
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

    #: The repository's write path (it sets this when imported).
    _writes: ClassVar[ModelWrites | None] = None

    async def save(
        self,
        using_db: BaseDBAsyncClient | None = None,
        update_fields: Iterable[str] | None = None,
        force_create: bool = False,
        force_update: bool = False,
    ) -> None:
        """Create the task, or write its ``title``/``description``/``status`` as
        ``TaskRepository.update`` does, on condition that it is still at the version
        this instance was read at (``TaskConflict`` otherwise); then refresh every
        field from the stored row. Other fields are todo_app's: naming one in
        ``update_fields`` is a ``TaskValidationError``."""
        _same_connection(using_db)
        writes = _write_path()
        if force_create or (not compat.is_saved(self) and not force_update):
            stored = await writes.create({name: getattr(self, name) for name in _CREATE_FIELDS})
        else:
            names = list(_SAVED_FIELDS if update_fields is None else update_fields)
            stored = await writes.update(
                self.user_id, self.id, self.version, {name: getattr(self, name) for name in names}
            )
        self._refresh_from(stored)

    async def delete(self, using_db: BaseDBAsyncClient | None = None) -> None:
        """Delete the task as ``TaskRepository(task.user_id).delete`` does."""
        _same_connection(using_db)
        await _write_path().delete(self.user_id, self.id)

    @classmethod
    async def create(cls, using_db: BaseDBAsyncClient | None = None, **kwargs: Any) -> Task:
        """``TaskRepository(user_id).create(TaskCreate(**fields))``: ``user_id`` plus
        ``title`` and optionally ``description``, ``status``, ``id``; the stored task."""
        _same_connection(using_db)
        stored = await _write_path().create(kwargs)
        task = cls.construct(_saved_in_db=True)
        task._refresh_from(stored)
        return task

    def _refresh_from(self, stored: Any) -> None:
        for name in self._meta.fields_db_projection:
            setattr(self, name, getattr(stored, name))
        compat.mark_saved(self)

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


#: What ``save`` hands the repository: a new task's fields, an existing one's changes.
_CREATE_FIELDS: tuple[str, ...] = ("id", "user_id", "title", "description", "status")
_SAVED_FIELDS: tuple[str, ...] = ("title", "description", "status")
