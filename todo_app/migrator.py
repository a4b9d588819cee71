"""Apply, revert and check todo_app's Aerich migrations from Python.

The migration files are Aerich's (``aerich upgrade`` runs them too, and both record
progress in the same ``aerich`` table), but this runner differs where a library
embedded in a host must:

* it never closes a connection (``aerich.Command`` closes *all* of Tortoise's);
* it runs on the connection ``Task`` is bound to, whatever the host named it;
* it trusts the live table, not only the bookkeeping rows: before each step it reads
  the table from the catalog and compares it with the shape each migration is
  recorded to make (``todo_app.schema_history``). A migration whose effect is
  already there (its row was lost, or it was applied by hand) is recorded, never
  re-run; a table made by Tortoise's schema generator (a host's ``aerich init-db``
  or ``generate_schemas()``) is completed into the real one, rows kept, when every
  row holds values of the right types (SQLite keeps any type in any column); anything
  else is refused with the differences (or the rows) named;
* each step and its bookkeeping commit together or not at all, on SQLite too;
* concurrent runners serialise on a lock (an advisory lock on PostgreSQL, the write
  lock on SQLite), waiting at most ``lock_timeout`` seconds and saying who holds it;
  migration statements run without the application's statement timeout;
* a downgrade validates its whole plan (steps, files, the live table) before its
  first change, and says what data it drops.

:func:`check_drift` is the ``makemigrations --check`` Aerich lacks: it compares the
models with the state recorded in the newest migration.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient
from tortoise.connection import get_connections
from tortoise.context import TortoiseContext

from todo_app.compat import kept_connection_binding, models_describe
from todo_app.config import APP_LABEL, app_config, tortoise_config
from todo_app.dialects import dialect_for, translate
from todo_app.dialects.base import Dialect
from todo_app.dsn import DatabaseURL
from todo_app.errors import (
    MigrationDataError,
    MigrationError,
    MigrationFailed,
    MigrationLockTimeout,
    MigrationPlanError,
    SchemaAhead,
    SchemaMismatch,
    TaskStoreError,
    TaskStoreUnavailable,
    TodoAppError,
)
from todo_app.models import Task
from todo_app.schema_state import (
    Migration,
    SchemaState,
    inspect_schema,
    migration_history,
    recorded_migrations,
)
from todo_app.table_shape import TABLE, TableShape
from todo_app.transactions import write_transaction

# adopt, connection_to, run_script and translated are the runner's parts that the
# package's other adapters reuse (todo_app.startup_check, todo_app.aerich_bridge); todo_app
# does not re-export them.
__all__ = [
    "DEFAULT_LOCK_TIMEOUT",
    "DowngradePlan",
    "RevertStep",
    "Target",
    "adopt",
    "applied_migrations",
    "check_drift",
    "connection_to",
    "downgrade",
    "lock_aerich_transaction",
    "lock_in_transaction",
    "migrate",
    "pending_migrations",
    "plan_downgrade",
    "run_script",
    "translated",
    "upgrade",
]

logger = logging.getLogger("todo_app.migrations")

_AERICH_MODEL: Final = f"{APP_LABEL}.Aerich"
#: Seconds a runner waits for another one's lock before MigrationLockTimeout.
DEFAULT_LOCK_TIMEOUT: Final = 300.0
_REPORT_EVERY: Final = 5.0
_ADOPT_TABLE: Final = "todo_app_task__adopt"
_MAX_REPORTED_ROWS: Final = 20
_SHOWN_IDS: Final = 3

#: Where to migrate: ``None`` (the connection ``Task`` is bound to in the running
#: Tortoise context), a connection, a database URL, or a whole Tortoise config.
Target = BaseDBAsyncClient | DatabaseURL | str | dict[str, Any] | None


@contextlib.asynccontextmanager
async def connection_to(target: Target) -> AsyncIterator[BaseDBAsyncClient]:
    """The connection to work on. For a URL or a config, a Tortoise context of our
    own, closed afterwards; the caller's context and connections are left alone.

    A database that cannot be reached, opened, read or written raises what the
    repository raises in the same situation (``TaskStoreUnavailable``, or
    ``TaskStoreError`` for a refusal such as a missing privilege), whatever the
    driver said: the one translation of ``todo_app.dialects``."""
    try:
        async with _connection_to(target) as db:
            yield db
    except TodoAppError:
        raise
    except Exception as exc:
        typed = translate(exc)
        if not isinstance(typed, TaskStoreError):
            raise
        raise typed from exc


async def _opened(db: BaseDBAsyncClient) -> BaseDBAsyncClient:
    # Loads the dialect (its error table classifies what follows) and opens the
    # connection without leaving a lock behind if it cannot be opened.
    await dialect_for(db).open(db)
    return db


@contextlib.asynccontextmanager
async def _connection_to(target: Target) -> AsyncIterator[BaseDBAsyncClient]:
    if target is None:
        yield await _opened(Task._meta.db)
        return
    if isinstance(target, BaseDBAsyncClient):
        yield await _opened(target)
        return
    if isinstance(target, dict):
        name = target.get("apps", {}).get(APP_LABEL, {}).get("default_connection", "default")
        if name not in target.get("connections", {}):
            raise MigrationPlanError(
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
    with kept_connection_binding(Task):
        async with TortoiseContext() as context:
            await context.init(config=config)
            yield await _opened(context.connections.get(name))


def _marks(db: BaseDBAsyncClient, count: int) -> list[str]:
    dialect = dialect_for(db)
    return [dialect.param(n) for n in range(1, count + 1)]


# -- what the database holds -------------------------------------------------------------


async def applied_migrations(target: Target = None) -> list[str]:
    """File names of the migrations recorded as applied, in the order they were."""
    async with connection_to(target) as db:
        return await recorded_migrations(db)


async def pending_migrations(target: Target = None) -> list[str]:
    """File names of the migrations not recorded as applied yet (Aerich's heads)."""
    done = set(await applied_migrations(target))
    return [m.filename for m in migration_history() if m.filename not in done]


# -- running SQL ------------------------------------------------------------------------


async def run_script(db: BaseDBAsyncClient, script: str) -> None:
    """Run migration SQL inside the caller's transaction, all or nothing, without the
    application's statement timeout (each dialect knows how)."""
    await dialect_for(db).run_script(db, script)


R = TypeVar("R")


def _checked_lock_timeout(lock_timeout: object) -> float:
    """``lock_timeout`` as a bound on the wait: nan never compares past a deadline
    (a held lock would be waited for forever), and inf is no bound either."""
    if (
        isinstance(lock_timeout, bool)
        or not isinstance(lock_timeout, int | float)
        or not math.isfinite(lock_timeout)
        or lock_timeout < 0
    ):
        raise MigrationPlanError(
            f"lock_timeout must be a finite number of seconds, 0 or more (got {lock_timeout!r})"
        )
    return float(lock_timeout)


async def _run_locked(
    db: BaseDBAsyncClient,
    step: Callable[[BaseDBAsyncClient], Awaitable[R]],
    *,
    lock_timeout: float,
) -> R:
    """Run ``step`` in one write transaction that holds the migration lock (the
    dialect's: an advisory lock on PostgreSQL, the write lock on SQLite), waiting at
    most ``lock_timeout`` seconds for it and saying who holds it meanwhile.
    Concurrent runners (other processes included) queue here, then re-read the
    database: each migration runs exactly once."""
    dialect = dialect_for(db)
    # Inside a caller's transaction the step is a savepoint: nothing can be switched
    # around it (SQLite's foreign keys among them), which the dialect is told.
    nested = isinstance(get_connections().get(db.connection_name), TransactionalDBClient)
    started = time.monotonic()
    deadline = started + lock_timeout
    next_report = started + _REPORT_EVERY / 2
    while True:
        try:
            async with dialect.lock_attempts(db), write_transaction(db.connection_name) as tx:
                await lock_in_transaction(tx, deadline=deadline, lock_timeout=lock_timeout)
                async with dialect.migration_transaction(tx, nested=nested):
                    return await translated(step(tx), dialect)
        except Exception as exc:
            if not dialect.is_busy(exc):
                raise
            now = time.monotonic()
            if now >= deadline:
                raise MigrationLockTimeout(
                    f"gave up after {lock_timeout:g} s waiting for the {dialect.label} write "
                    "lock: another process is writing to or migrating this database"
                ) from None
            if now >= next_report:
                logger.warning(
                    "waiting for the %s write lock, held by another connection "
                    "(%.0f s so far, giving up after %g s)",
                    dialect.label,
                    now - started,
                    lock_timeout,
                )
                next_report = now + _REPORT_EVERY


async def lock_in_transaction(
    tx: BaseDBAsyncClient,
    *,
    deadline: float | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
) -> None:
    """Inside a transaction: take the migration lock (released at commit or
    rollback), without the application's statement timeout."""
    lock_timeout = _checked_lock_timeout(lock_timeout)
    deadline = time.monotonic() + lock_timeout if deadline is None else deadline
    await dialect_for(tx).migration_lock(tx, deadline=deadline, lock_timeout=lock_timeout)


async def lock_aerich_transaction(
    tx: BaseDBAsyncClient, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT
) -> None:
    """Take the migration lock in the transaction Aerich runs an installed stub in
    (nothing ran in it yet), made a write transaction the way the runner's are."""
    deadline = time.monotonic() + lock_timeout
    await dialect_for(tx).take_over_transaction(tx, deadline=deadline, lock_timeout=lock_timeout)
    await lock_in_transaction(tx, deadline=deadline, lock_timeout=lock_timeout)


async def translated(step: Awaitable[R], dialect: Dialect | None = None) -> R:
    """Driver and Tortoise errors of a migration step as one-line MigrationFailed
    (connection failures, a database that cannot be read or written, and a busy lock
    pass through: callers handle them)."""
    try:
        return await step
    except (MigrationError, OSError, TimeoutError):
        raise
    except Exception as exc:
        if _is_connection_failure(exc) or (dialect is not None and dialect.is_busy(exc)):
            raise
        if isinstance(translate(exc), TaskStoreUnavailable):
            raise
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MigrationFailed(f"the database refused a migration statement: {reason}") from exc


def _is_connection_failure(exc: BaseException) -> bool:
    from todo_app.connection import is_connection_failure

    return is_connection_failure(exc) or isinstance(exc, OSError)


# -- upgrading --------------------------------------------------------------------------


async def _record(tx: BaseDBAsyncClient, migrations: list[Migration]) -> None:
    from aerich.coder import encoder

    dialect = dialect_for(tx)
    # A lost "aerich" table is made again, as Aerich's model makes it: the rows below
    # are what lets the runner (and Aerich) know what the live table already shows.
    await tx.execute_query(dialect.aerich_table)
    version, app, content = _marks(tx, 3)
    for migration in migrations:
        await tx.execute_query(
            'INSERT INTO "aerich" ("version", "app", "content") '
            f"VALUES ({version}, {app}, {content}{dialect.json_cast})",
            [migration.filename, APP_LABEL, encoder(migration.models_state())],
        )


@dataclass(frozen=True)
class _Step:
    """What one locked step did: ``action`` is applied, recorded or adopted."""

    action: str
    migrations: list[Migration]


async def _forget(tx: BaseDBAsyncClient, filenames: list[str]) -> None:
    """Delete todo_app's bookkeeping rows of ``filenames`` (every copy of each)."""
    await dialect_for(tx).forget_migrations(tx, filenames)


async def _rewrite_bookkeeping(tx: BaseDBAsyncClient, state: SchemaState) -> _Step:
    """Make todo_app's rows say exactly what the live table shows: one row per
    migration up to ``state.level``, in order. Rows go missing (a lost ``aerich``
    table, a row deleted by hand), pile up (two runners of an older todo_app racing),
    get out of order (Aerich reverts whatever row has the highest id first), or stay
    behind a revert (Aerich deleting one of two copies): the live table decides."""
    assert state.level is not None
    history = migration_history()
    wanted = [migration.filename for migration in history[: state.level]]
    missing = [name for name in wanted if name not in state.known]
    lying = [name for name in state.known if name not in wanted]
    if lying:
        logger.warning(
            "%s recorded as applied, but the table lacks its effect (%s): the row(s) are "
            "removed and the migration applied",
            ", ".join(lying),
            "; ".join(state.differences()),
        )
    elif not missing:
        logger.warning(
            "todo_app's rows of the aerich table were duplicated or out of order: rewritten"
        )
    await _forget(tx, state.known)
    await _record(tx, history[: state.level])
    return _Step("recorded", [m for m in history if m.filename in missing])


async def _bring_forward(tx: BaseDBAsyncClient, *, upto: int | None = None) -> _Step | None:
    """Make one step towards migration level ``upto`` (default: head), trusting the
    live table; None when there is nothing to do. Bookkeeping is the caller's, except
    for a repair of the rows themselves (recorded here)."""
    state = await inspect_schema(tx)
    history = migration_history()
    upto = len(history) if upto is None else upto
    if state.unknown:
        return None  # ahead of this version: upgrade() reports it
    if state.level is not None:
        rows = [version for _, version in state.rows]
        if state.level == 0 and rows:
            # Rows, and no table: somebody dropped it. Never papered over by a new
            # empty table; the operator decides (restore it, or delete the rows).
            raise SchemaMismatch(
                f"{', '.join(state.known)} recorded as applied, but the table lacks "
                "their effect: " + "; ".join(state.differences()),
                state.differences(),
            )
        if rows != state.names[: state.level]:
            return await _rewrite_bookkeeping(tx, state)
        if state.level >= upto:
            return None
        migration = history[state.level]
        await run_script(tx, await migration.load().upgrade(tx))
        return _Step("applied", [migration])
    level = state.adoptable_level()
    if level is not None:
        await adopt(tx, history[:level], state)
        return _Step("adopted", history[:level])
    found = state.differences()
    raise SchemaMismatch(
        f'the table "{TABLE}" is not what todo_app\'s recorded migrations '
        f"({len(state.known)} of {len(history)}) made: " + "; ".join(found),
        found,
    )


async def adopt(tx: BaseDBAsyncClient, migrations: list[Migration], state: SchemaState) -> None:
    """Replace a generator-made table by the real one (the same migrations' SQL), in
    the caller's transaction, every row kept; rows that break a rule are reported
    and nothing is changed."""
    assert state.live is not None
    await _refuse_wrong_types(tx, state.live)
    columns = ", ".join(f'"{name}"' for name in state.live.columns)
    options = dialect_for(tx).temporary_table_options
    await tx.execute_query(
        f'CREATE TEMPORARY TABLE "{_ADOPT_TABLE}"{options} AS SELECT * FROM "{TABLE}"'
    )
    await tx.execute_query(f'DROP TABLE "{TABLE}"')
    for migration in migrations:
        await run_script(tx, await migration.load().upgrade(tx))
    copy = f'INSERT INTO "{TABLE}" ({columns}) SELECT {columns} FROM "{_ADOPT_TABLE}"'
    await tx.execute_query("SAVEPOINT todo_app_adopt")
    try:
        await tx.execute_query(copy)
    except Exception as exc:
        if _is_connection_failure(exc):
            raise
        await tx.execute_query("ROLLBACK TO SAVEPOINT todo_app_adopt")
        violations = await _violations(tx, columns)
        shown = "; ".join(violations[:_MAX_REPORTED_ROWS]) or str(exc).splitlines()[0]
        raise MigrationDataError(
            f'cannot complete the existing "{TABLE}" into todo_app\'s schema: rows break '
            f"its rules ({shown}). Fix or delete them, then migrate again; nothing was changed",
            violations,
        ) from None
    await tx.execute_query("RELEASE SAVEPOINT todo_app_adopt")
    await tx.execute_query(f'DROP TABLE "{_ADOPT_TABLE}"')


async def _refuse_wrong_types(tx: BaseDBAsyncClient, live: TableShape) -> None:
    """MigrationDataError, before any change, when rows of the generator-made table
    hold values that would not read back as tasks (the dialect's checks of what each
    column holds): SQLite keeps any type in any column, and CHECK ("version" >= 1)
    takes the text 'abc'. One scan when every row is sound."""
    checks = [
        (c, check) for c, check in dialect_for(tx).statements.checks.items() if c in live.columns
    ]
    if not checks:
        return
    counts = ", ".join(
        f'sum(CASE WHEN {sound} THEN 0 ELSE 1 END) AS "n{n}"'
        for n, (_, (sound, _)) in enumerate(checks)
    )
    _, totals = await tx.execute_query(f'SELECT {counts} FROM "{TABLE}"')
    found: list[str] = []
    summary: list[str] = []
    for n, (column, (sound, what)) in enumerate(checks):
        bad = int(totals[0][f"n{n}"] or 0)
        if not bad:
            continue
        _, rows = await tx.execute_query(
            f'SELECT "id" FROM "{TABLE}" WHERE NOT {sound} ORDER BY "id" LIMIT {_MAX_REPORTED_ROWS}'
        )
        ids = [str(row["id"]) for row in rows]
        found += [f"task {task_id}: {column} is not {what}" for task_id in ids]
        shown = ", ".join(ids[:_SHOWN_IDS]) + (", ..." if bad > _SHOWN_IDS else "")
        summary.append(f"{column}: {bad} row(s) not {what}, task(s) {shown}")
    if summary:
        raise MigrationDataError(
            f'cannot complete the existing "{TABLE}" into todo_app\'s schema: rows hold '
            f"values of the wrong type ({'; '.join(summary)}). Fix or delete them, then "
            "migrate again; nothing was changed",
            found[:_MAX_REPORTED_ROWS],
        )


async def _violations(tx: BaseDBAsyncClient, columns: str) -> list[str]:
    """``"<id>: <constraint>"`` for the stashed rows the new table refuses, row by row
    (the failure path only), at most ``_MAX_REPORTED_ROWS`` of them."""
    (mark,) = _marks(tx, 1)
    dialect = dialect_for(tx)
    _, ids = await tx.execute_query(f'SELECT "id" FROM "{_ADOPT_TABLE}" ORDER BY "id"')
    found: list[str] = []
    for row in ids:
        await tx.execute_query("SAVEPOINT todo_app_row")
        try:
            await tx.execute_query(
                f'INSERT INTO "{TABLE}" ({columns}) SELECT {columns} '
                f'FROM "{_ADOPT_TABLE}" WHERE "id" = {mark}',
                [row["id"]],
            )
        except Exception as exc:
            found.append(f"task {row['id']}: {dialect.refused_by(exc) or 'refused'}")
        await tx.execute_query("ROLLBACK TO SAVEPOINT todo_app_row")
        if len(found) >= _MAX_REPORTED_ROWS:
            break
    return found


async def upgrade(
    target: Target = None, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT
) -> list[str]:
    """Bring the database to this version's newest migration; idempotent.

    ``target``: ``None`` for the connection ``Task`` is bound to in the running
    Tortoise context (a host's, after ``Tortoise.init``), a connection, a URL, or a
    Tortoise config dict. Returns the file names newly applied or recorded (empty:
    already at head, or ahead of this version, which is logged as a warning).
    Safe to call from several processes at once; each waits for the lock at most
    ``lock_timeout`` seconds (finite, 0 or more: anything else is refused before
    connecting, with :class:`MigrationPlanError`). Failures are :class:`MigrationError`
    subclasses and leave the failing step's changes rolled back.
    """

    async def step(tx: BaseDBAsyncClient) -> _Step | None:
        made = await _bring_forward(tx)
        if made is not None and made.action != "recorded":
            await _record(tx, made.migrations)  # in the same transaction as the step
        return made

    lock_timeout = _checked_lock_timeout(lock_timeout)
    done: list[str] = []
    async with connection_to(target) as db:
        while (made := await _run_locked(db, step, lock_timeout=lock_timeout)) is not None:
            for migration in made.migrations:
                logger.info("%s %s", made.action, migration.filename)
                done.append(migration.filename)
        state = await inspect_schema(db)
    if state.unknown:
        logger.warning(
            "the database was migrated by a newer version of todo_app (%s unknown here): "
            "nothing to apply",
            ", ".join(state.unknown),
        )
    return done


async def migrate(
    target: Target = None, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT
) -> list[str]:
    """Bring the database to head: :func:`upgrade` under the name hosts look for."""
    return await upgrade(target, lock_timeout=lock_timeout)


# -- downgrading ------------------------------------------------------------------------


@dataclass(frozen=True)
class RevertStep:
    """One migration a downgrade reverts, and the data that reverting it drops."""

    filename: str
    drops: str | None


@dataclass(frozen=True)
class DowngradePlan:
    """What :func:`downgrade` will do, validated against the live database."""

    dialect: str
    rows: int
    steps: list[RevertStep]

    def describe(self) -> list[str]:
        """One line per step, newest first, saying what data it drops."""
        return [
            f"revert {step.filename}" + (f": drops {step.drops}" if step.drops else "")
            for step in self.steps
        ]


async def _plan(tx: BaseDBAsyncClient, steps: int) -> tuple[DowngradePlan, list[str]]:
    """The validated plan and each step's SQL; raises before any change."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise MigrationPlanError("steps must be a whole number of at least 1")
    state = await inspect_schema(tx)
    if state.unknown:
        raise SchemaAhead(
            "the database was migrated by a newer version of todo_app "
            f"({', '.join(state.unknown)} unknown here): downgrade it with that version",
            state.unknown,
        )
    applied = len(state.known)
    if state.level != applied or set(state.known) != set(state.names[:applied]):
        found = state.differences()
        raise SchemaMismatch(
            "nothing reverted: the table is not what the recorded migrations made "
            f"({'; '.join(found) or 'bookkeeping out of order'}); run `todo-app check`",
            found,
        )
    if steps > applied:
        raise MigrationPlanError(
            f"nothing reverted: asked to revert {steps} migration(s), but only {applied} "
            "are applied"
        )
    rows = 0
    if state.live is not None:
        _, counted = await tx.execute_query(f'SELECT count(*) AS n FROM "{TABLE}"')
        rows = int(counted[0]["n"])
    history = migration_history()
    planned: list[RevertStep] = []
    scripts: list[str] = []
    for level in range(applied, applied - steps, -1):
        migration = history[level - 1]
        script = await migration.load().downgrade(tx)
        if not script.strip():
            raise MigrationPlanError(
                f"nothing reverted: migration {migration.filename} has an empty downgrade"
            )
        before, after = state.shapes[level - 1], state.shapes[level]
        planned.append(RevertStep(migration.filename, _dropped(before, after, rows)))
        scripts.append(script)
    return DowngradePlan(state.dialect, rows, planned), scripts


def _dropped(before: TableShape | None, after: TableShape | None, rows: int) -> str | None:
    """The data a revert from ``after`` to ``before`` loses, in words."""
    if after is None:
        return None
    if before is None:
        return f'the table "{TABLE}" and its {rows} task(s)'
    lost = [name for name in after.columns if name not in before.columns]
    if not lost:
        return None
    return f"column(s) {', '.join(lost)} of {rows} task(s)"


async def plan_downgrade(target: Target = None, *, steps: int = 1) -> DowngradePlan:
    """What ``downgrade(target, steps=steps)`` would do, validated; changes nothing."""
    async with connection_to(target) as db:
        plan, _ = await translated(_plan(db, steps))
        return plan


async def downgrade(
    target: Target = None, *, steps: int = 1, lock_timeout: float = DEFAULT_LOCK_TIMEOUT
) -> list[str]:
    """Revert the newest ``steps`` applied migrations, newest first, all in one
    transaction with their bookkeeping: every step or none.

    The whole plan is validated first (see :func:`plan_downgrade`): more steps than
    are applied, a missing file, an empty downgrade, a live table that is not what
    the migrations made, or a database of a newer version raise a
    :class:`MigrationError` before anything changes.
    """

    async def revert(tx: BaseDBAsyncClient) -> list[str]:
        plan, scripts = await _plan(tx, steps)
        version, app = _marks(tx, 2)
        for step, script in zip(plan.steps, scripts, strict=True):
            await run_script(tx, script)
            await tx.execute_query(
                f'DELETE FROM "aerich" WHERE "version" = {version} AND "app" = {app}',
                [step.filename, APP_LABEL],
            )
        return [step.filename for step in plan.steps]

    lock_timeout = _checked_lock_timeout(lock_timeout)
    async with connection_to(target) as db:
        reverted = await _run_locked(db, revert, lock_timeout=lock_timeout)
    # Only once committed: a commit that fails (a full disk) reverted nothing.
    for filename in reverted:
        logger.info("reverted %s", filename)
    return reverted


# -- drift ------------------------------------------------------------------------------


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
    history = migration_history()
    if not history:
        return ["no migrations exist"]
    recorded = _normalise(history[-1].models_state())
    apps = Tortoise.apps
    if apps is not None and APP_LABEL in apps:
        current = _normalise(models_describe(APP_LABEL))
    else:
        with kept_connection_binding(Task):
            async with TortoiseContext() as ctx:
                await ctx.init(config=tortoise_config("sqlite://:memory:"))
                current = _normalise(models_describe(APP_LABEL))
    return _describe_differences(recorded, current)


def _describe_differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    from dictdiffer import diff  # Aerich's own dependency

    found = []
    for kind, path, change in diff(recorded, current):
        where = path if isinstance(path, str) else ".".join(map(str, path))
        found.append(f"{kind} {where}: {change}")
    return found
