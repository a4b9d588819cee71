"""The pool-reset argument of ``todo_app/pool.py``, tested: session state a host leaves
on a pooled connection never reaches the next checkout, whoever makes it, and only
the package's own clean checkouts skip asyncpg's reset."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from tortoise.context import TortoiseContext

import todo_app
from tests.helpers import FreshURL
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
    import todo_app.pool

    resets: list[str] = []
    repo = TaskRepository("alice")
    await repo.counts()  # the pool opens on first use
    pool = one_connection._pool
    hook = pool._reset

    async def recording(connection: Any) -> None:
        resets.append("skipped" if connection in todo_app.pool._clean else "reset")
        await hook(connection)

    monkeypatch.setattr(pool, "_reset", recording)
    await repo.counts()
    async with one_connection.acquire_connection() as connection:
        await connection.execute("SELECT 1")
    await repo.counts()
    assert resets == ["skipped", "reset", "skipped"]
