"""todo_app against raw asyncpg and SQLAlchemy 2 async, side by side, on the same data.

    uv run python -m benchmarks.bench                  # 10k and 100k rows
    uv run python -m benchmarks.bench --sizes 1000000  # the 1M run (a few minutes)

Contenders, interleaved call by call in an order shuffled every round, so that machine
drift hits all alike and none always runs right after the same other one; warm-up
calls are not counted:

* ``todo_app``: the public ``TaskRepository`` API on ``tortoise_config(url)``, i.e. the
  package's defaults, exactly as a host calls it;
* ``raw+parse``: hand-written SQL on one asyncpg connection, the same owner scoping
  and columns, rows parsed into the same pydantic ``TaskRead`` (the baseline of the
  targets); ``raw``: the same without parsing;
* ``sqlalchemy``: SQLAlchemy 2 async ORM on asyncpg (PostgreSQL only);
* ``raw+parse (pool 10)``: raw+parse on an asyncpg pool, a checkout per call as a
  server makes (PostgreSQL, reads and create): todo_app checks out a connection per
  call too, which one dedicated connection never pays; ``raw+parse (pool, no
  reset)``: the same without asyncpg's reset query on release (todo_app skips it
  for its own statements), the checkout alone.

On SQLite the raw contender is one aiosqlite connection. The benchmark creates and
drops its own PostgreSQL database (server from ``--pg-url``, default
``TEST_DATABASE_URL``) and its own SQLite file; it writes its table to
``benchmarks/results/<date>-<host>.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import random
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg
from sqlalchemy import DateTime, Integer, String, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from tortoise import Tortoise
from tortoise.context import TortoiseContext

import todo_app
from todo_app import TaskCreate, TaskRead, TaskRepository, TaskStatus, TaskUpdate
from todo_app.dsn import DatabaseURL
from todo_app.pagination import Cursor
from todo_app.settings import get_settings

COLUMNS = "id, user_id, title, description, status, version, created_at, updated_at, completed_at"
HEAVY = "heavy"
PAGE = 50
DEEP_PAGE = 200
RESULTS = Path(__file__).parent / "results"
Op = Callable[[int], Awaitable[Any]]


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parse(row: Any) -> TaskRead:
    return TaskRead.model_validate(dict(row))


# -- data ---------------------------------------------------------------------------


def make_rows(
    count: int, owner_of: Callable[[int], str], start: dt.datetime
) -> list[tuple[Any, ...]]:
    rows = []
    for n in range(count):
        created = start + dt.timedelta(microseconds=37 * n)
        completed = n % 5 == 0
        rows.append(
            (
                uuid.uuid4(), owner_of(n), f"task {n}", "some details" if n % 2 else None,
                "completed" if completed else "pending", 1, created, created,
                created if completed else None,
            )
        )  # fmt: skip
    return rows


def owner_for(size: int) -> Callable[[int], str]:
    heavy = min(size, PAGE * DEEP_PAGE + PAGE)

    def owner(n: int) -> str:
        return HEAVY if n < heavy else f"u{n % max(1, (size - heavy) // 100)}"

    return owner


async def load_postgres(dsn: str, rows: list[tuple[Any, ...]]) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.copy_records_to_table(
            "todo_app_task", records=rows, columns=COLUMNS.replace(" ", "").split(",")
        )
        await connection.execute("ANALYZE todo_app_task")
    finally:
        await connection.close()


async def load_sqlite(path: str, rows: list[tuple[Any, ...]]) -> None:
    def value(v: Any) -> Any:
        if isinstance(v, uuid.UUID):
            return str(v)
        if isinstance(v, dt.datetime):
            return v.isoformat(" ")
        return v

    async with aiosqlite.connect(path) as connection:
        await connection.executemany(
            f"INSERT INTO todo_app_task ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",  # noqa: S608
            [[value(v) for v in row] for row in rows],
        )
        await connection.commit()
        await connection.execute("ANALYZE")


async def scratch_database(
    pg: DatabaseURL, prefix: str
) -> tuple[str, Callable[[], Awaitable[None]]]:
    """A new, empty database on ``pg``'s server: its URL, and the call that drops it."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg.reveal())
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()

    async def drop() -> None:
        admin = await asyncpg.connect(pg.reveal())
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    return pg.with_database(name).reveal(), drop


# -- contenders ---------------------------------------------------------------------


class Contender:
    """One way of doing each operation; ``tasks`` are rows it may update/complete/delete."""

    name = ""

    def __init__(self, work: dict[str, list[tuple[uuid.UUID, str]]]) -> None:
        self.work = work
        self.versions: dict[uuid.UUID, int] = {}

    async def close(self) -> None:
        return None


