"""The CLI as a process, on SQLite: stdout closed early, files that cannot be read or
written, UTF-8 in and out whatever the locale, and control characters in output.

Each test runs ``python -m todo_app`` for real where the behaviour belongs to the
process (a pipe, an encoding, an exit code); none needs PostgreSQL.
"""

from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import BaseModel, Field

import todo_app.schemas
from todo_app.cli import main, transfer
from todo_app.cli.exits import EXIT_OUTPUT_CLOSED, EXIT_USAGE, EXIT_VALIDATION, CliError
from todo_app.cli.transfer import max_line_bytes
from todo_app.dsn import DatabaseURL

USER = "pipe-user"


def run(
    url: str,
    *args: str,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "todo_app", "--db", url, "--user", USER, *args],
        input=stdin,
        capture_output=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def ok(url: str, *args: str, **kwargs: object) -> str:
    result = run(url, *args, **kwargs)  # type: ignore[arg-type]
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode("utf-8")


def failed(result: subprocess.CompletedProcess[bytes], code: int) -> str:
    """The one error line of a run that must have failed with ``code``."""
    err = result.stderr.decode()
    assert result.returncode == code, err
    assert err.startswith("todo-app: error: ")
    assert err.count("\n") == 1, "an error is one line"
    assert "Traceback" not in err
    assert "cannot reach the database" not in err
    return err


@pytest.fixture
def url(fresh_sqlite_url: Callable[[], DatabaseURL]) -> str:
    url = fresh_sqlite_url().reveal()
    ok(url, "migrate")
    return url


def _titles(url: str) -> list[str]:
    listing = json.loads(ok(url, "list", "--all", "--oldest", "--json"))
    return [item["title"] for item in listing["items"]]


# -- stdout closed early --------------------------------------------------------------


