"""One package per database: everything the package does differently on each.

``todo_app.dialects.base.Dialect`` says what a dialect provides: the spelling of its
parameters and of a NULL-safe comparison (the repository's statements are then built
once, from the model, in ``base.Statements``), value adaptation for its driver, how
the package's statements run (and are retried when a pooled connection died), the
bulk-insert path, the write lock of a transaction, the table mapping its driver's
error codes to ``todo_app.errors``, how migrations run and serialise, and how the
live table is read from its catalog.

Each database is a package here, as Tortoise's ``backends/<driver>/`` are
(``postgres/``, ``sqlite/``): its ``connect`` module (URL -> Tortoise credentials,
registered in ``todo_app.connection.CONNECTORS``), its Tortoise ``engine``, and its
``dialect`` module with a ``Dialect`` subclass (registered in ``_MODULES`` here).
Only those packages import a database driver (``tests/test_layering.py`` checks
it). They are imported on first use, so SQLite users never load asyncpg; this
module itself loads neither them nor Tortoise, since the connect modules below it
are imported through it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from todo_app.errors import TaskError, TaskStoreTimeout
from todo_app.table_shape import TABLE, TableShape

if TYPE_CHECKING:
    from tortoise.backends.base.client import BaseDBAsyncClient

    from todo_app.dialects.base import Dialect, Replication, Statements

__all__ = [
    "Runner",
    "aerich_columns",
    "classify",
    "dialect_for",
    "dialect_named",
    "read_shape",
    "replication_of",
    "translate",
]

#: Tortoise's dialect name -> "module:class" of its Dialect.
_MODULES: Final = {
    "postgres": "todo_app.dialects.postgres.dialect:PostgresDialect",
    "sqlite": "todo_app.dialects.sqlite.dialect:SQLiteDialect",
}
_LOADED: dict[str, Dialect] = {}


def dialect_named(name: str) -> Dialect:
    """The dialect registered under Tortoise's ``name`` (loaded on first use)."""
    dialect = _LOADED.get(name)
    if dialect is None:
        if name not in _MODULES:
            raise NotImplementedError(f"todo_app supports {', '.join(_MODULES)}, not {name}")
        module, _, cls = _MODULES[name].partition(":")
        dialect = _LOADED[name] = getattr(importlib.import_module(module), cls)()
    return dialect


def dialect_for(db: BaseDBAsyncClient) -> Dialect:
    """The dialect of a Tortoise connection."""
    return dialect_named(str(db.capabilities.dialect))


def replication_of(db: BaseDBAsyncClient) -> Replication | None:
    """How ``db``'s servers can be read replicas of each other; None when they cannot
    (and for a dialect todo_app does not know, such as a host's other database)."""
    name = str(db.capabilities.dialect)
    return dialect_named(name).replication if name in _MODULES else None


def classify(exc: BaseException) -> TaskError | None:
    """``exc`` as the package's error, by the error table of whichever loaded dialect's
    driver raised it; None when no driver did (a bug, not a database answer)."""
    for dialect in _LOADED.values():
        if (typed := dialect.classify(exc)) is not None:
            return typed
    return None


def translate(exc: BaseException) -> TaskError | None:
    """The package's typed error for a database refusal or failure: :func:`classify`,
    and a timeout of the client's own. The one translation the repository and the
    migration runner share; None when ``exc`` did not come from the database."""
    if isinstance(exc, TimeoutError):
        return TaskStoreTimeout("the database did not answer in time")
    return classify(exc)


async def read_shape(db: BaseDBAsyncClient) -> TableShape | None:
    """The live task table on ``db``, as its catalog describes it."""
    return await dialect_for(db).read_shape(db, TABLE)


async def aerich_columns(db: BaseDBAsyncClient) -> set[str] | None:
    """Column names of the ``aerich`` table on ``db``; None when there is none."""
    return await dialect_for(db).aerich_columns(db)


class Runner:
    """The package's statements on one Tortoise connection, in its dialect."""

    __slots__ = ("db", "dialect", "sql")

    def __init__(self, db: BaseDBAsyncClient) -> None:
        self.db = db
        self.dialect: Dialect = dialect_for(db)
        self.sql: Statements = self.dialect.statements

    async def fetch(
        self, sql: str, *args: Any, idempotent: bool = False
    ) -> Sequence[Mapping[str, Any]]:
        values = [self.dialect.value(arg) for arg in args]
        return await self.dialect.fetch(self.db, sql, values, idempotent=idempotent)

    async def fetchrow(
        self, sql: str, *args: Any, idempotent: bool = False
    ) -> Mapping[str, Any] | None:
        values = [self.dialect.value(arg) for arg in args]
        rows = await self.dialect.fetch(self.db, sql, values, idempotent=idempotent)
        return rows[0] if rows else None
