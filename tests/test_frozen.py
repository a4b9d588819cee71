"""A server that freezes (a paused VM, a silent partition): every call ends within its
documented bound, and writes follow a promoted standby within the connect timeout.

The server is frozen for real: SIGSTOP to its postmaster and every child
(``PostgresCluster.freeze``). The kernel still accepts connections and acknowledges
data; nothing answers. Each bound is asserted with a hard ``asyncio.wait_for`` a
little past it; before issue 18 every statement cost twice its bound (asyncpg's
release waited for a cancel request the frozen server never answers)."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from tortoise import Tortoise
from tortoise.context import TortoiseContext

import todo_app
from tests.infra import ReplicationPair
from todo_app import Settings, TaskCreate, TaskRepository, TaskStoreUnavailable, replicas

pytestmark = pytest.mark.postgres

STATEMENT_TIMEOUT = 3
#: What the client waits for an answer: the statement timeout plus its margin
#: (min(5 s, the timeout)): 6 s here.
STATEMENT_BOUND = 2 * STATEMENT_TIMEOUT
CONNECT_TIMEOUT = 1
#: Scheduling on a shared 2-core machine; far below the bound a doubled wait would need.
SLACK = 1.5


@pytest.fixture
def pair() -> Iterator[ReplicationPair]:
    pair = ReplicationPair("todo_app_frozen_").start()
    try:
        yield pair
    finally:
        pair.stop()  # thaws both first


async def _query(port: int, sql: str, database: str = "postgres") -> Any:
    connection = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{port}/{database}")
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()


async def _database(pair: ReplicationPair) -> str:
    name = f"frozen_{uuid.uuid4().hex[:8]}"
    await _query(pair.primary.port, f'CREATE DATABASE "{name}"')
    await todo_app.migrate(pair.primary.url(name))
    target = await _query(pair.primary.port, "SELECT pg_current_wal_flush_lsn()")
    for _ in range(3000):
        if await _query(pair.standby.port, "SELECT pg_last_wal_replay_lsn()") >= target:
            return name
        await asyncio.sleep(0.01)
    raise AssertionError("the standby did not catch up")


@asynccontextmanager
async def connected(
    url: str, read_urls: list[str] | None = None, **settings: Any
) -> AsyncIterator[None]:
    config = todo_app.tortoise_config(
        url,
        connection_name=f"frozen_{uuid.uuid4().hex[:8]}",
        settings=Settings(
            statement_timeout=STATEMENT_TIMEOUT,
            connect_timeout=CONNECT_TIMEOUT,
            pool_max_size=5,
            **settings,
        ),
        read_urls=read_urls or [],
    )
    async with TortoiseContext():
        await Tortoise.init(config=config)
        yield


async def test_a_frozen_replica_costs_a_read_one_statement_bound_at_most(
    pair: ReplicationPair,
) -> None:
    name = await _database(pair)
    async with connected(
        pair.primary.url(name),
        read_urls=[pair.standby.url(name)],
        replica_max_lag=60,
        replica_check_interval=0.2,
    ):
        repo = TaskRepository("frank")
        task = await repo.create(TaskCreate(title="on both"))
        for _ in range(200):
            [status] = await todo_app.replica_status()
            if status.state == "ok":
                break
            await asyncio.sleep(0.05)
        assert status.state == "ok"
        # The replica's pool holds connections: reads use them.
        await asyncio.gather(*(TaskRepository("frank").get(task.id) for _ in range(5)))
        assert status.reads or (await todo_app.replica_status())[0].reads

        pair.standby.freeze()
        try:
            # Reads sent to the frozen replica give up after one statement bound and
            # are served by the primary: never an error, never twice the bound. And
            # replica_status(), asked meanwhile, answers within its own bound: down.
            reads = [
                asyncio.wait_for(TaskRepository("frank").get(task.id), STATEMENT_BOUND + SLACK)
                for _ in range(5)
            ]
            status_now = asyncio.wait_for(
                todo_app.replica_status(), replicas.REPLICA_STATUS_TIMEOUT + SLACK
            )
            *found, [status] = await asyncio.gather(*reads, status_now)
            assert {t.title for t in found} == {"on both"}
            assert status.state == "down"
            # Now the replica is skipped: reads are as fast as on the primary.
            found = await asyncio.wait_for(
                asyncio.gather(*(TaskRepository("frank").get(task.id) for _ in range(5))), SLACK
            )
            assert len(found) == 5
        finally:
            pair.standby.thaw()


async def test_a_frozen_primary_fails_writes_within_the_bound_and_the_promoted_standby_takes_them(
    pair: ReplicationPair,
) -> None:
    name = await _database(pair)
    url = (
        f"postgresql://postgres@127.0.0.1:{pair.primary.port},127.0.0.1:{pair.standby.port}/"
        f"{name}?target_session_attrs=read-write&connect_timeout={CONNECT_TIMEOUT}"
    )
    async with connected(url):
        repo = TaskRepository("grace")
        # Five connections open in the pool, idle once these return.
        await asyncio.gather(*(repo.create(TaskCreate(title=f"before {n}")) for n in range(10)))

        task = await repo.create(TaskCreate(title="before 10"))

        pair.primary.freeze()
        try:
            # A caller that gives up (a request timeout) is not held by the connection
            # it leaves behind: asyncpg would wait for a cancel the server never answers.
            given_up = asyncio.ensure_future(asyncio.wait_for(repo.get(task.id), 0.5))
            done, _ = await asyncio.wait({given_up}, timeout=0.5 + SLACK)
            assert done, "the caller that gave up was held by its connection"
            with pytest.raises(TimeoutError):
                given_up.result()
            # A write sent to the frozen primary fails within one statement bound.
            with pytest.raises(TaskStoreUnavailable):
                await asyncio.wait_for(
                    repo.create(TaskCreate(title="lost in the freeze")), STATEMENT_BOUND + SLACK
                )
            # So does the next one, on one of the other (idle, as dead) connections,
            # or on a new connection that finds no writable host.
            with pytest.raises(TaskStoreUnavailable):
                await asyncio.wait_for(
                    repo.create(TaskCreate(title="still frozen")), STATEMENT_BOUND + SLACK
                )

            await asyncio.to_thread(pair.standby.promote)

            async def first_write() -> None:
                while True:
                    try:
                        await repo.create(TaskCreate(title="on the new primary"))
                        return
                    except TaskStoreUnavailable:
                        await asyncio.sleep(0.05)

            # The first write after the promotion: one connect timeout on the frozen
            # host, then the promoted one.
            await asyncio.wait_for(first_write(), CONNECT_TIMEOUT + 1)
        finally:
            pair.primary.thaw()
    assert await _query(pair.standby.port, "SELECT count(*) FROM todo_app_task", name) == 12


def _keepalive_options(connection: Any) -> tuple[int, ...]:
    sock = connection._con._transport.get_extra_info("socket")
    if sock.family == socket.AF_UNIX:
        return (sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),)
    return (
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
        sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
        sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
        sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
        sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
    )


async def test_connections_carry_libpq_keepalives(pair: ReplicationPair) -> None:
    """On by default (30 s idle, 10 s apart, 3 probes, 60 s unacknowledged), the URL's
    own values win with libpq's meaning; keepalives=0 sets nothing; unix sockets are
    left alone (tests/test_libpq_agreement.py compares the values with libpq's)."""
    primary = pair.primary
    given = "keepalives_idle=7&keepalives_count=5&tcp_user_timeout=4000"
    cases = {
        primary.url(): (1, 30, 10, 3, 60000),
        primary.url(query=given): (1, 7, 10, 5, 4000),
        primary.url(query="keepalives=0&tcp_user_timeout=4000"): (0, None, None, None, 0),
        f"postgresql://postgres@/postgres?host={primary.directory}&port={primary.port}": (0,),
    }
    for url, expected in cases.items():
        async with connected(url):
            from tortoise.connection import connections

            [name] = [n for n in connections.db_config if n.startswith("frozen_")]
            client: Any = connections.get(name)
            await client.execute_query("SELECT 1")  # opens the pool
            async with client._pool.acquire() as connection:
                options = _keepalive_options(connection)
        # None: not set, the kernel's own value.
        assert [o for o, e in zip(options, expected, strict=True) if e is not None] == [
            e for e in expected if e is not None
        ], url
