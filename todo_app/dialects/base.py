"""What a dialect is, and the SQL every dialect shares, built from the model.

A dialect is everything about one database that the rest of the package must not
know: how it spells a parameter, how the package's fixed statements run on its
driver (and which failures mean "the connection died"), how many rows go in at once,
how a write transaction takes its lock, how migrations run and serialise, how the
live table is read from its catalog, what a column's stored value must be where the
column's type does not guarantee it (:meth:`Dialect.stored_check`: adoption refuses
rows that fail it, an update does not touch them), and the table that maps its
driver's error *codes* to the package's errors. Subclasses fill in :class:`Dialect`.

The statements themselves are written once, here, from ``Task._meta``: the table
name, the columns and their order. A new field on the model (plus its migration)
reaches every statement; ``tests/test_dialects.py`` fails if the model and the SQL
disagree.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import cached_property
from typing import Any, ClassVar, Final

from tortoise import fields
from tortoise.backends.base.client import BaseDBAsyncClient

from todo_app import rules
from todo_app.config import APP_LABEL
from todo_app.errors import TaskConflict, TaskError, TaskValidationError
from todo_app.models import Task
from todo_app.rules import TaskStatus
from todo_app.table_shape import TableShape

__all__ = [
    "MALFORMED",
    "WRITTEN",
    "Dialect",
    "Progress",
    "Replication",
    "Rows",
    "Statements",
    "column_kinds",
    "field_of_constraint",
    "model_columns",
    "refused",
]

Rows = Sequence[Mapping[str, Any]]
Progress = Callable[[int], object] | None


def model_columns() -> tuple[str, ...]:
    """The task table's columns, in the model's declaration order."""
    meta = Task._meta
    projection = meta.fields_db_projection
    return tuple(projection[name] for name in meta.fields_map if name in projection)


#: The result column of the package's row-returning statements that names the first
#: column of the row whose stored value does not read back (NULL for a sound row).
MALFORMED: Final = "todo_app_malformed"
#: The result column of an update that also returns the row it left alone
#: (``Dialect.writable_ctes``): true for the row it wrote.
WRITTEN: Final = "todo_app_written"


def column_kinds() -> dict[str, tuple[str, bool]]:
    """Each column's kind of value (``uuid``, ``text``, ``integer``, ``timestamp``) and
    whether it may be NULL, from the model's fields."""
    meta = Task._meta
    projection = meta.fields_db_projection
    kinds: dict[str, tuple[str, bool]] = {}
    for name, field in meta.fields_map.items():
        if name not in projection:
            continue
        if isinstance(field, fields.UUIDField):
            kind = "uuid"
        elif isinstance(field, fields.DatetimeField):
            kind = "timestamp"
        elif isinstance(field, fields.IntField):
            kind = "integer"
        elif isinstance(field, fields.CharField):
            kind = "text"
        else:  # pragma: no cover - a new kind of field needs its checks written
            raise RuntimeError(f"no stored-value check for the field {name!r}")
        kinds[projection[name]] = (kind, bool(field.null))
    return kinds


def field_of_constraint(name: str | None) -> str:
    """The column a named constraint guards: ``todo_app_task_title_not_blank`` ->
    ``title`` (the migrations name every constraint ``<table>_<column>_<rule>``)."""
    table = Task._meta.db_table
    if not name or not name.startswith(f"{table}_"):
        return "data"
    rest = name.removeprefix(f"{table}_")
    for column in sorted(model_columns(), key=len, reverse=True):
        if rest == column or rest.startswith(f"{column}_"):
            return column
    return "data"


def refused(column: str, constraint: str | None = None) -> TaskError:
    """A database refusal of a value, named after its column; the primary key's is a
    conflict (an id in use)."""
    if constraint == f"{Task._meta.db_table}_pkey" or column == "id":
        return TaskConflict("a task with this id already exists")
    return TaskValidationError(column, "refused by the database")


