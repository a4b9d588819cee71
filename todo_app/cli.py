"""``todo-app``: the command line of todo_app (also ``python -m todo_app``).

Every command opens its own Tortoise context on ``--db`` (default: settings, i.e.
the embedded SQLite file), does one thing and closes it. User mistakes are one line
on stderr and an exit code that says what kind of mistake it was; never a
traceback, never a password.

Imports of the ORM are deferred into the commands, so ``--help`` and argument
errors answer at once and a command pays only for what it uses.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import getpass
import json
import os
import shutil
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

if TYPE_CHECKING:
    from todo_app.pagination import Order
    from todo_app.repository import TaskRepository
    from todo_app.schemas import TaskRead
    from todo_app.settings import DatabaseURL

__all__ = ["main"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_VALIDATION = 5
EXIT_UNREACHABLE = 6
EXIT_SCHEMA = 7
EXIT_LOCKED = 8

_PROGRESS_THRESHOLD = 1000
_MARKS = {"pending": "[ ]", "completed": "[x]"}


class CliError(Exception):
    """A failure reported as one line on stderr with its own exit code."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


# -- plumbing -------------------------------------------------------------------------


def _default_user() -> str:
    return os.environ.get("TODO_USER") or getpass.getuser()


@contextlib.asynccontextmanager
async def _database(args: argparse.Namespace, *, check_schema: bool = True) -> AsyncIterator[Any]:
    """A Tortoise context on ``--db`` for the length of one command."""
    from tortoise.context import TortoiseContext

    from todo_app.checks import SchemaOutOfDate, ensure_schema_current
    from todo_app.config import tortoise_config

    # One name per dialect: Tortoise caches compiled SQL per connection name for the
    # life of the process (commands run in-process, e.g. from tests, share it).
    name = f"cli_{args.db.dialect}"
    async with TortoiseContext() as context:
        await context.init(config=tortoise_config(args.db, connection_name=name))
        connection = context.connections.get(name)
        if check_schema:
            try:
                await ensure_schema_current(connection)
            except SchemaOutOfDate as exc:
                raise CliError(str(exc), EXIT_SCHEMA) from None
        yield connection


def _repository(args: argparse.Namespace) -> TaskRepository:
    from todo_app.repository import TaskRepository

    return TaskRepository(args.user)


async def _task_id(args: argparse.Namespace, repo: TaskRepository) -> Any:
    """The task id the user typed: a whole UUID, or a unique prefix of one."""
    import uuid

    typed = args.id.strip().lower()
    with contextlib.suppress(ValueError):
        return uuid.UUID(typed)
    if len(typed) < 4 or any(c not in "0123456789abcdef-" for c in typed):
        raise CliError(
            f"no task {args.id!r}: give its id or at least 4 of its first characters",
            EXIT_NOT_FOUND,
        )
    matches = await repo.ids_starting_with(typed, limit=2)
    if not matches:
        raise CliError(f"no task {args.id!r}", EXIT_NOT_FOUND)
    if len(matches) > 1:
        raise CliError(f"{args.id!r} matches several tasks: type more of the id", EXIT_USAGE)
    return matches[0]


def _json(value: Any, out: TextIO) -> None:
    out.write(json.dumps(value, ensure_ascii=False) + "\n")


def _ago(moment: dt.datetime, now: dt.datetime) -> str:
    seconds = int((now - moment).total_seconds())
    if seconds < 0:
        return "in the future"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return "just now"


def _table(tasks: Sequence[TaskRead], out: TextIO) -> None:
    if not tasks:
        out.write("No tasks.\n")
        return
    now = dt.datetime.now(dt.UTC)
    width = shutil.get_terminal_size((100, 24)).columns
    ages = [_ago(task.created_at, now) for task in tasks]
    age_width = max(len(age) for age in ages)
    longest = max(len(task.title) for task in tasks)
    title_width = min(longest, max(10, width - 8 - 1 - 3 - 1 - 1 - age_width - 2))
    for task, age in zip(tasks, ages, strict=True):
        title = task.title.replace("\n", " ")
        if len(title) > title_width:
            title = title[: title_width - 1] + "…"
        status = str(task.status)  # a TaskStatus, or a newer version's string
        mark = _MARKS.get(status, f"[{status[:1]}]")
        out.write(f"{str(task.id)[:8]} {mark} {title:<{title_width}}  {age:>{age_width}}\n")


