"""``TaskRepository``: the only way todo_app writes tasks, bound to one owner.

Every query it builds carries ``user_id = <owner>``, so no method can read, change or
delete another owner's row; another owner's task is reported exactly like a missing
one. Every failure is one of ``errors.py``'s types: input is validated again on entry
(a ``model_construct``-ed schema does not slip through), and the database's own
refusals (CHECK, NOT NULL, duplicate key) are translated, never leaked raw. A stored
row that does not read back as a task (written around the package, by raw SQL) is
``TaskDataError`` naming it, on reads and writes; an update never writes such a row
(the statement itself checks it), so no write commits what it cannot return.
"""

from __future__ import annotations

import builtins
import functools
import math
import operator
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, Concatenate, Final, NoReturn, ParamSpec, TypeVar

import pydantic

from todo_app import replicas, rules, tokens
from todo_app.dialects import Runner, translate
from todo_app.dialects.base import MALFORMED, Statements, model_columns
from todo_app.errors import (
    TaskConflict,
    TaskDataError,
    TaskError,
    TaskNotFound,
    TaskStoreError,
    TaskValidationError,
)
from todo_app.models import Task
from todo_app.pagination import Cursor, Order
from todo_app.rules import TaskStatus, utc_now
from todo_app.schemas import TaskCreate, TaskPage, TaskRead, TaskUpdate

__all__ = ["MAX_PAGE_SIZE", "TaskRepository"]

MAX_PAGE_SIZE: Final = 200
_KNOWN_STATUSES: Final = frozenset(member.value for member in TaskStatus)
_MAX_VERSION: Final = rules.MAX_VERSION
_COLUMNS: Final = model_columns()
#: What a client may set on create (the id is checked separately).
_CREATE_FIELDS: Final = tuple(name for name in TaskCreate.model_fields if name != "id")
#: What the store itself sets on create, in the order ``_row`` lists them.
_STORE_SET: Final = ("id", "user_id", "version", "created_at", "updated_at", "completed_at")


def _check_page_size(limit: object) -> None:
    """How many rows a read may return: a page size, checked before any SQL (a huge
    int would overflow the driver's 64-bit parameter)."""
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TaskValidationError("limit", "must be an integer")
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise TaskValidationError("limit", f"must be between 1 and {MAX_PAGE_SIZE}")


def _in_column_order() -> operator.itemgetter[Any]:
    """A new task's row in column order, from ``(*client values, *store values)``:
    built once, so that a bulk import pays one C call per row for it."""
    sources = (*_CREATE_FIELDS, *_STORE_SET)
    unset = [column for column in _COLUMNS if column not in sources]
    if unset:  # a field added to Task but to neither TaskCreate nor _STORE_SET
        raise RuntimeError(f"nothing sets the column(s) {unset} of a new task")
    return operator.itemgetter(*(sources.index(column) for column in _COLUMNS))


_IN_COLUMN_ORDER: Final = _in_column_order()
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
        except OverflowError:
            # asyncpg decoding a stored timestamp Python cannot hold: name the row.
            owner = args[0] if args and isinstance(args[0], TaskRepository) else None
            found = None if owner is None else await _diagnosed(owner.owner_id)
            if found is None:
                raise
            raise found from None
        except Exception as exc:
            typed = translate(exc)
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
        if replicas.in_use():
            self._token = await replicas.after_write(Task._meta.db, self._token)
        return result

    return writing


def _reader(token: int | None, max_lag: float | None) -> Any:
    """Where a read runs: a read replica that ``token`` and ``max_lag`` allow, else the
    primary (``_runner()``); the primary inside a transaction and without read replicas."""
    db = Task._meta.db
    return replicas.reader(db, token, Runner, max_lag=max_lag) or Runner(db)


def _lag_bound(max_lag: object) -> float | None:
    if max_lag is None:
        return None
    if (
        isinstance(max_lag, bool)
        or not isinstance(max_lag, int | float)
        or not math.isfinite(max_lag)
        or max_lag < 0
    ):
        raise TaskValidationError("max_lag", "must be a number of seconds, 0 or more")
    return float(max_lag)


# -- end of the replicas seam ----------------------------------------------------------


