"""The schema verbs: ``migrate``, ``downgrade``, ``history``, ``check``,
``install-migrations`` and ``makemigration``. The migration runner (and
:mod:`todo_app.makemigration`) does the work; these say what it did."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator

from todo_app.cli.db import database
from todo_app.cli.exits import EXIT_OK, EXIT_SCHEMA, EXIT_UNREACHABLE, EXIT_USAGE, CliError
from todo_app.cli.render import escape, say

__all__ = [
    "cmd_check",
    "cmd_downgrade",
    "cmd_history",
    "cmd_install_migrations",
    "cmd_makemigration",
    "cmd_migrate",
]


@contextlib.contextmanager
def _migration_log() -> Iterator[None]:
    """The runner's progress on stdout, its waits and warnings on stderr."""
    import logging

    class ToStreams(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = self.format(record)
            if record.levelno >= logging.WARNING:
                print(f"todo-app: {message}", file=sys.stderr, flush=True)
            else:
                say(message, flush=True)

    logger = logging.getLogger("todo_app.migrations")
    handler, level = ToStreams(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


async def cmd_migrate(args: argparse.Namespace) -> int:
    from todo_app.migrator import upgrade
    from todo_app.schema_state import inspect_schema

    async with database(args, check_schema=False) as connection:
        with _migration_log():
            applied = await upgrade(connection, lock_timeout=args.lock_timeout)
        state = await inspect_schema(connection)
    if state.unknown:
        say(
            f"database is ahead of this todo_app: {', '.join(state.unknown)} unknown here "
            "(migrated by a newer version); nothing to apply"
        )
    elif applied:
        say(f"{len(applied)} migration(s) applied")
    else:
        say("database is at head")
    return EXIT_OK


async def cmd_downgrade(args: argparse.Namespace) -> int:
    from todo_app.migrator import downgrade, plan_downgrade

    async with database(args, check_schema=False) as connection:
        plan = await plan_downgrade(connection, steps=args.steps)
        say(f"database: {escape(str(args.db))}")
        for line in plan.describe():
            say(f"  {line}")
        if not args.yes:
            raise CliError(
                f"downgrade not run: repeat with --yes to revert {len(plan.steps)} "
                "migration(s) as listed",
                EXIT_USAGE,
            )
        with _migration_log():
            await downgrade(connection, steps=args.steps, lock_timeout=args.lock_timeout)
    return EXIT_OK


async def cmd_history(args: argparse.Namespace) -> int:
    from todo_app.migrator import applied_migrations
    from todo_app.schema_state import migration_history

    async with database(args, check_schema=False) as connection:
        applied = set(await applied_migrations(connection))
    for migration in migration_history():
        say(f"{'[x]' if migration.filename in applied else '[ ]'} {migration.filename}")
    return EXIT_OK


async def cmd_check(args: argparse.Namespace) -> int:
    from todo_app.aerich_bridge import host_migrations_dir, missing_from
    from todo_app.migrator import check_drift
    from todo_app.schema_state import inspect_schema, schema_verdict

    drift = await check_drift()
    if drift:
        print("models differ from the newest migration's recorded state:", file=sys.stderr)
        for line in drift:
            print(f"  {line}", file=sys.stderr)
        print("write a new migration for this change", file=sys.stderr)
        return EXIT_SCHEMA
    say("models match the newest migration")
    installed = host_migrations_dir(args.config)
    if installed is not None and (missing := missing_from(installed)):
        raise CliError(
            f"the Aerich migrations in {escape(str(installed))} are behind this todo_app "
            f"(missing {', '.join(missing)}): run `todo-app install-migrations`",
            EXIT_SCHEMA,
        )
    if installed is not None and not installed.is_dir():
        say(
            f"note: no todo_app migrations in {escape(str(installed))} (Aerich's location): "
            "if you deploy with `aerich --app todo_app upgrade`, run "
            "`todo-app install-migrations` first"
        )
    if args.drift_only:
        return EXIT_OK
    async with database(args, check_schema=False) as connection:
        state = await inspect_schema(connection)
    verdict = schema_verdict(state, allow_newer=args.allow_newer)
    if verdict is not None:
        raise CliError(str(verdict), EXIT_SCHEMA)
    say("database is at head (the live table matches the newest migration)")
    return EXIT_OK


async def cmd_install_migrations(args: argparse.Namespace) -> int:
    from pathlib import Path

    from todo_app.aerich_bridge import aerich_dir, host_migrations_dir, install_migrations

    directory = aerich_dir(args.location) if args.location else host_migrations_dir(args.config)
    if directory is None:
        raise CliError(
            f"no Aerich location in {escape(str(args.config))} ([tool.aerich] or "
            "[tool.tortoise], as `aerich init` writes it): run this where the host runs "
            "aerich, pass -c/--config as you pass it to aerich, or --location",
            EXIT_USAGE,
        )
    report = install_migrations(Path(directory))
    for name in report.installed:
        say(f"installed {name}")
    for name in report.kept:
        say(f"kept {escape(name)}: it differs from what this version installs (edited?)")
    for name in report.unknown:
        say(f"note: {escape(name)} is not a migration of this todo_app version")
    say(
        f"{escape(str(report.directory))}: {len(report.installed)} new, "
        f"{len(report.unchanged)} up to date"
        + (f", {len(report.kept)} kept as they were" if report.kept else "")
    )
    if report.installed:
        say("next: aerich --app todo_app upgrade")
    return EXIT_OK


async def cmd_makemigration(args: argparse.Namespace) -> int:
    from todo_app.errors import MigrationPlanError
    from todo_app.makemigration import (
        NothingToMigrate,
        ScratchDatabaseUnavailable,
        make_migration,
        record_shapes,
    )

    if args.record == (args.name is not None):
        raise CliError("give a migration NAME, or --record (not both)", EXIT_USAGE)
    try:
        if args.record:
            shape_file = await record_shapes(args.pg_url)
            say(f"recorded {escape(str(shape_file))}")
            return EXIT_OK
        made = await make_migration(args.name, pg_url=args.pg_url)
    except NothingToMigrate as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    except ScratchDatabaseUnavailable as exc:
        raise CliError(str(exc), EXIT_UNREACHABLE) from None
    except MigrationPlanError as exc:
        raise CliError(str(exc), EXIT_SCHEMA) from None
    for dialect, statements in made.statements.items():
        for statement in statements:
            say(f"  {dialect}: {escape(statement.strip().splitlines()[0])}")
    say(f"wrote {escape(str(made.path))}")
    say(f"recorded {escape(str(made.shape_path))}")
    return EXIT_OK