def _read_a_little_and_close(url: str, *args: str, env: dict[str, str]) -> tuple[int, bytes, bytes]:
    """What ``todo-app ARGS | head -c 100`` does to todo-app."""
    process = subprocess.Popen(
        [sys.executable, "-m", "todo_app", "--db", url, "--user", USER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    first = process.stdout.read(100)
    process.stdout.close()
    code = process.wait(timeout=120)
    return code, first, process.stderr.read()


def _env(buffering: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    if buffering == "unbuffered":
        env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.mark.parametrize("buffering", ["buffered", "unbuffered"])
def test_stdout_closed_in_the_middle_exits_quietly_with_141(
    url: str, tmp_path: Path, buffering: str
) -> None:
    # Well over a pipe's 64 KiB in every format, so the writer is still writing when
    # the reader goes away; one JSON line of all of it too (a single large write).
    source = tmp_path / "many.jsonl"
    source.write_text("".join(json.dumps({"title": f"task {n:05}"}) + "\n" for n in range(3000)))
    ok(url, "import", str(source))
    for args in (["list", "--all"], ["export"], ["list", "--all", "--json"]):
        code, first, err = _read_a_little_and_close(url, *args, env=_env(buffering))
        assert first, args
        assert err == b"", (args, err.decode())
        assert code == EXIT_OUTPUT_CLOSED, args


@pytest.mark.parametrize("buffering", ["buffered", "unbuffered"])
def test_stdout_closed_before_the_first_write_exits_quietly_with_141(
    url: str, buffering: str
) -> None:
    # Buffered, the output fits in the buffer and fails only at the final flush, at
    # exit; unbuffered (PYTHONUNBUFFERED), at the first write.
    for args in (["list"], ["stats"], ["--help"], ["list", "--help"]):
        process = subprocess.Popen(
            [sys.executable, "-m", "todo_app", "--db", url, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(buffering),
        )
        assert process.stdout is not None
        assert process.stderr is not None
        process.stdout.close()
        code = process.wait(timeout=120)
        assert process.stderr.read() == b"", args
        assert code == EXIT_OUTPUT_CLOSED, args


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_stdout_is_an_output_error(url: str) -> None:
    with open("/dev/full", "wb") as full:
        result = subprocess.run(
            [sys.executable, "-m", "todo_app", "--db", url, "list"],
            stdout=full,
            stderr=subprocess.PIPE,
            timeout=120,
            check=False,
        )
    err = failed(result, EXIT_USAGE)
    assert "cannot write standard output: No space left on device" in err


# -- file errors are file errors --------------------------------------------------------


def test_export_to_an_unwritable_path_is_a_file_error(url: str, tmp_path: Path) -> None:
    ok(url, "add", "one")
    missing = tmp_path / "no-such-dir" / "out.jsonl"
    err = failed(run(url, "export", str(missing)), EXIT_USAGE)
    assert f"cannot write {missing}: No such file or directory" in err
    err = failed(run(url, "export", str(tmp_path)), EXIT_USAGE)
    assert f"cannot write {tmp_path}: Is a directory" in err
    if Path("/dev/full").exists():
        err = failed(run(url, "export", "/dev/full"), EXIT_USAGE)
        assert "cannot write /dev/full: No space left on device" in err


def _import_many(url: str, tmp_path: Path, count: int) -> None:
    source = tmp_path / "many.jsonl"
    source.write_text(
        "".join(json.dumps({"title": f"task {n:05} " + "x" * 100}) + "\n" for n in range(count))
    )
    ok(url, "import", str(source))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: a disk that fills up half-way through an export."""
    disk = tmp_path / "small-disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_an_export_onto_a_full_disk_leaves_the_old_file_whole(
    url: str, tmp_path: Path, small_disk: Path
) -> None:
    _import_many(url, tmp_path, 1000)  # about 130 KB of JSON lines
    target = small_disk / "tasks.jsonl"
    target.write_text('{"title": "the previous export"}\n')
    err = failed(run(url, "export", str(target)), EXIT_USAGE)
    assert f"cannot write {target}: No space left on device" in err
    assert target.read_text() == '{"title": "the previous export"}\n'
    assert os.listdir(small_disk) == ["tasks.jsonl"], "no temporary file left behind"
    fresh = small_disk / "new.jsonl"
    failed(run(url, "export", str(fresh)), EXIT_USAGE)
    assert os.listdir(small_disk) == ["tasks.jsonl"], "no partial new file either"


def test_an_export_that_fails_midway_keeps_the_old_file(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from todo_app.errors import TaskStoreUnavailable
    from todo_app.repository import TaskRepository

    _import_many(url, tmp_path, 250)  # two pages
    target = tmp_path / "out" / "tasks.jsonl"
    target.parent.mkdir()
    target.write_text("previous\n")
    listing = TaskRepository.list

    async def second_page_fails(self: TaskRepository, **kwargs: object) -> object:
        if kwargs.get("cursor") is not None:
            raise TaskStoreUnavailable("the connection was lost")
        return await listing(self, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(TaskRepository, "list", second_page_fails)
    with pytest.raises(SystemExit) as exited:
        main(["--db", url, "--user", USER, "export", str(target)])
    assert exited.value.code == 6
    assert "the connection was lost" in capsys.readouterr().err
    assert target.read_text() == "previous\n"
    assert os.listdir(target.parent) == ["tasks.jsonl"]


def test_an_export_replaces_the_file_whole_keeping_its_mode_and_links(
    url: str, tmp_path: Path
) -> None:
    _import_many(url, tmp_path, 3)
    target = tmp_path / "out" / "tasks.jsonl"
    target.parent.mkdir()
    target.write_text("previous\n" * 1000)
    target.chmod(0o640)
    link = tmp_path / "latest.jsonl"
    link.symlink_to(target)
    ok(url, "export", str(link))
    assert link.is_symlink(), "the link still points where it did"
    assert len(target.read_text().splitlines()) == 3
    assert target.stat().st_mode & 0o777 == 0o640
    assert os.listdir(target.parent) == ["tasks.jsonl"]


def test_an_export_to_stdout_by_name_writes_where_stdout_goes(url: str, tmp_path: Path) -> None:
    """/dev/stdout redirected to a file (``>>``) is written in place: replacing the file
    would lose what the shell appends to."""
    _import_many(url, tmp_path, 2)
    log = tmp_path / "log.jsonl"
    log.write_text("kept\n")
    with log.open("ab") as out:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "todo_app",
                "--db",
                url,
                "--user",
                USER,
                "export",
                "/dev/stdout",
            ],
            stdout=out,
            stderr=subprocess.PIPE,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stderr.decode()
    lines = log.read_text().splitlines()
    assert lines[0] == "kept"
    assert len(lines) == 3


def test_import_of_a_file_that_cannot_be_read_writes_nothing(url: str, tmp_path: Path) -> None:
    missing = tmp_path / "missing.jsonl"
    err = failed(run(url, "import", str(missing)), EXIT_USAGE)
    assert f"cannot read {missing}: No such file or directory" in err
    err = failed(run(url, "import", str(tmp_path)), EXIT_USAGE)
    assert f"cannot read {tmp_path}: Is a directory" in err
    assert _titles(url) == []


#: The address space an import may use here: far more than a bounded import needs, far
#: less than reading an endless line does (it grew to 11 GB in 8 s).
_MEMORY_LIMIT = 1 << 30


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (_MEMORY_LIMIT, _MEMORY_LIMIT))


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_import_of_an_endless_line_fails_in_bounded_memory(url: str) -> None:
    for source, stdin in (("/dev/zero", None), ("-", "/dev/zero")):
        with open(stdin or os.devnull, "rb") as feed:
            result = subprocess.run(
                [sys.executable, "-m", "todo_app", "--db", url, "--user", USER, "import", source],
                stdin=feed,
                capture_output=True,
                timeout=120,
                check=False,
                preexec_fn=_limit_memory,
            )
        err = failed(result, EXIT_USAGE)
        name = "standard input" if source == "-" else source
        assert f"cannot read {name}: line 1 is longer than {max_line_bytes()} bytes" in err
    assert _titles(url) == []


def _longest_task(model: type[BaseModel], number: int) -> dict[str, str]:
    """A task with every field of ``model`` at its longest, read from its JSON schema:
    each text at its max_length, in characters outside the BMP."""
    schema = model.model_json_schema()
    task = {}
    for name, field in schema["properties"].items():
        if len(field.get("allOf", [])) == 1:  # pydantic 2.7-2.8: a described reference
            field = field["allOf"][0]
        if ref := field.get("$ref"):
            field = schema["$defs"][ref.rpartition("/")[2]]
        options = field.get("anyOf", [field])
        formats = {option.get("format") for option in options}
        # pydantic writes an optional text's maxLength beside anyOf or inside it.
        lengths = [o["maxLength"] for o in (field, *options) if "maxLength" in o]
        if "enum" in field:
            task[name] = max(field["enum"], key=len)
        elif lengths:
            task[name] = "\U0001f600" * max(lengths)
        elif "uuid" in formats:
            task[name] = f"abcd{number:04d}-0000-4000-8000-000000000001"
        elif "date-time" in formats:
            task[name] = "9999-12-30T23:59:59.999999+23:59"
        else:
            raise AssertionError(f"no longest value known for {name}: {field}")
    return task


def _escaped_line(task: dict[str, str]) -> str:
    """``task`` as one JSON line at its longest: every character escaped, spaced."""
    return json.dumps(task, ensure_ascii=True, indent=1).replace("\n", " ") + "\n"


def test_the_longest_task_fits_in_an_import_line_and_its_export_imports_back(
    url: str, tmp_path: Path
) -> None:
    """The line bound leaves room for every field at its longest, each character
    written as an escaped surrogate pair; a line beyond it is refused."""
    limit = max_line_bytes()
    tasks = [_longest_task(todo_app.schemas.TaskCreate, number) for number in (1, 2)]
    source = tmp_path / "longest.jsonl"
    source.write_text("".join(_escaped_line(task) for task in tasks))
    assert all(len(_escaped_line(task).encode()) < limit for task in tasks)
    ok(url, "import", str(source))
    assert _titles(url) == [task["title"] for task in tasks]

    exported = tmp_path / "exported.jsonl"
    ok(url, "export", str(exported))
    for task in tasks:
        ok(url, "rm", task["id"])
    assert _titles(url) == []
    ok(url, "import", str(exported))
    assert [json.loads(line) for line in exported.read_text().splitlines()] == [
        json.loads(line) for line in ok(url, "export").splitlines()
    ], "the export imports back as it was"

    source.write_text('{"title": "fits"}\n' + " " * limit + '{"title": "too long"}\n')
    err = failed(run(url, "import", str(source)), EXIT_USAGE)
    assert f"cannot read {source}: line 2 is longer than {limit} bytes" in err
    assert len(_titles(url)) == 2, "nothing imported"


@pytest.fixture
def fresh_bound() -> Iterator[None]:
    """``max_line_bytes`` computed anew from the (patched) schemas, and after."""
    max_line_bytes.cache_clear()
    yield
    max_line_bytes.cache_clear()


def test_a_text_field_added_later_widens_the_line_bound(
    monkeypatch: pytest.MonkeyPatch, fresh_bound: None
) -> None:
    """The bound comes from TaskCreate's fields: a task with a new long text (and a
    datetime) at their longest still imports, and a longer line is still refused."""
    before = max_line_bytes()

    class TaskCreate(todo_app.schemas.TaskCreate):
        notes: Annotated[str | None, Field(max_length=5000)] = None
        due_at: todo_app.schemas.AwareDatetime | None = None

    monkeypatch.setattr(todo_app.schemas, "TaskCreate", TaskCreate)
    max_line_bytes.cache_clear()
    limit = max_line_bytes()
    assert limit >= before + 2 * 12 * 5000
    task = _longest_task(TaskCreate, 1)
    line = _escaped_line(task).encode()
    assert len(line) > before, "the old bound would refuse it"
    (item,) = transfer._parse(transfer.read_lines(transfer.bounded_lines(io.BytesIO(line), "f")))
    assert item.model_dump(mode="json")["notes"] == task["notes"]
    with pytest.raises(CliError, match=f"line 1 is longer than {limit} bytes"):
        list(transfer.bounded_lines(io.BytesIO(b" " * (limit + 1)), "f"))


def test_a_text_field_without_max_length_cannot_be_bounded(
    monkeypatch: pytest.MonkeyPatch, fresh_bound: None
) -> None:
    class TaskCreate(todo_app.schemas.TaskCreate):
        notes: str | None = None

    monkeypatch.setattr(todo_app.schemas, "TaskCreate", TaskCreate)
    with pytest.raises(TypeError, match="TaskCreate.notes is a string without max_length"):
        max_line_bytes()


def test_file_errors_in_process_too(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = {
        "import": ("cannot read", tmp_path / "missing.jsonl"),
        "export": ("cannot write", tmp_path / "missing" / "out.jsonl"),
    }
    for command, (expected, path) in cases.items():
        with pytest.raises(SystemExit) as exited:
            main(["--db", url, "--user", USER, command, str(path)])
        assert exited.value.code == EXIT_USAGE
        err = capsys.readouterr().err
        assert err == f"todo-app: error: {expected} {path}: No such file or directory\n"


# -- UTF-8 in, whatever the locale ------------------------------------------------------


def test_stdin_is_utf8_whatever_the_locale(url: str) -> None:
    lines = '{"title": "café"}\n{"title": "naïve ✓"}\n'.encode()
    result = run(url, "import", "-", stdin=lines, env={"PYTHONIOENCODING": "latin-1"})
    assert result.returncode == 0, result.stderr.decode()
    assert _titles(url) == ["café", "naïve ✓"]


def test_a_utf8_bom_is_tolerated_in_files_and_on_stdin(url: str, tmp_path: Path) -> None:
    bom = b"\xef\xbb\xbf"
    source = tmp_path / "bom.jsonl"
    source.write_bytes(bom + b'{"title": "from a file"}\r\n')
    ok(url, "import", str(source))
    ok(url, "import", "-", stdin=bom + b'{"title": "from stdin"}\n')
    assert _titles(url) == ["from a file", "from stdin"]


def test_invalid_utf8_is_reported_by_line_and_nothing_is_imported(url: str, tmp_path: Path) -> None:
    data = b'{"title": "fine"}\n{"title": "fine too"}\n{"title": "caf\xe9"}\n'
    err = failed(run(url, "import", "-", stdin=data), EXIT_VALIDATION)
    assert "line 3: not valid UTF-8 (nothing imported)" in err
    source = tmp_path / "latin1.jsonl"
    source.write_bytes(data)
    err = failed(run(url, "import", str(source)), EXIT_VALIDATION)
    assert "line 3: not valid UTF-8" in err
    assert _titles(url) == []


def test_json_and_export_are_utf8_whatever_the_locale(
    url: str, fresh_sqlite_url: Callable[[], DatabaseURL]
) -> None:
    title = "café ✓ 😀"
    ok(url, "add", title)
    latin1 = {"PYTHONIOENCODING": "latin-1"}
    listing = run(url, "list", "--json", env=latin1)
    assert json.loads(listing.stdout.decode("utf-8"))["items"][0]["title"] == title
    exported = run(url, "export", env=latin1)
    assert json.loads(exported.stdout.decode("utf-8"))["title"] == title
    # `export > file` and `import file` agree, in a latin-1 shell too.
    other = fresh_sqlite_url().reveal()
    ok(other, "migrate")
    ok(other, "import", "-", stdin=exported.stdout, env=latin1)
    assert _titles(other) == [title]
    # Text for people follows the terminal: what latin-1 cannot show is escaped.
    table = run(url, "list", env=latin1)
    assert table.returncode == 0
    assert "café \\u2713 \\U0001f600" in table.stdout.decode("latin-1")


# -- what reaches the terminal ----------------------------------------------------------


def test_control_characters_never_reach_the_terminal_raw(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def cli(*args: str, code: int = 0) -> str:
        try:
            result = main(["--db", url, "--user", USER, *args])
        except SystemExit as exc:
            result = int(exc.code or 0)
        out, err = capsys.readouterr()
        assert result == code, err
        return out if code == 0 else err

    evil = "\x1b[2K\rdeadbeef [x] paid the rent"
    added = json.loads(cli("add", evil, "-d", "line\n\x1b[31mred\u202e", "--json"))
    assert added["title"] == evil, "stored and shown in JSON exactly"
    task_id = added["id"]
    for args in (["list"], ["show", task_id[:8]], ["done", task_id], ["add", "\u202eok"]):
        for line in cli(*args).splitlines():
            assert line.isprintable(), (args, line)
    assert "\\x1b[2K\\rdeadbeef" in cli("list")
    # JSON output is json.dumps exactly: the program reading it gets the title back.
    assert json.dumps(evil, ensure_ascii=False) in cli("list", "--json")
    # An id typed by the user comes back escaped in the error, on one line.
    err = cli("show", "ab\x1b[31mcd\u202e\nforged", code=3)
    assert err.startswith("todo-app: error: no task ")
    assert err.count("\n") == 1
    assert err[:-1].isprintable()
    assert "ab\\x1b[31mcd" in err


# -- the process around a command -------------------------------------------------------


def test_the_fast_exit_still_runs_atexit_handlers_and_flushes(url: str) -> None:
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('atexit ran', file=sys.stderr))\n"
        f"sys.argv = ['todo-app', '--db', {url!r}, '--user', 'x', 'stats']\n"
        "from todo_app.cli import main\n"
        "main()\n"
        "raise AssertionError('main() without arguments ends the process')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "atexit ran\n"
    assert result.stdout.endswith("total            0\n")
    usage = subprocess.run(
        [sys.executable, "-m", "todo_app", "--db", url, "list", "--limit", "many"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert usage.returncode == EXIT_USAGE
    assert "invalid int value: 'many'" in usage.stderr


def test_in_process_the_cli_leaves_the_collector_alone(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import gc

    assert main(["--db", url, "--user", USER, "stats"]) == 0
    assert gc.isenabled()
    assert "total" in capsys.readouterr().out
