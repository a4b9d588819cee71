"""Failover by promotion, under a running write load, on a real primary and a
synchronous streaming standby started here (``synchronous_commit = remote_apply``).

The application's URL names both servers with ``target_session_attrs=read-write``,
as libpq would take it. The primary is killed (``pg_ctl stop -m immediate``), the
standby promoted (``pg_ctl promote``); the same process keeps writing."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import asyncpg
import pytest
from tortoise import Tortoise
from tortoise.context import TortoiseContext

import todo_app
from tests.infra import ReplicationPair
from todo_app import Settings, TaskCreate, TaskRepository, TaskStoreUnavailable

pytestmark = pytest.mark.postgres

CONNECT_TIMEOUT = 2


@pytest.fixture(scope="module")
def pair() -> Iterator[ReplicationPair]:
    pair = ReplicationPair("todo_app_failover_", synchronous=True).start()
    yield pair
    pair.stop()


async def test_failover_by_promotion_under_write_load(pair: ReplicationPair) -> None:
    primary, standby = pair.primary, pair.standby
    connection = await asyncpg.connect(primary.url())
    await connection.execute('CREATE DATABASE "failover"')
    await connection.close()
    await todo_app.migrate(primary.url("failover"))
    url = (
        f"postgresql://postgres@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/failover"
        f"?target_session_attrs=read-write&connect_timeout={CONNECT_TIMEOUT}"
    )
    settings = Settings(statement_timeout=5, pool_max_size=5)
    config = todo_app.tortoise_config(
        url, connection_name="failover", settings=settings, read_urls=[standby.url("failover")]
    )
    succeeded: list[uuid.UUID] = []
    after_promotion: list[uuid.UUID] = []
    failures: list[TaskStoreUnavailable] = []
    read_failures: list[TaskStoreUnavailable] = []
    slowest_failure = 0.0
    promoted = asyncio.Event()
    stop = asyncio.Event()

    async with TortoiseContext():
        await Tortoise.init(config=config)
        await todo_app.replica_status()

        async def writer(n: int) -> None:
            nonlocal slowest_failure
            repo = TaskRepository(f"writer-{n}")
            while not stop.is_set():
                task_id = uuid.uuid4()
                while True:  # a create that failed is retried with its id: never twice
                    started = time.monotonic()
                    try:
                        await repo.create(TaskCreate(id=task_id, title=f"w{n}"))
                    except TaskStoreUnavailable as exc:  # anything else fails the test
                        failures.append(exc)
                        slowest_failure = max(slowest_failure, time.monotonic() - started)
                        await asyncio.sleep(0.05)
                        continue
                    break
                succeeded.append(task_id)
                if promoted.is_set():
                    after_promotion.append(task_id)

        async def reader() -> None:
            repo = TaskRepository("writer-0")
            while not stop.is_set():
                try:
                    await repo.list(limit=10)
                except TaskStoreUnavailable as exc:
                    read_failures.append(exc)
                await asyncio.sleep(0.01)

        async def operator() -> None:
            await asyncio.sleep(1.0)
            before = len(succeeded)
            await asyncio.to_thread(primary.halt, "immediate")  # the primary dies
            await asyncio.sleep(0.5)
            await asyncio.to_thread(standby.promote)
            promoted.set()
            for _ in range(300):  # until writes have gone on for a while
                if len(after_promotion) >= 50:
                    break
                await asyncio.sleep(0.05)
            stop.set()
            assert before > 0, "no write before the failover"

        await asyncio.wait_for(
            asyncio.gather(*(writer(n) for n in range(6)), reader(), operator()), timeout=120
        )
    # Writes resumed on the promoted standby, in the same process.
    assert len(after_promotion) >= 50
    # The switch was felt, as TaskStoreUnavailable only, never as a hang.
    assert failures
    assert slowest_failure < 2 * CONNECT_TIMEOUT + 5
    assert all("unavailable" in str(exc) or "lost" in str(exc) for exc in failures)
    # No write that returned success is lost: every one is on the new primary, and
    # nothing else is (a create that raised and was retried with its id is there once).
    connection = await asyncpg.connect(standby.url("failover"))
    try:
        assert not await connection.fetchval("SELECT pg_is_in_recovery()")
        rows = await connection.fetch("SELECT id FROM todo_app_task")
    finally:
        await connection.close()
    assert len(rows) == len(succeeded)
    assert {row["id"] for row in rows} == set(succeeded)
    print(
        f"\nfailover: {len(succeeded)} creates ok ({len(after_promotion)} after the "
        f"promotion), all {len(rows)} on the new primary; {len(failures)} typed failures "
        f"during the switch (slowest {slowest_failure:.2f}s); "
        f"{len(read_failures)} failed reads; "
        + "; ".join(sorted({str(exc) for exc in failures + read_failures})[:4])
    )
