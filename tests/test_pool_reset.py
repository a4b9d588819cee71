"""The pool-reset argument of ``todo_app/dialects/postgres/pool.py``, tested: session
state a host leaves on a pooled connection never reaches the next checkout, whoever
makes it, and only the package's own clean checkouts skip asyncpg's reset."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from tortoise.context import TortoiseContext

import todo_app
from tests.helpers import FreshURL, pool_releases
from todo_app import TaskCreate, TaskRepository
from todo_app.settings import Settings

pytestmark = pytest.mark.postgres

LEAKS = {
    "a SET": "SET search_path TO leaked, public",
    "a temporary table": "CREATE TEMPORARY TABLE leaked_temp (x int)",
    "an advisory lock": "SELECT pg_advisory_lock(4242)",
    "LISTEN": "LISTEN leaked_channel",
}


async def session_state(connection: Any) -> dict[str, object]:
    return {
        "pid": await connection.fetchval("SELECT pg_backend_pid()"),
        "search_path": await connection.fetchval("SHOW search_path"),
        "temp": await connection.fetchval("SELECT to_regclass('pg_temp.leaked_temp') IS NULL"),
        "locks": await connection.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        ),
        "listening": await connection.fetchval("SELECT count(*) FROM pg_listening_channels()"),
    }


CLEAN = {"search_path": '"$user", public', "temp": True, "locks": 0, "listening": 0}


@pytest.fixture
async def one_connection(fresh_database_url: FreshURL) -> AsyncIterator[Any]:
    """The package's connection with a pool of exactly one: every checkout gets the
    same server session, so anything not reset would show."""
    url = await fresh_database_url("postgres")
    await todo_app.migrate(url)
    settings = Settings(pool_min_size=1, pool_max_size=1)
    async with TortoiseContext() as ctx:
        await ctx.init(
            config=todo_app.tortoise_config(url, connection_name="pool_one", settings=settings)
        )
        yield ctx.connections.get("pool_one")


@pytest.mark.parametrize("leak", LEAKS)
async def test_a_hosts_session_state_never_reaches_the_next_checkout(
    one_connection: Any, leak: str
) -> None:
    async with one_connection.acquire_connection() as connection:
        before = await session_state(connection)
        await connection.execute(LEAKS[leak])
    # The package's own clean checkout in between: it must not carry anything across.
    repo = TaskRepository("alice")
    task = await repo.create(TaskCreate(title="in between"))
    assert (await repo.get(task.id)).title == "in between"
    async with one_connection.acquire_connection() as connection:
        after = await session_state(connection)
    assert after["pid"] == before["pid"], "the same server session: a pool of one"
    assert {key: after[key] for key in CLEAN} == CLEAN


async def test_state_set_inside_a_hosts_transaction_is_reset_after_it(one_connection: Any) -> None:
    from tortoise.transactions import in_transaction

    async with in_transaction("pool_one") as tx:
        await tx.execute_query("SET search_path TO leaked, public")
        await tx.execute_query("SELECT pg_advisory_lock(4242)")
        # The repository inside the host's transaction runs on that transaction's
        # connection: it must not mark it clean.
        await TaskRepository("alice").create(TaskCreate(title="inside"))
    async with one_connection.acquire_connection() as connection:
        after = await session_state(connection)
    assert {key: after[key] for key in CLEAN} == CLEAN


async def test_only_the_packages_own_checkouts_skip_the_reset(
    one_connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import todo_app.dialects.postgres.pool

    resets: list[str] = []
    repo = TaskRepository("alice")
    await repo.counts()  # the pool opens on first use
    pool = one_connection._pool
    hook = pool._reset

    async def recording(connection: Any) -> None:
        resets.append(
            "skipped" if connection in todo_app.dialects.postgres.pool._clean else "reset"
        )
        await hook(connection)

    monkeypatch.setattr(pool, "_reset", recording)
    await repo.counts()
    async with one_connection.acquire_connection() as connection:
        await connection.execute("SELECT 1")
    await repo.counts()
    assert resets == ["skipped", "reset", "skipped"]


# -- giving a clean checkout back without asyncpg's shielded task (pool.release_clean) --


def idle(pool: Any) -> tuple[int, int]:
    return pool.get_idle_size(), pool.get_size()


async def test_a_clean_checkout_goes_back_without_pool_release(
    one_connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from todo_app.dialects.postgres.pool import direct_release

    assert direct_release(), "the pinned asyncpg has the holder API: the fast path is on"
    repo = TaskRepository("alice")
    task = await repo.create(TaskCreate(title="fast"))
    pool = one_connection._pool
    shielded = pool_releases(monkeypatch)
    for _ in range(3):
        assert (await repo.get(task.id)).title == "fast"
    assert shielded == []
    assert idle(pool) == (1, 1), "the one connection is back in the pool"


async def test_a_failed_statement_goes_back_through_pool_release(
    one_connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncpg

    from todo_app.dialects import Runner

    repo = TaskRepository("alice")
    task = await repo.create(TaskCreate(title="after a failure"))
    pool = one_connection._pool
    shielded = pool_releases(monkeypatch)
    with pytest.raises(asyncpg.DivisionByZeroError):
        await Runner(one_connection).fetch("SELECT 1 / 0")
    assert len(shielded) == 1
    assert idle(pool) == (1, 1)
    assert (await repo.get(task.id)).title == "after a failure"


async def test_without_the_holder_api_pool_release_does_it(
    one_connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import todo_app.dialects.postgres.pool

    repo = TaskRepository("alice")
    task = await repo.create(TaskCreate(title="slow path"))
    pool = one_connection._pool
    monkeypatch.setattr(todo_app.dialects.postgres.pool, "direct_release", lambda: False)
    shielded = pool_releases(monkeypatch)
    assert (await repo.get(task.id)).title == "slow path"
    assert len(shielded) == 1
    assert idle(pool) == (1, 1)


async def test_cancelled_reads_strand_no_connection(one_connection: Any) -> None:
    """Reads cancelled at delays spread over their life (queued for the one
    connection, mid-statement, giving it back) leave the pool whole: with a pool of one,
    a stranded connection would make the next read wait for ever."""
    import asyncio

    repo = TaskRepository("alice")
    task = await repo.create(TaskCreate(title="cancel me"))
    pool = one_connection._pool
    for delay in [0.0, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002] * 5:
        readers = [asyncio.ensure_future(repo.get(task.id)) for _ in range(4)]
        await asyncio.sleep(delay)
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        assert (await asyncio.wait_for(repo.get(task.id), 10)).title == "cancel me"
    assert idle(pool) == (1, 1)


async def test_a_read_on_a_connection_that_died_idle_is_tried_once_more(
    one_connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pooled connection the server closed while it sat idle is only noticed when
    used: a read goes again on a fresh checkout; a write is not repeated (it may have
    been applied) but reported, and either way the pool stays whole."""
    import asyncpg

    from todo_app import TaskStoreUnavailable, TaskUpdate

    repo = TaskRepository("alice")
    task = await repo.create(TaskCreate(title="survives"))
    pool = one_connection._pool
    fetch = asyncpg.connection.Connection.fetch
    deaths = iter([True])

    async def dies_once(self: Any, *args: Any, **kwargs: Any) -> Any:
        if next(deaths, False):
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle")
        return await fetch(self, *args, **kwargs)

    monkeypatch.setattr(asyncpg.connection.Connection, "fetch", dies_once)
    assert (await repo.get(task.id)).title == "survives"
    assert idle(pool) == (1, 1)
    deaths = iter([True])
    with pytest.raises(TaskStoreUnavailable):
        await repo.update(task.id, TaskUpdate(title="maybe"))
    assert idle(pool) == (1, 1)
    assert (await repo.get(task.id)).title == "survives"
