"""The pytest plugin works in a host as installed: the built wheel with its
``testing`` extra in a virtual environment outside the repository, and a host
project (tests/host_project.py) whose own pytest runs in a subprocess.

Every run has a timeout: a run that does not end (an aiosqlite thread left open
keeps the process alive) is a failure, not a stuck CI job.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiosqlite
import pytest

import todo_app
from tests import host_project
from tests.host_app.models import Note
from todo_app import TaskCreate, TaskRepository
from todo_app.dsn import DatabaseURL
from todo_app.settings import get_settings
from todo_app.testing import TodoDatabase

REPO_ROOT = Path(__file__).resolve().parent.parent
#: A PostgreSQL server that is certainly not there: nothing listens on port 1.
UNREACHABLE = "postgres://postgres@127.0.0.1:1/test"
#: Generous for ~10 small tests; a hung run exceeds any value.
RUN_TIMEOUT = 180
#: Where CI finds its Python 3.13 too (.ci/run).
PYENV = Path(os.environ.get("PYENV_ROOT", "/root/.pyenv"))
PY313 = sorted(PYENV.glob("versions/3.13*/bin/python3"))


@pytest.fixture(scope="session")
def todo_extra_apps() -> dict[str, list[str]]:
    """The host app of tests/host_app, for this module's in-process test."""
    return {"host": ["tests.host_app.models"]}


TASK_SCHEMA = "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'todo_app_task'"


async def test_host_models_share_the_database_in_process(
    todo_sqlite: TodoDatabase, fresh_sqlite_url: Callable[[], DatabaseURL]
) -> None:
    """The host's table is there next to todo_app's, and todo_app's table, indexes
    and CHECKs are exactly what the migrations alone make."""
    await Note.create(text="the host's own row")
    await TaskRepository("alice").create(TaskCreate(title="next to it"))
    assert await Note.all().count() == 1

    plain = fresh_sqlite_url()
    await todo_app.migrate(plain)
    async with aiosqlite.connect(str(plain.database)) as connection:
        expected = sorted(tuple(row) for row in await connection.execute_fetchall(TASK_SCHEMA))
    _, rows = await todo_sqlite.connection.execute_query(TASK_SCHEMA)
    assert sorted((row["type"], row["name"], row["sql"]) for row in rows) == expected


@dataclass(frozen=True)
class Run:
    returncode: int
    output: str
    seconds: float


def _check(*args: str | Path, cwd: Path) -> str:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result.stdout


def _uv() -> str:
    uv = shutil.which("uv")
    assert uv, "uv is needed to build the wheel (pip install uv)"
    return uv


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package as a host gets it, built once for every case here."""
    dist = tmp_path_factory.mktemp("dist")
    _check(_uv(), "build", "--wheel", "--out-dir", dist, "--quiet", cwd=REPO_ROOT)
    (built,) = dist.glob("todo_app-*.whl")
    return built


def _venv(wheel: Path, where: Path, python: str) -> Path:
    """A virtual environment outside the repository with ``todo_app[testing]`` from
    the wheel; returns its interpreter."""
    venv = where / "venv"
    _check(_uv(), "venv", "--quiet", "--python", python, venv, cwd=where)
    interpreter = venv / "bin" / "python"
    _check(_uv(), "pip", "install", "--quiet", "--python", interpreter, f"{wheel}[testing]",
           cwd=where)  # fmt: skip
    package = _check(interpreter, "-c", "import todo_app; print(todo_app.__file__)", cwd=where)
    assert package.startswith(str(venv)), "the host would import the checkout, not the wheel"
    return interpreter


@pytest.fixture(scope="session")
def host_python(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One environment shared by every case (installing is the slow part)."""
    return _venv(wheel, tmp_path_factory.mktemp("host-env"), sys.executable)


