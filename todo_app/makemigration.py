"""``todo-app makemigration NAME``: one command writes a migration, complete.

For the package's developers, in a checkout. After a change to ``Task``:

1. Aerich's autodetection diffs the models against the newest migration's recorded
   state (``MODELS_STATE``), once per dialect, on throw-away databases migrated to
   the newest migration: each dialect gets the SQL Aerich writes for it (PostgreSQL
   ``ALTER TABLE``; SQLite ``ALTER TABLE ... ADD``/``DROP COLUMN``, index changes).
2. The migration is written as migration 1 was: fixed SQL per dialect, no import of
   todo_app, ``RUN_IN_TRANSACTION``, the models' state for Aerich.
3. On the throw-away databases the new upgrade is applied, reverted (the table must
   be the previous shape again) and applied again; the table it leaves is recorded
   for both dialects in ``shapes/<migration>.json`` (:mod:`todo_app.schema_history`).
4. Fresh throw-away databases are migrated from nothing by the runner itself, which
   must end at the new migration: ``todo_app.migrate()`` accepts it at once.

The throw-away databases are a temporary SQLite file and a PostgreSQL database made
on the server of ``TEST_DATABASE_URL`` (or ``pg_url``), dropped afterwards. If any
step fails, the files written so far are removed: the history is frozen only once a
migration and its shape are both recorded, and recorded files are never rewritten.

A change SQLite cannot make with ``ALTER TABLE`` (a column's type, nullability or
default) is written as a table rebuild on SQLite, as migration 1 does it by hand
(:mod:`todo_app.dialects.sqlite.rebuild`), keeping every named CHECK. A new CHECK
constraint is not something the models say: such a migration is written by hand, and
``record_shapes`` records its shapes (``todo-app makemigration --record``).
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import logging
import re
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from tortoise.backends.base.client import BaseDBAsyncClient

from todo_app.compat import models_describe, require
from todo_app.config import APP_LABEL
from todo_app.dialects import read_shape
from todo_app.dialects.postgres.connect import create_database, drop_database
from todo_app.dsn import DatabaseURL
from todo_app.errors import MigrationFailed, MigrationPlanError, TaskStoreUnavailable
from todo_app.migrator import check_drift, connection_to, run_script, upgrade
from todo_app.models import Task
from todo_app.schema_history import (
    MIGRATIONS_DIR,
    SHAPES,
    SOURCE_DIR,
    shape_path,
    shape_to_json,
)
from todo_app.schema_state import Migration, inspect_schema, migration_history
from todo_app.settings import get_settings
from todo_app.table_shape import TABLE, TableShape, differences
from todo_app.transactions import write_transaction

__all__ = [
    "DIALECTS",
    "MadeMigration",
    "NothingToMigrate",
    "ScratchDatabaseUnavailable",
    "make_migration",
    "record_shapes",
]

#: The dialects every migration serves, in the order their SQL appears in the file.
DIALECTS: Final = ("sqlite", "postgres")
_NAME: Final = re.compile(r"[a-z][a-z0-9_]*\Z")
#: Aerich's limit on a version (file) name.
_MAX_FILENAME: Final = 255
_SCRATCH_PREFIX: Final = "todo_app_makemigration"

logger = logging.getLogger("todo_app.migrations")


class NothingToMigrate(MigrationPlanError):
    """The models are what the newest migration recorded: no migration to write."""


class ScratchDatabaseUnavailable(TaskStoreUnavailable):
    """The PostgreSQL server meant for the throw-away database cannot be reached."""


@dataclass(frozen=True)
class MadeMigration:
    """What :func:`make_migration` wrote."""

    path: Path
    shape_path: Path
    shapes: dict[str, TableShape]
    #: Per dialect, the upgrade statements (as Aerich wrote them).
    statements: dict[str, list[str]]

    @property
    def filename(self) -> str:
        return self.path.name


def _checked_name(name: str) -> str:
    if not _NAME.match(name):
        raise MigrationPlanError(
            f"migration name {name!r} is not a lower-case identifier "
            "(letters, digits and _, starting with a letter): e.g. due_at"
        )
    return name


def _source_dir() -> Path:
    """The checkout's migrations folder: an installed package's copy is not history
    a developer may add to."""
    if MIGRATIONS_DIR != SOURCE_DIR or not SOURCE_DIR.is_dir():
        raise MigrationPlanError(
            f"makemigration writes into a checkout's migrations/{APP_LABEL}, and this "
            f"todo_app runs from an installed package ({MIGRATIONS_DIR}): run it in the "
            "repository, with the package installed from it (uv sync)"
        )
    return SOURCE_DIR


# -- throw-away databases ------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _scratch(dialect: str, pg_url: DatabaseURL) -> AsyncIterator[DatabaseURL]:
    """A new empty database of ``dialect``, dropped (or deleted) afterwards.

    A drop that fails after an error does not replace that error: it is logged and
    added to it as a note, and the original propagates."""
    if dialect == "sqlite":
        with tempfile.TemporaryDirectory(prefix=f"{_SCRATCH_PREFIX}_") as folder:
            yield DatabaseURL(f"sqlite://{Path(folder, 'scratch.sqlite3')}")
        return
    name = f"{_SCRATCH_PREFIX}_{uuid.uuid4().hex[:12]}"
    await _on_server(create_database, pg_url, name)
    try:
        yield pg_url.with_database(name)
    except BaseException as exc:
        try:
            await _on_server(drop_database, pg_url, name)
        except Exception as dropping:
            logger.warning("the throw-away database %s was not dropped: %s", name, dropping)
            exc.add_note(f"the throw-away database {name} was not dropped: {dropping}")
        raise
    await _on_server(drop_database, pg_url, name)


async def _on_server(
    action: Callable[[DatabaseURL, str], Awaitable[None]], pg_url: DatabaseURL, name: str
) -> None:
    """``action`` (create or drop ``name``) on ``pg_url``'s server; an unreachable
    server is :class:`ScratchDatabaseUnavailable`, naming the URL with its password
    masked."""
    try:
        await action(pg_url, name)
    except TaskStoreUnavailable as exc:
        raise ScratchDatabaseUnavailable(
            f"cannot reach the PostgreSQL server at {pg_url} for a throw-away database "
            f"({exc}): start it, or set TEST_DATABASE_URL or --pg-url"
        ) from None


def _postgres_server(pg_url: DatabaseURL | str | None) -> DatabaseURL:
    url = get_settings().test_database_url if pg_url is None else pg_url
    url = url if isinstance(url, DatabaseURL) else DatabaseURL(url)
    if url.dialect != "postgres":
        raise MigrationPlanError(
            f"the throw-away PostgreSQL database needs a PostgreSQL URL: {url}"
        )
    return url


# -- Aerich's autodetection ----------------------------------------------------------------


class _NeedsRebuild(Exception):
    """SQLite cannot ALTER this change: the table is rebuilt instead."""


@contextlib.contextmanager
def _aerich_migrate(db: BaseDBAsyncClient) -> Iterator[Any]:
    """Aerich's ``Migrate`` set up for todo_app on ``db``'s dialect, as ``aerich
    migrate`` sets it up; its class-level state is cleared before and after."""
    from aerich.migrate import Migrate

    require("aerich.migrate_diff")

    def clear() -> None:
        Migrate.upgrade_operators = []
        Migrate.downgrade_operators = []
        Migrate._upgrade_fk_m2m_index_operators = []
        Migrate._downgrade_fk_m2m_index_operators = []
        Migrate._upgrade_m2m = []
        Migrate._downgrade_m2m = []
        Migrate._rename_fields = {}
        Migrate._rename_models = {}

    dialect = str(db.schema_generator.DIALECT)
    ddl_class = getattr(
        importlib.import_module(f"aerich.ddl.{dialect}"), f"{dialect.capitalize()}DDL"
    )
    if dialect == "sqlite":

        class SqliteDDL(ddl_class):  # type: ignore[valid-type,misc]
            """SQLite keeps a column's comment only in its CREATE TABLE text, which no
            recorded shape compares: a changed description changes nothing there
            (Aerich refuses it, since SQLite cannot ALTER a comment)."""

            def set_comment(self, model: Any, field_describe: dict[str, Any]) -> str:
                return ""

        ddl_class = SqliteDDL
    clear()
    Migrate.app = APP_LABEL
    Migrate.dialect = dialect
    Migrate.ddl_class = ddl_class
    Migrate.ddl = ddl_class(db)
    try:
        yield Migrate
    finally:
        clear()


def _diff(
    db: BaseDBAsyncClient, recorded: dict[str, Any]
) -> tuple[list[str], list[str], dict[str, Any]]:
    """Aerich's upgrade and downgrade statements from the ``recorded`` models state
    to the models, in ``db``'s dialect, and the models' state."""
    from aerich.exceptions import NotSupportError

    current = models_describe(APP_LABEL)
    with _aerich_migrate(db) as migrate:
        try:
            migrate.diff_models(copy.deepcopy(recorded), copy.deepcopy(current))
            migrate.diff_models(copy.deepcopy(current), copy.deepcopy(recorded), False)
        except NotSupportError as exc:
            if db.capabilities.dialect == "sqlite":
                raise _NeedsRebuild from None
            raise MigrationPlanError(
                f"{db.capabilities.dialect} cannot make this change with ALTER TABLE ({exc}): "
                "write the migration by hand, rebuilding the table as migration 1 does, "
                "then record its shapes with `todo-app makemigration --record`"
            ) from None
        migrate._merge_operators()
        upgrades = [sql for sql in migrate.upgrade_operators if sql.strip()]
        downgrades = [sql for sql in migrate.downgrade_operators if sql.strip()]
        return upgrades, downgrades, current


async def _changes(
    db: BaseDBAsyncClient, recorded: dict[str, Any]
) -> tuple[list[str], list[str], dict[str, Any]]:
    """:func:`_diff`, or on SQLite, for what it cannot ALTER, a table rebuild."""
    try:
        return _diff(db, recorded)
    except _NeedsRebuild:
        from todo_app.dialects.sqlite.rebuild import rebuild_for, split_statements

        rebuild = await rebuild_for(db, TABLE, Task)
        upgrades = split_statements(rebuild.upgrade)
        return upgrades, split_statements(rebuild.downgrade), models_describe(APP_LABEL)


# -- the file --------------------------------------------------------------------------------

_TEMPLATE: Final = '''"""@title@