class TodoApp(Contender):
    name = "todo_app"

    def __init__(self, work: dict[str, list[tuple[uuid.UUID, str]]], url: str, name: str) -> None:
        super().__init__(work)
        self.url, self.connection_name = url, name

    async def open(self) -> None:
        self.context = TortoiseContext()
        self.context.__enter__()
        await Tortoise.init(
            config=todo_app.tortoise_config(self.url, connection_name=self.connection_name)
        )

    async def close(self) -> None:
        await Tortoise.close_connections()
        self.context.__exit__(None, None, None)

    async def create(self, owner: str) -> Any:
        return await TaskRepository(owner).create(TaskCreate(title="created", description="d"))

    async def get(self, owner: str, task_id: uuid.UUID) -> Any:
        return await TaskRepository(owner).get(task_id)

    async def list_page(self, owner: str, cursor: Cursor | None) -> Any:
        token = cursor.encode() if cursor else None
        return await TaskRepository(owner).list(limit=PAGE, cursor=token)

    async def update(self, owner: str, task_id: uuid.UUID, version: int) -> Any:
        return await TaskRepository(owner).update(
            task_id, TaskUpdate(title="renamed"), expected_version=version
        )

    async def complete(self, owner: str, task_id: uuid.UUID) -> Any:
        return await TaskRepository(owner).complete(task_id)

    async def delete(self, owner: str, task_id: uuid.UUID) -> Any:
        return await TaskRepository(owner).delete(task_id)

    async def counts(self, owner: str) -> Any:
        return await TaskRepository(owner).counts()

    async def bulk(self, owner: str, count: int) -> Any:
        return await TaskRepository(owner).bulk_create(
            TaskCreate(title=f"bulk {n}") for n in range(count)
        )


class RawPostgres(Contender):
    """Hand-written SQL on one asyncpg connection; ``parse`` builds TaskRead too."""

    def __init__(
        self, work: dict[str, list[tuple[uuid.UUID, str]]], dsn: str, parse_rows: bool
    ) -> None:
        super().__init__(work)
        self.dsn, self.parse_rows = dsn, parse_rows
        self.name = "raw+parse" if parse_rows else "raw"

    async def open(self) -> None:
        self.connection = await asyncpg.connect(self.dsn)

    async def close(self) -> None:
        await self.connection.close()

    def out(self, row: Any) -> Any:
        return parse(row) if self.parse_rows and row is not None else row

    async def create(self, owner: str) -> Any:
        moment = now()
        row = await self.connection.fetchrow(
            f"INSERT INTO todo_app_task ({COLUMNS}) VALUES ($1,$2,$3,$4,'pending',1,$5,$5,NULL) "  # noqa: S608
            f"RETURNING {COLUMNS}", uuid.uuid4(), owner, "created", "d", moment,
        )  # fmt: skip
        return self.out(row)

    async def get(self, owner: str, task_id: uuid.UUID) -> Any:
        row = await self.connection.fetchrow(
            f"SELECT {COLUMNS} FROM todo_app_task WHERE id = $1 AND user_id = $2",
            task_id,
            owner,  # noqa: S608
        )
        return self.out(row)

    async def list_page(self, owner: str, cursor: Cursor | None) -> Any:
        if cursor is None:
            rows = await self.connection.fetch(
                f"SELECT {COLUMNS} FROM todo_app_task WHERE user_id = $1 "  # noqa: S608
                "ORDER BY created_at DESC, id DESC LIMIT $2", owner, PAGE + 1,
            )  # fmt: skip
        else:
            rows = await self.connection.fetch(
                f"SELECT {COLUMNS} FROM todo_app_task WHERE user_id = $1 "  # noqa: S608
                "AND (created_at, id) < ($2, $3) ORDER BY created_at DESC, id DESC LIMIT $4",
                owner, cursor.created_at, cursor.id, PAGE + 1,
            )  # fmt: skip
        return [self.out(row) for row in rows[:PAGE]]

    async def update(self, owner: str, task_id: uuid.UUID, version: int) -> Any:
        row = await self.connection.fetchrow(
            "UPDATE todo_app_task SET title = $3, version = version + 1, updated_at = $4 "
            f"WHERE id = $1 AND user_id = $2 AND version = $5 RETURNING {COLUMNS}",  # noqa: S608
            task_id, owner, "renamed", now(), version,
        )  # fmt: skip
        return self.out(row)

    async def complete(self, owner: str, task_id: uuid.UUID) -> Any:
        moment = now()
        row = await self.connection.fetchrow(
            "UPDATE todo_app_task SET status = 'completed', completed_at = $3, "
            "version = version + 1, updated_at = $3 "
            f"WHERE id = $1 AND user_id = $2 AND status <> 'completed' RETURNING {COLUMNS}",  # noqa: S608
            task_id, owner, moment,
        )  # fmt: skip
        return self.out(row)

    async def delete(self, owner: str, task_id: uuid.UUID) -> Any:
        return await self.connection.execute(
            "DELETE FROM todo_app_task WHERE id = $1 AND user_id = $2", task_id, owner
        )

    async def counts(self, owner: str) -> Any:
        rows = await self.connection.fetch(
            "SELECT status, count(*) AS n FROM todo_app_task WHERE user_id = $1 GROUP BY status",
            owner,
        )
        if not self.parse_rows:
            return rows
        result = dict.fromkeys(TaskStatus, 0)
        for row in rows:
            result[TaskStatus(row["status"])] = row["n"]
        return result

    async def bulk_copy(self, owner: str, count: int) -> Any:
        rows = make_rows(count, lambda n: owner, now())
        async with self.connection.transaction():
            await self.connection.copy_records_to_table(
                "todo_app_task", records=rows, columns=COLUMNS.replace(" ", "").split(",")
            )

    async def bulk_executemany(self, owner: str, count: int) -> Any:
        rows = make_rows(count, lambda n: owner, now())
        async with self.connection.transaction():
            await self.connection.executemany(
                f"INSERT INTO todo_app_task ({COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",  # noqa: S608
                rows,
            )


