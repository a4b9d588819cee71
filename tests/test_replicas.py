"""Read replicas on a real primary and streaming standby, both started here
(``initdb`` + ``pg_basebackup -R -X stream``, asynchronous replication).

Which server served a read is not inferred: every repository read is followed, on
the very connection that ran it, by ``SELECT pg_is_in_recovery()`` (see ``served``).
Replication lag is forced with ``pg_wal_replay_pause()`` on the standby."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from tortoise import Tortoise
from tortoise.context import TortoiseContext
from tortoise.transactions import in_transaction

import todo_app
from examples import fastapi_app
from tests.infra import ReplicationPair
from todo_app import (
    ReplicaStatus,
    Settings,
    TaskCreate,
    TaskNotFound,
    TaskRepository,
    TaskStatus,
    TaskUpdate,
)
from todo_app.tokens import parse_token

pytestmark = pytest.mark.postgres

#: The repository's reads, and nothing else (not the guard's catalog queries).
READS = ('SELECT "id", "user_id"', 'SELECT "status", count(*)')


@pytest.fixture(scope="module")
def pair() -> Iterator[ReplicationPair]:
    pair = ReplicationPair("todo_app_replicas_").start()
    yield pair
    pair.stop()


async def _query(port: int, sql: str, database: str = "postgres") -> Any:
    connection = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{port}/{database}")
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()


async def caught_up(pair: ReplicationPair) -> None:
    """Until the standby has replayed everything the primary has written so far."""
    target = await _query(pair.primary.port, "SELECT pg_current_wal_flush_lsn()")
    for _ in range(3000):
        if await _query(pair.standby.port, "SELECT pg_last_wal_replay_lsn()") >= target:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the standby did not catch up in 30s")


async def pause(pair: ReplicationPair) -> None:
    await _query(pair.standby.port, "SELECT pg_wal_replay_pause()")


async def resume(pair: ReplicationPair) -> None:
    await _query(pair.standby.port, "SELECT pg_wal_replay_resume()")


@pytest.fixture
async def database(pair: ReplicationPair) -> AsyncIterator[str]:
    """A migrated database of the test's own on the primary, replayed on the standby."""
    name = f"replicas_{uuid.uuid4().hex[:10]}"
    await _query(pair.primary.port, f'CREATE DATABASE "{name}"')
    await todo_app.migrate(pair.primary.url(name))
    await caught_up(pair)
    yield name
    await resume(pair)  # a test that failed may have left replay paused
    # Dropping it on the primary ends the standby's sessions in it too.
    await _query(pair.primary.port, f'DROP DATABASE "{name}" WITH (FORCE)')


@asynccontextmanager
async def connected(
    pair: ReplicationPair, database: str, *, replicas: bool = True, **settings: Any
) -> AsyncIterator[str]:
    """A Tortoise context on the primary, the standby as its read replica."""
    name = f"rep_{uuid.uuid4().hex[:8]}"
    config = todo_app.tortoise_config(
        pair.primary.url(database),
        connection_name=name,
        settings=Settings(**settings),
        read_urls=[pair.standby.url(database)] if replicas else [],
    )
    async with TortoiseContext():
        await Tortoise.init(config=config)
        yield name


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """``pg_is_in_recovery()`` of the connection that served each repository read:
    True for the standby, False for the primary."""
    record: list[bool] = []
    original = asyncpg.connection.Connection.fetch

    async def fetch(self: Any, query: str, *args: Any, **kwargs: Any) -> Any:
        rows = await original(self, query, *args, **kwargs)
        if query.startswith(READS):
            record.append(await self.fetchval("SELECT pg_is_in_recovery()"))
        return rows

    monkeypatch.setattr(asyncpg.connection.Connection, "fetch", fetch)
    return record


async def state_becomes(wanted: str) -> ReplicaStatus:
    """Check the replica until it is in the ``wanted`` state (20 s at most)."""
    status: ReplicaStatus | None = None
    for _ in range(400):
        [status] = await todo_app.replica_status()
        if status.state == wanted:
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"the replica stayed {status}, never {wanted}")