def _show(task: TaskRead, out: TextIO) -> None:
    rows = [
        ("id", str(task.id)),
        ("title", task.title),
        ("status", str(task.status)),
        ("description", task.description or "-"),
        ("version", str(task.version)),
        ("created", task.created_at.isoformat(timespec="seconds")),
        ("updated", task.updated_at.isoformat(timespec="seconds")),
        (
            "completed",
            task.completed_at.isoformat(timespec="seconds") if task.completed_at else "-",
        ),
    ]
    for label, value in rows:
        out.write(f"{label + ':':<13}{value}\n")


# -- commands -------------------------------------------------------------------------


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
                print(message, flush=True)

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
    from todo_app.migrator import inspect_schema, upgrade

    async with _database(args, check_schema=False) as connection:
        with _migration_log():
            applied = await upgrade(connection, lock_timeout=args.lock_timeout)
        state = await inspect_schema(connection)
    if state.unknown:
        print(
            f"database is ahead of this todo_app: {', '.join(state.unknown)} unknown here "
            "(migrated by a newer version); nothing to apply"
        )
    elif applied:
        print(f"{len(applied)} migration(s) applied")
    else:
        print("database is at head")
    return EXIT_OK


async def cmd_downgrade(args: argparse.Namespace) -> int:
    from todo_app.migrator import downgrade, plan_downgrade

    async with _database(args, check_schema=False) as connection:
        plan = await plan_downgrade(connection, steps=args.steps)
        print(f"database: {args.db}")
        for line in plan.describe():
            print(f"  {line}")
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
    from todo_app.migrator import applied_migrations, migration_history

    async with _database(args, check_schema=False) as connection:
        applied = set(await applied_migrations(connection))
    for migration in migration_history():
        print(f"{'[x]' if migration.filename in applied else '[ ]'} {migration.filename}")
    return EXIT_OK


async def cmd_check(args: argparse.Namespace) -> int:
    from todo_app.aerich_bridge import host_migrations_dir, missing_from
    from todo_app.checks import schema_verdict
    from todo_app.migrator import check_drift, inspect_schema

    drift = await check_drift()
    if drift:
        print("models differ from the newest migration's recorded state:", file=sys.stderr)
        for line in drift:
            print(f"  {line}", file=sys.stderr)
        print("write a new migration for this change", file=sys.stderr)
        return EXIT_SCHEMA
    print("models match the newest migration")
    installed = host_migrations_dir()
    if installed is not None and (missing := missing_from(installed)):
        raise CliError(
            f"the Aerich migrations in {installed} are behind this todo_app "
            f"(missing {', '.join(missing)}): run `todo-app install-migrations`",
            EXIT_SCHEMA,
        )
    if args.drift_only:
        return EXIT_OK
    async with _database(args, check_schema=False) as connection:
        state = await inspect_schema(connection)
    verdict = schema_verdict(state, allow_newer=False)
    if verdict is not None:
        raise CliError(str(verdict), EXIT_SCHEMA)
    print("database is at head (the live table matches the newest migration)")
    return EXIT_OK


async def cmd_install_migrations(args: argparse.Namespace) -> int:
    from pathlib import Path

    from todo_app.aerich_bridge import aerich_dir, host_migrations_dir, install_migrations

    directory = aerich_dir(args.location) if args.location else host_migrations_dir()
    if directory is None:
        raise CliError(
            "no Aerich location: run this where the host's pyproject.toml has "
            "[tool.aerich] (after `aerich init`), or pass --location",
            EXIT_USAGE,
        )
    report = install_migrations(Path(directory))
    for name in report.installed:
        print(f"installed {name}")
    for name in report.kept:
        print(f"kept {name}: it differs from what this version installs (edited?)")
    for name in report.unknown:
        print(f"note: {name} is not a migration of this todo_app version")
    print(
        f"{report.directory}: {len(report.installed)} new, {len(report.unchanged)} up to date"
        + (f", {len(report.kept)} kept as they were" if report.kept else "")
    )
    if report.installed:
        print("next: aerich --app todo_app upgrade")
    return EXIT_OK


async def cmd_add(args: argparse.Namespace) -> int:
    from todo_app.rules import TaskStatus
    from todo_app.schemas import TaskCreate

    data = TaskCreate(
        title=args.title,
        description=args.description,
        status=TaskStatus.COMPLETED if args.done else TaskStatus.PENDING,
    )
    async with _database(args):
        task = await _repository(args).create(data)
    if args.json:
        _json(task.model_dump(mode="json"), sys.stdout)
    else:
        print(f"added {str(task.id)[:8]}  {task.title}")
    return EXIT_OK


