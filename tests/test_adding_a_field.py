"""``docs/adding-a-field.md``, executed: its steps, read from the page itself, add a
real field (``due_at``) in a copy of the repository; then the copy's existing tests,
unedited, pass on SQLite and PostgreSQL, and a probe proves the CLI, export/import
and the repository API carry the field.

The page's steps are sentences of two kinds, so that page and test cannot drift:

* "In `FILE`, before the line `X`" / "after the line `X`" / "after the line starting
  with `X`" / "replace the line `X` with", then a code block: an edit of ``FILE``,
  where ``X`` matches exactly one line;
* a ``sh`` code block: commands, run in the copy (``todo-app`` is this interpreter's
  ``python -m todo_app``).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "adding-a-field.md"
#: The files a nullable field may touch, by kind (``n`` is the new migration's number).
EXPECTED_CHANGES = 5
#: The copy's existing tests that must pass unedited, and the probe below.
COPY_TESTS = (
    "tests/test_migrations.py",
    "tests/test_schema_guard.py",
    "tests/test_cli.py",
    "tests/test_repository.py",
    "tests/test_dialects.py",
    "tests/test_cli_render.py",
    "tests/test_probe_due_at.py",
    "tests/test_datetimes.py",  # due_at takes the aware rule, and create == get carries it
    "tests/test_docs.py",  # the README and docs/ stay true without an edit
    "tests/test_makemigration.py",
    "tests/test_stored_rows.py",
    "tests/test_model_writes.py",
    "tests/test_contrib_fastapi.py",  # the router (and schemathesis) with the new field
)

_EDIT = re.compile(
    r"In `(?P<path>[^`]+)`, (?P<how>before the line|after the line starting with|"
    r"after the line|replace the line) (?:``\s(?P<long>.+?)\s``|`(?P<short>[^`]+)`)"
    r".*?\n```[a-z]*\n(?P<text>.*?)```",
    re.DOTALL,
)
_SHELL = re.compile(r"```sh\n(?P<text>.*?)```", re.DOTALL)


@dataclass(frozen=True)
class Edit:
    path: str
    how: str
    anchor: str
    text: str

    def apply(self, root: Path) -> None:
        target = root / self.path
        lines = target.read_text(encoding="utf-8").splitlines(keepends=True)
        if self.how == "after the line starting with":
            found = [n for n, line in enumerate(lines) if line.startswith(self.anchor)]
        else:
            found = [n for n, line in enumerate(lines) if line.rstrip("\n") == self.anchor]
        assert len(found) == 1, f"{self.path}: {self.how} {self.anchor!r} matches {len(found)}"
        at = found[0]
        if self.how == "before the line":
            lines[at:at] = [self.text, "\n"]
        elif self.how == "replace the line":
            lines[at : at + 1] = [self.text]
        else:
            lines[at + 1 : at + 1] = [self.text]
        target.write_text("".join(lines), encoding="utf-8")


@dataclass(frozen=True)
class Commands:
    lines: list[str]


def doc_steps() -> list[Edit | Commands]:
    """The page's steps, in order."""
    text = DOC.read_text(encoding="utf-8")
    found: list[tuple[int, Edit | Commands]] = []
    for match in _EDIT.finditer(text):
        anchor = match.group("long") or match.group("short")
        edit = Edit(match.group("path"), match.group("how"), anchor, match.group("text"))
        found.append((match.start(), edit))
    for match in _SHELL.finditer(text):
        lines = [line for line in match.group("text").splitlines() if line.strip()]
        found.append((match.start(), Commands(lines)))
    return [step for _, step in sorted(found, key=lambda item: item[0])]


def test_the_page_has_the_steps_and_they_fit_this_checkout(tmp_path: Path) -> None:
    """Fast, and on every run: each edit's anchor is one line of today's file."""
    steps = doc_steps()
    edits = [step for step in steps if isinstance(step, Edit)]
    assert {edit.path for edit in edits} == {
        "todo_app/models.py",
        "todo_app/schemas.py",
        "docs/repository.md",
    }
    assert [step.lines for step in steps if isinstance(step, Commands)] == [
        ["todo-app makemigration due_at"]
    ]
    for edit in edits:
        copy = tmp_path / edit.path
        copy.parent.mkdir(parents=True, exist_ok=True)
        if not copy.exists():
            shutil.copy(REPO / edit.path, copy)
        edit.apply(tmp_path)


