"""What the start-up guard costs: ``ensure_schema_current()`` on a migrated database.

    uv run python -m benchmarks.guard [--pg-url URL] [--calls 200]

It runs once per process, after ``Tortoise.init``; measured here both ways: the first
call of a new Tortoise context (it opens the connection, which the first request would
otherwise pay), and warm calls on an open connection (the guard's own queries: the
``aerich`` rows and a handful of catalog reads). With 1,000 tasks in the table, to show
the cost does not grow with the data. Medians and p95 in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
from tortoise.context import TortoiseContext

import todo_app
from todo_app import TaskCreate, TaskRepository

DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/test"


async def measure(url: str, name: str, calls: int) -> tuple[list[float], list[float]]:
    await todo_app.migrate(url)
    async with TortoiseContext() as ctx:
        await ctx.init(config=todo_app.tortoise_config(url, connection_name=name))
        await TaskRepository("bench").bulk_create(TaskCreate(title=f"t{i}") for i in range(1000))
    cold: list[float] = []
    for _ in range(20):
        async with TortoiseContext() as ctx:
            await ctx.init(config=todo_app.tortoise_config(url, connection_name=name))
            start = time.perf_counter()
            await todo_app.ensure_schema_current()
            cold.append((time.perf_counter() - start) * 1000)
    async with TortoiseContext() as ctx:
        await ctx.init(config=todo_app.tortoise_config(url, connection_name=name))
        await todo_app.ensure_schema_current()
        warm = []
        for _ in range(calls):
            start = time.perf_counter()
            await todo_app.ensure_schema_current()
            warm.append((time.perf_counter() - start) * 1000)
    return cold, warm


def summary(values: list[float]) -> str:
    p95 = statistics.quantiles(values, n=20)[-1] if len(values) >= 20 else max(values)
    return f"{statistics.median(values):.2f} / {p95:.2f}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    database = f"guard_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.pg_url.replace("postgres://", "postgresql://", 1))
    await admin.execute(f'CREATE DATABASE "{database}"')
    try:
        with tempfile.TemporaryDirectory() as directory:
            results = {
                "SQLite (file)": await measure(
                    f"sqlite://{Path(directory) / 'guard.sqlite3'}", "guard_sqlite", args.calls
                ),
                "PostgreSQL (loopback)": await measure(
                    args.pg_url.rsplit("/", 1)[0] + f"/{database}", "guard_postgres", args.calls
                ),
            }
    finally:
        await admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
        await admin.close()
    print("| dialect | first call, connection included (ms) | warm call (ms) |")
    print("|---|---|---|")
    for dialect, (cold, warm) in results.items():
        print(f"| {dialect} | {summary(cold)} | {summary(warm)} |")


if __name__ == "__main__":
    asyncio.run(main())
