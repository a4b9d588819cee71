"""The CLI's exit table and the process plumbing around a command, in-process: the
real process runs are in test_cli_process.py; these reach the branches a subprocess
cannot show coverage for. No database."""

from __future__ import annotations

import ast
import atexit
import errno
import gc
import io
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pydantic
import pytest
from tortoise.exceptions import DBConnectionError

from todo_app import errors
from todo_app.cli import exits as exit_table
from todo_app.cli import process
from todo_app.cli.exits import (
    EXIT_CODES_HELP,
    EXIT_CONFLICT,
    EXIT_ERROR,
    EXIT_LOCKED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_OUTPUT_CLOSED,
    EXIT_SCHEMA,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    EXIT_VALIDATION,
    CliError,
    first_line,
    translate,
)
from todo_app.dsn import DatabaseURL
from todo_app.schemas import TaskCreate

URL = DatabaseURL("postgresql://user:s3cret@db.example/tasks")


@pytest.mark.parametrize(
    ("exc", "code", "start"),
    [
        (errors.TaskNotFound("abc"), EXIT_NOT_FOUND, "task abc not found"),
        (errors.TaskConflict("version 3"), EXIT_CONFLICT, "conflict: version 3"),
        (errors.TaskValidationError("title", "too long"), EXIT_VALIDATION, "invalid title: "),
        (errors.TaskStoreUnavailable("gone"), EXIT_UNREACHABLE, "cannot reach the database at"),
        (errors.TaskStoreError("read-only"), EXIT_ERROR, "read-only"),
        (errors.MigrationLockTimeout("held"), EXIT_LOCKED, "held"),
        (errors.SchemaOutOfDate("behind"), EXIT_SCHEMA, "behind"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), EXIT_UNREACHABLE, "cannot reach"),
        (DBConnectionError("no route"), EXIT_UNREACHABLE, "cannot reach the database at"),
        (ValueError("bad\nsecond line"), EXIT_VALIDATION, "invalid input: bad"),
    ],
)
def test_each_failure_has_its_code(exc: Exception, code: int, start: str) -> None:
    error = translate(exc, URL)
    assert error is not None
    assert error.code == code
    assert str(error).startswith(start)
    assert "s3cret" not in str(error)
    assert "\n" not in str(error)


def test_a_bug_is_not_translated() -> None:
    assert translate(KeyError("bug"), URL) is None
    same = CliError("mine", EXIT_USAGE)
    assert translate(same, URL) is same


def test_first_line_of_a_pydantic_error_has_no_input() -> None:
    with pytest.raises(pydantic.ValidationError) as raised:
        TaskCreate(title="secret " * 40)
    line = first_line(raised.value)
    assert line == "title: Value error, must be at most 200 characters (got 279)"
    assert first_line(ValueError("")) == "ValueError"


# -- process.py -----------------------------------------------------------------------


class _Exited(Exception):
    pass