class RawSqlite(Contender):
    def __init__(
        self, work: dict[str, list[tuple[uuid.UUID, str]]], path: str, parse_rows: bool
    ) -> None:
        super().__init__(work)
        self.path, self.parse_rows = path, parse_rows
        self.name = "raw+parse" if parse_rows else "raw"

    async def open(self) -> None:
        self.connection = await aiosqlite.connect(self.path, isolation_level=None)
        self.connection.row_factory = aiosqlite.Row

    async def close(self) -> None:
        await self.connection.close()

    def out(self, row: Any) -> Any:
        return parse(row) if self.parse_rows and row is not None else row

    async def one(self, sql: str, *args: Any) -> Any:
        rows = await self.connection.execute_fetchall(sql, args)
        return rows[0] if rows else None

    async def create(self, owner: str) -> Any:
        stamp = now().isoformat(" ")
        return self.out(await self.one(
            f"INSERT INTO todo_app_task ({COLUMNS}) VALUES (?1,?2,?3,?4,'pending',1,?5,?5,NULL) "  # noqa: S608
            f"RETURNING {COLUMNS}", str(uuid.uuid4()), owner, "created", "d", stamp,
        ))  # fmt: skip

    async def get(self, owner: str, task_id: uuid.UUID) -> Any:
        return self.out(await self.one(
            f"SELECT {COLUMNS} FROM todo_app_task WHERE id = ? AND user_id = ?", str(task_id), owner  # noqa: S608
        ))  # fmt: skip

    async def list_page(self, owner: str, cursor: Cursor | None) -> Any:
        if cursor is None:
            rows = await self.connection.execute_fetchall(
                f"SELECT {COLUMNS} FROM todo_app_task WHERE user_id = ? "  # noqa: S608
                "ORDER BY created_at DESC, id DESC LIMIT ?", (owner, PAGE + 1),
            )  # fmt: skip
        else:
            rows = await self.connection.execute_fetchall(
                f"SELECT {COLUMNS} FROM todo_app_task WHERE user_id = ? "  # noqa: S608
                "AND (created_at, id) < (?, ?) ORDER BY created_at DESC, id DESC LIMIT ?",
                (owner, cursor.created_at.isoformat(" "), str(cursor.id), PAGE + 1),
            )  # fmt: skip
        return [self.out(row) for row in list(rows)[:PAGE]]

    async def update(self, owner: str, task_id: uuid.UUID, version: int) -> Any:
        return self.out(await self.one(
            "UPDATE todo_app_task SET title = ?3, version = version + 1, updated_at = ?4 "
            f"WHERE id = ?1 AND user_id = ?2 AND version = ?5 RETURNING {COLUMNS}",  # noqa: S608
            str(task_id), owner, "renamed", now().isoformat(" "), version,
        ))  # fmt: skip

    async def complete(self, owner: str, task_id: uuid.UUID) -> Any:
        stamp = now().isoformat(" ")
        return self.out(await self.one(
            "UPDATE todo_app_task SET status = 'completed', completed_at = ?3, version = version + 1, "
            f"updated_at = ?3 WHERE id = ?1 AND user_id = ?2 AND status <> 'completed' RETURNING {COLUMNS}",  # noqa: S608
            str(task_id), owner, stamp,
        ))  # fmt: skip

    async def delete(self, owner: str, task_id: uuid.UUID) -> Any:
        await self.connection.execute(
            "DELETE FROM todo_app_task WHERE id = ? AND user_id = ?", (str(task_id), owner)
        )

    async def counts(self, owner: str) -> Any:
        return await self.connection.execute_fetchall(
            "SELECT status, count(*) AS n FROM todo_app_task WHERE user_id = ? GROUP BY status",
            (owner,),
        )

    async def bulk_executemany(self, owner: str, count: int) -> Any:
        rows = [
            [str(r[0]), r[1], r[2], r[3], r[4], r[5], r[6].isoformat(" "), r[7].isoformat(" "),
             r[8].isoformat(" ") if r[8] else None]
            for r in make_rows(count, lambda n: owner, now())
        ]  # fmt: skip
        await self.connection.execute("BEGIN IMMEDIATE")
        await self.connection.executemany(
            f"INSERT INTO todo_app_task ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
            rows,  # noqa: S608
        )
        await self.connection.execute("COMMIT")