def _copy_repository(target: Path) -> None:
    """The checkout as git sees it (committed, staged and new files; nothing
    ignored), as the first commit of a repository of its own."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=target, check=True)
    subprocess.run([*git, "add", "-A"], cwd=target, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "before"], cwd=target, check=True)


def _run(argv: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


PROBE = '''"""Written by tests/test_adding_a_field.py into the copy: the new field is carried."""

import datetime as dt
import json
from pathlib import Path

import pytest

from tests.helpers import DIALECTS, FreshURL
from todo_app import TaskCreate, TaskRepository, TaskUpdate
from todo_app.cli import main
from todo_app.testing import TodoDatabase

DUE = dt.datetime(2030, 1, 31, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
LATER = dt.datetime(2030, 2, 1, 12, 30, tzinfo=dt.UTC)


@pytest.fixture(params=DIALECTS)
async def db_url(request: pytest.FixtureRequest, fresh_database_url: FreshURL) -> str:
    return (await fresh_database_url(request.param)).reveal()


def cli(url, capsys, *args, user="alice"):
    try:
        code = main(["--db", url, "--user", user, *args])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def shown(url, capsys, task_id):
    code, out, err = cli(url, capsys, "show", task_id, "--json")
    assert code == 0, err
    due = json.loads(out)["due_at"]
    return None if due is None else dt.datetime.fromisoformat(due)


def test_the_cli_carries_the_field(db_url, capsys, tmp_path: Path) -> None:
    assert cli(db_url, capsys, "migrate")[0] == 0
    code, out, err = cli(db_url, capsys, "add", "Pay rent", "--due-at", DUE.isoformat(), "--json")
    assert code == 0, err
    task_id = json.loads(out)["id"]
    assert shown(db_url, capsys, task_id) == DUE
    code, out, err = cli(db_url, capsys, "show", task_id)
    assert "due at:" in out
    assert "2030-01-31T08:00:00+00:00" in out, "stored and shown in UTC"

    code, _, err = cli(db_url, capsys, "add", "Naive", "--due-at", "2030-01-31T09:00:00")
    assert code == 5, "a naive datetime is refused"
    assert "due_at" in err

    assert cli(db_url, capsys, "edit", task_id, "--due-at", LATER.isoformat())[0] == 0
    assert shown(db_url, capsys, task_id) == LATER
    assert cli(db_url, capsys, "edit", task_id, "--clear-due-at")[0] == 0
    code, _, err = cli(db_url, capsys, "edit", task_id)
    assert code == 2
    assert "--due-at, --clear-due-at" in err, "nothing to change names both forms"
    assert shown(db_url, capsys, task_id) is None
    assert cli(db_url, capsys, "edit", task_id, "--due-at", DUE.isoformat())[0] == 0

    exported = tmp_path / "tasks.jsonl"
    assert cli(db_url, capsys, "export", str(exported))[0] == 0
    line = json.loads(exported.read_text())
    assert dt.datetime.fromisoformat(line["due_at"]) == DUE
    assert cli(db_url, capsys, "rm", task_id)[0] == 0
    assert cli(db_url, capsys, "import", str(exported))[0] == 0
    assert shown(db_url, capsys, task_id) == DUE, "import carries it back"


async def test_the_repository_carries_the_field(todo_db: TodoDatabase) -> None:
    repo = TaskRepository("alice")
    created = await repo.create(TaskCreate(title="Pay rent", due_at=DUE))
    stored = await repo.get(created.id)
    assert stored.due_at == DUE
    assert stored.due_at.utcoffset() == dt.timedelta(0)
    changed = await repo.update(created.id, TaskUpdate(due_at=LATER))
    assert changed.due_at == LATER
    assert (await repo.get(created.id)).due_at == LATER
    assert (await repo.update(created.id, TaskUpdate(due_at=None))).due_at is None
    await repo.bulk_create([TaskCreate(title="Renew passport", due_at=DUE)])
    listed = {task.title: task.due_at for task in (await repo.list()).items}
    assert listed == {"Pay rent": None, "Renew passport": DUE}


async def test_the_http_api_carries_the_field(db_url) -> None:
    from tests.test_contrib_fastapi import ALICE, client_for, host_app

    async with client_for(host_app(db_url, "probe")) as client:
        created = await client.post(
            "/tasks", json={"title": "Pay rent", "due_at": DUE.isoformat()}, headers=ALICE
        )
        assert created.status_code == 201, created.text
        task = created.json()
        assert dt.datetime.fromisoformat(task["due_at"]) == DUE
        got = await client.get(f"/tasks/{task['id']}", headers=ALICE)
        assert got.json() == task, "create returns what get returns"
        patched = await client.patch(
            f"/tasks/{task['id']}",
            json={"due_at": LATER.isoformat()},
            headers={**ALICE, "If-Match": got.headers["ETag"]},
        )
        assert patched.status_code == 200, patched.text
        assert dt.datetime.fromisoformat(patched.json()["due_at"]) == LATER
        naive = await client.post(
            "/tasks", json={"title": "x", "due_at": "2030-01-31T09:00:00"}, headers=ALICE
        )
        assert naive.status_code == 422, naive.text
        assert naive.json()["field"] == "due_at"
        schema = (await client.get("/openapi.json")).json()["components"]["schemas"]
        assert "due_at" in schema["TaskCreate"]["properties"]
'''


@pytest.mark.postgres
def test_adding_a_field_as_the_page_says(tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    _copy_repository(copy)
    for step in doc_steps():
        if isinstance(step, Edit):
            step.apply(copy)
            continue
        for line in step.lines:
            argv = shlex.split(line)
            assert argv[0] == "todo-app", line
            ran = _run([sys.executable, "-m", "todo_app", *argv[1:]], copy, timeout=120)
            assert ran.returncode == 0, f"{line}: {ran.stdout}{ran.stderr}"

    changed = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=copy,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    paths = sorted(line[3:] for line in changed)
    assert len(paths) <= EXPECTED_CHANGES, paths
    migration = next(p for p in paths if p.endswith("_due_at.py"))
    assert paths == sorted(
        [
            "docs/repository.md",
            migration,
            migration.replace("todo_app/", "todo_app/shapes/").replace(".py", ".json"),
            "todo_app/models.py",
            "todo_app/schemas.py",
        ]
    )
    lint = _run([sys.executable, "-m", "ruff", "check", "todo_app", "migrations"], copy, 60)
    assert lint.returncode == 0, lint.stdout
    formatted = _run([sys.executable, "-m", "ruff", "format", "--check", "."], copy, 60)
    assert formatted.returncode == 0, formatted.stdout
    drift = _run([sys.executable, "-m", "todo_app", "check", "--drift-only"], copy, 60)
    assert drift.returncode == 0, drift.stdout + drift.stderr

    (copy / "tests" / "test_probe_due_at.py").write_text(PROBE, encoding="utf-8")
    tests = _run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *COPY_TESTS],
        copy,
        timeout=600,
    )
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    summary = tests.stdout.strip().splitlines()[-1]
    assert " passed" in summary
    assert "skipped" not in summary, summary
