"""The Task model: one row per task, owned by one user.

Every rule of ``rules.py`` is enforced here before SQL is built (as Tortoise
``ValidationError``s naming the field) and again by the database's named CHECK
constraints, which the migrations create. The model never writes a timestamp that
is not UTC, on any write path: ``save()``, ``create()`` and ``QuerySet.update()``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable
from typing import Any, cast

from tortoise import fields
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import ValidationError
from tortoise.expressions import F
from tortoise.fields.data import CharEnumFieldInstance
from tortoise.functions import Coalesce
from tortoise.indexes import Index
from tortoise.manager import Manager
from tortoise.models import Model
from tortoise.queryset import QuerySet, UpdateQuery

from todo_app import rules
from todo_app.rules import TaskStatus, utc_now

__all__ = ["Task", "TaskStatus", "utc_now"]


def _validator(clean: Callable[[object], object]) -> Callable[[object], None]:
    def validate(value: object) -> None:
        try:
            cleaned = clean(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        if cleaned != value:
            # A value that cleaning would change (e.g. an unstripped title) reached the
            # database layer without passing through save(): refuse it, never rewrite.
            raise ValidationError("is not in its stored form (surrounding whitespace?)")

    return validate


class UTCDatetimeField(fields.DatetimeField[dt.datetime]):
    """A datetime that is always UTC-aware, whatever the host's ``use_tz``/timezone.

    SQLite keeps datetimes as ISO text including the offset, so two instants written
    with different offsets would compare as text, wrongly: everything is converted
    to UTC before it is written or compared. Naive datetimes are refused.
    """

    def to_python_value(self, value: Any) -> dt.datetime | None:
        if value is None:
            return None
        moment = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
        if moment.tzinfo is None:
            # What this model writes always carries its offset, so a naive value is
            # caller input whose meaning is a guess: refuse it.
            raise ValidationError(
                f"{self.model_field_name}: naive datetime {moment.isoformat()} is ambiguous; "
                "pass a timezone-aware datetime"
            )
        return moment.astimezone(dt.UTC)

    def to_db_value(self, value: Any, instance: type[Model] | Model) -> Any:
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:
                raise ValidationError(
                    f"{self.model_field_name}: naive datetime {value.isoformat()} is ambiguous; "
                    "pass a timezone-aware datetime"
                )
            value = value.astimezone(dt.UTC)
        return super().to_db_value(value, instance)


class StatusField(CharEnumFieldInstance):
    """CharEnumField whose bad values are a ``ValidationError`` (Tortoise raises a bare
    ``ValueError`` while building the instance, before any validator runs)."""

    def to_python_value(self, value: str | None) -> TaskStatus | None:
        try:
            return super().to_python_value(value)  # type: ignore[return-value]
        except ValueError:
            raise ValidationError(self._invalid(value)) from None

    def to_db_value(self, value: Any, instance: type[Model] | Model) -> str | None:
        try:
            return super().to_db_value(value, instance)
        except ValueError:
            raise ValidationError(self._invalid(value)) from None

    def _invalid(self, value: object) -> str:
        allowed = ", ".join(member.value for member in self.enum_type)
        shown = repr(value) if len(repr(value)) <= 50 else repr(value)[:47] + "..."
        return f"{self.model_field_name or 'status'}: {shown} is not one of {allowed}"


class TaskQuerySet(QuerySet["Task"]):
    """Bulk updates move ``updated_at`` too, and are validated like ``save()``."""

    def update(self, **kwargs: Any) -> UpdateQuery:
        for name in _CLEANERS.keys() & kwargs.keys():
            kwargs[name] = _clean_field(name, kwargs[name])
        if "created_at" in kwargs:
            raise ValidationError("created_at: is set once, when the task is created")
        now = kwargs.setdefault("updated_at", utc_now())
        kwargs.setdefault("version", F("version") + 1)
        if "status" in kwargs and "completed_at" not in kwargs:
            status = _STATUS_FIELD.to_python_value(kwargs["status"])
            # Keep an existing completion time; set one where there was none.
            kwargs["completed_at"] = (
                Coalesce(F("completed_at"), now) if status == TaskStatus.COMPLETED else None
            )
        return super().update(**kwargs)


class TaskManager(Manager):
    def get_queryset(self) -> TaskQuerySet:
        return TaskQuerySet(self._model)


#: The text fields and the rule that cleans each (shared by save() and update()).
_CLEANERS: dict[str, Callable[[object], Any]] = {
    "user_id": rules.clean_user_id,
    "title": rules.clean_title,
    "description": rules.clean_description,
}


def _clean_field(name: str, value: object) -> Any:
    try:
        return _CLEANERS[name](value)
    except ValueError as exc:
        raise ValidationError(f"{name}: {exc}") from None


class Task(Model):
    """A task owned by one user. Build and change it through ``TaskRepository``
    (which scopes every query to its owner); the model itself keeps every rule."""

    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    user_id = fields.CharField(
        max_length=rules.USER_ID_MAX_LENGTH,
        validators=[_validator(rules.clean_user_id)],
        description="Opaque id of the owner; every query is scoped by it",
    )
    title = fields.CharField(
        max_length=rules.TITLE_MAX_LENGTH,
        validators=[_validator(rules.clean_title)],
        description="Stored stripped of surrounding whitespace",
    )
    description = fields.CharField(
        max_length=rules.DESCRIPTION_MAX_LENGTH,
        null=True,
        validators=[_validator(rules.clean_description)],
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

    def __init__(self, **kwargs: Any) -> None:
        try:
            super().__init__(**kwargs)
        except ValueError as exc:
            # Tortoise reports a None for a NOT NULL field, or a malformed UUID, as a
            # bare ValueError while building the instance: make it a ValidationError.
            raise ValidationError(str(exc)) from None
        now = utc_now()
        if self.created_at is None:
            self.created_at = now
        if self.updated_at is None:
            self.updated_at = self.created_at

    def __str__(self) -> str:
        return f"Task {self.id} ({self.status.value})"

    def __repr__(self) -> str:
        # Titles are user data: keep them out of reprs that end up in logs.
        return f"<Task id={self.id} user_id={self.user_id!r} status={self.status.value}>"

    def clean(self) -> None:
        """Normalise and check every field in place; raise ``ValidationError`` on the
        first bad one. Runs before any SQL on every ``save()``/``create()``."""
        for name in _CLEANERS:
            setattr(self, name, _clean_field(name, getattr(self, name)))
        if not isinstance(self.status, TaskStatus):
            status_field = self._meta.fields_map["status"]
            self.status = status_field.to_python_value(self.status)
        if self.status == TaskStatus.COMPLETED:
            if self.completed_at is None:
                self.completed_at = self.updated_at
        else:
            self.completed_at = None

    @classmethod
    def bulk_update(cls, *args: Any, **kwargs: Any) -> Any:
        """Refused: Tortoise's ``bulk_update`` skips ``clean()``, ``version`` and
        ``updated_at``. Use ``TaskRepository`` or ``Task.filter(...).update(...)``."""
        raise NotImplementedError(
            "Task.bulk_update would bypass the task rules (version, updated_at, "
            "completed_at); use TaskRepository or Task.filter(...).update(...)"
        )

    async def save(
        self,
        using_db: BaseDBAsyncClient | None = None,
        update_fields: Iterable[str] | None = None,
        force_create: bool = False,
        force_update: bool = False,
    ) -> None:
        if self._saved_in_db or force_update:
            self.updated_at = utc_now()
            self.version += 1
            if update_fields is not None:
                update_fields = {*update_fields, "updated_at", "version", "completed_at"}
        self.clean()
        await super().save(
            using_db=using_db,
            update_fields=update_fields,
            force_create=force_create,
            force_update=force_update,
        )


_STATUS_FIELD = cast(StatusField, Task._meta.fields_map["status"])
