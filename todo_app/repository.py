"""``TaskRepository``: the only way todo_app writes tasks, bound to one owner.

Every query it builds carries ``user_id = <owner>``, so no method can read, change or
delete another owner's row; another owner's task is reported exactly like a missing
one. Every failure is one of ``errors.py``'s types: input is validated again on entry
(a ``model_construct``-ed schema does not slip through), and the database's own
refusals (CHECK, NOT NULL, duplicate key) are translated, never leaked raw.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Final, ParamSpec, TypeVar

import pydantic
from tortoise.exceptions import (
    DBConnectionError,
    IntegrityError,
    OperationalError,
    TransactionManagementError,
    ValidationError,
)
from tortoise.expressions import Q
from tortoise.functions import Count

from todo_app import rules
from todo_app.errors import (
    TaskConflict,
    TaskError,
    TaskNotFound,
    TaskStoreTimeout,
    TaskStoreUnavailable,
    TaskValidationError,
)
from todo_app.models import Task, TaskStatus
from todo_app.pagination import Cursor, Order
from todo_app.schemas import TaskCreate, TaskPage, TaskRead, TaskUpdate
from todo_app.transactions import write_transaction

__all__ = ["MAX_PAGE_SIZE", "TaskRepository"]

MAX_PAGE_SIZE: Final = 200
_MAX_VERSION: Final = 2**31 - 1  # the version column is a 32-bit integer
_BULK_BATCH: Final = 500
Schema = TypeVar("Schema", TaskCreate, TaskUpdate)


P = ParamSpec("P")
R = TypeVar("R")


def _guarded(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Every public method: typed errors only, whatever the database does."""

    @functools.wraps(method)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        with _translated():
            return await method(*args, **kwargs)

    return guarded