class SqlaBase(DeclarativeBase):
    pass


class SqlaTask(SqlaBase):
    """The same table, mapped the way a SQLAlchemy user would map it."""

    __tablename__ = "todo_app_task"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class SqlAlchemy(Contender):
    name = "sqlalchemy"

    def __init__(self, work: dict[str, list[tuple[uuid.UUID, str]]], dsn: str) -> None:
        super().__init__(work)
        self.dsn = dsn

    async def open(self) -> None:
        from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

        self.Task = SqlaTask
        url = "postgresql+asyncpg://" + self.dsn.split("://", 1)[1]
        self.engine = create_async_engine(url, pool_size=10, max_overflow=0)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    async def close(self) -> None:
        await self.engine.dispose()

    def out(self, task: Any) -> Any:
        return TaskRead.model_validate(task, from_attributes=True) if task is not None else None

    async def create(self, owner: str) -> Any:
        moment = now()
        task = self.Task(id=uuid.uuid4(), user_id=owner, title="created", description="d",
                         status="pending", version=1, created_at=moment, updated_at=moment)  # fmt: skip
        async with self.sessions() as session, session.begin():
            session.add(task)
        return self.out(task)

    async def get(self, owner: str, task_id: uuid.UUID) -> Any:
        from sqlalchemy import select

        async with self.sessions() as session:
            task = await session.scalar(
                select(self.Task).where(self.Task.id == task_id, self.Task.user_id == owner)
            )
        return self.out(task)

    async def list_page(self, owner: str, cursor: Cursor | None) -> Any:
        from sqlalchemy import select, tuple_

        query = select(self.Task).where(self.Task.user_id == owner)
        if cursor is not None:
            query = query.where(
                tuple_(self.Task.created_at, self.Task.id) < tuple_(cursor.created_at, cursor.id)
            )
        query = query.order_by(self.Task.created_at.desc(), self.Task.id.desc()).limit(PAGE + 1)
        async with self.sessions() as session:
            tasks = (await session.scalars(query)).all()
        return [self.out(task) for task in tasks[:PAGE]]

    async def update(self, owner: str, task_id: uuid.UUID, version: int) -> Any:
        from sqlalchemy import update

        async with self.sessions() as session, session.begin():
            task = (
                await session.scalars(
                    update(self.Task)
                    .where(
                        self.Task.id == task_id,
                        self.Task.user_id == owner,
                        self.Task.version == version,
                    )
                    .values(title="renamed", version=self.Task.version + 1, updated_at=now())
                    .returning(self.Task)
                )
            ).one()
        return self.out(task)

    async def complete(self, owner: str, task_id: uuid.UUID) -> Any:
        from sqlalchemy import select

        async with self.sessions() as session, session.begin():
            task = await session.scalar(
                select(self.Task).where(self.Task.id == task_id, self.Task.user_id == owner)
            )
            assert task is not None
            if task.status != "completed":
                moment = now()
                task.status, task.completed_at, task.updated_at = "completed", moment, moment
                task.version += 1
        return self.out(task)

    async def delete(self, owner: str, task_id: uuid.UUID) -> Any:
        from sqlalchemy import delete

        async with self.sessions() as session, session.begin():
            await session.execute(
                delete(self.Task).where(self.Task.id == task_id, self.Task.user_id == owner)
            )

    async def counts(self, owner: str) -> Any:
        from sqlalchemy import func, select

        async with self.sessions() as session:
            rows = (
                await session.execute(
                    select(self.Task.status, func.count())
                    .where(self.Task.user_id == owner)
                    .group_by(self.Task.status)
                )
            ).all()
        result = dict.fromkeys(TaskStatus, 0)
        for status, count in rows:
            result[TaskStatus(status)] = count
        return result

    async def bulk(self, owner: str, count: int) -> Any:
        from sqlalchemy import insert

        rows = [
            dict(zip(COLUMNS.replace(" ", "").split(","), row, strict=True))
            for row in make_rows(count, lambda n: owner, now())
        ]
        async with self.sessions() as session, session.begin():
            await session.execute(insert(self.Task), rows)


