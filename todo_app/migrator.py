"""Apply, revert and check todo_app's Aerich migrations from Python.

The migration files are Aerich's (``aerich upgrade`` runs them too, and both record
progress in the same ``aerich`` table), but this runner differs where a library
embedded in a host must:

* it never closes a connection (``aerich.Command`` closes *all* of Tortoise's);
* it runs on the connection ``Task`` is bound to, whatever the host named it;
* each migration and its bookkeeping row commit together or not at all, on SQLite
  too (Aerich's ``execute_script`` commits SQLite's open transaction first);
* on PostgreSQL, concurrent runners serialise on an advisory lock: one applies,
  the others then find nothing to do;
* an empty ``downgrade`` is an error, not a silent success.

:func:`check_drift` is the ``makemigrations --check`` Aerich lacks: it compares the
models with the state recorded in the newest migration.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Final

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.context import TortoiseContext

from todo_app.config import APP_LABEL, app_config, tortoise_config
from todo_app.models import Task
from todo_app.settings import DatabaseURL
from todo_app.transactions import write_transaction

__all__ = [
    "MIGRATIONS_DIR",
    "Migration",
    "MigrationError",
    "Target",
    "applied_migrations",
    "check_drift",
    "downgrade",
    "migrate",
    "migration_history",
    "pending_migrations",
    "upgrade",
]

_PACKAGED_DIR: Final = Path(__file__).parent / "_migrations" / APP_LABEL
_SOURCE_DIR: Final = Path(__file__).parent.parent / "migrations" / APP_LABEL
#: The migrations shipped with this package (inside a wheel) or, in a source
#: checkout, the repository's ``migrations/todo_app``.
MIGRATIONS_DIR = _PACKAGED_DIR if _PACKAGED_DIR.is_dir() else _SOURCE_DIR
#: pg_advisory_xact_lock key: the bytes of "todo_app" as a signed 64-bit integer.
_ADVISORY_LOCK_KEY: Final = int.from_bytes(b"todo_app", "big", signed=True)
_AERICH_MODEL: Final = f"{APP_LABEL}.Aerich"
_SQLITE_LOCK_WAIT_MS: Final = 60_000


class MigrationError(RuntimeError):
    """A migration could not be applied, reverted or found."""


@dataclass(frozen=True)
class Migration:
    """One migration file: ``<number>_<timestamp>_<name>.py``."""

    number: int
    filename: str
    path: Path

    def load(self) -> ModuleType:
        spec = importlib.util.spec_from_file_location(
            f"todo_app_migration_{self.number}", self.path
        )
        if spec is None or spec.loader is None:  # pragma: no cover - a .py path always loads
            raise MigrationError(f"cannot load migration {self.filename}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    def models_state(self) -> dict[str, Any]:
        from aerich.utils import decompress_dict  # deferred: aerich is slow to import

        state = getattr(self.load(), "MODELS_STATE", None)
        if not state:
            raise MigrationError(f"migration {self.filename} records no MODELS_STATE")
        return decompress_dict(state)


def migration_history(directory: Path | None = None) -> list[Migration]:
    """Every migration file, oldest first (Aerich's naming and ordering)."""
    directory = MIGRATIONS_DIR if directory is None else directory
    migrations = []
    for path in directory.glob("*.py"):
        number, sep, _ = path.stem.partition("_")
        if sep and number.isdigit():
            migrations.append(Migration(int(number), path.name, path))
    migrations.sort(key=lambda migration: migration.number)
    numbers = [migration.number for migration in migrations]
    if len(set(numbers)) != len(numbers):
        raise MigrationError(f"two migrations share a number in {directory}")
    return migrations


#: Where to migrate: ``None`` (the connection ``Task`` is bound to in the running
#: Tortoise context), a connection, a database URL, or a whole Tortoise config.
Target = BaseDBAsyncClient | DatabaseURL | str | dict[str, Any] | None


@contextlib.asynccontextmanager
async def _connection(target: Target) -> AsyncIterator[BaseDBAsyncClient]:
    """The connection to work on. For a URL or a config, a Tortoise context of our
    own, closed afterwards; the caller's context and connections are left alone."""
    if target is None:
        yield Task._meta.db
        return
    if isinstance(target, BaseDBAsyncClient):
        yield target
        return
    if isinstance(target, dict):
        name = target.get("apps", {}).get(APP_LABEL, {}).get("default_connection", "default")
        if name not in target.get("connections", {}):
            raise MigrationError(
                f"the config has no connection {name!r} for the {APP_LABEL!r} app: "
                "add todo_app.app_config(<connection name>) to its apps"
            )
        config: dict[str, Any] = {
            "connections": {name: target["connections"][name]},
            "apps": {APP_LABEL: app_config(name)},
            "use_tz": True,
            "timezone": "UTC",
        }
    else:
        url = target if isinstance(target, DatabaseURL) else DatabaseURL(target)
        name = f"todo_app_migrate_{url.dialect}"
        config = tortoise_config(url, connection_name=name)
    # Tortoise binds models to connection names on the class itself: give the
    # binding back, or a host's own context would afterwards look for our name.
    bound_to = Task._meta.default_connection
    try:
        async with TortoiseContext() as context:
            await context.init(config=config)
            yield context.connections.get(name)
    finally:
        Task._meta.default_connection = bound_to


def _dialect(db: BaseDBAsyncClient) -> str:
    return str(db.capabilities.dialect)


async def _aerich_table_exists(db: BaseDBAsyncClient) -> bool:
    if _dialect(db) == "postgres":
        _, rows = await db.execute_query("SELECT to_regclass('aerich') IS NOT NULL AS present")
        return bool(rows[0]["present"])
    _, rows = await db.execute_query(
        "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'aerich'"
    )
    return bool(rows[0]["n"])


async def _applied(db: BaseDBAsyncClient) -> list[str]:
    if not await _aerich_table_exists(db):
        return []
    placeholder = "$1" if _dialect(db) == "postgres" else "?"
    _, rows = await db.execute_query(
        f'SELECT "version" FROM "aerich" WHERE "app" = {placeholder} ORDER BY "id"',  # noqa: S608
        [APP_LABEL],
    )
    return [str(row["version"]) for row in rows]


async def applied_migrations(target: Target = None) -> list[str]:
    """File names of the migrations recorded as applied, in the order they were."""
    async with _connection(target) as db:
        return await _applied(db)


async def pending_migrations(target: Target = None) -> list[str]:
    """File names of the migrations not applied yet (Aerich calls them heads)."""
    done = set(await applied_migrations(target))
    return [m.filename for m in migration_history() if m.filename not in done]


def _statements(script: str) -> list[str]:
    """Split a SQLite script into statements, respecting quotes and triggers."""
    statements, current = [], ""
    for piece in script.split(";"):
        current += piece + ";"
        if sqlite3.complete_statement(current):
            if current.strip(" \t\r\n;"):
                statements.append(current.strip())
            current = ""
    if current.strip(" \t\r\n;"):
        raise MigrationError("migration SQL ends with an incomplete statement")
    return statements


async def _run_script(db: BaseDBAsyncClient, script: str) -> None:
    if _dialect(db) == "postgres":
        await db.execute_script(script)
        return
    # One statement at a time: sqlite3's executescript() would first COMMIT the
    # transaction this migration runs in, and a failure would leave half of it.
    for statement in _statements(script):
        await db.execute_query(statement)


async def _run_locked(
    db: BaseDBAsyncClient,
    step: Callable[[BaseDBAsyncClient], Awaitable[str | None]],
) -> str | None:
    """Run ``step`` in one transaction that holds the migration lock.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: the database's write
    lock, taken up front with ``BEGIN IMMEDIATE`` (Tortoise begins deferred, and two
    deferred transactions that both read then write fail instead of waiting). Either
    way, concurrent runners (other processes included) queue here, then re-read what
    is applied: each migration runs exactly once.
    """
    async with write_transaction(db.connection_name) as tx:
        if _dialect(tx) == "postgres":
            await tx.execute_query("SELECT pg_advisory_xact_lock($1)", [_ADVISORY_LOCK_KEY])
        return await step(tx)


@contextlib.asynccontextmanager
async def _patient(db: BaseDBAsyncClient) -> AsyncIterator[None]:
    """On SQLite, wait up to a minute for another process's migration to finish."""
    if _dialect(db) != "sqlite":
        yield
        return
    _, rows = await db.execute_query("PRAGMA busy_timeout")
    previous = int(next(iter(dict(rows[0]).values())))
    await db.execute_query(f"PRAGMA busy_timeout = {_SQLITE_LOCK_WAIT_MS}")
    try:
        yield
    finally:
        await db.execute_query(f"PRAGMA busy_timeout = {previous}")


async def upgrade(target: Target = None) -> list[str]:
    """Apply every pending migration, each in its own transaction; idempotent.

    ``target``: ``None`` for the connection ``Task`` is bound to in the running
    Tortoise context (a host's, after ``Tortoise.init``), a connection, a URL, or a
    Tortoise config dict. Returns the file names applied (empty: already at head).
    Safe to call from several processes at once.
    """
    history = migration_history()

    async def apply_next(tx: BaseDBAsyncClient) -> str | None:
        done = set(await _applied(tx))
        migration = next((m for m in history if m.filename not in done), None)
        if migration is None:
            return None
        from aerich.coder import encoder

        module = migration.load()
        await _run_script(tx, await module.upgrade(tx))
        content = encoder(migration.models_state())
        if _dialect(tx) == "postgres":
            sql = 'INSERT INTO "aerich" ("version", "app", "content") VALUES ($1, $2, $3::jsonb)'
        else:
            sql = 'INSERT INTO "aerich" ("version", "app", "content") VALUES (?, ?, ?)'
        await tx.execute_query(sql, [migration.filename, APP_LABEL, content])
        return migration.filename

    applied: list[str] = []
    async with _connection(target) as db, _patient(db):
        while (filename := await _run_locked(db, apply_next)) is not None:
            applied.append(filename)
    return applied


async def migrate(target: Target = None) -> list[str]:
    """Bring the database to head: :func:`upgrade` under the name hosts look for."""
    return await upgrade(target)


async def downgrade(target: Target = None, *, steps: int = 1) -> list[str]:
    """Revert the newest ``steps`` applied migrations, newest first.

    Each revert and the removal of its bookkeeping row commit together. Raises
    :class:`MigrationError` when fewer than ``steps`` migrations are applied, or a
    migration's ``downgrade`` returns no SQL (Aerich would report success).
    """
    if steps < 1:
        raise ValueError("steps must be at least 1")
    by_name = {m.filename: m for m in migration_history()}

    async def revert_last(tx: BaseDBAsyncClient) -> str | None:
        done = await _applied(tx)
        if not done:
            return None
        filename = done[-1]
        migration = by_name.get(filename)
        if migration is None:
            raise MigrationError(f"applied migration {filename} has no migration file")
        script = await migration.load().downgrade(tx)
        if not script.strip():
            raise MigrationError(f"migration {filename} has an empty downgrade")
        await _run_script(tx, script)
        placeholder = ("$1", "$2") if _dialect(tx) == "postgres" else ("?", "?")
        await tx.execute_query(
            f'DELETE FROM "aerich" WHERE "app" = {placeholder[0]} '  # noqa: S608
            f'AND "version" = {placeholder[1]}',
            [APP_LABEL, filename],
        )
        return filename

    reverted: list[str] = []
    async with _connection(target) as db, _patient(db):
        for _ in range(steps):
            filename = await _run_locked(db, revert_last)
            if filename is None:
                raise MigrationError(
                    f"asked to revert {steps} migration(s), but only {len(reverted)} were applied"
                )
            reverted.append(filename)
    return reverted


def _normalise(state: dict[str, Any]) -> dict[str, Any]:
    """A models state as Aerich stores it, minus what has no bearing on the schema."""
    from aerich.coder import encoder

    def strip_docstrings(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip_docstrings(v) for k, v in value.items() if k != "docstring"}
        if isinstance(value, list):
            return [strip_docstrings(item) for item in value]
        return value

    plain = json.loads(encoder(state))
    plain.pop(_AERICH_MODEL, None)
    result: dict[str, Any] = strip_docstrings(plain)
    return result


async def check_drift() -> list[str]:
    """Differences between the models and the newest migration's recorded state.

    Empty when they match. Needs no database: when Tortoise is not initialised, it
    initialises a context of its own on in-memory SQLite (which connects to nothing).
    """
    from aerich.utils import get_models_describe

    history = migration_history()
    if not history:
        return ["no migrations exist"]
    recorded = _normalise(history[-1].models_state())
    apps = Tortoise.apps
    if apps is not None and APP_LABEL in apps:
        current = _normalise(get_models_describe(APP_LABEL))
    else:
        bound_to = Task._meta.default_connection
        try:
            async with TortoiseContext() as ctx:
                await ctx.init(config=tortoise_config("sqlite://:memory:"))
                current = _normalise(get_models_describe(APP_LABEL))
        finally:
            Task._meta.default_connection = bound_to
    return _describe_differences(recorded, current)


def _describe_differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    from dictdiffer import diff  # Aerich's own dependency

    differences = []
    for kind, path, change in diff(recorded, current):
        where = path if isinstance(path, str) else ".".join(map(str, path))
        differences.append(f"{kind} {where}: {change}")
    return differences
