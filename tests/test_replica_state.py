"""What a read replica is, and what a host is told when that changes, on real servers:
a primary with a streaming standby (``tests.infra.ReplicationPair``) and an unrelated
cluster (``PostgresCluster``) whose WAL position is ahead of the primary's.

A read URL that is not a physical standby of the primary's cluster on the same
database never serves (``not-a-replica``); a standby that was promoted no longer
follows the primary (``promoted``); every change of state is logged once on
``todo_app.replicas`` and handed to ``todo_app.on_replica_state`` subscribers."""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from tortoise import Tortoise
from tortoise.connection import connections
from tortoise.context import TortoiseContext

import todo_app
from tests.infra import PostgresCluster, ReplicationPair, TcpProxy, private_directory
from tests.test_replicas import _query, caught_up, pause, resume
from todo_app import ReplicaStatus, Settings, TaskCreate, TaskRepository
from todo_app.replicas import _replica_set

pytestmark = pytest.mark.postgres

#: A check's interval in these tests: short, so that states change within a second.
INTERVAL = 0.1


@pytest.fixture(scope="module")
def pair() -> Iterator[ReplicationPair]:
    pair = ReplicationPair("todo_app_replica_state_").start()
    yield pair
    pair.stop()


@pytest.fixture(scope="module")
def unrelated() -> Iterator[PostgresCluster]:
    """A server of its own (another ``initdb``): not a standby of anything."""
    cluster = PostgresCluster(private_directory("todo_app_unrelated_") / "pg").start()
    yield cluster
    cluster.stop()


async def _database(port: int, name: str, url: str, *titles: str) -> None:
    await _query(port, f'CREATE DATABASE "{name}"')
    await todo_app.migrate(url)
    async with connected(url, []):
        for title in titles:
            await TaskRepository("alice").create(TaskCreate(title=title))


@pytest.fixture
async def databases(pair: ReplicationPair) -> AsyncIterator[tuple[str, str]]:
    """Two migrated databases on the primary (replayed on the standby): the
    application's, and another one with a task of the same owner."""
    name, other = f"state_{uuid.uuid4().hex[:8]}", f"other_{uuid.uuid4().hex[:8]}"
    await _database(pair.primary.port, name, pair.primary.url(name), "the primary's task")
    await _database(pair.primary.port, other, pair.primary.url(other), "another database's task")
    await caught_up(pair)
    yield name, other
    await resume(pair)
    for database in (name, other):
        await _query(pair.primary.port, f'DROP DATABASE "{database}" WITH (FORCE)')


@asynccontextmanager
async def connected(primary: str, read_urls: list[str], **settings: Any) -> AsyncIterator[str]:
    name = f"state_{uuid.uuid4().hex[:8]}"
    settings = {"replica_max_lag": 60, "replica_check_interval": INTERVAL, **settings}
    config = todo_app.tortoise_config(
        primary, connection_name=name, settings=Settings(**settings), read_urls=read_urls
    )
    async with TortoiseContext():
        await Tortoise.init(config=config)
        yield name


@pytest.fixture
def changes() -> Iterator[list[tuple[ReplicaStatus, ReplicaStatus]]]:
    """Every (before, after) a subscriber of ``todo_app.on_replica_state`` is given."""
    seen: list[tuple[ReplicaStatus, ReplicaStatus]] = []
    unsubscribe = todo_app.on_replica_state(lambda before, after: seen.append((before, after)))
    yield seen
    unsubscribe()


