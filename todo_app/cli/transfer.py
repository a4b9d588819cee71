"""``import`` and ``export``: tasks as JSON lines, in files or on stdin/stdout.

JSON lines are UTF-8 by definition, so input is decoded as UTF-8 whatever the locale
or ``PYTHONIOENCODING`` say (stdin is read through ``sys.stdin.buffer``); a UTF-8
byte-order mark at the start is skipped (Windows editors write one); bytes that are
not UTF-8 are reported with their line number. The whole input is read and checked
before the database is opened: a file that cannot be read, or one bad line, and
nothing is imported. A line longer than any task needs (``MAX_LINE_BYTES``) is refused
as it is read, so ``import /dev/zero`` fails at once instead of filling the memory.

An export to a file replaces it whole or not at all (a temporary file beside it,
renamed over it once complete): a full disk never leaves a truncated export behind.

A file that cannot be opened, read or written is reported as what it is,
``cannot read PATH: REASON`` / ``cannot write PATH: REASON``, with exit 2.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import os
import secrets
import stat
import sys
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING, Final, TextIO

from todo_app.cli.db import database, repository
from todo_app.cli.exits import EXIT_OK, EXIT_USAGE, EXIT_VALIDATION, CliError
from todo_app.cli.render import Progress, json_line, say, say_json_line
from todo_app.rules import DESCRIPTION_MAX_LENGTH, STATUS_MAX_LENGTH, TITLE_MAX_LENGTH

if TYPE_CHECKING:
    from todo_app.schemas import TaskCreate

__all__ = [
    "MAX_LINE_BYTES",
    "bounded_lines",
    "cmd_export",
    "cmd_import",
    "exported_fields",
    "read_lines",
]

STDIN = "-"


def exported_fields() -> tuple[str, ...]:
    """What an exported task keeps: every field ``import`` takes back (``TaskCreate``'s,
    its id included), in ``TaskRead``'s order. A field added to both schemas is
    exported and imported without a change here."""
    from todo_app.schemas import TaskCreate, TaskRead

    return tuple(name for name in TaskRead.model_fields if name in TaskCreate.model_fields)


#: The characters of a task's longest line: an id (36) and every text at its longest.
_LONGEST_TASK: Final = 36 + TITLE_MAX_LENGTH + DESCRIPTION_MAX_LENGTH + STATUS_MAX_LENGTH
#: The longest line ``import`` reads: twice what the longest task needs with every
#: character JSON-escaped as a surrogate pair (12 bytes), for keys, spacing, and the
#: whitespace around a title that is trimmed before its length counts.
MAX_LINE_BYTES: Final = 2 * 12 * _LONGEST_TASK


def bounded_lines(source: IO[bytes], name: str) -> Iterator[bytes]:
    """Each line of ``source``, refusing one longer than :data:`MAX_LINE_BYTES`: a
    file without newlines (``/dev/zero``) would otherwise be read whole into memory."""
    number = 0
    while line := source.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            raise CliError(
                f"cannot read {name}: line {number} is longer than {MAX_LINE_BYTES} bytes, "
                "more than any task needs (nothing imported)",
                EXIT_USAGE,
            )
        yield line


def read_lines(raw: Iterable[bytes]) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of each line of UTF-8 input; a leading BOM skipped."""
    for number, line in enumerate(raw, start=1):
        if number == 1 and line.startswith(codecs.BOM_UTF8):
            line = line[len(codecs.BOM_UTF8) :]
        try:
            yield number, line.decode("utf-8")
        except UnicodeDecodeError:
            raise CliError(
                f"line {number}: not valid UTF-8 (nothing imported)", EXIT_VALIDATION
            ) from None


def _parse(lines: Iterable[tuple[int, str]]) -> list[TaskCreate]:
    import pydantic

    from todo_app.schemas import TaskCreate

    items: list[TaskCreate] = []
    for number, line in lines:
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
    return items