class TaskRepository:
    """Tasks of one owner. Cheap to create: make one per request.

    ``consistency``: the ``consistency_token`` of an earlier repository (a previous
    request of the same client): reads then see every write it covers, even on a
    read replica; ``"primary"``, or anything that is not a token of ours, reads on
    the primary. ``max_lag``: this repository's reads run on a replica only if it
    provably holds every commit older than that many seconds (tighter than the
    configured limit, never looser; 0: the primary). See docs/scaling-out.md.
    """

    __slots__ = ("_max_lag", "_owner", "_token")

    def __init__(
        self, owner_id: str, consistency: str | None = None, *, max_lag: float | None = None
    ) -> None:
        try:
            self._owner = rules.clean_user_id(owner_id)
        except ValueError as exc:
            raise TaskValidationError("owner_id", str(exc)) from None
        self._token = tokens.parse_token(consistency)
        self._max_lag = _lag_bound(max_lag)

    @property
    def owner_id(self) -> str:
        return self._owner

    @property
    def consistency_token(self) -> str | None:
        """A token covering this repository's writes (and the token it was given):
        hand it to the next request's repository. Opaque, header- and cookie-safe.
        None without read replicas, where every read sees every committed write."""
        return tokens.format_token(self._token)

    def __repr__(self) -> str:
        return f"TaskRepository(owner_id={self._owner!r})"

    # -- reading --------------------------------------------------------------------

    @_guarded
    async def get(self, task_id: uuid.UUID | str) -> TaskRead:
        """The task, or ``TaskNotFound`` (also for another owner's task)."""
        uid = _task_uuid(task_id)
        runner = _reader(self._token, self._max_lag)
        row = (
            None
            if uid is None
            else await runner.fetchrow(runner.sql.get, uid, self._owner, idempotent=True)
        )
        if row is None:
            raise TaskNotFound(task_id)
        return _read(row, runner.sql)

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
        _check_page_size(limit)
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
        reader = _reader(self._token, self._max_lag)
        query = reader.sql.listing(
            newest=order == "newest", with_status=wanted is not None, after=cursor is not None
        )
        rows = await reader.fetch(query, *args, idempotent=True)
        items = [_read(row, reader.sql) for row in rows[:limit]]
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
        reader = _reader(self._token, self._max_lag)
        for row in await reader.fetch(reader.sql.counts, self._owner, idempotent=True):
            status = str(row["status"])
            result[TaskStatus(status) if status in _KNOWN_STATUSES else status] = int(row["n"])
        return result

    @_guarded
    async def ids_starting_with(self, prefix: str, *, limit: int = 2) -> builtins.list[uuid.UUID]:
        """Ids of this owner's tasks that start with ``prefix`` (hex digits and dashes,
        case-insensitive), at most ``limit`` (a page size, 1..MAX_PAGE_SIZE): how a CLI
        resolves a shortened id."""
        typed = prefix.strip().lower() if isinstance(prefix, str) else ""
        if not typed or len(typed) > 36 or any(c not in "0123456789abcdef-" for c in typed):
            raise TaskValidationError("prefix", "must be hex digits and dashes of a task id")
        _check_page_size(limit)
        runner = _runner()
        rows = await runner.fetch(
            runner.sql.ids_like, self._owner, typed + "%", limit, idempotent=True
        )
        ids = []
        for row in rows:
            try:
                ids.append(uuid.UUID(str(row["id"])))
            except ValueError:
                _unreadable(row["id"], "id", "not a UUID")
        return ids

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
        if await runner.fetch(runner.sql.insert_if_new, *row, idempotent=True):
            return _read(dict(zip(runner.sql.columns, row, strict=True)), runner.sql)
        data = data.model_copy(update={"id": row[0]}) if data.id is None else data
        existing = await runner.fetchrow(runner.sql.get_any_owner, row[0], idempotent=True)
        if existing is None:  # pragma: no cover - deleted between the two statements
            raise TaskConflict(f"task id {data.id} is already used for different content")
        return self._same_create(_read(existing, runner.sql), data)

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
        runner = _runner()
        await runner.dialect.bulk_insert(runner.db, rows, seen, _report(progress))
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
            deleted = await runner.fetch(runner.sql.delete, uid, self._owner)
        else:
            deleted = await runner.fetch(
                runner.sql.delete_version, uid, self._owner, expected_version
            )
        if deleted:
            return
        if expected_version is not None and await runner.fetchrow(runner.sql.get, uid, self._owner):
            raise TaskConflict(f"task {uid} is not at version {expected_version}")
        raise TaskNotFound(task_id)

    @_guarded
    @_writes
    async def delete_all(self) -> int:
        """Delete every task of this owner (an account's removal, say); the count."""
        runner = _runner()
        return len(await runner.fetch(runner.sql.delete_all, self._owner))

    # -- internals ------------------------------------------------------------------

    def _row(self, data: TaskCreate) -> tuple[Any, ...]:
        """The stored row of a new task, in the statements' column order: every field
        the client sent that is a column, and what the store itself sets."""
        now = utc_now()
        completed_at = now if data.status == TaskStatus.COMPLETED else None
        values = [_column_value(getattr(data, name)) for name in _CREATE_FIELDS]
        values += (data.id or uuid.uuid4(), self._owner, 1, now, now, completed_at)
        row: tuple[Any, ...] = _IN_COLUMN_ORDER(values)
        return row

    def _same_create(self, existing: TaskRead, data: TaskCreate) -> TaskRead:
        same = existing.user_id == self._owner and all(
            getattr(existing, name) == getattr(data, name) for name in _CREATE_FIELDS
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
            query = runner.sql.update(frozenset(names), with_version=expected_version is not None)
            args = [uid, self._owner, utc_now(), *values]
            if expected_version is not None:
                args.append(expected_version)
            row = await runner.fetchrow(query, *args)
            if row is not None:
                return _read(row, runner.sql)
        current = await runner.fetchrow(runner.sql.get_checked, uid, self._owner)
        if current is None:
            raise TaskNotFound(task_id)
        task = _read(current, runner.sql)  # a row the UPDATE would not touch stops here
        if expected_version is not None and task.version != expected_version:
            raise TaskConflict(f"task {uid} is at version {task.version}, not {expected_version}")
        would_change = any(getattr(task, name) != value for name, value in changes.items())
        if would_change and task.version >= _MAX_VERSION:
            raise TaskConflict(f"task {uid} has reached its last version: copy it to change it")
        return task  # nothing to change: not a write, the version stays


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


def _read(row: Any, sql: Statements) -> TaskRead:
    """A stored row as a task, or ``TaskDataError`` naming the row and the column whose
    stored value does not read back (written around the package, by raw SQL).

    A read takes any row ``TaskRead`` parses; a row from ``get_checked`` must also be
    in the form todo_app writes (the dialect's checks), as an update requires."""
    values = dict(row)
    column = values.pop(MALFORMED, None)
    if column is not None:
        raise TaskDataError(values.get("id"), column, sql.checks[column][1])
    try:
        return TaskRead.model_validate(values)
    except pydantic.ValidationError as exc:
        error = exc.errors(include_input=False)[0]
        column = str(error["loc"][0]) if error["loc"] else "data"  # not the union member
        return _unreadable(values.get("id"), column, error["msg"])


def _unreadable(task_id: object, column: str, why: str) -> NoReturn:
    raise TaskDataError(task_id, column, f"readable ({why.splitlines()[0]})")


async def _diagnosed(owner: str) -> TaskDataError | None:
    """When the driver could not decode a row (asyncpg: a year Python cannot hold),
    which of the owner's rows it was, as the typed error; None when none is."""
    runner = _runner()
    try:
        row = await runner.fetchrow(runner.sql.malformed_of_owner, owner, idempotent=True)
    except Exception:  # the diagnosis is a courtesy: the original error stands
        return None
    if row is None:
        return None
    column = str(row[MALFORMED])
    return TaskDataError(row["id"], column, runner.sql.checks[column][1])


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


def _from_fields(schema: type[Schema], fields: dict[str, Any]) -> Schema:
    """``fields`` (a model method's keyword arguments) as ``schema``, failing as the
    repository fails on bad input: ``TaskValidationError`` naming the field."""
    try:
        return schema.model_validate(fields)
    except pydantic.ValidationError as exc:
        error = exc.errors(include_input=False)[0]
        field = ".".join(str(part) for part in error["loc"]) or "data"
        raise TaskValidationError(field, error["msg"]) from None


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


# -- the model's own write methods ------------------------------------------------------


class _ModelWrites:
    """``Task.create()``, ``task.save()`` and ``task.delete()``: the repository's write
    path, so that they keep every rule with the same errors (validation, the owner's
    scope, ``version``, ``updated_at``, ``completed_at``) and there is one
    implementation of each. ``todo_app.models`` (a layer below) looks this up when a
    model write is called; see :func:`todo_app.models.Task.save`."""

    #: What a caller sets; the rest (version, timestamps) is the store's.
    settable: Final = frozenset(TaskCreate.model_fields) | {"user_id"}
    changeable: Final = frozenset(TaskUpdate.model_fields)

    async def create(self, values: dict[str, Any]) -> TaskRead:
        unknown = sorted(set(values) - self.settable)
        if unknown:
            raise TaskValidationError(unknown[0], "is kept by todo_app: it cannot be set")
        fields = dict(values)
        owner = fields.pop("user_id", None)
        if owner is None:
            raise TaskValidationError("user_id", "is required: the owner of the task")
        fields = {name: value for name, value in fields.items() if value is not None}
        return await TaskRepository(owner).create(_from_fields(TaskCreate, fields))

    async def update(
        self, owner: str, task_id: uuid.UUID, version: int, changes: dict[str, Any]
    ) -> TaskRead:
        unknown = sorted(set(changes) - self.changeable)
        if unknown:
            raise TaskValidationError(unknown[0], "is kept by todo_app: it cannot be saved")
        return await TaskRepository(owner).update(
            task_id, _from_fields(TaskUpdate, changes), expected_version=version
        )

    async def delete(self, owner: str, task_id: uuid.UUID) -> None:
        await TaskRepository(owner).delete(task_id)


Task._writes = _ModelWrites()