def state_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The lines ``todo_app.replicas`` logged about a change of state."""
    return [
        record
        for record in caplog.records
        if record.name == "todo_app.replicas" and "read replica" in record.getMessage()
        and "refused a read" not in record.getMessage()
    ]  # fmt: skip


async def state_becomes(wanted: str, reads: TaskRepository | None = None) -> ReplicaStatus:
    """Check the replica until it is in the ``wanted`` state (30 s at most); with
    ``reads``, read between the checks too (the background checks of reads)."""
    status: ReplicaStatus | None = None
    for _ in range(600):
        [status] = await todo_app.replica_status()
        if status.state == wanted:
            return status
        if reads is not None:
            await reads.list()
        await asyncio.sleep(0.05)
    raise AssertionError(f"the replica stayed {status}, never {wanted}")


async def keep_reading(repo: TaskRepository, intervals: int) -> list[str]:
    """Read for ``intervals`` check intervals (so the background checks run):
    the titles each read saw."""
    titles: list[str] = []
    for _ in range(intervals * 4):
        titles += [task.title for task in (await repo.list()).items]
        await asyncio.sleep(INTERVAL / 4)
    return titles


async def push_wal_ahead(cluster: PostgresCluster, of: PostgresCluster) -> None:
    """Write WAL on ``cluster`` until its position is past ``of``'s."""
    position = "SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn"
    while await _query(cluster.port, position) <= await _query(of.port, position):
        await _query(cluster.port, "SELECT pg_logical_emit_message(false, 'x', 'y')")
        await _query(cluster.port, "SELECT pg_switch_wal()")


# -- not a replica of this database ------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "named"),
    [
        # The three: another database on the primary's own server,
        ("other database on the primary", ("database", "other_")),
        # the standby, but of another database,
        ("standby of another database", ("database", "other_")),
        # a server of its own, ahead of the primary, with a database of the same name.
        ("unrelated server ahead", ("system identifier",)),
    ],
)
async def test_a_read_url_that_is_not_a_replica_of_this_database_never_serves(
    pair: ReplicationPair,
    unrelated: PostgresCluster,
    databases: tuple[str, str],
    changes: list[tuple[ReplicaStatus, ReplicaStatus]],
    caplog: pytest.LogCaptureFixture,
    target: str,
    named: tuple[str, ...],
) -> None:
    caplog.set_level(logging.INFO)
    name, other = databases
    if target == "other database on the primary":
        read_url = pair.primary.url(other)
    elif target == "standby of another database":
        read_url = pair.standby.url(other)
    else:
        await _database(unrelated.port, name, unrelated.url(name), "an unrelated task")
        await push_wal_ahead(unrelated, pair.primary)
        read_url = unrelated.url(name)
    try:
        async with connected(pair.primary.url(name), [read_url]):
            repo = TaskRepository("alice")
            created = await repo.create(TaskCreate(title="just created"))
            [status] = await todo_app.replica_status()
            assert status.state == "not-a-replica", status
            for words in named:
                assert words in status.reason
            # Never serving: every read sees the primary's rows, and a fresh token's
            # read finds the task just created.
            titles = await keep_reading(TaskRepository("alice"), intervals=5)
            assert set(titles) == {"the primary's task", "just created"}
            fresh = TaskRepository("alice", consistency=repo.consistency_token)
            assert (await fresh.get(created.id)).title == "just created"
            [status] = await todo_app.replica_status()
            assert status.state == "not-a-replica"
            assert status.reads == 0
    finally:
        if target == "unrelated server ahead":
            await _query(unrelated.port, f'DROP DATABASE "{name}" WITH (FORCE)')
    # Logged once, with the reason; told once.
    [line] = state_lines(caplog)
    assert line.levelno == logging.WARNING
    assert "not-a-replica" in line.getMessage()
    assert status.reason in line.getMessage()
    assert [(before.state, after.state) for before, after in changes] == [
        ("unknown", "not-a-replica")
    ]


