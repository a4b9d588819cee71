"""A database todo_app cannot open, read or write (issue 17, cases 4 to 6).

* No call hangs after a failed SQLite open: the next call works once the cause is
  fixed, or fails typed; both within a hard ``asyncio.wait_for``.
* Every CLI verb answers an unopenable SQLite file (a directory, a missing parent
  directory, a garbage or truncated file, a read-only mount, a full disk) with one
  line and exit 6 (``sqlite:///``, which names no file: exit 2), never a traceback,
  never a success line for work that was rolled back.
* The Python migration API raises what the repository raises in the same situation
  (``TaskStoreUnavailable``), never the driver's exception.

The read-only and full-disk cases mount a small tmpfs (root only: a read-only mount
is the only thing that stops root from writing); they are skipped where mounting is
impossible.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from tortoise import Tortoise
from tortoise.context import TortoiseContext

import todo_app
from tests.helpers import FreshURL
from todo_app import TaskCreate, TaskRepository, TaskStoreError, TaskStoreUnavailable
from todo_app.cli.exits import EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE
from todo_app.migrator import (
    applied_migrations,
    downgrade,
    migrate,
    pending_migrations,
    plan_downgrade,
)
from todo_app.settings import get_settings
from todo_app.startup_check import ensure_schema_current

#: A hard bound on any one call: a hang fails the test instead of stalling it.
HARD_LIMIT = 30.0
USER = "fault-user"
PY = sys.executable


# -- faults ----------------------------------------------------------------------------


def _mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()}): needs root")


def _umount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def _remount(where: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(where)], check=True)


@contextlib.contextmanager
def tmpfs(where: Path, size: str = "512k") -> Iterator[Path]:
    _mount_tmpfs(where, size)
    try:
        yield where
    finally:
        _umount(where)


def _fill(directory: Path) -> None:
    """Write a filler file until the file system is full."""
    with contextlib.suppress(OSError), (directory / "filler").open("wb", buffering=0) as filler:
        while True:
            filler.write(b"\0" * 4096)


def cli(url: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [PY, "-m", "todo_app", "--db", url, "--user", USER, *args],
        capture_output=True,
        timeout=120,
        check=False,
    )


def migrated_file(path: Path) -> str:
    url = f"sqlite://{path}"
    done = cli(url, "migrate")
    assert done.returncode == 0, done.stderr.decode()
    done = cli(url, "add", "kept")
    assert done.returncode == 0, done.stderr.decode()
    return url


def one_line(done: subprocess.CompletedProcess[bytes], code: int) -> str:
    err = done.stderr.decode()
    assert done.returncode == code, err
    assert "Traceback" not in err, err
    assert err.startswith("todo-app: error: "), err
    assert err.count("\n") == 1, f"an error is one line: {err!r}"
    return err


VERBS = {
    "migrate": ["migrate"],
    "check": ["check"],
    "history": ["history"],
    "downgrade": ["downgrade", "--yes"],
    "list": ["list"],
    "add": ["add", "a title"],
    "stats": ["stats"],
    "export": ["export"],
}
#: What stdout may never say after a failure: work reported that did not happen.
SUCCESS_WORDS = ("reverted", "applied", "recorded", "adopted", "created", "at head")


def _file_fault(kind: str, base: Path) -> str:
    """A URL of an SQLite "file" todo_app cannot open or read."""
    if kind == "directory":
        (base / "a-directory.db").mkdir()
        return f"sqlite://{base / 'a-directory.db'}"
    if kind == "missing-parent":
        return f"sqlite://{base / 'no-such-dir' / 'x.db'}"
    if kind == "garbage":
        (base / "garbage.db").write_bytes(b"this is not SQLite" * 1000)
        return f"sqlite://{base / 'garbage.db'}"
    if kind == "truncated":
        url = migrated_file(base / "truncated.db")
        os.truncate(base / "truncated.db", 8192)  # the task table's pages are gone
        return url
    raise AssertionError(kind)


FILE_FAULTS = ["directory", "missing-parent", "garbage", "truncated"]


# -- case 5: the CLI -------------------------------------------------------------------


@pytest.mark.parametrize("fault", FILE_FAULTS)
def test_every_verb_answers_an_unopenable_file_with_one_line_and_exit_6(
    fault: str, tmp_path: Path
) -> None:
    url = _file_fault(fault, tmp_path)
    for verb, args in VERBS.items():
        done = cli(url, *args)
        err = one_line(done, EXIT_UNREACHABLE)
        assert "cannot reach the database" in err, (verb, err)
        assert not any(word in done.stdout.decode() for word in SUCCESS_WORDS), (verb, done)


def test_a_url_that_names_no_file_is_bad_input() -> None:
    for verb, args in VERBS.items():
        err = one_line(cli("sqlite:///", *args), EXIT_USAGE)
        assert "names no file" in err, (verb, err)


def test_every_verb_on_a_read_only_mount(tmp_path: Path) -> None:
    """Reads work or fail in one line; writes fail in one line (exit 6), saying the
    database cannot be written, and change nothing."""
    with tmpfs(tmp_path / "ro") as mount:
        url = migrated_file(mount / "todo.db")
        _remount(mount, "ro")
        try:
            for verb, args in VERBS.items():
                done = cli(url, *args)
                if verb in ("list", "stats", "export", "history", "check") and not done.returncode:
                    continue
                one_line(done, EXIT_UNREACHABLE)
                assert not any(w in done.stdout.decode() for w in SUCCESS_WORDS), (verb, done)
        finally:
            _remount(mount, "rw")
        listed = cli(url, "list", "--all")
        assert listed.returncode == 0
        assert "kept" in listed.stdout.decode()
        assert "[ ]" not in cli(url, "history").stdout.decode()


_BULK = """
import asyncio, sys, todo_app
from tortoise import Tortoise
async def main():
    await Tortoise.init(config=todo_app.tortoise_config(sys.argv[1]))
    tasks = [todo_app.TaskCreate(title=f"t{i}", description="x" * 1000) for i in range(3000)]
    await todo_app.TaskRepository(sys.argv[2]).bulk_create(tasks)
    await Tortoise.close_connections()