# -- timing ---------------------------------------------------------------------------


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


async def interleaved(contenders: list[Contender], op: Callable[[Contender, int], Awaitable[Any]],
                      rounds: int, warmup: int) -> dict[str, list[float]]:  # fmt: skip
    times: dict[str, list[float]] = {c.name: [] for c in contenders}
    clock = time.perf_counter
    # Shuffled, not rotated: a rotation keeps the cyclic order, so each contender
    # would always run right after the same one (and whoever follows SQLAlchemy's heavy
    # call finds the CPU caches cold). Seeded: the same orders run after run.
    rng = random.Random(11)
    order = list(contenders)
    for n in range(warmup + rounds):
        rng.shuffle(order)
        for contender in order:
            start = clock()
            await op(contender, n)
            elapsed = clock() - start
            if n >= warmup:
                times[contender.name].append(elapsed)
    return times


MIX_OPS = ("get", "list", "create", "counts")
MIX_CALLERS = 50


@dataclass
class Mix:
    """What the concurrent mix measured of one contender: every call's latency by
    operation (waiting for a connection included) and how many calls each caller got
    done. Throughput alone hides starvation: a pool can serve ten callers all the time
    and forty never."""

    seconds: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=lambda: {op: [] for op in MIX_OPS})
    calls: list[int] = field(default_factory=lambda: [0] * MIX_CALLERS)

    @property
    def rate(self) -> float:
        return sum(self.calls) / self.seconds

    @property
    def longest(self) -> float:
        return max((max(times) for times in self.latencies.values() if times), default=0.0)

    def percentile(self, op: str, fraction: float) -> float:
        ordered = sorted(self.latencies[op])
        return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else 0.0


async def mixed_load(contender: Contender, seconds: float, owners: list[str],
                     ids: dict[str, list[uuid.UUID]], into: Mix) -> None:  # fmt: skip
    """``MIX_CALLERS`` coroutines of mixed operations for ``seconds``, added to ``into``.

    A call still running at the deadline is waited for and counted: a starved caller's
    wait is the tail this measures."""
    deadline = time.perf_counter() + seconds
    clock = time.perf_counter

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        while clock() < deadline:
            owner = rng.choice(owners)
            roll = rng.random()
            start = clock()
            if roll < 0.4:
                op = "get"
                await contender.get(owner, rng.choice(ids[owner]))  # type: ignore[attr-defined]
            elif roll < 0.6:
                op = "list"
                await contender.list_page(owner, None)  # type: ignore[attr-defined]
            elif roll < 0.8:
                op = "create"
                await contender.create(owner)  # type: ignore[attr-defined]
            else:
                op = "counts"
                await contender.counts(owner)  # type: ignore[attr-defined]
            into.latencies[op].append(clock() - start)
            into.calls[seed] += 1

    began = clock()
    await asyncio.gather(*(worker(n) for n in range(MIX_CALLERS)))
    into.seconds += clock() - began


POOLED_RAW = "raw+parse (pool 10)"


class PooledRaw(RawPostgres):
    """raw+parse on an asyncpg pool of 10, the size of todo_app's default pool, for the
    mixed load; each call takes a connection and gives it back as asyncpg documents."""

    async def open(self) -> None:
        self.pool = await asyncpg.create_pool(self.dsn, min_size=10, max_size=10)

    async def close(self) -> None:
        await self.pool.close()

    async def get(self, owner: str, task_id: uuid.UUID) -> Any:
        async with self.pool.acquire() as self.connection:
            return await super().get(owner, task_id)

    async def list_page(self, owner: str, cursor: Cursor | None) -> Any:
        async with self.pool.acquire() as self.connection:
            return await super().list_page(owner, cursor)

    async def create(self, owner: str) -> Any:
        async with self.pool.acquire() as self.connection:
            return await super().create(owner)

    async def counts(self, owner: str) -> Any:
        async with self.pool.acquire() as self.connection:
            return await super().counts(owner)