async def test_a_connection_reopened_to_another_server_does_not_serve(
    pair: ReplicationPair,
    unrelated: PostgresCluster,
    databases: tuple[str, str],
) -> None:
    """The replica's address now leads elsewhere (DNS moved, a proxy re-pointed):
    a connection the pool opens there is checked before it serves, not at the next
    check only (which may well reuse the old connection)."""
    name, _ = databases
    await _database(unrelated.port, name, unrelated.url(name), "an unrelated task")
    proxy = await TcpProxy(pair.standby.port).start()
    try:
        async with connected(
            pair.primary.url(name),
            [f"postgresql://postgres@127.0.0.1:{proxy.port}/{name}"],
            replica_check_interval=3600,  # no check between the move and the reads
        ) as connection:
            repo = TaskRepository("alice")
            task = await repo.create(TaskCreate(title="on the primary and its standby"))
            await caught_up(pair)
            [status] = await todo_app.replica_status()
            assert status.state == "ok"
            proxy.target_port = unrelated.port  # new connections reach the other server

            async def read() -> str:
                return (await TaskRepository("alice").get(task.id)).title

            titles = await asyncio.gather(*(read() for _ in range(4)))
            assert titles == ["on the primary and its standby"] * 4
            replicas = _replica_set(connections.get(connection))
            assert replicas is not None
            [status] = replicas.statuses()
            assert status.state == "not-a-replica"
            assert "system identifier" in status.reason
    finally:
        await proxy.close()
        await _query(unrelated.port, f'DROP DATABASE "{name}" WITH (FORCE)')


async def test_the_primarys_own_url_as_a_read_url_serves(
    pair: ReplicationPair, databases: tuple[str, str]
) -> None:
    """Documented: listing the primary among the read URLs gives it a share of reads."""
    name, _ = databases
    async with connected(pair.primary.url(name), [pair.primary.url(name)]):
        [status] = await todo_app.replica_status()
        assert (status.state, status.standby) == ("ok", False)
        assert [t.title for t in (await TaskRepository("alice").list()).items] == [
            "the primary's task"
        ]
        [status] = await todo_app.replica_status()
        assert status.reads == 1


# -- every change of state, once -----------------------------------------------------------