async def cmd_list(args: argparse.Namespace) -> int:
    order: Order = "oldest" if args.oldest else "newest"
    async with _database(args):
        repo = _repository(args)
        page = await repo.list(
            status=args.status, limit=args.limit, cursor=args.cursor, order=order
        )
        tasks = list(page.items)
        while args.all and page.next_cursor:
            page = await repo.list(
                status=args.status, limit=args.limit, cursor=page.next_cursor, order=order
            )
            tasks.extend(page.items)
    if args.json:
        _json(
            {"items": [t.model_dump(mode="json") for t in tasks], "next_cursor": page.next_cursor},
            sys.stdout,
        )
        return EXIT_OK
    _table(tasks, sys.stdout)
    if page.next_cursor:
        print(f"more: todo-app list --cursor {page.next_cursor}")
    return EXIT_OK


async def cmd_show(args: argparse.Namespace) -> int:
    async with _database(args):
        repo = _repository(args)
        task = await repo.get(await _task_id(args, repo))
    if args.json:
        _json(task.model_dump(mode="json"), sys.stdout)
    else:
        _show(task, sys.stdout)
    return EXIT_OK


async def cmd_edit(args: argparse.Namespace) -> int:
    from todo_app.schemas import TaskUpdate

    fields: dict[str, Any] = {}
    if args.title is not None:
        fields["title"] = args.title
    if args.clear_description:
        fields["description"] = None
    elif args.description is not None:
        fields["description"] = args.description
    if not fields:
        raise CliError(
            "nothing to change: give --title, --description or --clear-description", EXIT_USAGE
        )
    change = TaskUpdate.model_validate(fields)
    async with _database(args):
        repo = _repository(args)
        task = await repo.update(
            await _task_id(args, repo), change, expected_version=args.expect_version
        )
    print(f"updated {str(task.id)[:8]} (version {task.version})")
    return EXIT_OK


async def _set_status(args: argparse.Namespace, complete: bool) -> int:
    async with _database(args):
        repo = _repository(args)
        task_id = await _task_id(args, repo)
        write = repo.complete if complete else repo.reopen
        task = await write(task_id, expected_version=args.expect_version)
    print(f"{_MARKS.get(str(task.status), '[?]')} {str(task.id)[:8]}  {task.title}")
    return EXIT_OK


async def cmd_done(args: argparse.Namespace) -> int:
    return await _set_status(args, complete=True)


async def cmd_reopen(args: argparse.Namespace) -> int:
    return await _set_status(args, complete=False)


async def cmd_rm(args: argparse.Namespace) -> int:
    async with _database(args):
        repo = _repository(args)
        task_id = await _task_id(args, repo)
        await repo.delete(task_id, expected_version=args.expect_version)
    print(f"deleted {str(task_id)[:8]}")
    return EXIT_OK


async def cmd_stats(args: argparse.Namespace) -> int:
    async with _database(args):
        counts = await _repository(args).counts()
    if args.json:
        _json({str(status): n for status, n in counts.items()}, sys.stdout)
        return EXIT_OK
    total = sum(counts.values())
    for status, n in counts.items():
        print(f"{status!s:<10}{n:>8}")
    print(f"{'total':<10}{total:>8}")
    return EXIT_OK


class _Progress:
    """A one-line progress bar on stderr, shown only on a terminal."""

    def __init__(self, total: int, label: str) -> None:
        self.total = total
        self.label = label
        self.enabled = total >= _PROGRESS_THRESHOLD and sys.stderr.isatty()

    def __call__(self, done: int) -> None:
        if not self.enabled:
            return
        filled = int(30 * done / self.total)
        bar = "#" * filled + "-" * (30 - filled)
        sys.stderr.write(f"\r{self.label} [{bar}] {done}/{self.total}")
        if done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


async def cmd_import(args: argparse.Namespace) -> int:
    import pydantic

    from todo_app.schemas import TaskCreate

    source: TextIO = sys.stdin if args.file == "-" else _open(args.file)
    items: list[TaskCreate] = []
    with source:
        for number, line in enumerate(source, start=1):
            if not line.strip():
                continue
            try:
                items.append(TaskCreate.model_validate_json(line))
            except pydantic.ValidationError as exc:
                error = exc.errors(include_input=False)[0]
                where = ".".join(str(part) for part in error["loc"]) or "line"
                raise CliError(
                    f"line {number}: {where}: {error['msg']} (nothing imported)", EXIT_VALIDATION
                ) from None
    progress = _Progress(len(items), "importing")
    async with _database(args):
        count = await _repository(args).bulk_create(items, progress=progress)
    print(f"imported {count} task(s)")
    return EXIT_OK


def _open(path: str) -> TextIO:
    try:
        return open(path, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}", EXIT_USAGE) from None


