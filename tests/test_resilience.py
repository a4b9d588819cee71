"""Real failure conditions on PostgreSQL: connections cut mid-workload, a peer gone
silent, a server restart, timeouts, and load. Every figure the closing note quotes
comes from these tests."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from tortoise import Tortoise
from tortoise.context import TortoiseContext

import todo_app
from tests.helpers import FreshURL, postgres_url, server_address
from tests.infra import PostgresCluster, TcpProxy, private_directory
from todo_app import (
    Settings,
    TaskConflict,
    TaskCreate,
    TaskNotFound,
    TaskRead,
    TaskRepository,
    TaskStoreTimeout,
    TaskStoreUnavailable,
    TaskUpdate,
)
from todo_app.dsn import DatabaseURL
from todo_app.transactions import write_transaction

pytestmark = pytest.mark.postgres


def via_port(url: DatabaseURL, port: int) -> str:
    """``url``'s database through a proxy listening on ``port`` of 127.0.0.1."""
    return postgres_url(url, address=("127.0.0.1", port))


def proxy_to(url: DatabaseURL) -> TcpProxy:
    """A proxy to TEST_DATABASE_URL's server, wherever that is."""
    host, port = server_address(url)
    return TcpProxy(port, host)


@asynccontextmanager
async def connected(url: str, name: str, **settings: Any) -> AsyncIterator[None]:
    config = todo_app.tortoise_config(url, connection_name=name, settings=Settings(**settings))
    async with TortoiseContext():
        await Tortoise.init(config=config)
        yield