async def test_every_change_of_state_is_logged_once_and_told(
    pair: ReplicationPair,
    databases: tuple[str, str],
    changes: list[tuple[ReplicaStatus, ReplicaStatus]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    name, _ = databases
    async with connected(
        pair.primary.url(name), [pair.standby.url(name)], replica_max_lag=1
    ) as connection:
        replicas = _replica_set(connections.get(connection))
        assert replicas is not None
        [status] = replicas.statuses()
        assert (status.state, status.reason) == ("unknown", "not checked yet")

        repo = TaskRepository("alice")
        await repo.create(TaskCreate(title="before"))
        await caught_up(pair)
        await state_becomes("ok")
        await keep_reading(repo, intervals=3)

        await pause(pair)
        await repo.create(TaskCreate(title="not replayed"))
        await state_becomes("lagging", reads=repo)
        await keep_reading(repo, intervals=3)
        await resume(pair)
        await caught_up(pair)
        await state_becomes("ok", reads=repo)

        await asyncio.to_thread(pair.standby.halt, "immediate")  # a crash
        try:
            down = await state_becomes("down", reads=repo)
            assert "PostgreSQL server?" not in down.reason
            await keep_reading(repo, intervals=20)  # 2 s down: asyncpg would retry meanwhile
        finally:
            await asyncio.to_thread(pair.standby.start_again)
        await caught_up(pair)
        await state_becomes("ok", reads=repo)
        await keep_reading(repo, intervals=3)

    told = [(before.state, after.state) for before, after in changes]
    # Each change told once: never the same state twice in a row.
    assert all(before != after for before, after in told), told
    assert all(a[1] == b[0] for a, b in itertools.pairwise(told)), told
    wanted = [("unknown", "ok"), ("ok", "lagging"), ("lagging", "ok"), ("ok", "down"),
              ("down", "ok")]  # fmt: skip
    it = iter(told)
    assert all(change in it for change in wanted), told  # in this order (more may flap)
    # One line per change, with its reason.
    lines = state_lines(caplog)
    assert len(lines) == len(changes), [line.getMessage() for line in lines]
    for line, (_, after) in zip(lines, changes, strict=True):
        assert after.state in line.getMessage()
        assert after.reason in line.getMessage()
        assert line.levelno == (logging.INFO if after.state == "ok" else logging.WARNING)
    assert "again" not in lines[0].getMessage()  # it never served before
    assert "again" in lines[-1].getMessage()
    # asyncpg's pool retrying in the background while the replica was down: no
    # traceback, and nothing every second either.
    noise = [r for r in caplog.records if r.name.startswith("asyncpg")]
    assert [r for r in noise if r.exc_info] == []
    assert len(noise) <= 1, [r.getMessage() for r in noise]


async def test_a_promoted_standby_no_longer_serves(
    changes: list[tuple[ReplicaStatus, ReplicaStatus]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    pair = ReplicationPair("todo_app_promoted_").start()
    try:
        await _query(pair.primary.port, 'CREATE DATABASE "promoted"')
        await todo_app.migrate(pair.primary.url("promoted"))
        await caught_up(pair)
        async with connected(pair.primary.url("promoted"), [pair.standby.url("promoted")]):
            repo = TaskRepository("alice")
            await repo.create(TaskCreate(title="before the promotion"))
            await caught_up(pair)
            status = await state_becomes("ok")
            assert status.standby is True
            await _query(pair.standby.port, "SELECT pg_promote()")
            status = await state_becomes("promoted", reads=repo)
            assert status.standby is False
            assert "pg_is_in_recovery" in status.reason
            # It follows the primary no more: a write on the primary is read there.
            task = await repo.create(TaskCreate(title="after the promotion"))
            titles = await keep_reading(TaskRepository("alice"), intervals=5)
            assert "after the promotion" in titles
            assert (await TaskRepository("alice").get(task.id)).title == "after the promotion"
            [status] = await todo_app.replica_status()
            assert status.state == "promoted"
    finally:
        await asyncio.to_thread(pair.stop)
    assert [(b.state, a.state) for b, a in changes] == [("unknown", "ok"), ("ok", "promoted")]
    lines = state_lines(caplog)
    assert len(lines) == 2
    assert "promoted" in lines[1].getMessage()


async def test_a_subscriber_that_raises_is_logged_and_reads_go_on(
    pair: ReplicationPair, databases: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    name, other = databases

    def broken(before: ReplicaStatus, after: ReplicaStatus) -> None:
        raise RuntimeError("the metrics backend is down")

    unsubscribe = todo_app.on_replica_state(broken)
    try:
        async with connected(pair.primary.url(name), [pair.primary.url(other)]):
            [status] = await todo_app.replica_status()
            assert status.state == "not-a-replica"
            titles = [t.title for t in (await TaskRepository("alice").list()).items]
            assert titles == ["the primary's task"]
    finally:
        unsubscribe()
    [failed] = [r for r in caplog.records if "the metrics backend is down" in r.getMessage()
                or (r.exc_info and "metrics backend" in str(r.exc_info[1]))]  # fmt: skip
    assert failed.name == "todo_app.replicas"
    assert failed.levelno == logging.ERROR
    # Unsubscribed: told no more.
    async with connected(pair.primary.url(name), [pair.primary.url(other)]):
        caplog.clear()
        await todo_app.replica_status()
    assert "metrics backend" not in caplog.text


async def test_a_replica_behind_the_schema_is_told_to_wait_for_replay(
    pair: ReplicationPair, databases: tuple[str, str]
) -> None:
    name, _ = databases
    primary = pair.primary.url(name)
    await todo_app.downgrade(primary)
    await caught_up(pair)
    await pause(pair)
    try:
        await todo_app.migrate(primary)
        async with connected(primary, [pair.standby.url(name)]):
            status = await state_becomes("schema-behind")
            assert "not replayed" in status.reason
            assert "migrate" not in status.reason.replace("migrate the primary", "")
    finally:
        await resume(pair)
