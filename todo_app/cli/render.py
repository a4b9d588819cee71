"""What the CLI shows: terminal-safe text, the task table, one task, progress, JSON.

Titles, descriptions and anything a user typed can hold control characters. Written
raw, ``"\\x1b[2K\\r"`` erases the line and ``"\\r"`` overwrites it, so a title could
forge a row of ``list``; U+202E and the other bidi controls reorder what follows. Every
such character is shown escaped (``\\x1b``, ``\\r``, ``\\u202e``) by :func:`escape`
before it reaches the terminal. JSON output is the exception on purpose: it is
``json.dumps`` exactly, for programs, and JSON escapes control characters itself.

Machine-readable output (``--json``, ``export``) is UTF-8 whatever the locale says,
as JSON requires; text for people follows the terminal's encoding.
"""

from __future__ import annotations

import codecs
import datetime as dt
import json
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, TextIO

from todo_app.cli.exits import output_error

if TYPE_CHECKING:
    from todo_app.schemas import TaskRead

__all__ = [
    "Progress",
    "escape",
    "json_line",
    "mark",
    "say",
    "say_json",
    "say_json_line",
    "short_id",
    "task_details",
    "task_table",
]

#: C0 controls (newline and tab included), DEL, C1 controls, the bidi embeddings,
#: overrides, isolates and marks, and the Unicode line and paragraph separators.
_UNSAFE: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
_NAMED: Final = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
_MARKS: Final = {"pending": "[ ]", "completed": "[x]"}
_PROGRESS_THRESHOLD: Final = 1000


def escape(text: str) -> str:
    """``text`` with every control and bidi character shown as an escape: one line,
    shown as typed, unable to move the cursor or reorder what follows."""
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_visible, text)


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def short_id(task: TaskRead) -> str:
    return str(task.id)[:8]


def mark(status: object) -> str:
    """``[ ]``, ``[x]``, or ``[p]`` for a status written by a newer version."""
    text = escape(str(status))  # a TaskStatus, or a newer version's string
    return _MARKS.get(text, f"[{text[:1]}]")


def _ago(moment: dt.datetime, now: dt.datetime) -> str:
    seconds = int((now - moment).total_seconds())
    if seconds < 0:
        return "in the future"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return "just now"


def task_table(tasks: Sequence[TaskRead]) -> list[str]:
    """One line per task: short id, mark, title cut to the terminal, age."""
    if not tasks:
        return ["No tasks."]
    import shutil

    now = dt.datetime.now(dt.UTC)
    width = shutil.get_terminal_size((100, 24)).columns
    ages = [_ago(task.created_at, now) for task in tasks]
    # A cell is one line: a newline reads as a space, anything else unsafe is escaped.
    titles = [escape(task.title.replace("\n", " ")) for task in tasks]
    age_width = max(len(age) for age in ages)
    longest = max(len(title) for title in titles)
    title_width = min(longest, max(10, width - 8 - 1 - 3 - 1 - 1 - age_width - 2))
    lines = []
    for task, title, age in zip(tasks, titles, ages, strict=True):
        if len(title) > title_width:
            title = title[: title_width - 1] + "…"
        lines.append(
            f"{short_id(task)} {mark(task.status)} {title:<{title_width}}  {age:>{age_width}}"
        )
    return lines


def task_details(task: TaskRead) -> list[str]:
    """Every field, one per line; a multi-line description continues indented, so no
    line of it can pass for another field."""
    label_width = 13
    description = "-"
    if task.description:
        lines = [escape(line) for line in task.description.splitlines()] or [""]
        description = ("\n" + " " * label_width).join(lines)
    rows = [
        ("id", str(task.id)),
        ("title", escape(task.title)),
        ("status", escape(str(task.status))),
        ("description", description),
        ("version", str(task.version)),
        ("created", task.created_at.isoformat(timespec="seconds")),
        ("updated", task.updated_at.isoformat(timespec="seconds")),
        ("completed", _value(task.completed_at)),
    ]
    shown = {"id", "title", "status", "description", "version", "created_at", "updated_at"}
    shown |= {"completed_at", "user_id"}  # the owner is who asked: not repeated
    # Every other field of TaskRead, so that a field added to the schema is shown too.
    rows += [
        (name.replace("_", " "), _value(getattr(task, name)))
        for name in type(task).model_fields
        if name not in shown
    ]
    return [f"{label + ':':<{label_width}}{value}" for label, value in rows]


def _value(value: object) -> str:
    """A field's value on one line: ``-`` for none, a datetime to the second."""
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds")
    return escape(str(value).replace("\n", " "))


# -- writing ----------------------------------------------------------------------------
#
# Everything the commands print goes through say() and say_json(). A failed write is
# turned into the CLI's own error right here (silence and 141 for a closed pipe), so
# that no OSError of ours can be taken for the database's on the way up.
#
# A large write is made in bytes, in a loop: when the reader of a pipe goes away in
# the middle of one, ``BufferedWriter.write`` returns a short count rather than raise,
# and ``TextIOWrapper`` ignores that count, so the rest would vanish without an error.

#: Below this many characters a write goes through the text layer: the buffer takes it
#: whole, and its flush retries short writes itself.
_SMALL: Final = 2048


def say(*lines: str, flush: bool = False) -> None:
    """Lines for people, on stdout, in the terminal's encoding."""
    try:
        for line in lines:
            _write(line + "\n", utf8=False)
        if flush:
            sys.stdout.flush()
    except OSError as exc:
        raise output_error(exc) from None


def say_json(value: Any) -> None:
    """``value`` for programs, on stdout: one line of JSON."""
    say_json_line(json_line(value))


def say_json_line(line: str) -> None:
    """A line of JSON already made (``json_line``), on stdout, in UTF-8 whatever the
    locale: ``export > file`` and ``import file`` always agree."""
    try:
        _write(line, utf8=True)
    except OSError as exc:
        raise output_error(exc) from None


def json_line(value: Any) -> str:
    """``value`` as one line of JSON, exactly as ``json.dumps`` writes it."""
    return json.dumps(value, ensure_ascii=False) + "\n"


def _write(text: str, *, utf8: bool) -> None:
    out = sys.stdout
    buffer = getattr(out, "buffer", None)
    if buffer is None or (len(text) < _SMALL and (not utf8 or _is_utf8(out))):
        out.write(text)
        return
    out.flush()  # what the text layer holds comes first
    if utf8:
        data = text.encode("utf-8")
    else:
        data = text.encode(out.encoding, getattr(out, "errors", None) or "strict")
    view = memoryview(data)
    while view:
        view = view[buffer.write(view) :]


def _is_utf8(out: TextIO) -> bool:
    encoding = getattr(out, "encoding", None)
    if not encoding:
        return False
    try:
        return codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False


class Progress:
    """A one-line progress bar on stderr, shown only on a terminal."""

    def __init__(self, total: int, label: str) -> None:
        self.total = total
        self.label = label
        self.enabled = total >= _PROGRESS_THRESHOLD and bool(sys.stderr and sys.stderr.isatty())

    def __call__(self, done: int) -> None:
        if not self.enabled:
            return
        filled = int(30 * done / self.total)
        bar = "#" * filled + "-" * (30 - filled)
        sys.stderr.write(f"\r{self.label} [{bar}] {done}/{self.total}")
        if done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()
