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
import functools
import sqlite3
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Concatenate, Final, ParamSpec, TypeVar

import pydantic
from tortoise.backends.base.client import PoolConnectionWrapper
from tortoise.exceptions import (
    BaseORMException,
    DBConnectionError,
    IntegrityError,
    OperationalError,
    TransactionManagementError,
    ValidationError,
)

from todo_app import replicas, rules, sql
from todo_app.connection import connection_failure
from todo_app.errors import (
    TaskConflict,
    TaskError,
    TaskNotFound,
    TaskStoreError,
    TaskStoreTimeout,
    TaskStoreUnavailable,
    TaskValidationError,
)
from todo_app.models import Task, TaskStatus, utc_now
from todo_app.pagination import Cursor, Order
from todo_app.pool import mark_clean
from todo_app.schemas import TaskCreate, TaskPage, TaskRead, TaskUpdate
from todo_app.sql import Runner
from todo_app.transactions import write_transaction

__all__ = ["MAX_PAGE_SIZE", "TaskRepository"]

MAX_PAGE_SIZE: Final = 200
_KNOWN_STATUSES: Final = frozenset(member.value for member in TaskStatus)
_MAX_VERSION: Final = sql.MAX_VERSION  # the version column is a 32-bit integer
_BULK_BATCH: Final = 500
_COPY_BATCH: Final = 5000
Schema = TypeVar("Schema", TaskCreate, TaskUpdate)


P = ParamSpec("P")
R = TypeVar("R")


class _CallerError(Exception):
    """Carries an exception raised by the caller's own code (the items iterable, a
    progress callback) through the guard, so that it is never taken for a database
    failure."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(str(original))
        self.original = original


def _guarded(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Every public method: typed errors only, whatever the database does."""

    @functools.wraps(method)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except TaskError:
            raise
        except _CallerError as exc:
            raise exc.original from None  # the caller's own code failed: not ours to map
        except Exception as exc:
            typed = _translate(exc)
            if typed is None:
                raise  # a bug, not a database answer: let it show as what it is
            # Keep the driver's error as the cause where it helps an operator (an
            # outage); input errors stand alone.
            raise typed from (exc if isinstance(typed, TaskStoreError) else None)

    return guarded


# -- replicas seam (issue 13): reads may run on a replica, writes leave a token --------


def _writes(
    method: Callable[Concatenate[TaskRepository, P], Awaitable[R]],
) -> Callable[Concatenate[TaskRepository, P], Awaitable[R]]:
    """A write method: once it succeeded, the repository's consistency token covers
    it (``todo_app.replicas.after_write``; a no-op without read replicas)."""

    @functools.wraps(method)
    async def writing(self: TaskRepository, /, *args: P.args, **kwargs: P.kwargs) -> R:
        result = await method(self, *args, **kwargs)
        self._token = await replicas.after_write(Task._meta.db, self._token)
        return result

    return writing


def _reader(token: int | None) -> Any:
    """Where a read runs: a read replica that ``token`` allows, else the primary
    (``_runner()``); the primary inside a transaction and without read replicas."""
    db = Task._meta.db
    return replicas.reader(db, token, Runner) or Runner(db)


# -- end of the replicas seam ----------------------------------------------------------


