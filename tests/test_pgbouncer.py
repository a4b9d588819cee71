"""Through PgBouncer in transaction mode (how Neon's pooled URLs work): what breaks
with asyncpg's statement cache on, and that the package's settings prevent it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import asyncpg
import pytest
from tortoise import Tortoise
from tortoise.context import TortoiseContext

import todo_app
from tests.infra import PgBouncer, private_directory
from todo_app import (
    TaskConflict,
    TaskCreate,
    TaskRead,
    TaskRepository,
    TaskStatus,
    TaskStoreUnavailable,
    TaskUpdate,
)
from todo_app.connection import tortoise_connection
from todo_app.dsn import DatabaseURL
from todo_app.settings import get_settings

pytestmark = pytest.mark.postgres
DATABASE = f"todo_app_bouncer_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def bouncer() -> Iterator[PgBouncer]:
    server = get_settings().test_database_url
    pool = PgBouncer(
        private_directory("todo_app_bouncer_"),
        server_port=tortoise_connection(DatabaseURL(server.reveal()))["credentials"]["port"],
        databases=[DATABASE],
    )
    direct = server.with_database(DATABASE)

    async def create() -> None:
        admin = await asyncpg.connect(server.reveal())
        await admin.execute(f'CREATE DATABASE "{DATABASE}"')
        await admin.close()
        await todo_app.migrate(direct)  # migrations go over the direct URL

    async def drop() -> None:
        admin = await asyncpg.connect(server.reveal())
        await admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        await admin.close()

    asyncio.run(create())
    pool.start()
    yield pool
    pool.stop()
    asyncio.run(drop())


async def workload(owner: str) -> None:
    """A representative slice of the repository, with concurrency, so that pooled
    server connections are shared between client connections."""
    repo = TaskRepository(owner)
    created = await asyncio.gather(*(repo.create(TaskCreate(title=f"t{n}")) for n in range(20)))
    await repo.bulk_create(TaskCreate(title=f"bulk {n}") for n in range(50))
    await asyncio.gather(*(repo.complete(t.id) for t in created[:10]))
    await asyncio.gather(*(repo.update(t.id, TaskUpdate(title="renamed")) for t in created[10:]))
    page = await repo.list(limit=30)
    assert len(page.items) == 30
    rest = await repo.list(limit=200, cursor=page.next_cursor)
    assert len(rest.items) == 40
    assert await repo.counts() == {TaskStatus.PENDING: 60, TaskStatus.COMPLETED: 10}
    contended = created[0]
    outcomes = await asyncio.gather(
        *(
            repo.update(contended.id, TaskUpdate(title=f"w{n}"), expected_version=2)
            for n in range(5)
        ),
        return_exceptions=True,
    )
    assert sum(isinstance(o, TaskRead) for o in outcomes) == 1
    assert sum(isinstance(o, TaskConflict) for o in outcomes) == 4
    await asyncio.gather(*(repo.delete(t.id) for t in created[1:10]))


async def test_repository_through_pgbouncer_with_the_package_settings(bouncer: PgBouncer) -> None:
    # What a Neon pooled URL looks like to the package: a "-pooler" host or
    # pgbouncer=true turns the statement cache off and keeps startup parameters
    # PgBouncer would refuse (statement_timeout) out of the handshake.
    url = bouncer.url(DATABASE, query="pgbouncer=true")
    credentials = tortoise_connection(DatabaseURL(url), statement_timeout=30)["credentials"]
    assert credentials["statement_cache_size"] == 0
    assert "statement_timeout" not in credentials.get("server_settings", {})
    async with TortoiseContext():
        await Tortoise.init(config=todo_app.tortoise_config(url, connection_name="bouncer_ok"))
        await todo_app.ensure_schema_current()
        for round_ in range(3):
            await workload(f"pooled-{round_}")


async def test_statement_cache_on_breaks_behind_pgbouncer(bouncer: PgBouncer) -> None:
    """The failure the setting prevents: asyncpg prepares named statements on one
    server connection, and PgBouncer hands the next transaction another one."""
    url = bouncer.url(DATABASE, query="pgbouncer=true")
    config = todo_app.tortoise_config(url, connection_name="bouncer_cached")
    config["connections"]["bouncer_cached"]["credentials"]["statement_cache_size"] = 100
    errors: list[BaseException] = []
    async with TortoiseContext():
        await Tortoise.init(config=config)
        for round_ in range(3):
            try:
                await workload(f"cached-{round_}-{uuid.uuid4().hex[:6]}")
            except TaskStoreUnavailable as exc:
                errors.append(exc)
    assert errors, "expected prepared-statement errors with the cache on behind PgBouncer"
    # A typed error that names the fix, not a bare asyncpg exception.
    assert all("prepared statement" in str(e) for e in errors)
    assert all("TODO_APP_STATEMENT_CACHE_SIZE=0" in str(e) for e in errors)
