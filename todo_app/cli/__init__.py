"""``todo-app``: the command line of todo_app (also ``python -m todo_app``).

Every command opens its own Tortoise context on ``--db`` (default: settings, i.e.
the embedded SQLite file), does one thing through ``TaskRepository`` or the migration
runner, and closes it. User mistakes are one line on stderr and an exit code that
says what kind of mistake it was; never a traceback, never a password.

The package, one job per module:

* ``parser``     the grammar: verbs, arguments, which handler runs each verb
* ``tasks``, ``transfer``, ``migrations``   the handlers (task verbs; import/export;
  the schema verbs), over ``db`` (the database context, the repository, id prefixes)
* ``render``     what reaches the terminal: escaping, the table, JSON
* ``exits``      the exit codes and the table that maps an exception to one
* ``process``    when ``todo-app`` is the whole process: a closed stdout, the exit

Imports of the ORM are deferred into the commands, so ``--help`` and argument
errors answer at once and a command pays only for what it uses.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from todo_app.cli.exits import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    CliError,
)

__all__ = [
    "main",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on ``argv``; returns the exit code (``SystemExit`` for errors).

    Without ``argv`` (the ``todo-app`` script, ``python -m todo_app``) the CLI is the
    whole process: it reads ``sys.argv`` and ends the process itself (see
    :mod:`todo_app.cli.process`)."""
    if argv is None:
        from todo_app.cli import process

        process.run(_main)
    return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    from todo_app.cli.parser import build_parser

    try:
        return _run(build_parser().parse_args(argv))
    except CliError as exc:
        _fail(str(exc), exc.code)
    except KeyboardInterrupt:
        _fail("interrupted", EXIT_INTERRUPTED)


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from todo_app.cli.db import default_user
    from todo_app.cli.exits import first_line, translate
    from todo_app.connection import check_url
    from todo_app.dsn import DatabaseURL
    from todo_app.errors import DatabaseURLError
    from todo_app.settings import get_settings

    try:
        settings = get_settings()  # refuses a .env it cannot parse, naming file and line
        url: DatabaseURL = check_url(DatabaseURL(args.db)) if args.db else settings.database_url
    except DatabaseURLError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    except ValueError as exc:  # pydantic's ValidationError: a bad setting
        raise CliError(f"invalid settings: {first_line(exc)}", EXIT_USAGE) from None
    args.db, args.settings = url, settings
    args.user = args.user if args.user is not None else default_user()
    try:
        code: int = asyncio.run(args.handler(args))
    except Exception as exc:
        error = translate(exc, url)
        if error is None:
            raise
        raise error from None
    return code


def _fail(message: str, code: int) -> NoReturn:
    """One line on stderr, control characters escaped, and the exit code."""
    if message:
        from todo_app.cli.render import escape

        # If stderr is closed too, the exit code is all there is to say.
        with contextlib.suppress(OSError, ValueError):
            print(f"todo-app: error: {escape(message)}", file=sys.stderr)
    raise SystemExit(code)