async def ids_present(url: DatabaseURL, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    connection = await asyncpg.connect(url.reveal())
    try:
        rows = await connection.fetch("SELECT id FROM todo_app_task WHERE id = ANY($1)", ids)
    finally:
        await connection.close()
    return {row["id"] for row in rows}


@pytest.fixture
async def database(fresh_database_url: FreshURL) -> DatabaseURL:
    url = await fresh_database_url("postgres")
    await todo_app.migrate(url)
    return url


async def test_connections_cut_mid_workload(database: DatabaseURL) -> None:
    proxy = await proxy_to(database).start()
    succeeded: list[uuid.UUID] = []
    raised: list[uuid.UUID] = []
    title_of: dict[uuid.UUID, str] = {}
    errors: list[Exception] = []
    bulk_batches: list[tuple[list[uuid.UUID], bool]] = []
    try:
        async with connected(via_port(database, proxy.port), "cut", statement_timeout=5):
            repo = TaskRepository("survivor")

            # The pool retries a statement on a connection that died while idle, so
            # only a cut that lands mid-statement is felt: the cutter keeps cutting
            # until one is, and the writers keep writing until the cutter is done.
            cutting = asyncio.Event()
            cutting.set()

            async def writer(n: int) -> None:
                i = -1
                while (i := i + 1) < 40 or (cutting.is_set() and i < 2000):
                    task_id = uuid.uuid4()
                    title_of[task_id] = f"w{n}-{i}"
                    try:
                        await repo.create(TaskCreate(id=task_id, title=title_of[task_id]))
                        succeeded.append(task_id)
                    except TaskStoreUnavailable as exc:
                        raised.append(task_id)
                        errors.append(exc)
                    await asyncio.sleep(0.002)

            async def importer() -> None:
                for _ in range(10):
                    batch = [uuid.uuid4() for _ in range(200)]
                    try:
                        await repo.bulk_create(TaskCreate(id=i, title="bulk") for i in batch)
                        bulk_batches.append((batch, True))
                    except TaskStoreUnavailable as exc:
                        bulk_batches.append((batch, False))
                        errors.append(exc)

            async def cutter() -> None:
                for _ in range(3):
                    await asyncio.sleep(0.1)
                    proxy.cut()
                deadline = time.monotonic() + 20
                while not errors and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
                    proxy.cut()
                cutting.clear()

            started = time.monotonic()
            await asyncio.wait_for(
                asyncio.gather(*(writer(n) for n in range(8)), importer(), cutter()), timeout=60
            )
            elapsed = time.monotonic() - started
            assert errors, "the cuts were not felt"
            assert elapsed < 30, "operations hung instead of failing"
            # The pool recovers without restarting anything.
            after = await repo.create(TaskCreate(title="after the outage"))
            assert (await repo.get(after.id)).title == "after the outage"
    finally:
        await proxy.close()
    # Every write that returned success is there; none that raised is half there.
    assert await ids_present(database, succeeded) == set(succeeded)
    for batch, ok in bulk_batches:
        present = len(await ids_present(database, batch))
        assert present in (0, len(batch)), "a bulk import was half applied"
        if ok:
            assert present == len(batch)
    committed_anyway = await ids_present(database, raised)
    # A create that raised may still have committed (the answer was lost, not the
    # write): retrying with the same client id settles it, without a duplicate.
    async with connected(database.reveal(), "retry"):
        repo = TaskRepository("survivor")
        for task_id in raised:
            assert (
                await repo.create(TaskCreate(id=task_id, title=title_of[task_id]))
            ).id == task_id
        assert len((await repo.list(limit=200)).items) == 200
    print(
        f"\ncut: {len(succeeded)} creates ok, {len(raised)} raised "
        f"({len(committed_anyway)} of those committed before the cut), "
        f"{sum(ok for _, ok in bulk_batches)}/{len(bulk_batches)} bulk batches ok, "
        f"{len(errors)} typed errors, {elapsed:.2f}s"
    )


async def test_a_silent_peer_times_out_and_the_pool_recovers(database: DatabaseURL) -> None:
    proxy = await proxy_to(database).start()
    try:
        async with connected(via_port(database, proxy.port), "stall", statement_timeout=1):
            repo = TaskRepository("patient")
            task = await repo.create(TaskCreate(title="before"))
            proxy.stall()
            started = time.monotonic()
            with pytest.raises(TaskStoreTimeout):
                await asyncio.wait_for(repo.get(task.id), timeout=30)
            waited = time.monotonic() - started
            assert waited < 5, f"waited {waited:.1f}s; statement_timeout 1s + 1s client margin"
            proxy.resume()
            proxy.cut()  # whatever the stalled connections were doing, drop them
            assert (await repo.get(task.id)).title == "before"
    finally:
        await proxy.close()


async def test_statement_timeout_is_typed_and_leaves_the_pool_usable(database: DatabaseURL) -> None:
    connection = await asyncpg.connect(database.reveal())
    await connection.execute(
        """
        CREATE FUNCTION slow_title() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.title = 'slow' THEN PERFORM pg_sleep(3); END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER slow_title BEFORE INSERT ON todo_app_task
            FOR EACH ROW EXECUTE FUNCTION slow_title();
        """
    )
    await connection.close()
    async with connected(database.reveal(), "slow", statement_timeout=0.5, pool_max_size=2):
        repo = TaskRepository("impatient")
        started = time.monotonic()
        with pytest.raises(TaskStoreTimeout):
            await repo.create(TaskCreate(title="slow"))
        assert time.monotonic() - started < 2.5
        assert (await repo.list()).items == [], "the timed-out insert left nothing"
        for n in range(5):  # more than the pool holds: no connection was lost
            await repo.create(TaskCreate(title=f"fast {n}"))
        assert len((await repo.list()).items) == 5


async def test_connect_timeout_is_typed() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with connected(
            f"postgresql://postgres@127.0.0.1:{port}/x", "mute", connect_timeout=0.5
        ):
            started = time.monotonic()
            with pytest.raises(TaskStoreTimeout):
                await TaskRepository("someone").counts()
            assert time.monotonic() - started < 3
    finally:
        server.close()


async def test_refused_connection_is_typed() -> None:
    async with connected("postgresql://postgres@127.0.0.1:1/x", "refused"):
        with pytest.raises(TaskStoreUnavailable, match="unavailable"):
            await TaskRepository("someone").get(uuid.uuid4())


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster(private_directory("todo_app_restart_") / "cluster").start()
    yield cluster
    cluster.stop()


async def test_server_restart_mid_workload(own_cluster: PostgresCluster) -> None:
    url = own_cluster.url("postgres")
    await todo_app.migrate(url)
    succeeded: list[uuid.UUID] = []
    failures = 0
    async with connected(url, "restart", statement_timeout=5):
        repo = TaskRepository("restarted")

        async def writer() -> None:
            nonlocal failures
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                task_id = uuid.uuid4()
                try:
                    await repo.create(TaskCreate(id=task_id, title="write"))
                    succeeded.append(task_id)
                except TaskStoreUnavailable:
                    failures += 1
                await asyncio.sleep(0.01)

        async def restarter() -> None:
            await asyncio.sleep(0.5)
            await asyncio.to_thread(own_cluster.restart)

        await asyncio.wait_for(asyncio.gather(*(writer() for _ in range(4)), restarter()), 60)
        assert failures, "the restart was not felt"
        final = await repo.create(TaskCreate(title="after restart"))
        assert (await repo.get(final.id)).title == "after restart"
    stored = await ids_present(DatabaseURL(url), succeeded)
    assert stored == set(succeeded)
    print(f"\nrestart: {len(succeeded)} writes ok and present, {failures} typed failures")


async def test_a_hundred_writers_on_one_task(database: DatabaseURL) -> None:
    async with connected(database.reveal(), "hundred", pool_max_size=10):
        repo = TaskRepository("crowd")
        task = await repo.create(TaskCreate(title="0"))

        # All with the same expected version: one wins, 99 are told they lost.
        outcomes = await asyncio.gather(
            *(
                repo.update(task.id, TaskUpdate(title=f"w{n}"), expected_version=1)
                for n in range(100)
            ),
            return_exceptions=True,
        )
        assert sum(isinstance(o, TaskRead) for o in outcomes) == 1
        assert sum(isinstance(o, TaskConflict) for o in outcomes) == 99

        # Read-modify-write with retry: no increment is ever lost.
        await repo.update(task.id, TaskUpdate(description="0"))

        async def increment_description() -> int:
            conflicts = 0
            while True:
                current = await repo.get(task.id)
                change = TaskUpdate(description=str(int(current.description or "0") + 1))
                try:
                    await repo.update(task.id, change, expected_version=current.version)
                except TaskConflict:
                    conflicts += 1
                    continue
                return conflicts

        conflicts = await asyncio.gather(*(increment_description() for _ in range(100)))
        final = await repo.get(task.id)
        assert final.description == "100", "an update was lost"
        print(f"\n100 writers: 1 winner/99 conflicts; 100 increments, {sum(conflicts)} retries")


async def _backends(database: DatabaseURL) -> int:
    connection = await asyncpg.connect(database.with_database("postgres").reveal())
    try:
        count = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", database.database
        )
    finally:
        await connection.close()
    return int(count)