async def test_reads_on_the_replica_writes_and_transactions_on_the_primary(
    pair: ReplicationPair, database: str, served: list[bool]
) -> None:
    async with connected(pair, database, consistency_wait=10) as name:
        repo = TaskRepository("alice")
        assert repo.consistency_token is None
        # A write on the standby would fail (read-only, SQLSTATE 25006): these are
        # on the primary, and each one leaves a newer token.
        tokens = []
        tasks = []
        for n in range(7):
            tasks.append(await repo.create(TaskCreate(title=f"task {n}")))
            tokens.append(parse_token(repo.consistency_token))
        assert tokens == sorted(tokens)
        assert len(set(tokens)) == 7
        await repo.complete(tasks[0].id)
        [status] = await todo_app.replica_status()
        assert (status.name, status.state, status.standby) == (f"{name}_read1", "ok", True)

        served.clear()
        reader = TaskRepository("alice", consistency=repo.consistency_token)
        assert (await reader.get(tasks[0].id)).status == TaskStatus.COMPLETED
        # An export walks the pages: every page on the replica.
        seen, cursor = [], None
        while True:
            page = await reader.list(limit=3, cursor=cursor, order="oldest")
            seen += [task.title for task in page.items]
            if (cursor := page.next_cursor) is None:
                break
        assert seen == [f"task {n}" for n in range(7)]
        assert await reader.counts() == {TaskStatus.PENDING: 6, TaskStatus.COMPLETED: 1}
        assert served == [True] * 5

        # Inside a transaction, reads stay on the primary (they see its writes).
        served.clear()
        async with in_transaction(name):
            await repo.update(tasks[1].id, TaskUpdate(title="in a transaction"))
            assert (await repo.get(tasks[1].id)).title == "in a transaction"
            assert len((await repo.list()).items) == 7
        assert served == [False, False]
        # Its commit position is not known to the write: the token says "primary".
        assert repo.consistency_token == "primary"
        served.clear()
        pinned = TaskRepository("alice", consistency=repo.consistency_token)
        assert (await pinned.get(tasks[1].id)).title == "in a transaction"
        assert served == [False]
        # The next write outside a transaction gives a position again.
        await repo.reopen(tasks[0].id)
        assert parse_token(repo.consistency_token) > tokens[-1]  # type: ignore[operator]
        assert (await todo_app.replica_status())[0].reads >= 5

    # Without read URLs nothing changes: every read on the primary, no token.
    async with connected(pair, database, replicas=False):
        served.clear()
        plain = TaskRepository("alice")
        await plain.create(TaskCreate(title="no replicas"))
        assert plain.consistency_token is None
        assert len((await plain.list()).items) == 8
        assert await todo_app.replica_status() == []
        assert served == [False]


async def test_read_your_writes_under_forced_lag(
    pair: ReplicationPair, database: str, served: list[bool]
) -> None:
    async with connected(pair, database, consistency_wait=0.05, replica_max_lag=60):
        repo = TaskRepository("bob")
        before = await repo.create(TaskCreate(title="before the pause"))
        old_token = repo.consistency_token
        await caught_up(pair)
        await state_becomes("ok")
        await pause(pair)
        task = await repo.create(TaskCreate(title="while paused"))
        token = repo.consistency_token

        # Without a token, a replica within the lag limit serves: it may not have
        # this write yet (documented: such reads may lag by up to the limit).
        served.clear()
        with pytest.raises(TaskNotFound):
            await TaskRepository("bob").get(task.id)
        assert served == [True]

        # With the token: the replica has not replayed it and does not within the
        # wait, so the primary serves. Never stale.
        served.clear()
        reader = TaskRepository("bob", consistency=token)
        assert (await reader.get(task.id)).title == "while paused"
        titles = [t.title for t in (await reader.list()).items]
        assert titles == ["while paused", "before the pause"]
        assert (await reader.counts())[TaskStatus.PENDING] == 2
        assert served == [False, False, False]

        # An older token, which the replica has replayed: the replica serves.
        served.clear()
        assert (await TaskRepository("bob", consistency=old_token).get(before.id)).id == before.id
        assert served == [True]

    await resume(pair)
    await caught_up(pair)
    async with connected(pair, database, consistency_wait=30, replica_max_lag=60):
        # A process that starts while a replica is behind cannot tell how far behind
        # it is: it reads on the primary until the replica is seen to catch up.
        await state_becomes("ok")
        await pause(pair)
        repo = TaskRepository("bob")
        later = await repo.create(TaskCreate(title="replayed during the wait"))

        async def resume_soon() -> None:
            await asyncio.sleep(0.3)
            await resume(pair)

        served.clear()
        resuming = asyncio.create_task(resume_soon())
        reader = TaskRepository("bob", consistency=repo.consistency_token)
        assert (await reader.get(later.id)).title == "replayed during the wait"
        await resuming
        # The replica got there within the wait: it served, and saw the write.
        assert served == [True]


async def test_a_replica_past_the_lag_limit_is_skipped_and_comes_back(
    pair: ReplicationPair, database: str, served: list[bool]
) -> None:
    async with connected(pair, database, replica_max_lag=0.5, replica_check_interval=0.1):
        repo = TaskRepository("carol")
        await repo.create(TaskCreate(title="first"))
        await state_becomes("ok")
        await pause(pair)
        task = await repo.create(TaskCreate(title="the replica lacks this"))
        status = await state_becomes("lagging")
        assert "0.5s" in status.reason

        # A read without a token is not stale beyond the limit: the primary serves.
        served.clear()
        assert (await TaskRepository("carol").get(task.id)).title == "the replica lacks this"
        assert len((await TaskRepository("carol").list()).items) == 2
        assert served == [False, False]

        await resume(pair)
        status = await state_becomes("ok")
        assert status.lag is not None
        assert status.lag <= 0.5
        served.clear()
        assert (await TaskRepository("carol").get(task.id)).title == "the replica lacks this"
        assert served == [True]