@pytest.fixture
def exits(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Records what the fast exit would do, instead of ending pytest."""
    calls: list[object] = []

    def fake_exit(code: int) -> None:
        calls.append(code)
        raise _Exited(code)

    monkeypatch.setattr(process, "_gc_paused", False)  # restored after the test
    monkeypatch.setattr(atexit, "_run_exitfuncs", lambda: calls.append("atexit"))
    monkeypatch.setattr(process.os, "_exit", fake_exit)
    # A lone-threaded process, as the CLI is: threads other tests left in this pytest
    # process (thread pools, say) must not turn the fast exit into a normal one here.
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    yield calls
    gc.unfreeze()
    gc.enable()


def test_the_collector_waits_for_the_database_and_the_exit_runs_atexit(
    exits: list[object], capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[bool] = []

    def body(argv: object) -> int:
        seen.append(gc.isenabled())
        process.resume_gc()  # what db.database() does once connected
        seen.append(gc.isenabled())
        return 0

    with pytest.raises(_Exited):
        process.run(body)
    assert seen == [False, True]
    assert exits == ["atexit", 0]


def test_a_usage_error_exits_with_its_code(
    exits: list[object], capsys: pytest.CaptureFixture[str]
) -> None:
    def body(argv: object) -> int:
        raise SystemExit("a message from sys.exit")

    with pytest.raises(_Exited):
        process.run(body)
    assert exits == ["atexit", EXIT_ERROR]
    assert capsys.readouterr().err == "a message from sys.exit\n"


def test_a_running_thread_gets_a_normal_exit(
    exits: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(threading, "active_count", lambda: 2)
    release = threading.Event()
    worker = threading.Thread(target=release.wait)
    worker.start()
    try:
        with pytest.raises(SystemExit) as exited:
            process._exit(3)
        assert exited.value.code == 3
        assert exits == []
    finally:
        release.set()
        worker.join()


class _FailingStdout(io.StringIO):
    def __init__(self, failure: OSError) -> None:
        super().__init__()
        self.failure = failure

    def flush(self) -> None:
        raise self.failure

    def fileno(self) -> int:
        raise io.UnsupportedOperation("not a descriptor")


@pytest.mark.parametrize(
    ("failure", "code", "said"),
    [
        (BrokenPipeError(errno.EPIPE, "Broken pipe"), EXIT_OUTPUT_CLOSED, ""),
        (
            OSError(errno.ENOSPC, "No space left on device"),
            EXIT_USAGE,
            "todo-app: error: cannot write standard output: No space left on device\n",
        ),
    ],
)
def test_a_failed_last_flush(
    failure: OSError,
    code: int,
    said: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(sys, "stdout", _FailingStdout(failure))
    assert process._flush_stdout(0) == code
    assert process._flush_stdout(0) == 0, "stdout now goes to devnull"
    sys.stdout.close()
    monkeypatch.setattr(sys, "stdout", _FailingStdout(failure))
    assert process._flush_stdout(EXIT_NOT_FOUND) == EXIT_NOT_FOUND, "the first failure wins"
    sys.stdout.close()
    assert capsys.readouterr().err == said * 2


def test_a_closed_descriptor_becomes_devnull(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", None)
    process._prepare_streams()
    assert sys.stdout is not None
    print("nowhere")
    sys.stdout.close()


# -- the documented tables are the code's -----------------------------------------------

DOCS = Path(__file__).resolve().parents[1] / "docs"
CLI_SOURCES = Path(exit_table.__file__).parent


def _doc_table(page: str, after: str) -> list[list[str]]:
    """The rows (cells stripped, header and rule skipped) of the first table of
    ``docs/<page>`` after the line that starts with ``after``."""
    lines = (DOCS / page).read_text(encoding="utf-8").splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith(after))
    rows: list[list[str]] = []
    for line in lines[start:]:
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        rows.append(cells)
    return rows[2:]


def _exit_codes() -> dict[str, int]:
    return {
        name: value
        for name, value in vars(exit_table).items()
        if name.startswith("EXIT_") and isinstance(value, int)
    }


def _failure(cls: type[Exception]) -> Exception:
    """An instance of ``cls`` whatever its constructor wants (translate reads the type)."""
    exc = cls.__new__(cls)
    Exception.__init__(exc, "x")
    return exc


def _error_classes(base: type[Exception]) -> list[type[Exception]]:
    """The subclasses of ``base`` a user can meet: not ReadOnlyModel, a programming
    error (a TypeError) that the CLI never makes and rightly shows as a bug."""
    return [
        cls
        for cls in vars(errors).values()
        if isinstance(cls, type)
        and issubclass(cls, base)
        and cls is not base
        and not issubclass(cls, TypeError)
    ]


def test_every_code_a_command_can_exit_with_is_a_named_constant() -> None:
    """A CliError's code is always one of exits.py's constants (or the default,
    EXIT_ERROR): the constants are every code the CLI can return."""
    for source in sorted(CLI_SOURCES.glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "CliError":
                codes = node.args[1:] + [k.value for k in node.keywords if k.arg == "code"]
                for code in codes:
                    assert isinstance(code, ast.Name), f"{source.name}:{node.lineno}"
                    assert code.id in _exit_codes(), f"{source.name}:{node.lineno}"
    for cls in _error_classes(errors.TodoAppError):
        error = translate(_failure(cls), URL)
        assert error is not None, cls
        assert error.code in _exit_codes().values(), cls


def test_the_documented_exit_table_is_the_codes() -> None:
    rows = _doc_table("cli.md", "Errors are one line on stderr")
    documented = {int(code): meaning for code, meaning in rows}
    assert len(documented) == len(rows), "each code once"
    assert sorted(documented) == sorted(_exit_codes().values())
    assert all(documented.values()), "each code says what it means"
    # The --help epilog says the same, failures only.
    listed = {int(code) for code in re.findall(r"(\d+) [a-z]", EXIT_CODES_HELP)}
    assert listed == set(_exit_codes().values()) - {EXIT_OK}


def _by_class(rows: list[list[str]], column: int) -> dict[str, str]:
    """``{class name: cell}`` of a documented error table (the first cell names the class)."""
    by_class: dict[str, str] = {}
    for row in rows:
        named = re.match(r"`(\w+)`", row[0])
        assert named, row
        by_class[named.group(1)] = row[column]
    return by_class


def test_the_documented_error_tables_are_the_codes() -> None:
    """Each repository error's row gives its http_status; each migration error's row
    the exit code translate gives it; every such class has its row."""
    http = _by_class(_doc_table("repository.md", "| Error (all from `todo_app`)"), 2)
    for cls in _error_classes(errors.TaskError):
        assert cls.__name__ in http, f"{cls.__name__} missing from docs/repository.md's table"
        status = str(getattr(cls, "http_status", None))
        assert status in http[cls.__name__].split(" / "), cls
    exit_of = _by_class(_doc_table("migrations.md", "| Error | Meaning | `todo-app` exit"), 2)
    for cls in _error_classes(errors.MigrationError):
        assert cls.__name__ in exit_of, f"{cls.__name__} missing from docs/migrations.md's table"
        error = translate(_failure(cls), URL)
        assert error is not None
        assert int(exit_of[cls.__name__]) == error.code, cls
    assert set(http) | set(exit_of) <= set(vars(errors)), "every row is a real class"