class TaskRepository:
    """Tasks of one owner. Cheap to create: make one per request.

    ``consistency``: the ``consistency_token`` of an earlier repository (a previous
    request of the same client): reads then see every write it covers, even on a
    read replica (see the README's "Scaling out").
    """

    __slots__ = ("_owner", "_token")

    def __init__(self, owner_id: str, consistency: str | None = None) -> None:
        try:
            self._owner = rules.clean_user_id(owner_id)
        except ValueError as exc:
            raise TaskValidationError("owner_id", str(exc)) from None
        try:
            self._token = replicas.parse_token(consistency)
        except ValueError as exc:
            raise TaskValidationError("consistency", str(exc)) from None

    @property
    def owner_id(self) -> str:
        return self._owner

    @property
    def consistency_token(self) -> str | None:
        """A token covering this repository's writes (and the token it was given):
        hand it to the next request's repository. Opaque, header- and cookie-safe.
        None without read replicas, where every read sees every committed write."""
        return replicas.format_token(self._token)

    def __repr__(self) -> str:
        return f"TaskRepository(owner_id={self._owner!r})"

    # -- reading --------------------------------------------------------------------

    @_guarded
    async def get(self, task_id: uuid.UUID | str) -> TaskRead:
        """The task, or ``TaskNotFound`` (also for another owner's task)."""
        uid = _task_uuid(task_id)
        runner = _reader(self._token)
        row = (
            None
            if uid is None
            else await runner.fetchrow(sql.GET, uid, self._owner, idempotent=True)
        )
        if row is None:
            raise TaskNotFound(task_id)
        return _read(row)

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
        inserted while a client walks the pages never make it see a task twice, and
        a deep page costs what the first one does.
        """
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise TaskValidationError("limit", "must be an integer")
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise TaskValidationError("limit", f"must be between 1 and {MAX_PAGE_SIZE}")
        if order not in ("newest", "oldest"):
            raise TaskValidationError("order", "must be 'newest' or 'oldest'")
        wanted = _status(status) if status is not None else None
        args: builtins.list[Any] = [self._owner]
        if wanted is not None:
            args.append(wanted.value)
        if cursor is not None:
            after = Cursor.decode(cursor, order=order, status=wanted)
            args += [after.created_at, after.id]
        args.append(limit + 1)
        query = sql.listing(
            newest=order == "newest", with_status=wanted is not None, after=cursor is not None
        )
        rows = await _reader(self._token).fetch(query, *args, idempotent=True)
        items = [_read(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = items[-1]
            next_cursor = Cursor(last.created_at, last.id, order, wanted).encode()
        # Items were validated one by one just above: no second pass over the list.
        return TaskPage.model_construct(items=items, next_cursor=next_cursor)

    @_guarded
    async def counts(self) -> dict[TaskStatus | str, int]:
        """How many tasks the owner has in each status; every ``TaskStatus`` is present
        (zeros included), and a status written by a newer version is counted under
        its stored string."""
        result: dict[TaskStatus | str, int] = dict.fromkeys(TaskStatus, 0)
        for row in await _reader(self._token).fetch(sql.COUNTS, self._owner, idempotent=True):
            status = str(row["status"])
            result[TaskStatus(status) if status in _KNOWN_STATUSES else status] = int(row["n"])
        return result

    @_guarded
    async def ids_starting_with(self, prefix: str, *, limit: int = 2) -> builtins.list[uuid.UUID]:
        """Ids of this owner's tasks that start with ``prefix`` (hex digits and dashes,
        case-insensitive), at most ``limit``: how a CLI resolves a shortened id."""
        typed = prefix.strip().lower() if isinstance(prefix, str) else ""
        if not typed or len(typed) > 36 or any(c not in "0123456789abcdef-" for c in typed):
            raise TaskValidationError("prefix", "must be hex digits and dashes of a task id")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise TaskValidationError("limit", "must be a positive integer")
        rows = await _runner().fetch(sql.IDS_LIKE, self._owner, typed + "%", limit, idempotent=True)
        return [uuid.UUID(str(row["id"])) for row in rows]

    # -- writing --------------------------------------------------------------------

    @_guarded
    @_writes
    async def create(self, data: TaskCreate) -> TaskRead:
        """Store a new task. With a client-chosen ``id``, repeating the same create
        returns the stored task; the same id with other content (or another
        owner's id) is ``TaskConflict``."""
        data = _validated(TaskCreate, data)
        row = self._row(data)
        runner = _runner()
        # "Insert unless the id exists" is idempotent, so it may be retried on a fresh
        # connection; for a generated id, a second try finds its own first row.
        if await runner.fetch(sql.INSERT_IF_NEW, *row, idempotent=True):
            return _read(dict(zip(sql.COLUMNS, row, strict=True)))
        data = data.model_copy(update={"id": row[0]}) if data.id is None else data
        existing = await runner.fetchrow(sql.GET_ANY_OWNER, row[0], idempotent=True)
        if existing is None:  # pragma: no cover - deleted between the two statements
            raise TaskConflict(f"task id {data.id} is already used for different content")
        return self._same_create(_read(existing), data)

    @_guarded
    @_writes
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
        On PostgreSQL the rows go in with COPY.
        """
        rows: builtins.list[tuple[Any, ...]] = []
        seen: set[uuid.UUID] = set()
        try:
            iterator = iter(items)
        except TypeError:
            raise TaskValidationError("items", "must be an iterable of TaskCreate") from None
        for index, item in enumerate(_callers(iterator)):
            data = _validated(TaskCreate, item, prefix=f"items[{index}].")
            if data.id is not None:
                if data.id in seen:
                    raise TaskConflict(f"items[{index}].id: {data.id} appears twice")
                seen.add(data.id)
            rows.append(self._row(data))
        if not rows:
            return 0
        db = Task._meta.db
        report = _report(progress)
        if db.capabilities.dialect == "postgres":
            await _copy_rows(db, rows, seen, report)
        else:
            await _insert_rows(db, rows, seen, report)
        return len(rows)

    @_guarded
    @_writes
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
        return await self._write(task_id, expected_version, changes)

    @_guarded
    @_writes
    async def complete(
        self, task_id: uuid.UUID | str, *, expected_version: int | None = None
    ) -> TaskRead:
        """Mark the task completed; on a completed task, a no-op (version kept)."""
        return await self._write(task_id, expected_version, {"status": TaskStatus.COMPLETED})

    @_guarded
    @_writes
    async def reopen(
        self, task_id: uuid.UUID | str, *, expected_version: int | None = None
    ) -> TaskRead:
        """Mark the task pending again; on a pending task, a no-op (version kept)."""
        return await self._write(task_id, expected_version, {"status": TaskStatus.PENDING})

    @_guarded
    @_writes
    async def delete(
        self, task_id: uuid.UUID | str, *, expected_version: int | None = None
    ) -> None:
        """Delete the task; ``TaskConflict`` if ``expected_version`` is stale."""
        uid = _task_uuid(task_id)
        _check_version(expected_version)
        if uid is None:
            raise TaskNotFound(task_id)
        runner = _runner()
        if expected_version is None:
            deleted = await runner.fetch(sql.DELETE, uid, self._owner)
        else:
            deleted = await runner.fetch(sql.DELETE_VERSION, uid, self._owner, expected_version)
        if deleted:
            return
        if expected_version is not None and await runner.fetchrow(sql.GET, uid, self._owner):
            raise TaskConflict(f"task {uid} is not at version {expected_version}")
        raise TaskNotFound(task_id)

    @_guarded
    @_writes
    async def delete_all(self) -> int:
        """Delete every task of this owner (an account's removal, say); the count."""
        return len(await _runner().fetch(sql.DELETE_ALL, self._owner))

    # -- internals ------------------------------------------------------------------

    def _row(self, data: TaskCreate) -> tuple[Any, ...]:
        """The stored row of a new task, in ``sql.COLUMNS`` order."""
        now = utc_now()
        completed_at = now if data.status == TaskStatus.COMPLETED else None
        return (
            data.id or uuid.uuid4(),
            self._owner,
            data.title,
            data.description,
            data.status.value,
            1,
            now,
            now,
            completed_at,
        )

    def _same_create(self, existing: TaskRead, data: TaskCreate) -> TaskRead:
        same = (
            existing.user_id == self._owner
            and existing.title == data.title
            and existing.description == data.description
            and existing.status == data.status
        )
        if not same:
            # One message whoever owns the id: nothing about the other row leaks.
            raise TaskConflict(f"task id {data.id} is already used for different content")
        return existing

    async def _write(
        self,
        task_id: uuid.UUID | str,
        expected_version: int | None,
        changes: dict[str, Any],
    ) -> TaskRead:
        """One UPDATE that applies ``changes`` only if the row is this owner's, at the
        expected version, and actually changes; when it matches nothing, one SELECT
        tells why (not found, stale version, or nothing to change)."""
        uid = _task_uuid(task_id)
        _check_version(expected_version)
        if uid is None:
            raise TaskNotFound(task_id)
        runner = _runner()
        if changes:
            names = sorted(changes)
            values = [_column_value(changes[name]) for name in names]
            query = sql.update(frozenset(names), with_version=expected_version is not None)
            args = [uid, self._owner, utc_now(), *values]
            if expected_version is not None:
                args.append(expected_version)
            row = await runner.fetchrow(query, *args)
            if row is not None:
                return _read(row)
        current = await runner.fetchrow(sql.GET, uid, self._owner)
        if current is None:
            raise TaskNotFound(task_id)
        task = _read(current)
        if expected_version is not None and task.version != expected_version:
            raise TaskConflict(f"task {uid} is at version {task.version}, not {expected_version}")
        would_change = any(getattr(task, name) != value for name, value in changes.items())
        if would_change and task.version >= _MAX_VERSION:
            raise TaskConflict(f"task {uid} has reached its last version: copy it to change it")
        return task  # nothing to change: not a write, the version stays


async def _copy_rows(
    db: Any,
    rows: builtins.list[tuple[Any, ...]],
    ids: set[uuid.UUID],
    progress: Callable[[int], object] | None,
) -> None:
    """PostgreSQL: check client ids in one query, then COPY in batches, all in one
    transaction (a savepoint inside a caller's transaction)."""
    wrapper = db.acquire_connection()
    async with wrapper as connection:
        if isinstance(wrapper, PoolConnectionWrapper):
            mark_clean(connection)
        async with connection.transaction():
            if ids and await connection.fetchval(
                'SELECT count(*) FROM "todo_app_task" WHERE "id" = ANY($1::uuid[])', list(ids)
            ):
                raise TaskConflict("an item's id is already in use")
            for start in range(0, len(rows), _COPY_BATCH):
                batch = rows[start : start + _COPY_BATCH]
                await connection.copy_records_to_table(
                    "todo_app_task", records=batch, columns=sql.COLUMNS
                )
                if progress is not None:
                    progress(start + len(batch))


async def _insert_rows(
    db: Any,
    rows: builtins.list[tuple[Any, ...]],
    ids: set[uuid.UUID],
    progress: Callable[[int], object] | None,
) -> None:
    """SQLite: one write transaction of batched multi-row INSERTs."""
    runner = Runner(db)
    async with write_transaction(db.connection_name) as tx:
        wanted = builtins.list(ids)
        for start in range(0, len(wanted), _BULK_BATCH):
            chunk = wanted[start : start + _BULK_BATCH]
            marks = ", ".join("?" * len(chunk))
            _, taken = await tx.execute_query(
                f'SELECT 1 FROM "todo_app_task" WHERE "id" IN ({marks}) LIMIT 1',  # noqa: S608
                [str(task_id) for task_id in chunk],
            )
            if taken:
                raise TaskConflict("an item's id is already in use")
        insert = sql.statement(sql.INSERT, "sqlite")
        for start in range(0, len(rows), _BULK_BATCH):
            batch = rows[start : start + _BULK_BATCH]
            await tx.execute_many(insert, [[runner.value(v) for v in row] for row in batch])
            if progress is not None:
                progress(start + len(batch))


def _callers(iterator: Iterator[Any]) -> Iterator[Any]:
    """Items of the caller's iterable; whatever it raises stays the caller's."""
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except Exception as exc:
            raise _CallerError(exc) from exc
        yield item


def _report(progress: Callable[[int], object] | None) -> Callable[[int], object] | None:
    """The caller's progress callback; whatever it raises stays the caller's."""
    if progress is None:
        return None

    def report(done: int) -> None:
        try:
            progress(done)
        except Exception as exc:
            raise _CallerError(exc) from exc

    return report


def _runner() -> Runner:
    # Task's connection in the current context: the host's name, or its transaction.
    return Runner(Task._meta.db)


def _read(row: Any) -> TaskRead:
    return TaskRead.model_validate(dict(row))


def _column_value(value: Any) -> Any:
    return value.value if isinstance(value, TaskStatus) else value


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
        # The set fields, as stored on the instance (cheaper than model_dump, and the
        # same values: these schemas have no serializers).
        fields = {name: getattr(data, name) for name in data.model_fields_set}
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
        | asyncpg.InvalidCatalogNameError
        | asyncpg.InvalidAuthorizationSpecificationError
        | asyncpg.TargetServerAttributeNotMatched
        # asyncpg's own state machine, when the server vanished mid-operation.
        | asyncpg.InternalClientError,
    ):
        return TaskStoreUnavailable(f"the database is unavailable: {connection_failure(exc)}")
    if isinstance(exc, asyncpg.InterfaceError) and (
        "closed" in str(exc) or "in progress" in str(exc)
    ):
        return TaskStoreUnavailable(f"the connection was lost ({str(exc)[:200]})")
    if isinstance(exc, OperationalError | sqlite3.OperationalError) and "locked" in str(exc):
        return TaskStoreUnavailable("the database is busy (locked by another writer)")
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, OperationalError | TransactionManagementError) and cause is not None:
        return _unavailable(cause)
    return None