async def cmd_export(args: argparse.Namespace) -> int:
    keys = ("id", "title", "description", "status")
    async with _database(args):
        repo = _repository(args)
        out = sys.stdout if args.file == "-" else open(args.file, "w", encoding="utf-8")  # noqa: SIM115, ASYNC230 - a CLI owns its loop
        count = 0
        try:
            cursor = None
            while True:
                page = await repo.list(limit=200, cursor=cursor, order="oldest")
                for task in page.items:
                    _json({k: v for k, v in task.model_dump(mode="json").items() if k in keys}, out)
                    count += 1
                if not (cursor := page.next_cursor):
                    break
        finally:
            if out is not sys.stdout:
                out.close()
    if args.file != "-":
        print(f"exported {count} task(s) to {args.file}")
    return EXIT_OK


async def cmd_demo(args: argparse.Namespace) -> int:
    """Migrate, then show two users' tasks side by side: a tour of the API."""
    from todo_app.migrator import upgrade
    from todo_app.repository import TaskRepository
    from todo_app.schemas import TaskCreate, TaskUpdate

    async with _database(args, check_schema=False) as connection:
        applied = await upgrade(connection)
        print(f"database: {args.db}")
        print(f"migrations: {len(applied)} applied now" if applied else "migrations: at head")
        alice, bob = TaskRepository("demo-alice"), TaskRepository("demo-bob")
        # Start from a clean slate so the demo reads the same every time it runs.
        for repo in (alice, bob):
            await repo.delete_all()
        milk = await alice.create(TaskCreate(title="Buy milk", description="2 litres, oat"))
        await alice.create(TaskCreate(title="Book dentist"))
        await alice.create(TaskCreate(title="  Water the plants  "))
        await bob.create(TaskCreate(title="Write the quarterly report"))
        await bob.create(TaskCreate(title="Call mum"))
        await alice.complete(milk.id)
        await alice.update(milk.id, TaskUpdate(description="done: oat milk was on offer"))
        for repo in (alice, bob):
            print(f"\n{repo.owner_id}:")
            _table((await repo.list(order="oldest")).items, sys.stdout)
            counts = await repo.counts()
            print("  " + ", ".join(f"{n} {status!s}" for status, n in counts.items()))
        try:
            await bob.get(milk.id)
        except Exception as exc:
            print(f"\ndemo-bob asking for demo-alice's task: {type(exc).__name__}: {exc}")
    return EXIT_OK