def run_host_pytest(python: Path, project: Path, *args: str, database_url: str) -> Run:
    """The host's own ``pytest`` in a subprocess, which must end by itself."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PYTEST_", "COV_", "TODO_APP_", "VIRTUAL_ENV", "PYTHON"))
    }
    env["TEST_DATABASE_URL"] = database_url
    command = [str(python), "-m", "pytest", "-p", "no:cacheprovider", "-rA", *args]
    started = time.monotonic()
    try:
        result = subprocess.run(
            command, cwd=project, env=env, capture_output=True, text=True,
            timeout=RUN_TIMEOUT, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        partial = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout
        pytest.fail(f"the host's pytest did not end within {RUN_TIMEOUT}s:\n{partial}")
    output = result.stdout + result.stderr
    return Run(result.returncode, output, time.monotonic() - started)


def _postgres_url() -> str:
    return get_settings().test_database_url.reveal()


LOOP_SCOPES = {
    "default": "",  # pytest-asyncio's defaults: a loop per test
    "session": host_project.SESSION_LOOPS,
    "session-fixtures": "asyncio_default_fixture_loop_scope = session\n",
}


@pytest.mark.postgres
@pytest.mark.parametrize("scopes", list(LOOP_SCOPES))
def test_host_suite_passes(host_python: Path, tmp_path: Path, scopes: str) -> None:
    """Host tests with TaskRepository and a host model, on both dialects, under
    each way a host may set pytest-asyncio's loop scopes; a loop switch is an error."""
    project = host_project.write(tmp_path / "host", ini=LOOP_SCOPES[scopes])
    run = run_host_pytest(
        host_python, project, "-W", "error::tortoise.warnings.TortoiseLoopSwitchWarning",
        database_url=_postgres_url(),
    )  # fmt: skip
    total = host_project.SQLITE_TESTS + host_project.POSTGRES_TESTS
    assert run.returncode == 0, run.output
    assert f"{total} passed" in run.output, run.output
    assert "LoopSwitch" not in run.output


def test_no_postgres_deselects_every_postgres_test(host_python: Path, tmp_path: Path) -> None:
    """With the server unreachable, ``--no-postgres`` deselects the tests that reach it
    through any fixture (todo_postgres, todo_db[postgres], fresh_database_url) and
    runs the rest, including fresh_database_url's SQLite variant."""
    project = host_project.write(tmp_path / "host")
    run = run_host_pytest(host_python, project, "--no-postgres", database_url=UNREACHABLE)
    assert run.returncode == 0, run.output
    summary = f"{host_project.SQLITE_TESTS} passed, {host_project.POSTGRES_TESTS} deselected"
    assert summary in run.output, run.output
    assert "test_fresh_sqlite_database[sqlite]" in run.output  # -rA lists what passed


def test_unreachable_postgres_fails_the_run(host_python: Path, tmp_path: Path) -> None:
    """Without ``--no-postgres`` an unreachable server fails every PostgreSQL test with
    the instruction, skips none, and the run still ends."""
    project = host_project.write(tmp_path / "host")
    run = run_host_pytest(host_python, project, database_url=UNREACHABLE)
    assert run.returncode == 1, run.output
    assert "skipped" not in run.output
    assert f"{host_project.SQLITE_TESTS} passed" in run.output, run.output
    assert "is unreachable" in run.output
    assert "run pytest --no-postgres" in run.output
    failed = [line for line in run.output.splitlines() if line.startswith(("FAILED", "ERROR"))]
    assert len(failed) == host_project.POSTGRES_TESTS, run.output


def test_a_failing_host_test_still_ends_the_run(host_python: Path, tmp_path: Path) -> None:
    """A host test that fails while holding an aiosqlite connection: pytest reports
    it and exits, leaving no thread behind."""
    project = host_project.write(tmp_path / "host", broken=host_project.FAILING)
    run = run_host_pytest(
        host_python, project, "--no-postgres", "test_broken.py", database_url=UNREACHABLE
    )
    assert run.returncode == 1, run.output
    assert "fails on purpose" in run.output, run.output