async def test_two_hundred_coroutines_over_a_pool_of_ten(database: DatabaseURL) -> None:
    before = await _backends(database)
    counts = {"ops": 0, "conflicts": 0, "not_found": 0}
    unexpected: list[BaseException] = []
    async with connected(database.reveal(), "mixed", pool_max_size=10, pool_min_size=1):
        repos = [TaskRepository(f"user-{n % 20}") for n in range(200)]
        seed = [await repos[n].create(TaskCreate(title="seed")) for n in range(20)]

        async def worker(n: int) -> None:
            repo, deadline = repos[n], time.monotonic() + 3
            mine = seed[n % 20]
            while time.monotonic() < deadline:
                try:
                    op = counts["ops"] % 6
                    if op == 0:
                        await repo.create(TaskCreate(title=f"from {n}"))
                    elif op == 1:
                        await repo.list(limit=20)
                    elif op == 2:
                        current = await repo.get(mine.id)
                        await repo.update(mine.id, TaskUpdate(title=f"by {n}"),
                                          expected_version=current.version)  # fmt: skip
                    elif op == 3:
                        await repo.complete(mine.id)
                    elif op == 4:
                        await repo.reopen(mine.id)
                    else:
                        await repo.counts()
                    counts["ops"] += 1
                except TaskConflict:
                    counts["conflicts"] += 1
                except TaskNotFound:
                    counts["not_found"] += 1
                except Exception as exc:  # anything else fails the test
                    unexpected.append(exc)
                    return

        await asyncio.wait_for(asyncio.gather(*(worker(n) for n in range(200))), timeout=60)
        during = await _backends(database)
    after = await _backends(database)
    assert unexpected == []
    assert counts["not_found"] == 0
    assert during <= before + 10, "the pool opened more than its maximum"
    assert after == before, "connections leaked after the pool closed"
    rate = counts["ops"] / 3
    print(f"\nmixed load: {counts['ops']} ops in 3s ({rate:.0f}/s), {counts['conflicts']} "
          f"intended conflicts, backends {before}->{during}->{after}")  # fmt: skip


async def test_a_transaction_that_dies_at_begin_leaves_nothing_behind(
    database: DatabaseURL, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tortoise marks the task as in a transaction before BEGIN; when BEGIN meets a
    dead connection, the package gives the mark and the connection back."""
    from tortoise.backends.asyncpg.client import TransactionWrapper

    original = TransactionWrapper.begin
    failures = iter([True])

    async def begin(self: TransactionWrapper) -> None:
        if next(failures, False):
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle")
        await original(self)

    async with connected(database.reveal(), "begin_dies", pool_max_size=2):
        monkeypatch.setattr(TransactionWrapper, "begin", begin)
        with pytest.raises(asyncpg.ConnectionDoesNotExistError):
            async with write_transaction("begin_dies"):
                pass
        # Same task: a real transaction again (not a savepoint on a released
        # connection), and every pooled connection is back.
        async with write_transaction("begin_dies") as tx:
            _, rows = await tx.execute_query("SELECT txid_current_if_assigned() IS NULL AS fresh")
            assert rows[0]["fresh"]
        assert await todo_app.migrate(database) == []  # the migrator's transactions too
        pool = Tortoise.get_connection("begin_dies")._pool  # type: ignore[attr-defined]
        assert pool.get_idle_size() == pool.get_size()
