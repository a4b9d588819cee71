"""Exit codes, and the one table that turns a failure into a line and a code.

A command raises :class:`CliError` for a mistake it recognises itself (a file it
cannot read, an ambiguous id); anything else the package raises goes through
:func:`translate`. Both end as one line on stderr, never a traceback.

Exceptions are matched by type only. The ORM and pydantic are looked up in
``sys.modules`` rather than imported: if they were never loaded, the exception
cannot be theirs, and a command that never touched the database pays nothing here.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from todo_app.dsn import DatabaseURL

__all__ = [
    "EXIT_CONFLICT",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_LOCKED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_OUTPUT_CLOSED",
    "EXIT_SCHEMA",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "EXIT_VALIDATION",
    "CliError",
    "first_line",
    "output_error",
    "translate",
]

EXIT_OK = 0
EXIT_ERROR = 1
#: A mistake on the command line, in the settings, or a file that cannot be read or written.
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_VALIDATION = 5
EXIT_UNREACHABLE = 6
EXIT_SCHEMA = 7
EXIT_LOCKED = 8
#: Ctrl-C: 128 + SIGINT, what a shell reports for a process the signal killed.
EXIT_INTERRUPTED = 130
#: Whoever read stdout stopped (``todo-app list --all | head -1``): 128 + SIGPIPE, what
#: a shell reports for a process the signal killed. Nothing is printed.
EXIT_OUTPUT_CLOSED = 141

#: The epilog of ``todo-app --help``; docs/cli.md says the same.
EXIT_CODES_HELP = (
    "Exit codes: 1 the database refused for another reason, "
    "2 usage (including a file that cannot be read or written), 3 not found, "
    "4 conflict, 5 invalid input, 6 database unreachable, 7 schema out of date, drift or "
    "a migration refused, 8 another migration held the lock too long, 130 interrupted, "
    "141 output closed early (e.g. piped into head)."
)


class CliError(Exception):
    """A failure reported as one line on stderr with its own exit code.

    An empty message prints nothing (stdout was closed: there is nobody to tell)."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def translate(exc: Exception, url: DatabaseURL) -> CliError | None:
    """The line and exit code for ``exc``, raised while a command ran against ``url``;
    None for a bug (the caller re-raises it)."""
    from todo_app import errors

    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, errors.TaskNotFound):
        return CliError(str(exc), EXIT_NOT_FOUND)
    if isinstance(exc, errors.TaskConflict):
        return CliError(f"conflict: {exc}", EXIT_CONFLICT)
    if isinstance(exc, errors.TaskValidationError):
        return CliError(f"invalid {exc}", EXIT_VALIDATION)
    if isinstance(exc, errors.TaskStoreUnavailable):
        return CliError(f"cannot reach the database at {url}: {exc}", EXIT_UNREACHABLE)
    if isinstance(exc, errors.TaskError):  # TaskStoreError: read-only, no table...
        return CliError(str(exc))
    if isinstance(exc, errors.MigrationLockTimeout):
        return CliError(str(exc), EXIT_LOCKED)
    if isinstance(exc, errors.MigrationError):
        return CliError(str(exc), EXIT_SCHEMA)
    if isinstance(exc, OSError) or _is_driver_connection_error(exc):
        # Refused, unreachable host, DNS failure, TLS handshake failure...
        from todo_app.connection import connection_failure

        return CliError(
            f"cannot reach the database at {url}: {connection_failure(exc)}", EXIT_UNREACHABLE
        )
    if isinstance(exc, ValueError):  # pydantic's ValidationError on command-line input
        return CliError(f"invalid input: {first_line(exc)}", EXIT_VALIDATION)
    from todo_app.connection import connection_failure, is_connection_failure

    if is_connection_failure(exc):
        return CliError(
            f"cannot reach the database at {url}: {connection_failure(exc)}", EXIT_UNREACHABLE
        )
    dialects = sys.modules.get("todo_app.dialects")
    if dialects is not None:
        # A driver's error no runner translated (a catalog read): the dialects' table.
        typed = dialects.translate(exc)
        if typed is not None:
            return translate(typed, url)
    return None


def output_error(exc: OSError) -> CliError:
    """The report of a failed write to stdout: silence for a closed pipe.

    Output goes through :mod:`todo_app.cli.render`, which turns its failures into this
    at the write, so that an ``OSError`` reaching :func:`translate` is the database's."""
    if isinstance(exc, BrokenPipeError):
        return CliError("", EXIT_OUTPUT_CLOSED)
    return CliError(f"cannot write standard output: {exc.strerror or exc}", EXIT_USAGE)


def _is_driver_connection_error(exc: Exception) -> bool:
    tortoise_errors = sys.modules.get("tortoise.exceptions")
    return tortoise_errors is not None and isinstance(exc, tortoise_errors.DBConnectionError)


def first_line(exc: Exception) -> str:
    """The first line of ``exc``; for pydantic, its first error without the input."""
    pydantic_core = sys.modules.get("pydantic_core")
    if pydantic_core is not None and isinstance(exc, pydantic_core.ValidationError):
        error = exc.errors(include_input=False)[0]
        where = ".".join(str(part) for part in error["loc"])
        return f"{where}: {error['msg']}" if where else str(error["msg"])
    lines = str(exc).splitlines()
    return lines[0] if lines else type(exc).__name__
