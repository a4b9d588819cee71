"""The todo-app command line, on both dialects: in-process for every command, and
as a real subprocess for the entry points, exit codes and secrecy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import DIALECTS, FreshURL
from todo_app import migration_history
from todo_app.cli import main
from todo_app.repository import MAX_PAGE_SIZE


@pytest.fixture(params=DIALECTS)
async def db_url(request: pytest.FixtureRequest, fresh_database_url: FreshURL) -> str:
    url = await fresh_database_url(request.param)
    return url.reveal()


class Cli:
    def __init__(self, url: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.url = url
        self.capsys = capsys

    def __call__(self, *args: str, user: str = "alice", code: int = 0) -> str:
        argv = ["--db", self.url, "--user", user, *args]
        try:
            result = main(argv)
        except SystemExit as exc:
            result = exc.code  # type: ignore[assignment]
        out, err = self.capsys.readouterr()
        assert result == code, f"exit {result}, stderr: {err}"
        if code:
            assert err.startswith("todo-app: error: ")
            assert len(err.strip().splitlines()) == 1, "an error is one line"
            assert "Traceback" not in err
        return out if not code else err

    def json(self, *args: str, user: str = "alice") -> object:
        return json.loads(self(*args, "--json", user=user))


@pytest.fixture
def cli(db_url: str, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(db_url, capsys)


NAMES = [migration.filename for migration in migration_history()]


def test_commands_end_to_end(cli: Cli, tmp_path: Path) -> None:
    assert f"{len(NAMES)} migration(s) applied" in cli("migrate")
    assert "database is at head" in cli("migrate")
    assert "[x] 0_" in cli("history")
    assert "database is at head" in cli("check")

    added = cli.json("add", "  Buy milk ", "-d", "oat")
    assert isinstance(added, dict)
    assert added["title"] == "Buy milk"
    task_id = added["id"]
    cli("add", "Second")
    cli("add", "Other's", user="bob")

    table = cli("list")
    assert "Buy milk" in table
    assert "[ ]" in table
    assert "Other's" not in table
    assert task_id[:8] in table

    shown = cli("show", task_id[:6])
    assert "description: oat" in shown
    assert "version:     1" in shown
    cli("edit", task_id, "--title", "Buy oat milk", "--expect-version", "1")
    assert "conflict" in cli("edit", task_id, "--title", "x", "--expect-version", "1", code=4)
    assert "[x]" in cli("done", task_id)
    assert "[x]" in cli("done", task_id), "done is idempotent"
    assert cli.json("stats") == {"pending": 1, "completed": 1}
    listing = cli.json("list", "--status", "completed")
    assert isinstance(listing, dict)
    assert [t["id"] for t in listing["items"]] == [task_id]
    cli("reopen", task_id)
    cli("edit", task_id, "--clear-description")
    shown_json = cli.json("show", task_id)
    assert isinstance(shown_json, dict)
    assert shown_json["description"] is None

    # Another owner cannot see it; a missing id, and a prefix that is too short.
    assert "not found" in cli("show", task_id, user="bob", code=3)
    assert "no task" in cli("show", "zz", code=3)
    cli("rm", task_id)
    assert "not found" in cli("rm", task_id, code=3)

    export_file = tmp_path / "tasks.jsonl"
    cli("export", str(export_file))
    lines = export_file.read_text().splitlines()
    assert [json.loads(line)["title"] for line in lines] == ["Second"]
    # Exported rows keep their ids: importing them again is a conflict, as a whole.
    assert "conflict" in cli("import", str(export_file), user="carol", code=4)
    without_ids = tmp_path / "no-ids.jsonl"
    without_ids.write_text(
        "".join(json.dumps({**json.loads(line), "id": None}) + "\n" for line in lines)
    )
    assert "imported 1" in cli("import", str(without_ids), user="carol")
    assert cli.json("stats", user="carol") == {"pending": 1, "completed": 0}


def test_list_pages(cli: Cli, tmp_path: Path) -> None:
    cli("migrate")
    source = tmp_path / "many.jsonl"
    source.write_text("".join(json.dumps({"title": f"task {n}"}) + "\n" for n in range(7)))
    cli("import", str(source))
    first = cli("list", "--limit", "3")
    assert first.count("task ") == 3
    assert "more: todo-app list --cursor " in first
    cursor = first.rsplit("--cursor ", 1)[1].strip()
    assert cli("list", "--limit", "3", "--cursor", cursor).count("task ") == 3
    everything = cli("list", "--limit", "2", "--all", "--oldest")
    assert everything.count("task ") == 7
    assert everything.index("task 0") < everything.index("task 6")


def test_import_is_all_or_nothing(cli: Cli, tmp_path: Path) -> None:
    cli("migrate")
    source = tmp_path / "bad.jsonl"
    source.write_text('{"title": "fine"}\n\n{"title": "   "}\n')
    message = cli("import", str(source), code=5)
    assert "line 3" in message
    assert "nothing imported" in message
    assert cli.json("stats") == {"pending": 0, "completed": 0}
    assert "cannot read" in cli("import", str(tmp_path / "missing.jsonl"), code=2)


def test_id_prefixes(cli: Cli, tmp_path: Path) -> None:
    cli("migrate")
    ids = ["abcd0000-0000-4000-8000-000000000001", "abcd1111-0000-4000-8000-000000000002"]
    source = tmp_path / "ids.jsonl"
    source.write_text("".join(json.dumps({"id": i, "title": f"task {i[:8]}"}) + "\n" for i in ids))
    cli("import", str(source))
    assert "several tasks" in cli("show", "abcd", code=2)
    assert "title:       task abcd1111" in cli("show", "ABCD1")
    assert "no task 'abce'" in cli("show", "abce", code=3)
    assert "at least 4" in cli("show", "abc", code=3)
    assert "not found" in cli("show", ids[0], user="bob", code=3)


def test_validation_and_usage_errors(cli: Cli) -> None:
    cli("migrate")
    assert "title" in cli("add", "   ", code=5)
    too_big = str(MAX_PAGE_SIZE + 1)
    assert f"must be between 1 and {MAX_PAGE_SIZE}" in cli("list", "--limit", too_big, code=5)
    assert "nothing to change" in cli("edit", "abcd", code=2)
    assert "--yes" in cli("downgrade", code=2)


def test_edit_with_nothing_names_every_option_of_the_schema(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A field added to TaskUpdate is named with its --clear- form when it may be null."""
    import todo_app.schemas

    class TaskUpdate(todo_app.schemas.TaskUpdate):
        due_at: todo_app.schemas.AwareDatetime | None = None
        priority: int = 0

    monkeypatch.setattr(todo_app.schemas, "TaskUpdate", TaskUpdate)
    with pytest.raises(SystemExit) as exited:
        main(["--db", f"sqlite://{tmp_path / 'x.sqlite3'}", "edit", "abcd"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        "todo-app: error: nothing to change: give --title, --description, "
        "--clear-description, --due-at, --clear-due-at, --priority"
    )


def test_schema_guard_and_downgrade(cli: Cli) -> None:
    assert "migrate" in cli("list", code=7)
    cli("migrate")
    assert f"reverted {NAMES[-1]}" in cli("downgrade", "--yes")
    assert "behind" in cli("check", code=7)
    assert f"applied {NAMES[-1]}" in cli("migrate")
    cli("downgrade", "--yes", "--steps", str(len(NAMES)))
    assert "only 0 are applied" in cli("downgrade", "--yes", code=7)


def test_demo_reads_well_and_repeats(cli: Cli) -> None:
    first = cli("demo")
    assert f"migrations: {len(NAMES)} applied now" in first
    assert "demo-alice:" in first
    assert "2 pending, 1 completed" in first
    assert "TaskNotFound" in first
    second = cli("demo")
    assert "migrations: at head" in second
    assert second.count("[ ]") == first.count("[ ]")


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "todo_app", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_subprocess_entry_point_and_exit_codes(db_url: str) -> None:
    assert _run("--db", db_url, "migrate").returncode == 0
    added = _run("--db", db_url, "--user", "zoe", "add", "from a subprocess", "--json")
    assert added.returncode == 0, added.stderr
    listing = _run("--db", db_url, "list", "--json", env={"TODO_USER": "zoe"})
    assert json.loads(listing.stdout)["items"][0]["title"] == "from a subprocess"
    missing = _run("--db", db_url, "show", "00000000-0000-0000-0000-000000000000")
    assert missing.returncode == 3
    assert missing.stderr.count("\n") == 1
    assert _run("no-such-command").returncode == 2


def test_unreachable_database_never_shows_the_password() -> None:
    secret = "s3cr3t-Pa55"
    url = f"postgresql://user:{secret}@127.0.0.1:1/db?connect_timeout=2"
    result = _run("--db", url, "list")
    assert result.returncode == 6
    assert "cannot reach the database" in result.stderr
    assert secret not in result.stdout + result.stderr
    assert "user:***@" in result.stderr
    helped = _run("--help", env={"DATABASE_URL": url})
    assert helped.returncode == 0
    assert secret not in helped.stdout + helped.stderr
    bad = _run("--db", f"mysql://user:{secret}@h/db", "list")
    assert bad.returncode == 2
    assert secret not in bad.stderr
