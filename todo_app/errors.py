"""The errors the repository raises: one small hierarchy a web layer can map to
HTTP statuses (404, 409, 422) without looking at driver exceptions."""

from __future__ import annotations

__all__ = [
    "TaskConflict",
    "TaskError",
    "TaskNotFound",
    "TaskStoreError",
    "TaskStoreTimeout",
    "TaskStoreUnavailable",
    "TaskValidationError",
]


class TaskError(Exception):
    """Base class of every error ``TaskRepository`` raises on purpose."""


class TaskNotFound(TaskError, LookupError):
    """No such task for this owner. Also raised for another owner's task, so that
    its existence is never revealed."""

    def __init__(self, task_id: object) -> None:
        shown = str(task_id)
        if len(shown) > 64:
            shown = shown[:61] + "..."
        super().__init__(f"task {shown} not found")
        self.task_id = task_id


class TaskConflict(TaskError):
    """The write lost a race or contradicts an earlier one: a version mismatch, or an
    idempotent-create id reused with different content."""


class TaskValidationError(TaskError, ValueError):
    """Invalid input that reached the repository. ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class TaskStoreError(TaskError):
    """The database failed the operation for a reason that is not the input: it is
    read-only, the schema is missing, the caller's transaction already failed (500)."""


class TaskStoreUnavailable(TaskStoreError):
    """The database could not be reached, dropped the connection, or is busy (503).

    Each write is one statement or one transaction, so a write that raised this was
    applied entirely or not at all; which one, the client cannot know. Retrying is
    safe with a client-chosen id (create) or ``expected_version`` (other writes).
    """


class TaskStoreTimeout(TaskStoreUnavailable):
    """The database did not answer within the configured timeout (504)."""