class Statements:
    """The repository's statements in one dialect's spelling."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        p = dialect.param
        self.table = f'"{Task._meta.db_table}"'
        self.columns = model_columns()
        #: Column -> (SQL true exactly when its stored value reads back, in words what
        #: it must hold), for the columns whose type this dialect does not enforce.
        self.checks: dict[str, tuple[str, str]] = {}
        for column, (kind, nullable) in column_kinds().items():
            check = dialect.stored_check(kind, f'"{column}"')
            if check is not None:
                sound, what = check
                self.checks[column] = (
                    f'("{column}" IS NULL OR ({sound}))'
                    if nullable
                    else f'("{column}" IS NOT NULL AND ({sound}))',
                    what,
                )
        #: The first column of a row whose stored value does not read back, else NULL.
        self.malformed = (
            "CASE "
            + " ".join(f"WHEN NOT {sound} THEN '{c}'" for c, (sound, _) in self.checks.items())
            + " END"
            if self.checks
            else "NULL"
        )
        self.well_formed = " AND ".join(sound for sound, _ in self.checks.values()) or "1 = 1"
        kinds = column_kinds()
        #: What a statement returns of a row: each column as the dialect reads it back.
        self._select = ", ".join(
            f'{read} AS "{column}"' if read != f'"{column}"' else read
            for column in self.columns
            for read in [dialect.read_column(kinds[column][0], f'"{column}"')]
        )
        names = ", ".join(f'"{column}"' for column in self.columns)
        values = ", ".join(p(n) for n in range(1, len(self.columns) + 1))
        t, cols = self.table, self._select
        self.get = f'SELECT {cols} FROM {t} WHERE "id" = {p(1)} AND "user_id" = {p(2)}'
        self.get_any_owner = f'SELECT {cols} FROM {t} WHERE "id" = {p(1)}'
        # The row, and whether it is sound: why an update matched nothing (reads take
        # what reads back; an update takes only a row in the form todo_app writes).
        self.get_checked = (
            f'SELECT {cols}, {self.malformed} AS "{MALFORMED}" FROM {t} '
            f'WHERE "id" = {p(1)} AND "user_id" = {p(2)}'
        )
        self.insert = f"INSERT INTO {t} ({names}) VALUES ({values})"
        # The stored row, as ``get`` reads it: what ``create`` returns.
        self.insert_if_new = f'{self.insert} ON CONFLICT ("id") DO NOTHING RETURNING {cols}'
        self.delete = f'DELETE FROM {t} WHERE "id" = {p(1)} AND "user_id" = {p(2)} RETURNING "id"'
        self.delete_version = (
            f'DELETE FROM {t} WHERE "id" = {p(1)} AND "user_id" = {p(2)} '
            f'AND "version" = {p(3)} RETURNING "id"'
        )
        self.delete_all = f'DELETE FROM {t} WHERE "user_id" = {p(1)} RETURNING "id"'
        # CAST(... AS TEXT) is the one spelling every dialect takes for a UUID as text.
        self.ids_like = (
            f'SELECT "id" FROM {t} WHERE "user_id" = {p(1)} AND CAST("id" AS TEXT) LIKE {p(2)} '
            f'ORDER BY "id" LIMIT {p(3)}'
        )
        self.counts = (
            f'SELECT "status", count(*) AS "n" FROM {t} WHERE "user_id" = {p(1)} GROUP BY "status"'
        )
        # Which of an owner's rows does not read back (when the driver could not even
        # decode one): the failure path only.
        self.malformed_of_owner = (
            f'SELECT "id", {self.malformed} AS "{MALFORMED}" FROM {t} '
            f'WHERE "user_id" = {p(1)} AND NOT ({self.well_formed}) ORDER BY "id" LIMIT 1'
        )
        self._listings: dict[tuple[bool, bool, bool], str] = {}
        self._updates: dict[tuple[frozenset[str], bool], str] = {}

    def listing(self, *, newest: bool, with_status: bool, after: bool) -> str:
        """One page in ``(created_at, id)`` order. The row-value comparison and the ORDER
        BY match the ``(user_id, created_at, id)`` index exactly, so the database walks
        the index from the cursor on: no sort, no scan of earlier pages."""
        key = (newest, with_status, after)
        if key not in self._listings:
            p, t = self._dialect.param, self.table
            created = f'{t}."created_at"'
            where = [f'"user_id" = {p(1)}']
            if with_status:
                where.append(f'"status" = {p(2)}')
            if after:
                first = len(where) + 1
                op = "<" if newest else ">"
                where.append(f'({created}, {t}."id") {op} ({p(first)}, {p(first + 1)})')
            direction = "DESC" if newest else "ASC"
            limit = p(2 + (1 if with_status else 0) + (2 if after else 0))
            # The key's columns are named with their table: a dialect may read a column
            # back through an expression of the same name, and ORDER BY would take that.
            self._listings[key] = (
                f"SELECT {self._select} FROM {t} WHERE {' AND '.join(where)} "
                f'ORDER BY {created} {direction}, {t}."id" {direction} LIMIT {limit}'
            )
        return self._listings[key]

    def update(self, fields: frozenset[str], *, with_version: bool) -> str:
        """UPDATE of the given fields, only if one of them really changes; version and
        updated_at move, completed_at follows the status. Parameters: 1 id, 2 owner,
        3 now, then the fields in sorted order, then the expected version."""
        key = (fields, with_version)
        if key not in self._updates:
            p, differs = self._dialect.param, self._dialect.differs
            names = sorted(fields)
            sets, changed = [], []
            for offset, name in enumerate(names, start=4):
                sets.append(f'"{name}" = {p(offset)}')
                changed.append(differs(f'"{name}"', p(offset)))
            if "status" in fields:
                status = p(4 + names.index("status"))
                sets.append(
                    f"\"completed_at\" = CASE WHEN {status} = '{TaskStatus.COMPLETED.value}' "
                    f'THEN COALESCE("completed_at", {p(3)}) ELSE NULL END'
                )
            sets += ['"version" = "version" + 1', f'"updated_at" = {p(3)}']
            # The version column is 32-bit: a task at its last version takes no more
            # writes (on SQLite too, whose integers would silently grow past it).
            # A row whose stored values do not read back is not written: the write
            # could not return it, and must not commit what it cannot return.
            where = [
                f'"id" = {p(1)}',
                f'"user_id" = {p(2)}',
                f'"version" < {rules.MAX_VERSION}',
                f"({' OR '.join(changed)})",
                f"({self.well_formed})",
            ]
            if with_version:
                where.append(f'"version" = {p(4 + len(names))}')
            update = (
                f"UPDATE {self.table} SET {', '.join(sets)} WHERE {' AND '.join(where)} "
                f"RETURNING {self._select}"
            )
            if self._dialect.writable_ctes:
                # The row the UPDATE left alone comes back in the same round trip (as
                # the statement's snapshot saw it), so a no-op, a stale version or a
                # malformed row costs no second query.
                update = (
                    f'WITH "written" AS ({update}) '
                    f'SELECT {self._select}, NULL AS "{MALFORMED}", TRUE AS "{WRITTEN}" '
                    f'FROM "written" UNION ALL '
                    f"SELECT {self._select}, {self.malformed}, FALSE FROM {self.table} "
                    f'WHERE "id" = {p(1)} AND "user_id" = {p(2)} '
                    f'AND NOT EXISTS (SELECT 1 FROM "written")'
                )
            self._updates[key] = update
        return self._updates[key]

    @property
    def update_returns_current(self) -> bool:
        """Whether :meth:`update` returns the row it did not write (marked by
        ``WRITTEN`` false), or nothing."""
        return self._dialect.writable_ctes


class Replication(abc.ABC):
    """What ``todo_app.replicas`` needs of a database whose servers can be read
    replicas of one another: SQL that answers, on any of its servers, the columns
    named below, and its driver's connections and failures."""

    #: ``standby`` (bool) and ``lsn`` (the position replayed; a primary's: inserted).
    position: ClassVar[str]
    #: ``standby``, ``system`` (the cluster), ``database``, ``started`` (the server's
    #: start time): which server a connection reached.
    identity: ClassVar[str]
    #: ``identity``'s and ``position``'s columns in one round trip.
    check: ClassVar[str]
    #: One value: a position every commit acknowledged before it lies at or before.
    committed_position: ClassVar[str]

    def prepare_replica(self, client: BaseDBAsyncClient) -> None:  # noqa: B027 - optional hook
        """Before ``client`` is first used as a replica (its pool not yet open)."""

    @abc.abstractmethod
    def acquire(self, client: BaseDBAsyncClient) -> AbstractAsyncContextManager[Any]:
        """A driver connection of ``client`` (``fetch``, ``fetchrow``, ``fetchval``)
        for the package's own statements only."""

    @abc.abstractmethod
    def read_failure(self, exc: BaseException) -> tuple[str, str] | None:
        """What a replica's failed read says of it: ``(state, reason)`` with ``state``
        ``schema-behind`` or ``down``; None when it refused that one read only."""

    @abc.abstractmethod
    def reason(self, exc: BaseException) -> str:
        """One line for people: why a replica's check or read failed."""


