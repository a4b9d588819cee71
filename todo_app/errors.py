"""Every error todo_app raises on purpose, under one base.

::

    TodoAppError
     +-- TaskError                     the repository; ``http_status`` is a web layer's hint
     |    +-- TaskNotFound             404 (also a LookupError)
     |    +-- TaskConflict             409 (412 for a stale If-Match)
     |    +-- TaskValidationError      422 (also a ValueError; ``field``)
     |    +-- TaskStoreError           500
     |         +-- TaskStoreUnavailable    503
     |         |    +-- TaskStoreTimeout   504
     |         +-- TaskDataError       a stored row that does not read back as a task
     +-- MigrationError                the migration runner and the start-up guard
     |    +-- MigrationPlanError, SchemaMismatch, SchemaAhead, ForeignAerichTable,
     |    |   MigrationLockTimeout, MigrationDataError, MigrationFailed
     |    +-- SchemaOutOfDate
     +-- DatabaseURLError              a database URL that cannot be used (a ValueError)
     +-- SettingsError                 a setting that cannot be used (todo_app.settings)
     +-- ReadOnlyModel                 a bulk write through the Task model, which could
                                       not keep the rules per row (a TypeError: a
                                       programming error)

Nothing classifies a driver's exception by its message here: each dialect maps its
driver's error codes to these types (``todo_app.dialects``).
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "DatabaseURLError",
    "ForeignAerichTable",
    "MigrationDataError",
    "MigrationError",
    "MigrationFailed",
    "MigrationLockTimeout",
    "MigrationPlanError",
    "ReadOnlyModel",
    "SchemaAhead",
    "SchemaMismatch",
    "SchemaOutOfDate",
    "TaskConflict",
    "TaskDataError",
    "TaskError",
    "TaskNotFound",
    "TaskStoreError",
    "TaskStoreTimeout",
    "TaskStoreUnavailable",
    "TaskValidationError",
    "TodoAppError",
]


class TodoAppError(Exception):
    """Base of every error todo_app raises on purpose."""


class ReadOnlyModel(TodoAppError, TypeError):
    """A bulk write through the ``Task`` model (``QuerySet.update``, ``bulk_create``...),
    or one on another connection: tasks are written by ``TaskRepository``'s path
    (``Task.create``/``save``/``delete`` take it too)."""


class DatabaseURLError(TodoAppError, ValueError):
    """A database URL (or a setting) that cannot be used. Never shows the password."""


class TaskError(TodoAppError):
    """Base class of every error ``TaskRepository`` raises on purpose."""

    #: The HTTP status a web layer would answer with (docs/repository.md's error table).
    http_status: ClassVar[int] = 500


class TaskNotFound(TaskError, LookupError):
    """No such task for this owner. Also raised for another owner's task, so that
    its existence is never revealed."""

    def __init__(self, task_id: object) -> None:
        shown = str(task_id)
        if len(shown) > 64:
            shown = shown[:61] + "..."
        super().__init__(f"task {shown} not found")
        self.task_id = task_id

    http_status: ClassVar[int] = 404


class TaskConflict(TaskError):
    """The write lost a race or contradicts an earlier one: a version mismatch, or an
    idempotent-create id reused with different content."""

    http_status: ClassVar[int] = 409


class TaskValidationError(TaskError, ValueError):
    """Invalid input that reached the repository. ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    http_status: ClassVar[int] = 422


class TaskStoreError(TaskError):
    """The database failed the operation for a reason that is not the input: it is
    read-only, the schema is missing, the caller's transaction already failed (500)."""


class TaskDataError(TaskStoreError):
    """A stored row holds a value that does not read back as a task (written around
    the package, by raw SQL, on SQLite's per-row typing): ``task_id`` (as stored) and
    ``column`` name it. Nothing was written; correct or delete the row (500)."""

    def __init__(self, task_id: object, column: str, problem: str) -> None:
        shown = str(task_id)
        if len(shown) > 64:
            shown = shown[:61] + "..."
        super().__init__(
            f"task {shown}: its stored {column} is not {problem}; nothing was written: "
            "correct the row with SQL or delete the task"
        )
        self.task_id = task_id
        self.column = column


class TaskStoreUnavailable(TaskStoreError):
    """The database could not be reached, dropped the connection, or is busy (503).

    Each write is one statement or one transaction, so a write that raised this was
    applied entirely or not at all; which one, the client cannot know. Retrying is
    safe with a client-chosen id (create) or ``expected_version`` (other writes).
    """

    http_status: ClassVar[int] = 503


class TaskStoreTimeout(TaskStoreUnavailable):
    """The database did not answer within the configured timeout (504)."""

    http_status: ClassVar[int] = 504


# -- migrations and the schema guard ---------------------------------------------------
#
# MigrationError
#  +-- MigrationPlanError     the request cannot be carried out (checked before any change)
#  +-- SchemaMismatch         the live table is not what the migrations made
#  +-- SchemaAhead            the database was migrated by a newer todo_app
#  +-- ForeignAerichTable     an "aerich" table that is not Aerich's
#  +-- MigrationLockTimeout   another migrator held the lock for too long
#  +-- MigrationDataError     stored rows break a rule the migration would enforce
#  +-- MigrationFailed        the database refused a migration statement
#  +-- SchemaOutOfDate        the start-up guard's verdict: behind, ahead or different


class MigrationError(TodoAppError, RuntimeError):
    """A migration could not be planned, applied or reverted. Whatever step failed
    was rolled back whole: the data is as it was before that step."""


class MigrationPlanError(MigrationError):
    """The request cannot be carried out (too many steps, no migration file, an empty
    downgrade); found before the first change."""


class SchemaMismatch(MigrationError):
    """The live table differs from what the recorded migrations made (edited by hand,
    partly migrated, or another table of the same name). ``differences`` lists each."""

    def __init__(self, message: str, differences: list[str]) -> None:
        super().__init__(message)
        self.differences = differences


class SchemaAhead(MigrationError):
    """The database was migrated by a newer version of todo_app; ``unknown`` lists the
    migrations this version has no file for."""

    def __init__(self, message: str, unknown: list[str]) -> None:
        super().__init__(message)
        self.unknown = unknown


class ForeignAerichTable(MigrationError):
    """A table named ``aerich`` exists but is not Aerich's bookkeeping table."""


class MigrationLockTimeout(MigrationError):
    """Another process held the migration lock longer than the caller would wait."""


class MigrationDataError(MigrationError):
    """Stored rows break a rule the migration enforces; ``violations`` names them
    (``"<task id>: <constraint>"``). Nothing was changed."""

    def __init__(self, message: str, violations: list[str]) -> None:
        super().__init__(message)
        self.violations = violations


class MigrationFailed(MigrationError):
    """The database refused a migration statement; the reason is the database's."""


class SchemaOutOfDate(MigrationError):
    """The database is behind, ahead of, or different from this version's schema.

    ``pending``: migrations to apply; ``unknown``: migrations of a newer version;
    ``differences``: how the live table differs from what the migrations made.
    """

    def __init__(
        self,
        message: str,
        *,
        pending: list[str] | None = None,
        unknown: list[str] | None = None,
        differences: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.pending = pending or []
        self.unknown = unknown or []
        self.differences = differences or []