Written by ``todo-app makemigration @name@`` from the change of the models (Aerich's
autodetection, per dialect); its table shapes are recorded in
``shapes/@stem@.json``.

Frozen history, like every migration: fixed SQL, no import of todo_app.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

_SQLITE_UPGRADE = """
@sqlite_upgrade@
"""

_SQLITE_DOWNGRADE = """
@sqlite_downgrade@
"""

_POSTGRES_UPGRADE = """
@postgres_upgrade@
"""

_POSTGRES_DOWNGRADE = """
@postgres_downgrade@
"""


def _dialect(db: BaseDBAsyncClient) -> str:
    dialect = db.capabilities.dialect
    if dialect not in ("sqlite", "postgres"):
        raise NotImplementedError(f"todo_app migrations support sqlite and postgres, not {dialect}")
    return dialect


async def upgrade(db: BaseDBAsyncClient) -> str:
    return _SQLITE_UPGRADE if _dialect(db) == "sqlite" else _POSTGRES_UPGRADE


async def downgrade(db: BaseDBAsyncClient) -> str:
    return _SQLITE_DOWNGRADE if _dialect(db) == "sqlite" else _POSTGRES_DOWNGRADE


MODELS_STATE = (
    @models_state@
)
'''


def _script(statements: list[str]) -> str:
    if not statements:
        # A change this dialect keeps in nothing it compares (a comment on SQLite); the
        # runner refuses an empty script, as a step that would do nothing by mistake.
        return "SELECT 1; -- nothing changes on this dialect"
    text = "\n".join(f"{statement.strip().rstrip(';')};" for statement in statements)
    if '"""' in text or "\\" in text:  # pragma: no cover - Aerich quotes with " and '
        raise MigrationPlanError("Aerich wrote SQL that cannot be frozen in a plain string")
    return text


def _file_text(
    name: str,
    stem: str,
    upgrades: dict[str, list[str]],
    downgrades: dict[str, list[str]],
    state: dict[str, Any],
) -> str:
    from aerich.utils import get_formatted_compressed_data

    # Markers, not str.format: the template is Python full of braces.
    values = {
        "title": f"{name.replace('_', ' ').capitalize()}: the models' change of this migration.",
        "name": name,
        "stem": stem,
        "sqlite_upgrade": _script(upgrades["sqlite"]),
        "sqlite_downgrade": _script(downgrades["sqlite"]),
        "postgres_upgrade": _script(upgrades["postgres"]),
        "postgres_downgrade": _script(downgrades["postgres"]),
        "models_state": get_formatted_compressed_data(state),
    }
    text = _TEMPLATE
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    return text


# -- recording -------------------------------------------------------------------------------


async def _in_transaction(db: BaseDBAsyncClient, script: str) -> None:
    try:
        async with write_transaction(db.connection_name) as tx:
            await run_script(tx, script)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MigrationFailed(
            f"{db.capabilities.dialect} refused the new migration's SQL: {reason}"
        ) from exc


async def _record_on(url: DatabaseURL, migration: Migration) -> TableShape:
    """Apply ``migration`` (the newest) to ``url``, a database at the one before it;
    check that its downgrade restores that table; return the table it leaves."""
    module = migration.load()
    async with connection_to(url) as db:
        dialect = str(db.capabilities.dialect)
        before = await read_shape(db)
        await _in_transaction(db, await module.upgrade(db))
        after = await read_shape(db)
        if after is None:
            raise MigrationFailed(f"{migration.filename} leaves no task table on {dialect}")
        await _in_transaction(db, await module.downgrade(db))
        if (reverted := await read_shape(db)) != before:
            raise MigrationFailed(
                f"the downgrade of {migration.filename} does not restore the table on {dialect}: "
                + "; ".join(differences(before, reverted))
            )
        await _in_transaction(db, await module.upgrade(db))
        if (again := await read_shape(db)) != after:
            raise MigrationFailed(
                f"{migration.filename} applied after its downgrade leaves another table on "
                f"{dialect}: " + "; ".join(differences(after, again))
            )
    return after


async def _apply(url: DatabaseURL, migrations: list[Migration]) -> None:
    """Run the upgrades of ``migrations`` on ``url`` (empty), as ``aerich upgrade``
    would, without bookkeeping: the table they make is all the recording needs."""
    async with connection_to(url) as db:
        for migration in migrations:
            await _in_transaction(db, await migration.load().upgrade(db))


async def _verify(url: DatabaseURL, filename: str) -> None:
    """Migrate the empty ``url`` from nothing with the runner: it must end at
    ``filename`` with the table its recorded shape says."""
    await upgrade(url)
    async with connection_to(url) as db:
        state = await inspect_schema(db)
    if state.recorded[-1:] != [filename] or state.level != len(state.names):
        raise MigrationFailed(
            f"todo_app.migrate() does not end at {filename} on {state.dialect}: "
            + "; ".join(state.differences() or ["its rows are " + ", ".join(state.recorded)])
        )


async def record_shapes(pg_url: DatabaseURL | str | None = None) -> Path:
    """Record the table shapes of the newest migration, when it has none yet (one
    written by hand); returns the shape file. Never rewrites a recorded shape."""
    directory = _source_dir()
    history = migration_history(directory)
    if not history:
        raise MigrationPlanError(f"no migrations in {directory}")
    newest = history[-1]
    target = shape_path(newest.path)
    if target.exists() or newest.filename in SHAPES:
        raise MigrationPlanError(
            f"{newest.filename} has its shapes recorded already ({target}): recorded "
            "shapes are frozen history"
        )
    _require_shapes(history[:-1])
    server = _postgres_server(pg_url)
    async with contextlib.AsyncExitStack() as stack:
        urls = {d: await stack.enter_async_context(_scratch(d, server)) for d in DIALECTS}
        for url in urls.values():
            await _apply(url, history[:-1])
        await _record(newest, urls, server)
    return target


def _require_shapes(history: list[Migration]) -> None:
    missing = [m.filename for m in history if m.filename not in SHAPES]
    if missing:
        raise MigrationPlanError(
            f"no recorded table shape for {', '.join(missing)}: record it first "
            "(`todo-app makemigration --record`)"
        )


async def _record(
    newest: Migration, urls: dict[str, DatabaseURL], server: DatabaseURL
) -> dict[str, TableShape]:
    """Record ``newest``'s shapes from ``urls`` (at the migration before it), then
    prove the runner takes the whole history on fresh databases."""
    target = shape_path(newest.path)
    if target.exists():
        raise MigrationPlanError(f"{target} exists already: recorded shapes are frozen history")
    shapes = {dialect: await _record_on(url, newest) for dialect, url in urls.items()}
    target.parent.mkdir(exist_ok=True)
    target.write_text(shape_to_json(shapes), encoding="utf-8")
    SHAPES[newest.filename] = shapes
    try:
        for dialect in DIALECTS:
            async with _scratch(dialect, server) as url:
                await _verify(url, newest.filename)
    except BaseException:
        del SHAPES[newest.filename]
        target.unlink(missing_ok=True)
        raise
    return shapes


async def make_migration(
    name: str, *, pg_url: DatabaseURL | str | None = None, now: datetime | None = None
) -> MadeMigration:
    """Write the migration of the models' change since the newest migration, with its
    recorded table shapes (see the module docstring).

    Raises :class:`NothingToMigrate` when the models are unchanged,
    :class:`ScratchDatabaseUnavailable` when the PostgreSQL server cannot be reached,
    and :class:`MigrationPlanError` for a name that is not an identifier or a change
    Aerich cannot write; nothing is left written then.
    """
    _checked_name(name)
    directory = _source_dir()
    history = migration_history(directory)
    if not history:
        raise MigrationPlanError(f"no migrations in {directory}: the first one is written by hand")
    _require_shapes(history)
    if not await check_drift():
        raise NothingToMigrate(
            f"nothing to migrate: the models are what {history[-1].filename} recorded"
        )
    server = _postgres_server(pg_url)
    recorded = history[-1].models_state()
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
    filename = f"{history[-1].number + 1}_{stamp}_{name}.py"
    if len(filename) > _MAX_FILENAME:
        raise MigrationPlanError(f"migration name {name!r} is too long for Aerich")
    path = directory / filename
    async with contextlib.AsyncExitStack() as stack:
        urls = {d: await stack.enter_async_context(_scratch(d, server)) for d in DIALECTS}
        upgrades: dict[str, list[str]] = {}
        downgrades: dict[str, list[str]] = {}
        state: dict[str, Any] = {}
        for dialect, url in urls.items():
            await _apply(url, history)
            async with connection_to(url) as db:
                upgrades[dialect], downgrades[dialect], state = await _changes(db, recorded)
        if not any(upgrades.values()):
            raise NothingToMigrate(
                "nothing to migrate: the models' change needs no SQL (a description or a "
                "Python default), so there is no table to record"
            )
        path.write_text(_file_text(name, path.stem, upgrades, downgrades, state), encoding="utf-8")
        try:
            newest = migration_history(directory)[-1]
            shapes = await _record(newest, urls, server)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
    return MadeMigration(path, shape_path(path), shapes, upgrades)