def _translate(exc: Exception) -> TaskError | None:
    """The repository's typed error for a database refusal or failure; None when
    ``exc`` did not come from the database."""
    if isinstance(exc, ValidationError):  # Tortoise's: "<field>: <message>"
        field, _, message = str(exc).partition(": ")
        return TaskValidationError(field or "data", message or str(exc))
    if _is_integrity_error(exc):
        return _integrity_error(str(exc))
    if (unavailable := _unavailable(exc)) is not None:
        return unavailable
    if not _from_database(exc):
        return None
    message = str(exc)
    if "value too long" in message or "out of range" in message:
        return TaskValidationError("data", "a value is too long or out of range")
    if "0x00" in message or "invalid byte sequence" in message:
        return TaskValidationError("data", "text must not contain NUL characters")
    return TaskStoreError(f"the database refused: {message.splitlines()[0][:200]}")


def _from_database(exc: BaseException) -> bool:
    import asyncpg

    return isinstance(exc, BaseORMException | sqlite3.Error | asyncpg.PostgresError)


def _is_integrity_error(exc: Exception) -> bool:
    if isinstance(exc, IntegrityError | sqlite3.IntegrityError):
        return True
    import asyncpg

    return isinstance(exc, asyncpg.IntegrityConstraintViolationError)


def _integrity_error(message: str) -> TaskError:
    """A CHECK, NOT NULL or key violation, named after the column it guards."""
    if "todo_app_task_pkey" in message or "todo_app_task.id" in message:
        return TaskConflict("a task with this id already exists")
    for column in _CONSTRAINT_FIELDS:
        if f"todo_app_task_{column}_" in message or f"todo_app_task.{column}" in message:
            return TaskValidationError(column, "refused by the database")
        if f'column "{column}"' in message:
            return TaskValidationError(column, "refused by the database")
    return TaskValidationError("data", "refused by the database")