def test_an_interrupted_host_run_still_ends(host_python: Path, tmp_path: Path) -> None:
    """Ctrl-C in a host test holding an aiosqlite connection: pytest stops (exit 2)
    instead of waiting on the connection's thread."""
    project = host_project.write(tmp_path / "host", broken=host_project.INTERRUPTED)
    run = run_host_pytest(
        host_python, project, "--no-postgres", "test_broken.py", database_url=UNREACHABLE
    )
    assert (project / "reached").exists(), run.output
    assert run.returncode == 2, run.output
    assert "KeyboardInterrupt" in run.output, run.output


@pytest.mark.postgres
@pytest.mark.skipif(not PY313, reason="no Python 3.13 under pyenv on this machine")
def test_host_suite_passes_on_python_313(
    wheel: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """The same host suite, default loop scopes, on the newest supported Python."""
    python = _venv(wheel, tmp_path_factory.mktemp("host-env-313"), str(PY313[-1]))
    project = host_project.write(tmp_path / "host")
    run = run_host_pytest(python, project, database_url=_postgres_url())
    assert run.returncode == 0, run.output
    assert "Python 3.13" in run.output, run.output
    assert f"{host_project.SQLITE_TESTS + host_project.POSTGRES_TESTS} passed" in run.output


# -- a shared CI server, and apps that run on a loop of their own -----------------------------

OWN_LOOP_TESTS = """
import asyncio
import contextvars
import threading

import pytest

import todo_app


def on_another_loop(make):
    \"\"\"What a test client that runs the app in a thread does: a loop of its own,
    with the test's context variables copied over.\"\"\"
    result = {}
    context = contextvars.copy_context()

    def run():
        try:
            result["value"] = context.run(asyncio.run, make())
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    return result


async def app_round_trip(url):
    async with todo_app.lifespan(todo_app.tortoise_config(url)):
        repo = todo_app.TaskRepository("alice")
        await repo.create(todo_app.TaskCreate(title="made by the app"))
        return [task.title for task in (await repo.list()).items]


def test_an_app_on_its_own_loop_uses_the_migrated_file(todo_sqlite_url):
    assert on_another_loop(lambda: app_round_trip(todo_sqlite_url)) == {
        "value": ["made by the app"]
    }


@pytest.mark.asyncio
async def test_in_memory_on_another_loop_says_why_it_is_empty(todo_sqlite):
    async def read():
        try:
            return await todo_app.TaskRepository("alice").list()
        finally:  # the connection Tortoise re-opened on this loop, with its thread
            await todo_app.Task._meta.db.close()

    with pytest.warns(UserWarning, match="different event loop"):  # Tortoise's own
        error = on_another_loop(read)["error"]
    assert isinstance(error, todo_app.TaskStoreError), error
    assert "another event loop" in str(error) and "todo_sqlite_url" in str(error)
    # Tortoise dropped the test's own connection from its registry: close it here.
    await todo_sqlite.connection.close()


@pytest.mark.asyncio
async def test_databases_carry_the_prefix(todo_postgres, fresh_database_url):
    assert todo_postgres.url.database.startswith("ci_run_7_")
    fresh = await fresh_database_url("postgres")
    assert fresh.database.startswith("ci_run_7_fresh_")
"""


@pytest.mark.postgres
def test_prefixed_databases_and_a_file_for_apps_on_their_own_loop(
    host_python: Path, tmp_path: Path
) -> None:
    project = tmp_path / "host"
    project.mkdir()
    (project / "conftest.py").write_text('pytest_plugins = ["todo_app.testing"]\n')
    (project / "test_own_loop.py").write_text(OWN_LOOP_TESTS)
    run = run_host_pytest(
        host_python, project, "--todo-db-prefix", "ci_run_7", database_url=_postgres_url()
    )
    assert run.returncode == 0, run.output
    assert "3 passed" in run.output, run.output

    refused = run_host_pytest(
        host_python, project, "--todo-db-prefix", "Robert'); DROP", database_url=UNREACHABLE
    )
    assert refused.returncode == 4, refused.output  # pytest's usage error
    assert "not a usable database name prefix" in refused.output