POOLED_BARE = "raw+parse (pool, no reset)"


async def _no_reset(connection: Any) -> None:
    """Skip asyncpg's reset query on release: what todo_app does for its own checkouts
    (``todo_app.dialects.postgres.pool.mark_clean``), so the checkout alone is compared."""


class BarePooledRaw(PooledRaw):
    """raw+parse on an asyncpg pool of 10 that gives connections back without a reset
    query: a checkout per call, as in a server, and nothing else."""

    async def open(self) -> None:
        self.pool = await asyncpg.create_pool(self.dsn, min_size=10, max_size=10, reset=_no_reset)


# -- one run --------------------------------------------------------------------------


async def run(
    dialect: str,
    size: int,
    ops: int,
    mix_seconds: float,
    bulk_size: int,
    pg: DatabaseURL,
    only: set[str] | None = None,
) -> list[str]:
    print(f"\n== {dialect}, {size:,} rows", flush=True)
    warmup = max(10, ops // 10)
    drop: Callable[[], Awaitable[None]] | None = None
    if dialect == "postgres":
        url, drop = await scratch_database(pg, "todo_bench")
    else:
        path = os.path.join(tempfile.mkdtemp(prefix="todo_bench_"), "bench.sqlite3")
        url = f"sqlite://{path}"
    try:
        await todo_app.migrate(url)
        start = now() - dt.timedelta(days=30)
        rows = make_rows(size, owner_for(size), start)
        names = ["todo_app", "raw+parse", "raw"] + (["sqlalchemy"] if dialect == "postgres" else [])
        work_rows: dict[str, list[tuple[Any, ...]]] = {}
        for index, name_ in enumerate(names):
            work_rows[name_] = make_rows(3 * (ops + warmup), lambda n, i=index: f"work-{i}", start)
        all_rows = rows + [r for w in work_rows.values() for r in w]
        started = time.perf_counter()
        if dialect == "postgres":
            await load_postgres(url, all_rows)
        else:
            await load_sqlite(path, all_rows)
        print(f"loaded {len(all_rows):,} rows in {time.perf_counter() - started:.1f}s", flush=True)
        work = {name_: [(r[0], r[1]) for r in work_rows[name_]] for name_ in names}
        regular = [r for r in rows if r[1] != HEAVY] or rows
        heavy_rows = sorted(
            (r for r in rows if r[1] == HEAVY), key=lambda r: (r[6], r[0]), reverse=True
        )
        deep_index = min(len(heavy_rows), PAGE * (DEEP_PAGE - 1)) - 1
        deep_cursor = Cursor(heavy_rows[deep_index][6], heavy_rows[deep_index][0], "newest", None)

        contenders: list[Contender] = [TodoApp(work, url, f"bench_{dialect}_{size}")]
        if dialect == "postgres":
            contenders += [
                RawPostgres(work, url, True),
                RawPostgres(work, url, False),
                SqlAlchemy(work, url),
            ]
        else:
            contenders += [RawSqlite(work, path, True), RawSqlite(work, path, False)]
        for contender in contenders:
            await contender.open()  # type: ignore[attr-defined]

        def target(contender: Contender, n: int, kind: int) -> tuple[uuid.UUID, str]:
            return contender.work[contender.name][kind * (ops + warmup) + n]

        rng = random.Random(7)
        picks = [rng.choice(regular) for _ in range(ops + warmup)]
        operations: dict[str, Callable[[Contender, int], Awaitable[Any]]] = {
            "create": lambda c, n: c.create(picks[n][1]),  # type: ignore[attr-defined]
            "get": lambda c, n: c.get(picks[n][1], picks[n][0]),  # type: ignore[attr-defined]
            "list first page": lambda c, n: c.list_page(HEAVY, None),  # type: ignore[attr-defined]
            f"list page {DEEP_PAGE}": lambda c, n: c.list_page(HEAVY, deep_cursor),  # type: ignore[attr-defined]
            "update (version)": lambda c, n: c.update(*reversed(target(c, n, 0)), 1),  # type: ignore[attr-defined]
            "complete": lambda c, n: c.complete(*reversed(target(c, n, 1))),  # type: ignore[attr-defined]
            "delete": lambda c, n: c.delete(*reversed(target(c, n, 2))),  # type: ignore[attr-defined]
            "counts": lambda c, n: c.counts(picks[n][1]),  # type: ignore[attr-defined]
        }
        if only is not None:
            operations = {label: op for label, op in operations.items() if label in only}
        # What a server pays per call and one connection does not: a pool checkout.
        # todo_app checks a connection out for every call, so for the reads and the
        # create this contender is raw asyncpg as a server would run it.
        pooled_ops = {"create", "get", "list first page", f"list page {DEEP_PAGE}", "counts"}
        pooled_for_ops: list[Contender] = []
        if dialect == "postgres":
            pooled_for_ops = [PooledRaw(work, url, True), BarePooledRaw(work, url, True)]
            pooled_for_ops[0].name, pooled_for_ops[1].name = POOLED_RAW, POOLED_BARE
            for contender in pooled_for_ops:
                await contender.open()  # type: ignore[attr-defined]
        results: dict[str, dict[str, tuple[float, float]]] = {}
        for label, op in operations.items():
            extra = pooled_for_ops if label in pooled_ops else []
            times = await interleaved(contenders + extra, op, ops, warmup)
            results[label] = {name_: summary(samples) for name_, samples in times.items()}
            print(
                f"  {label}: "
                + ", ".join(f"{k} {v[0] * 1e6:.0f}us" for k, v in results[label].items()),
                flush=True,
            )

        bulk: dict[str, list[float]] = {}
        bulk_ops: dict[str, Callable[[str], Awaitable[Any]]] = {
            "todo_app": lambda o: contenders[0].bulk(o, bulk_size)
        }  # type: ignore[attr-defined]
        raw = contenders[1]
        if dialect == "postgres":
            bulk_ops["raw COPY"] = lambda o: raw.bulk_copy(o, bulk_size)  # type: ignore[attr-defined]
            bulk_ops["sqlalchemy"] = lambda o: contenders[3].bulk(o, bulk_size)  # type: ignore[attr-defined]
        bulk_ops["raw executemany"] = lambda o: raw.bulk_executemany(o, bulk_size)  # type: ignore[attr-defined]
        for repeat in range(3 if only is None or "bulk" in only else 0):
            order = list(bulk_ops.items())
            order = order[repeat % len(order) :] + order[: repeat % len(order)]
            for label, fn in order:
                began = time.perf_counter()
                await fn(f"bulk-{label}-{repeat}")
                bulk.setdefault(label, []).append(time.perf_counter() - began)

        mix: dict[str, Mix] = {}
        owners = sorted({r[1] for r in regular})[:50]
        ids = {o: [r[0] for r in regular if r[1] == o][:50] for o in owners}
        mixers: list[Contender] = [contenders[0]]
        if dialect == "postgres":
            pooled = PooledRaw(work, url, True)
            pooled.name = POOLED_RAW
            await pooled.open()
            mixers += [pooled, contenders[3]]
        for label_contender in mixers + mixers[::-1] if only is None or "mix" in only else []:
            into = mix.setdefault(label_contender.name, Mix())
            await mixed_load(label_contender, mix_seconds / 2, owners, ids, into)
        for contender in contenders + pooled_for_ops:
            await contender.close()  # type: ignore[attr-defined]
        if dialect == "postgres":
            await pooled.close()
        return report(dialect, size, ops, results, bulk, bulk_size, mix, mix_seconds)
    finally:
        if drop is not None:
            await drop()


def report(dialect: str, size: int, ops: int, results: dict[str, dict[str, tuple[float, float]]],
           bulk: dict[str, list[float]], bulk_size: int, mix: dict[str, Mix], mix_seconds: float) -> list[str]:  # fmt: skip
    lines = [f"### {dialect}, {size:,} rows ({ops:,} timed calls per op, medians / p95 in µs)", ""]
    if results:
        names = list(dict.fromkeys(name for by_name in results.values() for name in by_name))
        header = (
            "| op | "
            + " | ".join(names)
            + " | todo_app / raw+parse |"
            + (" sqlalchemy / raw+parse |" if "sqlalchemy" in names else "")
            + "".join(
                f" todo_app / {name} |" for name in (POOLED_RAW, POOLED_BARE) if name in names
            )
        )
        lines += [header, "|" + "---|" * (header.count("|") - 1)]
    for label, by_name in results.items():
        base = by_name["raw+parse"][0]
        cells = [
            f"{by_name[name][0] * 1e6:.0f} / {by_name[name][1] * 1e6:.0f}"
            if name in by_name
            else "-"
            for name in names
        ]
        row = f"| {label} | " + " | ".join(cells) + f" | **{by_name['todo_app'][0] / base:.2f}x** |"
        if "sqlalchemy" in by_name:
            row += f" {by_name['sqlalchemy'][0] / base:.2f}x |"
        for name in (POOLED_RAW, POOLED_BARE):
            if name in names:
                pooled = by_name.get(name)
                row += f" {by_name['todo_app'][0] / pooled[0]:.2f}x |" if pooled else " - |"
        lines.append(row)
    if bulk:
        lines += ["", f"Bulk import of {bulk_size:,} tasks (median of 3, seconds):", ""]
        reference = statistics.median(bulk.get("raw COPY") or bulk["raw executemany"])
        unit = "COPY" if "raw COPY" in bulk else "executemany"
        for label, samples in bulk.items():
            value = statistics.median(samples)
            lines.append(f"- {label}: {value:.3f}s ({value / reference:.2f}x {unit})")
    if mix:
        lines += mix_report(mix, mix_seconds)
    lines.append("")
    print("\n".join(lines), flush=True)
    return lines


def mix_report(mix: dict[str, Mix], mix_seconds: float) -> list[str]:
    """Throughput, calls per caller and each operation's tail, beside raw asyncpg on a
    pool of the same size when it ran."""
    lines = [
        "",
        f"Concurrent mix ({MIX_CALLERS} coroutines, {mix_seconds:g}s, 40% get / 20% list / "
        "20% create / 20% counts); latencies in ms, p50 / p99 / max, waiting for a "
        "connection included:",
        "",
        "| contender | ops/s | calls per caller min / mean | "
        + " | ".join(MIX_OPS)
        + " | longest call |",
        "|---|---|---|" + "---|" * len(MIX_OPS) + "---|",
    ]
    reference = mix.get(POOLED_RAW)
    for label, result in mix.items():
        mean = sum(result.calls) / len(result.calls)
        ratio = f" ({result.rate / reference.rate:.2f}x raw)" if reference else ""
        cells = [
            " / ".join(f"{result.percentile(op, q) * 1e3:.1f}" for q in (0.5, 0.99, 1.0))
            for op in MIX_OPS
        ]
        lines.append(
            f"| {label} | {result.rate:,.0f}{ratio} | {min(result.calls):,} / {mean:,.0f} | "
            + " | ".join(cells)
            + f" | {result.longest * 1e3:.1f} |"
        )
    if reference:
        lines += ["", "Against raw asyncpg on the same pool size (same run):", ""]
        for label, result in mix.items():
            if result is reference:
                continue
            p99 = ", ".join(
                f"{op} {result.percentile(op, 0.99) / reference.percentile(op, 0.99):.2f}x"
                for op in MIX_OPS
            )
            mean = sum(result.calls) / len(result.calls)
            lines.append(
                f"- {label}: p99 {p99}; longest call "
                f"{result.longest / reference.longest:.2f}x; fewest calls of a caller "
                f"{min(result.calls) / mean:.2f} of the mean"
            )
    return lines


async def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000", help="table sizes, comma-separated")
    parser.add_argument("--ops", type=int, default=2000, help="timed calls per op and contender")
    parser.add_argument("--mix-seconds", type=float, default=10.0)
    parser.add_argument("--bulk", type=int, default=20000, help="tasks per bulk import")
    parser.add_argument("--dialects", default="postgres,sqlite")
    parser.add_argument(
        "--pg-url", default=None, help="PostgreSQL server (default TEST_DATABASE_URL)"
    )
    parser.add_argument(
        "--only",
        default=None,
        help="what to time, comma-separated: op labels (get, create, ...), bulk, mix "
        "(default: all)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    pg = DatabaseURL(args.pg_url) if args.pg_url else get_settings().test_database_url
    lines = [
        f"# todo_app benchmark, {dt.date.today()} on {socket.gethostname()}",
        "",
        f"Python {sys.version.split()[0]}, PostgreSQL server {pg}, "
        f"`python -m benchmarks.bench --sizes {args.sizes} --ops {args.ops}"
        + (f" --only {args.only}" if args.only else "")
        + "`.",
        "",
    ]
    only = {part.strip() for part in args.only.split(",")} if args.only else None
    for size in (int(s) for s in args.sizes.split(",")):
        for dialect in args.dialects.split(","):
            lines += await run(dialect, size, args.ops, args.mix_seconds, args.bulk, pg, only)
    return write_results(args.out, lines)


def write_results(folder: Path, lines: list[str], suffix: str = "") -> Path:
    """Append ``lines`` to ``<folder>/<date>-<host><suffix>.md``: several runs on one day
    (say 10k/100k, then the opt-in 1M) share the file."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{dt.date.today()}-{socket.gethostname()}{suffix}.md"
    previous = out.read_text() + "\n---\n\n" if out.exists() else ""
    out.write_text(previous + "\n".join(lines) + "\n")
    print(f"written to {out}")
    return out


if __name__ == "__main__":
    asyncio.run(main())
