"""How a command reaches the tasks: one database context per command, and the
repository of ``--user``. Every read and write goes through ``TaskRepository``.

The ORM is imported here, when a command opens the database, never before: ``--help``
and argument errors answer without it.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Final

from todo_app.cli import process
from todo_app.cli.exits import EXIT_NOT_FOUND, EXIT_SCHEMA, EXIT_USAGE, CliError

if TYPE_CHECKING:
    from tortoise.backends.base.client import BaseDBAsyncClient

    from todo_app.repository import TaskRepository

__all__ = [
    "REPLICA_CHECK_BOUND",
    "database",
    "default_user",
    "first_replica_check",
    "repository",
    "task_id",
]

#: The shortest id prefix a user may type: shorter ones match too much to be useful.
MIN_PREFIX = 4


def default_user() -> str:
    return os.environ.get("TODO_USER") or getpass.getuser()


#: How long a command that reads waits for its first look at the read replicas (s).
REPLICA_CHECK_BOUND: Final = 0.5
#: Pause between two looks at a replica that has not yet shown it caught up (s).
_RECHECK: Final = 0.01


@contextlib.asynccontextmanager
async def database(
    args: argparse.Namespace, *, check_schema: bool = True, replica_reads: bool = False
) -> AsyncIterator[BaseDBAsyncClient]:
    """A Tortoise context on ``--db`` for the length of one command; unless told
    otherwise, refuses (exit 7) a database whose schema this version cannot use.
    ``replica_reads``: the command reads, so read replicas are checked first."""
    from tortoise.context import TortoiseContext

    from todo_app.config import tortoise_config
    from todo_app.errors import SchemaOutOfDate
    from todo_app.startup_check import ensure_schema_current

    # One name per dialect: Tortoise caches compiled SQL per connection name for the
    # life of the process (commands run in-process, e.g. from tests, share it).
    name = f"cli_{args.db.dialect}"
    async with TortoiseContext() as context:
        config = tortoise_config(args.db, connection_name=name, settings=args.settings)
        await context.init(config=config)
        connection = context.connections.get(name)
        if check_schema:
            try:
                await ensure_schema_current(connection)
            except SchemaOutOfDate as exc:
                raise CliError(str(exc), EXIT_SCHEMA) from None
        if replica_reads:
            await first_replica_check(name)
        process.resume_gc()
        yield connection


async def first_replica_check(connection_name: str) -> None:
    """Look at the read replicas now, for up to ``REPLICA_CHECK_BOUND`` seconds.

    A server's replicas are checked in the background of its reads, and a replica
    serves once a check has seen it hold every commit acknowledged before some
    moment of this process: a command would end before that check. Checked here,
    a replica serves the command's reads only if it holds every write acknowledged
    before the command started (a previous ``add`` included); else, or if none
    answers in time, the primary does."""
    import asyncio  # not at the top: parsing the command line loads no asyncio

    from todo_app.replicas import replica_status

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(REPLICA_CHECK_BOUND):
            while True:
                states = {status.state for status in await replica_status(connection_name)}
                # "lagging": it answered but has not replayed this process's first
                # look at the primary yet; replay is usually a matter of milliseconds.
                if "ok" in states or "lagging" not in states:
                    return
                await asyncio.sleep(_RECHECK)


def repository(args: argparse.Namespace) -> TaskRepository:
    from todo_app.repository import TaskRepository

    return TaskRepository(args.user)


async def task_id(args: argparse.Namespace, repo: TaskRepository) -> uuid.UUID:
    """The task id the user typed: a whole UUID, or a unique prefix of one."""
    typed = args.id.strip().lower()
    with contextlib.suppress(ValueError):
        return uuid.UUID(typed)
    if len(typed) < MIN_PREFIX or any(c not in "0123456789abcdef-" for c in typed):
        raise CliError(
            f"no task {args.id!r}: give its id or at least {MIN_PREFIX} of its first characters",
            EXIT_NOT_FOUND,
        )
    matches = await repo.ids_starting_with(typed, limit=2)
    if not matches:
        raise CliError(f"no task {args.id!r}", EXIT_NOT_FOUND)
    if len(matches) > 1:
        raise CliError(f"{args.id!r} matches several tasks: type more of the id", EXIT_USAGE)
    return matches[0]