class Dialect(abc.ABC):
    """One database. Each method says what the rest of the package relies on."""

    #: Tortoise's ``capabilities.dialect`` for this database.
    name: ClassVar[str]
    #: How messages name it.
    label: ClassVar[str]
    #: Appended to the parameter that carries Aerich's JSON ``content``.
    json_cast: ClassVar[str] = ""
    #: Aerich's bookkeeping table as Aerich's model makes it, ``IF NOT EXISTS``: the
    #: runner re-creates it when it was lost (migration 0 holds its own frozen copy).
    aerich_table: ClassVar[str]
    #: Options of the temporary table a migration stashes rows in.
    temporary_table_options: ClassVar[str] = ""
    #: How its servers can be read replicas of each other (``todo_app.replicas``);
    #: None: they cannot.
    replication: ClassVar[Replication | None] = None
    #: Whether an UPDATE may run inside a WITH clause (PostgreSQL's data-modifying
    #: CTEs; not SQLite): then an update returns the row it left alone in one query.
    writable_ctes: ClassVar[bool] = False

    # -- SQL spelling ---------------------------------------------------------------

    @abc.abstractmethod
    def param(self, number: int) -> str:
        """The ``number``-th (1-based) query parameter."""

    @abc.abstractmethod
    def differs(self, left: str, right: str) -> str:
        """A NULL-safe "``left`` is not ``right``" condition."""

    @cached_property
    def statements(self) -> Statements:
        return Statements(self)

    def value(self, value: Any) -> Any:
        """A Python value as this dialect's driver takes it."""
        return value

    def read_column(self, kind: str, column: str) -> str:
        """The SQL that reads ``column`` (of kind ``kind``, see :func:`column_kinds`)
        back as the schemas take it; the column itself unless the dialect must help."""
        return column

    def stored_check(self, kind: str, column: str) -> tuple[str, str] | None:
        """For a non-NULL ``column`` of ``kind`` (see :func:`column_kinds`): SQL that is
        true (never NULL) exactly when its stored value reads back as the model's type
        in the form todo_app writes it, and what it must hold, in words; None when the
        column's type already guarantees it."""
        return None

    # -- running the package's statements -------------------------------------------

    async def open(self, db: BaseDBAsyncClient) -> None:  # noqa: B027 - optional hook
        """Before the package first uses ``db``: make sure its connection is open,
        leaving nothing locked or half-open when it cannot be (see SQLite's)."""

    @abc.abstractmethod
    async def fetch(
        self, db: BaseDBAsyncClient, sql: str, values: list[Any], *, idempotent: bool
    ) -> Rows:
        """Rows of ``sql`` on ``db`` (a pool or the caller's transaction). An
        ``idempotent`` statement may be tried again on another connection when its
        connection turns out to be dead."""

    @abc.abstractmethod
    async def bulk_insert(
        self,
        db: BaseDBAsyncClient,
        rows: list[tuple[Any, ...]],
        ids: set[Any],
        progress: Progress,
    ) -> None:
        """Insert ``rows`` (in ``Statements.columns`` order) in one transaction of its
        own (a savepoint inside a caller's), after checking that none of the
        client-chosen ``ids`` is taken (``TaskConflict``, which rolls it back)."""

    async def begin_write(self, tx: BaseDBAsyncClient) -> None:  # noqa: B027 - optional hook
        """Called right after a top-level write transaction began: take whatever lock
        makes concurrent writers wait instead of fail."""

    # -- errors ---------------------------------------------------------------------

    @abc.abstractmethod
    def classify(self, exc: BaseException) -> TaskError | None:
        """This dialect's driver error ``exc`` as the package's error (by error code,
        never by message); None when ``exc`` is not this driver's."""

    @abc.abstractmethod
    def refused_by(self, exc: BaseException) -> str | None:
        """What in the schema refused a row, for people: a constraint's name, or
        ``NOT NULL <column>``; None when ``exc`` is not a constraint's refusal."""

    def is_busy(self, exc: BaseException) -> bool:
        """Whether ``exc`` means "another connection holds the lock": retry later."""
        return False

    # -- migrations -----------------------------------------------------------------

    @abc.abstractmethod
    async def run_script(self, tx: BaseDBAsyncClient, script: str) -> None:
        """Run migration SQL inside the caller's transaction, all or nothing, without
        the application's statement timeout."""

    async def migration_lock(  # noqa: B027 - optional hook
        self, tx: BaseDBAsyncClient, *, deadline: float, lock_timeout: float
    ) -> None:
        """Inside the migration transaction: wait (until ``deadline``) for the lock
        that serialises migrators, reporting who holds it."""

    async def forget_migrations(self, tx: BaseDBAsyncClient, filenames: Sequence[str]) -> None:
        """Delete todo_app's bookkeeping rows of ``filenames`` (every copy of each)."""
        if not filenames:
            return
        marks = ", ".join(self.param(n) for n in range(2, len(filenames) + 2))
        await tx.execute_query(
            f'DELETE FROM "aerich" WHERE "app" = {self.param(1)} AND "version" IN ({marks})',
            [APP_LABEL, *filenames],
        )

    async def handoff_to_aerich(
        self, tx: BaseDBAsyncClient, script: str, *, forget: Sequence[str], revert: bool
    ) -> str:
        """What an installed stub hands back to Aerich: ``script`` (a revert's SQL, or
        a no-op), with todo_app's rows of ``forget`` deleted first. Aerich runs it,
        then inserts or deletes its own row, in the stub's transaction."""
        await self.forget_migrations(tx, forget)
        return script

    async def take_over_transaction(  # noqa: B027 - optional hook
        self, tx: BaseDBAsyncClient, *, deadline: float, lock_timeout: float
    ) -> None:
        """In a transaction somebody else began (Aerich's, around an installed stub)
        and in which nothing ran yet: make it a write transaction as the runner's own
        are, waiting (until ``deadline``) for the database's write lock."""

    @asynccontextmanager
    async def migration_transaction(
        self, tx: BaseDBAsyncClient, *, nested: bool = False
    ) -> AsyncIterator[None]:
        """Around a migration step, in its write transaction, nothing run in it yet
        (``nested``: a savepoint in a caller's transaction): whatever the dialect needs
        before and after (SQLite: foreign keys off, checked before the commit,
        restored)."""
        yield

    @asynccontextmanager
    async def lock_attempts(self, db: BaseDBAsyncClient) -> AsyncIterator[None]:
        """Around one attempt to begin a migration transaction (see SQLite's)."""
        yield

    # -- the live schema ------------------------------------------------------------

    @abc.abstractmethod
    async def read_shape(self, db: BaseDBAsyncClient, table: str) -> TableShape | None:
        """``table`` as the catalog describes it, None when there is none."""

    @abc.abstractmethod
    async def aerich_columns(self, db: BaseDBAsyncClient) -> set[str] | None:
        """Column names of the ``aerich`` table, None when it does not exist."""
