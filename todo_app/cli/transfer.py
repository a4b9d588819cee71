"""``import`` and ``export``: tasks as JSON lines, in files or on stdin/stdout.

JSON lines are UTF-8 by definition, so input is decoded as UTF-8 whatever the locale
or ``PYTHONIOENCODING`` say (stdin is read through ``sys.stdin.buffer``); a UTF-8
byte-order mark at the start is skipped (Windows editors write one); bytes that are
not UTF-8 are reported with their line number. The whole input is read and checked
before the database is opened: a file that cannot be read, or one bad line, and
nothing is imported. A line longer than any task needs (:func:`max_line_bytes`, from
the schema's limits) is refused
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
import functools
import json
import os
import secrets
import stat
import sys
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any, Final, TextIO

from todo_app.cli.db import database, repository
from todo_app.cli.exits import EXIT_OK, EXIT_USAGE, EXIT_VALIDATION, CliError
from todo_app.cli.render import Progress, json_line, say, say_json_line

if TYPE_CHECKING:
    from todo_app.schemas import TaskCreate

__all__ = [
    "bounded_lines",
    "cmd_export",
    "cmd_import",
    "exported_fields",
    "max_line_bytes",
    "read_lines",
]

STDIN = "-"


def exported_fields() -> tuple[str, ...]:
    """What an exported task keeps: every field ``import`` takes back (``TaskCreate``'s,
    its id included), in ``TaskRead``'s order. A field added to both schemas is
    exported and imported without a change here."""
    from todo_app.schemas import TaskCreate, TaskRead

    return tuple(name for name in TaskRead.model_fields if name in TaskCreate.model_fields)


#: The longest JSON text of a value without a declared length, by JSON schema type,
#: and of a string by its format (``datetime.isoformat()`` at its longest).
_LONGEST_BY_TYPE: Final = {"integer": 20, "number": 24, "boolean": 5, "null": 4}
_LONGEST_BY_FORMAT: Final = {
    "uuid": 36,
    "date-time": len("9999-12-31T23:59:59.999999+23:59"),
    "date": len("9999-12-31"),
    "time": len("23:59:59.999999+23:59"),
}
#: Bytes of one character in a JSON string at most: escaped as a surrogate pair.
_ESCAPED_CHARACTER: Final = len("\\ud83d\\ude00")


def _longest_value(field: str, schema: dict[str, Any], defs: dict[str, Any]) -> int:
    """The most bytes the JSON value of ``schema`` (a property of ``TaskCreate``'s
    JSON schema) takes, every character escaped."""
    if len(only := schema.get("allOf", [])) == 1:
        # Older pydantic (2.7-2.8) wraps a described reference as allOf: [{"$ref": ...}].
        schema = {**only[0], **{k: v for k, v in schema.items() if k != "allOf"}}
    if ref := schema.get("$ref"):
        schema = {
            **defs[ref.rpartition("/")[2]],
            **{k: v for k, v in schema.items() if k != "$ref"},
        }
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        # pydantic puts an optional string's maxLength beside anyOf, not in it.
        inherited: dict[str, Any] = {k: schema[k] for k in ("maxLength", "format") if k in schema}
        return max(_longest_value(field, {**inherited, **option}, defs) for option in options)
    if "enum" in schema or "const" in schema:
        values = schema.get("enum", [schema.get("const")])
        return max(_longest_literal(value) for value in values)
    kind = schema.get("type")
    if kind == "string":
        length = schema.get("maxLength", _LONGEST_BY_FORMAT.get(schema.get("format", "")))
        if length is None:
            raise TypeError(
                f"TaskCreate.{field} is a string without max_length: import could not bound "
                "its lines (give the field a max_length)"
            )
        return 2 + _ESCAPED_CHARACTER * int(length)
    if kind in _LONGEST_BY_TYPE:
        return _LONGEST_BY_TYPE[kind]
    raise TypeError(f"TaskCreate.{field}: no longest JSON encoding known for {schema}")


def _longest_literal(value: object) -> int:
    if isinstance(value, str):
        return 2 + _ESCAPED_CHARACTER * len(value)
    return len(json.dumps(value))


@functools.cache
def max_line_bytes() -> int:
    """The longest line ``import`` reads, in bytes: twice the longest line of a task,
    every field of ``TaskCreate`` at its longest (strings at their schema's
    ``max_length``) with every character JSON-escaped as a surrogate pair. Twice, for
    spacing and the whitespace around a title that is trimmed before its length
    counts. A field added to ``TaskCreate`` widens it: the package's own exports
    always import back. Computed on first use (pydantic is slow to import)."""
    from todo_app.schemas import TaskCreate

    schema = TaskCreate.model_json_schema()
    defs = schema.get("$defs", {})
    longest = len("{}\r\n")
    for name, field in schema["properties"].items():
        # "name": value, -- the key quoted, its separator, the value, a comma and a space.
        longest += len(json.dumps(name)) + 2 + _longest_value(name, field, defs) + 2
    return 2 * longest


def bounded_lines(source: IO[bytes], name: str) -> Iterator[bytes]:
    """Each line of ``source``, refusing one longer than :func:`max_line_bytes`: a
    file without newlines (``/dev/zero``) would otherwise be read whole into memory."""
    limit = max_line_bytes()
    number = 0
    while line := source.readline(limit + 1):
        number += 1
        if len(line) > limit and not line.endswith(b"\n"):
            raise CliError(
                f"cannot read {name}: line {number} is longer than {limit} bytes, "
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