asyncio.run(main())
"""


def test_every_verb_on_a_full_disk(tmp_path: Path) -> None:
    """A full disk: every write fails in one line (exit 6) and reports nothing it
    rolled back (no "reverted ..."); nothing is lost once space is freed."""
    with tmpfs(tmp_path / "full", size="8m") as mount:
        url = migrated_file(mount / "todo.db")
        subprocess.run([PY, "-c", _BULK, url, USER], check=True, timeout=120)
        _fill(mount)
        # Room to open the file and read, not to rebuild the table or add a row.
        filler = mount / "filler"
        os.truncate(filler, max(0, filler.stat().st_size - 256 * 1024))
        for verb, args in VERBS.items():
            done = cli(url, *args)
            reads = ("list", "stats", "export", "history", "check", "migrate")
            if verb in reads and done.returncode == EXIT_OK:
                continue  # reads need no space; migrate has nothing to do
            one_line(done, EXIT_UNREACHABLE)
            assert not any(w in done.stdout.decode() for w in SUCCESS_WORDS), (verb, done)
        # A fresh database on a disk with no room at all cannot be migrated.
        _fill(mount)
        done = cli(f"sqlite://{mount / 'fresh.db'}", "migrate")
        one_line(done, EXIT_UNREACHABLE)
        assert not any(w in done.stdout.decode() for w in SUCCESS_WORDS), done
        filler.unlink()
        stats = cli(url, "stats")
        assert stats.returncode == 0
        assert "3001" in stats.stdout.decode(), stats
        history = cli(url, "history").stdout.decode()
        assert "[x]" in history
        assert "[ ]" not in history


# -- case 4: no hang after a failed open -----------------------------------------------


def _plain_config(url: str) -> dict[str, Any]:
    """A host's config: a plain URL, so Tortoise's own SQLite client."""
    return {
        "connections": {"default": url},
        "apps": {"todo_app": todo_app.app_config()},
        "use_tz": True,
        "timezone": "UTC",
    }


def _open_fault(kind: str, base: Path) -> tuple[str, Callable[[], None]]:
    """A URL that cannot be opened, and how to fix it."""
    target = base / "todo.db"
    if kind == "missing-parent":
        target = base / "later" / "todo.db"
        return f"sqlite://{target}", lambda: target.parent.mkdir()
    if kind == "directory":
        target.mkdir()
        return f"sqlite://{target}", lambda: target.rmdir()
    if kind == "garbage":
        target.write_bytes(b"not a database " * 500)
        return f"sqlite://{target}", lambda: target.unlink()
    raise AssertionError(kind)


async def _bounded(call: Awaitable[Any]) -> Any:
    return await asyncio.wait_for(call, HARD_LIMIT)


@pytest.mark.parametrize("config", ["package", "plain"])
@pytest.mark.parametrize("fault", ["missing-parent", "directory", "garbage"])
async def test_a_failed_open_never_hangs_the_next_call(
    fault: str, config: str, tmp_path: Path
) -> None:
    url, fix = _open_fault(fault, tmp_path)
    built = todo_app.tortoise_config(url) if config == "package" else _plain_config(url)
    async with TortoiseContext():
        await Tortoise.init(config=built)
        repo = TaskRepository(USER)
        with pytest.raises(TaskStoreUnavailable):
            await _bounded(repo.list())
        # Still broken: typed again, not a hang (Tortoise's client kept its lock).
        with pytest.raises(TaskStoreUnavailable):
            await _bounded(todo_app.migrate())
        with pytest.raises(TaskStoreUnavailable):
            await _bounded(repo.create(TaskCreate(title="t")))
        fix()
        assert await _bounded(todo_app.migrate())
        await _bounded(repo.create(TaskCreate(title="after")))
        assert [t.title for t in (await _bounded(repo.list())).items] == ["after"]


@pytest.mark.parametrize("fault", ["missing-parent", "directory", "garbage"])
async def test_a_lock_left_by_a_hosts_own_failed_open_is_recovered(
    fault: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host's own query on Tortoise's client fails to open the file and leaves the
    client's lock held (Tortoise 1.1.9); todo_app's next call still answers."""
    import todo_app.dialects.sqlite.dialect

    # How long a lock held by nobody who opened anything is waited for (15 s).
    monkeypatch.setattr(todo_app.dialects.sqlite.dialect, "_OPEN_WAIT", 0.5, raising=False)
    url, fix = _open_fault(fault, tmp_path)
    async with TortoiseContext():
        await Tortoise.init(config=_plain_config(url))
        with pytest.raises(Exception):  # noqa: B017, PT011 - Tortoise's own, raw
            await _bounded(Tortoise.get_connection("default").execute_query("SELECT 1"))
        fix()
        assert await _bounded(todo_app.migrate())
        assert (await _bounded(TaskRepository(USER).list())).items == []


