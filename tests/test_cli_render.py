"""The CLI's parsing and rendering, without a database: terminal escaping, the table
and the task view, the grammar's values taken from the package, the layering."""

from __future__ import annotations

import ast
import datetime as dt
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import todo_app.cli
from todo_app.cli import render
from todo_app.cli.parser import build_parser
from todo_app.repository import MAX_PAGE_SIZE
from todo_app.rules import TaskStatus
from todo_app.schemas import TaskRead

CLI_DIR = Path(todo_app.cli.__file__).parent

#: Every character a terminal acts on or reorders text by.
UNSAFE = [
    *(chr(c) for c in range(0x00, 0x20)),
    "\x7f",
    *(chr(c) for c in range(0x80, 0xA0)),
    *(chr(c) for c in range(0x202A, 0x202F)),
    *(chr(c) for c in range(0x2066, 0x206A)),
    "\u200e",
    "\u200f",
    "\u061c",
]


def _task(
    title: str = "a task", description: str | None = None, status: str = "pending"
) -> TaskRead:
    now = dt.datetime.now(dt.UTC)
    return TaskRead(
        id=uuid.uuid4(),
        user_id="alice",
        title=title,
        description=description,
        status="pending",
        version=1,
        created_at=now,
        updated_at=now,
        completed_at=None,
    )


# -- escaping -------------------------------------------------------------------------


@pytest.mark.parametrize("char", UNSAFE, ids=lambda c: f"U+{ord(c):04X}")
def test_every_control_and_bidi_character_is_escaped(char: str) -> None:
    shown = render.escape(f"a{char}b")
    assert not any(unsafe in shown for unsafe in UNSAFE)
    assert shown.startswith("a\\")
    assert shown.endswith("b")
    assert shown.isprintable()


def test_escapes_read_as_typed_and_ordinary_text_is_untouched() -> None:
    assert render.escape("\x1b[2K\rforged") == "\\x1b[2K\\rforged"
    assert render.escape("tab\there\nnext") == "tab\\there\\nnext"
    assert render.escape("\u202eevil") == "\\u202eevil"
    assert render.escape("\x9b31m") == "\\x9b31m"
    plain = "café, 東京, emoji 👩‍👩‍👧 (zero-width joiners kept), back\\slash"
    assert render.escape(plain) == plain


def test_a_title_cannot_forge_a_line_of_the_table() -> None:
    tasks = [_task("\x1b[2K\rdeadbeef [x] paid the rent  1d ago"), _task("\u202eeno"), _task()]
    lines = render.task_table(tasks)
    assert len(lines) == 3
    for line in lines:
        assert line.isprintable(), repr(line)
    assert "\\x1b[2K\\rdeadbeef" in lines[0]
    assert "\\u202eeno" in lines[1]


def test_a_newline_in_a_title_reads_as_a_space_in_the_table() -> None:
    (line,) = render.task_table([_task("two\nlines")])
    assert "two lines" in line


def test_a_description_continues_indented_and_cannot_pass_for_a_field() -> None:
    task = _task("\x1b]0;owned\x07", description="first\nversion:     99\r\n\u2028status: done")
    lines = "\n".join(render.task_details(task)).splitlines()
    labels = [line.split(":", 1)[0] for line in lines if not line.startswith(" ")]
    # These first; then any field added to TaskRead since (shown too, by its name).
    assert labels[:8] == [
        "id", "title", "status", "description", "version", "created", "updated", "completed"
    ]  # fmt: skip
    assert labels.count("version") == 1, "the description's 'version:' line is indented"
    assert all(line.isprintable() for line in lines)
    assert "title:       \\x1b]0;owned\\x07" in lines
    assert "             version:     99" in lines


def test_an_unknown_status_is_escaped_too() -> None:
    assert render.mark("\x1b[31mx") == "[\\]"
    assert render.mark(TaskStatus.COMPLETED) == "[x]"
    assert render.mark("archived") == "[a]"


def test_json_lines_are_json_dumps_exactly() -> None:
    value = {"title": "\x1b[2K\r\u202e café"}
    assert render.json_line(value) == json.dumps(value, ensure_ascii=False) + "\n"


# -- the grammar ------------------------------------------------------------------------


def test_status_choices_come_from_task_status() -> None:
    parser = build_parser()
    for status in TaskStatus:
        assert parser.parse_args(["list", "--status", status.value]).status == status.value
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(["list", "--status", "archived"])
    assert exited.value.code == 2


def test_list_help_names_the_repository_page_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["list", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"page size, 1..{MAX_PAGE_SIZE} (default 50; with --all, {MAX_PAGE_SIZE})" in help_text


def test_help_names_every_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for code in (2, 3, 4, 5, 6, 7, 8, 130, 141):
        assert f"{code} " in help_text
    reference = (Path(__file__).parents[1] / "docs" / "cli.md").read_text()
    assert "141" in reference


def test_parsing_loads_neither_the_orm_nor_the_settings() -> None:
    code = (
        "import sys; from todo_app.cli.parser import build_parser; "
        "build_parser().parse_args(['list', '--all']); "
        "print(sorted(m for m in ('tortoise', 'pydantic', 'pydantic_settings', 'asyncio') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


# -- the layering -----------------------------------------------------------------------


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_cli_goes_through_the_repository_only() -> None:
    modules = sorted(CLI_DIR.glob("*.py"))
    assert {path.stem for path in modules} >= {
        "__init__", "parser", "tasks", "transfer", "migrations", "render", "exits", "process"
    }  # fmt: skip
    for path in modules:
        imported = _imports(path)
        assert "todo_app.models" not in imported, path.name
        assert "tortoise.models" not in imported, path.name
        source = path.read_text()
        assert ".filter(" not in source, path.name


def test_rendering_neither_parses_nor_reaches_the_database() -> None:
    imported = _imports(CLI_DIR / "render.py")
    assert not {name for name in imported if name.startswith(("tortoise", "todo_app"))} - {
        "todo_app.cli.exits",  # output_error: what a failed write means
        "todo_app.schemas",  # TaskRead, for annotations only
    }