def _read(path: str) -> list[TaskCreate]:
    """Every task of ``path`` (``-``: stdin), validated, before any database work."""
    name = "standard input" if path == STDIN else path
    try:
        if path != STDIN:
            with open(path, "rb") as source:
                return _parse(read_lines(bounded_lines(source, name)))
        if sys.stdin is None:
            raise CliError("cannot read standard input: it is closed", EXIT_USAGE)
        binary: IO[bytes] | None = getattr(sys.stdin, "buffer", None)
        if binary is None:  # replaced by an already-decoded stream (tests, embedding)
            return _parse(enumerate(sys.stdin, start=1))
        return _parse(read_lines(bounded_lines(binary, name)))
    except OSError as exc:  # missing, unreadable, a directory, an I/O error half-way
        raise CliError(f"cannot read {name}: {exc.strerror or exc}", EXIT_USAGE) from None


async def cmd_import(args: argparse.Namespace) -> int:
    items = _read(args.file)
    progress = Progress(len(items), "importing")
    async with database(args):
        count = await repository(args).bulk_create(items, progress=progress)
    say(f"imported {count} task(s)")
    return EXIT_OK


async def cmd_export(args: argparse.Namespace) -> int:
    from todo_app.repository import MAX_PAGE_SIZE

    path = None if args.file == STDIN or _is_stdout(args.file) else args.file
    fields = exported_fields()
    count = 0
    async with database(args, replica_reads=True):
        repo = repository(args)
        out = None if path is None else _ExportFile(path)
        try:
            cursor = None
            while True:
                page = await repo.list(limit=MAX_PAGE_SIZE, cursor=cursor, order="oldest")
                for task in page.items:
                    row = task.model_dump(mode="json", include=set(fields))
                    line = json_line({key: row[key] for key in fields})
                    if out is None:  # stdout's failure is the CLI's (a closed pipe is no error)
                        say_json_line(line)
                    else:
                        out.write(line)
                    count += 1
                if not (cursor := page.next_cursor):
                    break
        except BaseException:
            if out is not None:
                out.abandon()
            raise
        if out is not None:
            out.finish()
    if path is not None:
        say(f"exported {count} task(s) to {path}")
    return EXIT_OK


def _is_stdout(path: str) -> bool:
    """Whether ``path`` is where stdout already goes (``/dev/stdout``): written through
    stdout itself, since opening it again would truncate a file the shell appends to."""
    try:
        named, ours = os.stat(path), os.fstat(sys.stdout.fileno())
    except (OSError, AttributeError, ValueError):  # no such path; stdout closed or replaced
        return False
    return (named.st_dev, named.st_ino) == (ours.st_dev, ours.st_ino)


class _ExportFile:
    """The export's file. A regular file (or a new one) is written to a temporary file
    beside it and renamed over it once complete and on disk, so that a failed export
    (a full disk, a lost database) leaves the previous file whole and no partial file;
    a symbolic link keeps pointing at it. Anything else (``/dev/full``, a pipe) is
    written in place. Every failure is ``cannot write PATH: REASON``, exit 2."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.target = path
        self.temporary: str | None = None
        self.out: TextIO | None = None
        with self._failing():
            try:
                mode: int | None = os.stat(path).st_mode
            except FileNotFoundError:
                mode = None
            if mode is not None and not stat.S_ISREG(mode):
                self.out = open(path, "w", encoding="utf-8")  # noqa: SIM115
                return
            self.target = os.path.realpath(path)
            directory, name = os.path.split(self.target)
            self.temporary = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
            # Made as open() would make it (the umask applies); a file replaced keeps its mode.
            fd = os.open(self.temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            self.out = open(fd, "w", encoding="utf-8")  # noqa: SIM115
            if mode is not None:
                os.fchmod(fd, stat.S_IMODE(mode))

    def write(self, line: str) -> None:
        assert self.out is not None
        with self._failing():
            self.out.write(line)

    def finish(self) -> None:
        """Flush, then put the file in place: all of it, or (on failure) nothing."""
        assert self.out is not None
        with self._failing():
            if self.temporary is None:
                self.out.close()  # flushes: a full disk may only show here
                return
            self.out.flush()
            os.fsync(self.out.fileno())
            self.out.close()
            os.replace(self.temporary, self.target)
            self.temporary = None

    def abandon(self) -> None:
        """Close, and remove the temporary file: the previous file stays as it was."""
        if self.out is not None:
            with contextlib.suppress(OSError):
                self.out.close()
        if self.temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.temporary)
            self.temporary = None

    @contextlib.contextmanager
    def _failing(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            self.abandon()
            raise CliError(f"cannot write {self.path}: {exc.strerror or exc}", EXIT_USAGE) from None