async def test_a_replica_that_is_down_is_skipped_and_recovers(
    pair: ReplicationPair, database: str, served: list[bool]
) -> None:
    async with connected(pair, database, replica_max_lag=60, replica_check_interval=0.1):
        repo = TaskRepository("dave")
        task = await repo.create(TaskCreate(title="survives"))
        await caught_up(pair)
        await state_becomes("ok")
        served.clear()
        assert (await TaskRepository("dave").get(task.id)).id == task.id
        assert served == [True]

        await asyncio.to_thread(pair.standby.halt, "immediate")  # a crash
        try:
            # The replica's pooled connections are dead: the read that finds out
            # is served by the primary, and so is every read until it is back.
            served.clear()
            for consistency in (None, repo.consistency_token, None):
                reader = TaskRepository("dave", consistency=consistency)
                assert (await reader.get(task.id)).title == "survives"
                assert len((await reader.list()).items) == 1
            assert served == [False] * 6
            status = await state_becomes("down")
            assert status.reason
            await repo.update(task.id, TaskUpdate(description="written while it was down"))
        finally:
            await asyncio.to_thread(pair.standby.start_again)

        # Back by itself: no restart, no call needed.
        await caught_up(pair)
        await state_becomes("ok")
        served.clear()
        reader = TaskRepository("dave", consistency=repo.consistency_token)
        assert (await reader.get(task.id)).description == "written while it was down"
        assert served == [True]


async def test_the_guard_tells_a_replica_behind_the_schema(
    pair: ReplicationPair, database: str, served: list[bool]
) -> None:
    primary = pair.primary.url(database)
    await todo_app.downgrade(primary)  # the standby will stay one migration behind
    await caught_up(pair)
    await pause(pair)
    await todo_app.migrate(primary)  # on the primary only: the standby does not replay it
    async with connected(pair, database, replica_max_lag=60, replica_check_interval=0.1):
        await todo_app.ensure_schema_current()  # the primary is current
        status = await state_becomes("schema-behind")
        assert "1 migration(s) not replayed yet" in status.reason
        repo = TaskRepository("erin")
        task = await repo.create(TaskCreate(title="needs the new columns"))
        served.clear()
        assert (await TaskRepository("erin").get(task.id)).version == 1
        assert served == [False]

        await resume(pair)
        status = await state_becomes("ok")
        assert status.reason == ""
        served.clear()
        assert (await TaskRepository("erin").get(task.id)).version == 1
        assert served == [True]


async def test_the_fastapi_example_hands_the_token_to_the_client(
    pair: ReplicationPair, database: str, served: list[bool]
) -> None:
    app = fastapi_app.create_app(
        pair.primary.url(database),
        connection_name=f"fastapi_replicas_{uuid.uuid4().hex[:6]}",
        read_urls=[pair.standby.url(database)],
    )
    alice = {"X-User": "alice"}
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)

        def client() -> httpx.AsyncClient:
            return httpx.AsyncClient(transport=transport, base_url="http://test")

        async with client() as browser, client() as newcomer:
            first = await browser.post("/tasks", json={"title": "first"}, headers=alice)
            assert first.status_code == 201
            header = first.headers[fastapi_app.CONSISTENCY_HEADER]
            assert browser.cookies[fastapi_app.CONSISTENCY_COOKIE] == header
            cookie = first.headers["set-cookie"]
            assert "HttpOnly" in cookie
            assert "Max-Age=60" in cookie
            await caught_up(pair)
            await pause(pair)
            second = await browser.post("/tasks", json={"title": "second"}, headers=alice)
            token = second.headers[fastapi_app.CONSISTENCY_HEADER]
            assert parse_token(token) > parse_token(header)  # type: ignore[operator]

            # The browser sends its cookie back: it sees its own write.
            page = (await browser.get("/tasks", headers=alice)).json()
            assert [t["title"] for t in page["items"]] == ["second", "first"]
            # An API client sends the header instead.
            stats = await newcomer.get(
                "/stats", headers={**alice, fastapi_app.CONSISTENCY_HEADER: token}
            )
            assert stats.json() == {"pending": 2, "completed": 0}
            # Without a token: the replica, which has not replayed the second write.
            served.clear()
            page = (await newcomer.get("/tasks", headers=alice)).json()
            assert [t["title"] for t in page["items"]] == ["first"]
            assert served == [True]
            # A token that is not one of ours (an old cookie, a forged header) is no
            # error: the primary serves, current.
            served.clear()
            bad = await newcomer.get(
                "/tasks", headers={**alice, fastapi_app.CONSISTENCY_HEADER: "yesterday"}
            )
            assert bad.status_code == 200
            assert [t["title"] for t in bad.json()["items"]] == ["second", "first"]
            assert served == [False]
            await resume(pair)
            deleted = await browser.delete(f"/tasks/{first.json()['id']}", headers=alice)
            assert deleted.status_code == 204
            assert fastapi_app.CONSISTENCY_HEADER in deleted.headers