@pytest.mark.parametrize("config", ["package", "plain"])
async def test_a_failed_open_on_a_read_only_mount_never_hangs(config: str, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro") as mount:
        _remount(mount, "ro")
        url = f"sqlite://{mount / 'todo.db'}"
        built = todo_app.tortoise_config(url) if config == "package" else _plain_config(url)
        async with TortoiseContext():
            await Tortoise.init(config=built)
            with pytest.raises(TaskStoreUnavailable):
                await _bounded(TaskRepository(USER).list())
            _remount(mount, "rw")
            assert await _bounded(todo_app.migrate())
            assert (await _bounded(TaskRepository(USER).list())).items == []


# -- case 6: the migration API raises what the repository raises ------------------------


API: dict[str, Callable[[Any], Awaitable[Any]]] = {
    "migrate": migrate,
    "downgrade": downgrade,
    "plan_downgrade": plan_downgrade,
    "applied_migrations": applied_migrations,
    "pending_migrations": pending_migrations,
    "ensure_schema_current": ensure_schema_current,
}


async def _api_and_repository_agree(url: str) -> None:
    for name, call in API.items():
        with pytest.raises(TaskStoreUnavailable) as raised:
            await _bounded(call(url))
        assert "\n" not in str(raised.value), name
        # The same through a host's context: target None, the connection Task is bound to.
        async with TortoiseContext():
            await Tortoise.init(config=_plain_config(url))
            with pytest.raises(TaskStoreUnavailable):
                await _bounded(call(None))
            with pytest.raises(TaskStoreUnavailable):
                await _bounded(TaskRepository(USER).list())


@pytest.mark.parametrize("fault", [*FILE_FAULTS])
async def test_the_migration_api_raises_typed_errors_on_sqlite(fault: str, tmp_path: Path) -> None:
    await _api_and_repository_agree(_file_fault(fault, tmp_path))


@pytest.fixture
async def pg_faults(fresh_database_url: FreshURL) -> Any:
    """URLs of a PostgreSQL database that cannot be used, on the test server: no such
    database, no such role, a refused port, too many connections."""
    from tests.infra import free_port

    url = await fresh_database_url("postgres")
    admin = get_settings().test_database_url
    params = admin.params()
    host, port = params.get("host") or "127.0.0.1", params.get("port") or "5432"
    database = url.params()["dbname"]
    role = f"todo_app_full_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(
        host=host, port=int(port), user=params.get("user"), database=params.get("dbname")
    )
    await connection.execute(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 0')
    base = "postgresql://{user}@" + host + ":{port}/{db}"
    yield {
        "no-database": base.format(user="postgres", port=port, db=f"{database}_gone"),
        "no-role": base.format(user=f"{role}_gone", port=port, db=database),
        "refused-port": base.format(user="postgres", port=free_port(), db=database),
        "too-many-connections": base.format(user=role, port=port, db=database),
    }
    await connection.execute(f'DROP ROLE "{role}"')
    await connection.close()


@pytest.mark.postgres
@pytest.mark.parametrize(
    "fault", ["no-database", "no-role", "refused-port", "too-many-connections"]
)
async def test_the_migration_api_raises_typed_errors_on_postgres(
    fault: str, pg_faults: dict[str, str]
) -> None:
    await _api_and_repository_agree(pg_faults[fault])


@pytest.mark.postgres
@pytest.mark.parametrize("fault", ["no-database", "refused-port", "too-many-connections"])
def test_cli_migration_verbs_on_an_unusable_postgres(fault: str, pg_faults: dict[str, str]) -> None:
    for verb in ("migrate", "check", "history", "downgrade"):
        err = one_line(cli(pg_faults[fault], *VERBS[verb]), EXIT_UNREACHABLE)
        assert "cannot reach the database" in err, (verb, err)


@pytest.mark.postgres
async def test_the_migration_api_raises_the_repositorys_error_for_a_refused_read(
    fresh_database_url: FreshURL,
) -> None:
    """A role that may log in but not read the tables: the repository and the
    migration API both raise ``TaskStoreError``, the driver's error only its cause."""
    url = await fresh_database_url("postgres")
    await migrate(url)
    params = url.params()
    host, port = params.get("host") or "127.0.0.1", params.get("port") or "5432"
    role = f"todo_app_blind_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(
        host=host, port=int(port), user=params.get("user"), database=params["dbname"]
    )
    await admin.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        blind = f"postgresql://{role}@{host}:{port}/{params['dbname']}"
        for call in (applied_migrations, pending_migrations):
            with pytest.raises(TaskStoreError) as raised:
                await _bounded(call(blind))
            assert "permission denied" in str(raised.value)
        async with TortoiseContext():
            await Tortoise.init(config=todo_app.tortoise_config(blind))
            with pytest.raises(TaskStoreError):
                await _bounded(TaskRepository(USER).list())
    finally:
        await admin.execute(f'DROP ROLE "{role}"')
        await admin.close()