# -- entry point ----------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="todo-app",
        description="Owner-scoped tasks on SQLite or PostgreSQL.",
        epilog="Exit codes: 2 usage, 3 not found, 4 conflict, 5 invalid input, "
        "6 database unreachable, 7 schema out of date, drift or a migration refused, "
        "8 another migration held the lock too long.",
    )
    parser.add_argument(
        "--db",
        metavar="URL",
        default=None,
        help="database URL (default: DATABASE_URL, else the embedded SQLite file)",
    )
    parser.add_argument(
        "--user",
        metavar="ID",
        default=None,
        help="owner of the tasks (default: $TODO_USER, else your user name)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str,
        handler: Callable[[argparse.Namespace], Awaitable[int]],
        text: str,
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text)
        sub.set_defaults(handler=handler)
        return sub

    def with_json(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("--json", action="store_true", help="print JSON for scripts")
        return sub

    def with_id(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("id", help="task id, or a unique prefix of it (4+ characters)")
        return sub

    def with_version(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument(
            "--expect-version",
            type=int,
            metavar="N",
            help="refuse (exit 4) unless the task is at this version",
        )
        return sub

    def with_lock_timeout(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument(
            "--lock-timeout",
            type=float,
            default=300.0,
            metavar="SECONDS",
            help="wait at most this long for another migration's lock (default 300)",
        )
        return sub

    with_lock_timeout(command("migrate", cmd_migrate, "apply pending migrations (idempotent)"))
    down = with_lock_timeout(
        command(
            "downgrade", cmd_downgrade, "show, then (with --yes) revert the newest migration(s)"
        )
    )
    down.add_argument("--steps", type=int, default=1, help="how many (default 1)")
    down.add_argument("--yes", action="store_true", help="confirm: this drops data")
    install = command(
        "install-migrations",
        cmd_install_migrations,
        "copy todo_app's migrations into a host's Aerich folder (never overwrites)",
    )
    install.add_argument(
        "--location",
        help="the host's Aerich location (default: [tool.aerich] of ./pyproject.toml)",
    )
    command("history", cmd_history, "list migrations, [x] = applied")
    check = command(
        "check",
        cmd_check,
        "fail if models drifted from the migrations or the database is not at head",
    )
    check.add_argument("--drift-only", action="store_true", help="skip the database check")

    add = with_json(command("add", cmd_add, "add a task"))
    add.add_argument("title")
    add.add_argument("-d", "--description")
    add.add_argument("--done", action="store_true", help="add it as completed")

    listing = with_json(command("list", cmd_list, "list tasks, newest first"))
    listing.add_argument("--status", choices=["pending", "completed"])
    listing.add_argument("--limit", type=int, default=50, help="page size, 1..200 (default 50)")
    listing.add_argument("--cursor", help="continue after a previous page")
    listing.add_argument("--oldest", action="store_true", help="oldest first")
    listing.add_argument("--all", action="store_true", help="every page, not just the first")

    with_json(with_id(command("show", cmd_show, "show one task")))
    edit = with_version(with_id(command("edit", cmd_edit, "change a task's title or description")))
    edit.add_argument("--title")
    edit.add_argument("-d", "--description")
    edit.add_argument("--clear-description", action="store_true")
    with_version(with_id(command("done", cmd_done, "mark a task completed")))
    with_version(with_id(command("reopen", cmd_reopen, "mark a task pending again")))
    with_version(with_id(command("rm", cmd_rm, "delete a task")))
    with_json(command("stats", cmd_stats, "count tasks by status"))
    imp = command("import", cmd_import, "import JSON lines (all or nothing)")
    imp.add_argument("file", help="file of JSON lines, or - for stdin")
    exp = command("export", cmd_export, "export tasks as JSON lines")
    exp.add_argument("file", nargs="?", default="-", help="output file (default: stdout)")
    command("demo", cmd_demo, "migrate and show a short tour with two users")
    return parser


def _fail(message: str, code: int) -> NoReturn:
    print(f"todo-app: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (``SystemExit`` for argument errors)."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except CliError as exc:
        _fail(str(exc), exc.code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)


def _run(args: argparse.Namespace) -> int:
    from tortoise.exceptions import DBConnectionError

    from todo_app.connection import connection_failure, is_connection_failure
    from todo_app.errors import (
        MigrationError,
        MigrationLockTimeout,
        TaskConflict,
        TaskError,
        TaskNotFound,
        TaskStoreUnavailable,
        TaskValidationError,
    )
    from todo_app.settings import DatabaseURL, DatabaseURLError, get_settings

    try:
        settings = get_settings()  # refuses a .env it cannot parse, naming file and line
        url: DatabaseURL = DatabaseURL(args.db).check() if args.db else settings.database_url
    except DatabaseURLError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    except ValueError as exc:  # pydantic's ValidationError: a bad setting
        raise CliError(f"invalid settings: {_first_line(exc)}", EXIT_USAGE) from None
    args.db = url
    args.user = args.user if args.user is not None else _default_user()
    try:
        code: int = asyncio.run(args.handler(args))
        return code
    except TaskNotFound as exc:
        raise CliError(str(exc), EXIT_NOT_FOUND) from None
    except TaskConflict as exc:
        raise CliError(f"conflict: {exc}", EXIT_CONFLICT) from None
    except TaskValidationError as exc:
        raise CliError(f"invalid {exc}", EXIT_VALIDATION) from None
    except TaskStoreUnavailable as exc:
        raise CliError(f"cannot reach the database at {url}: {exc}", EXIT_UNREACHABLE) from None
    except TaskError as exc:  # pragma: no cover - every TaskError has a case above
        raise CliError(str(exc)) from None
    except MigrationLockTimeout as exc:
        raise CliError(str(exc), EXIT_LOCKED) from None
    except MigrationError as exc:
        raise CliError(str(exc), EXIT_SCHEMA) from None
    except (OSError, DBConnectionError) as exc:
        # Refused, unreachable host, DNS failure, TLS handshake failure...
        reason = connection_failure(exc)
        raise CliError(f"cannot reach the database at {url}: {reason}", EXIT_UNREACHABLE) from None
    except ValueError as exc:  # pydantic's ValidationError on command-line input
        raise CliError(f"invalid input: {_first_line(exc)}", EXIT_VALIDATION) from None
    except Exception as exc:
        if is_connection_failure(exc):
            raise CliError(
                f"cannot reach the database at {url}: {connection_failure(exc)}", EXIT_UNREACHABLE
            ) from None
        raise


def _first_line(exc: Exception) -> str:
    import pydantic

    if isinstance(exc, pydantic.ValidationError):
        error = exc.errors(include_input=False)[0]
        where = ".".join(str(part) for part in error["loc"])
        return f"{where}: {error['msg']}" if where else error["msg"]
    return str(exc).splitlines()[0]