class TaskRepository:
    """Tasks of one owner. Cheap to create: make one per request."""

    __slots__ = ("_owner",)

    def __init__(self, owner_id: str) -> None:
        try:
            self._owner = rules.clean_user_id(owner_id)
        except ValueError as exc:
            raise TaskValidationError("owner_id", str(exc)) from None

    @property
    def owner_id(self) -> str:
        return self._owner

    def __repr__(self) -> str:
        return f"TaskRepository(owner_id={self._owner!r})"

    # -- reading --------------------------------------------------------------------

    @_guarded
    async def get(self, task_id: uuid.UUID | str) -> TaskRead:
        """The task, or ``TaskNotFound`` (also for another owner's task)."""
        task = await self._mine(_task_uuid(task_id)).first()
        if task is None:
            raise TaskNotFound(task_id)
        return _read(task)

    @_guarded
    async def list(
        self,
        *,
        status: TaskStatus | str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        order: Order = "newest",
    ) -> TaskPage:
        """One page of tasks in ``(created_at, id)`` order, newest or oldest first.

        Keyset pagination: pass ``next_cursor`` back to get the next page. Rows
        inserted while a client walks the pages never make it see a task twice.
        """
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise TaskValidationError("limit", "must be an integer")
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise TaskValidationError("limit", f"must be between 1 and {MAX_PAGE_SIZE}")
        if order not in ("newest", "oldest"):
            raise TaskValidationError("order", "must be 'newest' or 'oldest'")
        wanted = _status(status) if status is not None else None
        query = Task.filter(user_id=self._owner)
        if wanted is not None:
            query = query.filter(status=wanted)
        if cursor is not None:
            after = Cursor.decode(cursor, order=order, status=wanted)
            if order == "newest":
                query = query.filter(
                    Q(created_at__lt=after.created_at)
                    | Q(created_at=after.created_at, id__lt=after.id)
                )
            else:
                query = query.filter(
                    Q(created_at__gt=after.created_at)
                    | Q(created_at=after.created_at, id__gt=after.id)
                )
        ordering = ("-created_at", "-id") if order == "newest" else ("created_at", "id")
        rows = await query.order_by(*ordering).limit(limit + 1)
        items = [_read(task) for task in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = items[-1]
            next_cursor = Cursor(last.created_at, last.id, order, wanted).encode()
        return TaskPage(items=items, next_cursor=next_cursor)

    @_guarded
    async def counts(self) -> dict[TaskStatus, int]:
        """How many tasks the owner has in each status; every status is present."""
        result = dict.fromkeys(TaskStatus, 0)
        rows = (
            await Task.filter(user_id=self._owner)
            .annotate(n=Count("id"))
            .group_by("status")
            .values_list("status", "n")
        )
        for status, count in rows:
            result[TaskStatus(status)] = int(count)
        return result

    # -- writing --------------------------------------------------------------------

    @_guarded
    async def create(self, data: TaskCreate) -> TaskRead:
        """Store a new task. With a client-chosen ``id``, repeating the same create
        returns the stored task; the same id with other content (or another
        owner's id) is ``TaskConflict``."""
        data = _validated(TaskCreate, data)
        if data.id is not None:
            existing = await Task.filter(id=data.id).first()
            if existing is not None:
                return self._same_create(existing, data)
        task = self._new(data)
        try:
            with _translated():
                await task.save(force_create=True)
        except TaskConflict:
            # Lost a race with an identical retry: answer as the retry would.
            existing = await Task.filter(id=task.id).first()
            if existing is None:  # pragma: no cover - the winner was deleted meanwhile
                raise
            return self._same_create(existing, data)
        return _read(task)

    @_guarded
    async def bulk_create(
        self,
        items: Iterable[TaskCreate],
        *,
        progress: Callable[[int], object] | None = None,
    ) -> int:
        """Import many tasks in one transaction: all are stored, or none.

        Any invalid item is ``TaskValidationError`` (its field named
        ``items[<index>].<field>``); a client id used twice, or already taken, is
        ``TaskConflict``. ``progress``, if given, is called with the number of rows
        written so far after each batch (before the commit that makes them visible).
        """
        tasks: builtins.list[Task] = []
        seen: set[uuid.UUID] = set()
        for index, item in enumerate(items):
            data = _validated(TaskCreate, item, prefix=f"items[{index}].")
            if data.id is not None:
                if data.id in seen:
                    raise TaskConflict(f"items[{index}].id: {data.id} appears twice")
                seen.add(data.id)
            tasks.append(self._new(data))
        if not tasks:
            return 0
        connection = Task._meta.db.connection_name
        with _translated():
            async with write_transaction(connection) as tx:
                wanted = builtins.list(seen)
                for start in range(0, len(wanted), _BULK_BATCH):
                    chunk = wanted[start : start + _BULK_BATCH]
                    if await Task.filter(id__in=chunk).using_db(tx).exists():
                        raise TaskConflict("an item's id is already in use")
                for start in range(0, len(tasks), _BULK_BATCH):
                    batch = tasks[start : start + _BULK_BATCH]
                    await Task.bulk_create(batch, using_db=tx)
                    if progress is not None:
                        progress(start + len(batch))
        return len(tasks)

    @_guarded
    async def update(
        self,
        task_id: uuid.UUID | str,
        data: TaskUpdate,
        *,
        expected_version: int | None = None,
    ) -> TaskRead:
        """Change the fields ``data`` sets. With ``expected_version``, refuse with
        ``TaskConflict`` (changing nothing) unless the stored version matches. A
        change that changes nothing is not a write: the version stays."""
        changes = _validated(TaskUpdate, data).changes()
        return await self._write(task_id, expected_version, lambda _task: changes)

    @_guarded
    async def complete(
        self, task_id: uuid.UUID | str, *, expected_version: int | None = None
    ) -> TaskRead:
        """Mark the task completed; on a completed task, a no-op (version kept)."""
        return await self._write(task_id, expected_version, _set_status(TaskStatus.COMPLETED))

    @_guarded
    async def reopen(
        self, task_id: uuid.UUID | str, *, expected_version: int | None = None
    ) -> TaskRead:
        """Mark the task pending again; on a pending task, a no-op (version kept)."""
        return await self._write(task_id, expected_version, _set_status(TaskStatus.PENDING))

    @_guarded
    async def delete(
        self, task_id: uuid.UUID | str, *, expected_version: int | None = None
    ) -> None:
        """Delete the task; ``TaskConflict`` if ``expected_version`` is stale."""
        uid = _task_uuid(task_id)
        _check_version(expected_version)
        query = self._mine(uid)
        if expected_version is not None:
            query = query.filter(version=expected_version)
        if await query.delete():
            return
        if expected_version is not None and await self._mine(uid).exists():
            raise TaskConflict(f"task {uid} is not at version {expected_version}")
        raise TaskNotFound(task_id)

    # -- internals ------------------------------------------------------------------

    def _mine(self, task_id: uuid.UUID | None) -> Any:
        if task_id is None:
            # A malformed id matches nothing; filtering keeps one code path.
            return Task.filter(user_id=self._owner, id=uuid.UUID(int=0))
        return Task.filter(user_id=self._owner, id=task_id)

    def _new(self, data: TaskCreate) -> Task:
        task = Task(
            id=data.id or uuid.uuid4(),
            user_id=self._owner,
            title=data.title,
            description=data.description,
            status=data.status,
        )
        with _translated():
            task.clean()
        return task

    def _same_create(self, existing: Task, data: TaskCreate) -> TaskRead:
        same = (
            existing.user_id == self._owner
            and existing.title == data.title
            and existing.description == data.description
            and existing.status == data.status
        )
        if not same:
            # One message whoever owns the id: nothing about the other row leaks.
            raise TaskConflict(f"task id {data.id} is already used for different content")
        return _read(existing)

    async def _write(
        self,
        task_id: uuid.UUID | str,
        expected_version: int | None,
        compute: Callable[[Task], dict[str, Any]],
    ) -> TaskRead:
        uid = _task_uuid(task_id)
        _check_version(expected_version)
        if uid is None:
            raise TaskNotFound(task_id)
        connection = Task._meta.db.connection_name
        with _translated():
            async with write_transaction(connection) as tx:
                # FOR UPDATE on PostgreSQL: concurrent writers queue here and then
                # see the version the winner wrote.
                task = await self._mine(uid).using_db(tx).select_for_update().first()
                if task is None:
                    raise TaskNotFound(task_id)
                if expected_version is not None and task.version != expected_version:
                    raise TaskConflict(
                        f"task {uid} is at version {task.version}, not {expected_version}"
                    )
                changes = {
                    name: value
                    for name, value in compute(task).items()
                    if getattr(task, name) != value
                }
                if not changes:
                    return _read(task)
                updated = (
                    await self._mine(uid)
                    .filter(version=task.version)
                    .using_db(tx)
                    .update(**changes)
                )
                if updated != 1:  # pragma: no cover - the row lock makes this unreachable
                    raise TaskConflict(f"task {uid} changed concurrently")
                task = await self._mine(uid).using_db(tx).first()
        return _read(task)


def _set_status(status: TaskStatus) -> Callable[[Task], dict[str, Any]]:
    return lambda _task: {"status": status}


def _read(task: Task) -> TaskRead:
    return TaskRead.model_validate(task)


def _task_uuid(task_id: object) -> uuid.UUID | None:
    """The id as a UUID, or None when it cannot be one (reported as not found)."""
    if isinstance(task_id, uuid.UUID):
        return task_id
    if isinstance(task_id, str) and len(task_id) <= 64:
        try:
            return uuid.UUID(task_id)
        except ValueError:
            return None
    return None


def _check_version(expected_version: object) -> None:
    if expected_version is None:
        return
    if isinstance(expected_version, bool) or not isinstance(expected_version, int):
        raise TaskValidationError("expected_version", "must be an integer")
    if not 1 <= expected_version <= _MAX_VERSION:
        raise TaskValidationError("expected_version", f"must be between 1 and {_MAX_VERSION}")


def _status(value: object) -> TaskStatus:
    try:
        return TaskStatus(value)  # type: ignore[arg-type]  # any value: refused below
    except ValueError:
        allowed = ", ".join(member.value for member in TaskStatus)
        raise TaskValidationError("status", f"must be one of {allowed}") from None


def _validated(schema: type[Schema], data: object, *, prefix: str = "") -> Schema:
    """``data`` validated again: a ``model_construct``-ed or mutated schema is
    checked like fresh input."""
    if not isinstance(data, schema):
        raise TaskValidationError(prefix.rstrip(".") or "data", f"must be a {schema.__name__}")
    try:
        fields = data.model_dump(exclude_unset=True, warnings=False)
        return schema.model_validate(fields)
    except pydantic.ValidationError as exc:
        error = exc.errors(include_input=False)[0]
        field = ".".join(str(part) for part in error["loc"]) or "data"
        raise TaskValidationError(prefix + field, error["msg"]) from None


_CONSTRAINT_FIELDS: Final = ("user_id", "title", "description", "status", "version", "completed_at")


def _unavailable(exc: BaseException) -> TaskStoreUnavailable | None:
    """The typed error for a database that is down, gone, busy or slow, if it is."""
    import asyncpg  # deferred: not needed on SQLite

    if isinstance(
        exc, asyncpg.InvalidSQLStatementNameError | asyncpg.DuplicatePreparedStatementError
    ):
        return TaskStoreUnavailable(
            f"{exc} -- behind a transaction-mode pooler (PgBouncer), turn asyncpg's "
            "statement cache off: TODO_APP_STATEMENT_CACHE_SIZE=0 or pgbouncer=true in the URL"
        )
    if isinstance(exc, asyncpg.QueryCanceledError | asyncio.TimeoutError | TimeoutError):
        return TaskStoreTimeout("the database did not answer in time")
    if isinstance(
        exc,
        OSError
        | DBConnectionError
        | asyncpg.PostgresConnectionError
        | asyncpg.CannotConnectNowError
        | asyncpg.TooManyConnectionsError
        | asyncpg.AdminShutdownError
        # asyncpg's own state machine, when the server vanished mid-operation.
        | asyncpg.InternalClientError,
    ):
        reason = str(exc).splitlines()[0][:200] if str(exc) else ""
        return TaskStoreUnavailable(
            f"the database is unavailable ({type(exc).__name__}{': ' + reason if reason else ''})"
        )
    if isinstance(exc, asyncpg.InterfaceError) and (
        "closed" in str(exc) or "in progress" in str(exc)
    ):
        return TaskStoreUnavailable(f"the connection was lost ({str(exc)[:200]})")
    if isinstance(exc, OperationalError) and "database is locked" in str(exc):
        return TaskStoreUnavailable("the database is busy (locked by another writer)")
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, OperationalError | TransactionManagementError) and cause is not None:
        return _unavailable(cause)
    return None


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Turn the database's refusals and failures into the repository's typed errors."""
    try:
        yield
    except TaskError:
        raise
    except ValidationError as exc:
        field, _, message = str(exc).partition(": ")
        raise TaskValidationError(field or "data", message or str(exc)) from None
    except IntegrityError as exc:
        message = str(exc)
        if "todo_app_task_pkey" in message or "todo_app_task.id" in message:
            raise TaskConflict("a task with this id already exists") from None
        for column in _CONSTRAINT_FIELDS:
            if f"todo_app_task_{column}_" in message or f"todo_app_task.{column}" in message:
                raise TaskValidationError(column, "refused by the database") from None
        raise TaskValidationError("data", "refused by the database") from None
    except Exception as exc:
        if (unavailable := _unavailable(exc)) is not None:
            raise unavailable from exc
        message = str(exc)
        if isinstance(exc, OperationalError) and "value too long" in message:
            raise TaskValidationError("data", "a value is too long") from None
        if isinstance(exc, OperationalError) and (
            "0x00" in message or "invalid byte sequence" in message
        ):
            raise TaskValidationError("data", "text must not contain NUL characters") from None
        raise
