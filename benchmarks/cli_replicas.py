"""What a one-shot reader (the CLI's ``list``) pays to read on a replica.

    uv run python -m benchmarks.cli_replicas             # ~1 min
    uv run python -m benchmarks.cli_replicas --runs 5    # a quick look

It starts its own primary and streaming hot standby (``tests/infra.py``), creates 50
tasks, and measures, interleaved, ``--runs`` times each:

1. **In the process** (a fresh Tortoise context each round, the schema already
   checked, as ``todo-app`` does before it reads): the first replica check
   (``todo_app.cli.db.first_replica_check``), and one ``list`` page after it, beside
   the same ``list`` on the primary without read URLs; and which server served it.
2. **Whole processes**: ``todo-app list`` without and with ``TODO_APP_READ_URLS``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from tortoise.context import TortoiseContext

import todo_app
from todo_app import Settings, TaskCreate, TaskRepository
from todo_app.cli.db import REPLICA_CHECK_BOUND, first_replica_check

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.infra import ReplicationPair  # noqa: E402 - the tests' own server harness

USER = "bench"


async def one_round(pair: ReplicationPair, *, replicas: bool) -> tuple[float, float, int]:
    """(seconds of the first check, seconds of check + list, reads the replica served)."""
    name = "bench_cli"
    config = todo_app.tortoise_config(
        pair.primary.url("app"),
        connection_name=name,
        settings=Settings(),
        read_urls=[pair.standby.url("app")] if replicas else [],
    )
    async with TortoiseContext() as context:
        await context.init(config=config)
        await todo_app.ensure_schema_current(context.connections.get(name))
        start = time.perf_counter()
        if replicas:
            await first_replica_check(name)
        checked = time.perf_counter()
        await TaskRepository(USER).list()
        done = time.perf_counter()
        served = sum(status.reads for status in await todo_app.replica_status(name))
    return checked - start, done - start, served


def process(pair: ReplicationPair, *, replicas: bool) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TODO_APP_")}
    env |= {"DATABASE_URL": pair.primary.url("app"), "TODO_USER": USER}
    if replicas:
        env["TODO_APP_READ_URLS"] = pair.standby.url("app")
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "todo_app", "list"], env=env, check=True, capture_output=True
    )
    return time.perf_counter() - start


def _standby_count(pair: ReplicationPair) -> str:
    try:
        return pair.standby.psql('SELECT count(*) FROM "todo_app_task"', database="app")
    except RuntimeError:  # not replayed yet: no database, no table
        return ""


def ms(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return f"{statistics.median(ordered) * 1000:.1f} / {p90 * 1000:.1f}"


async def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args(argv)
    pair = ReplicationPair("todo_app_bench_cli_").start()
    try:
        pair.primary.psql("CREATE DATABASE app")
        await todo_app.migrate(pair.primary.url("app"))
        config = todo_app.tortoise_config(
            pair.primary.url("app"), connection_name="load", settings=Settings(), read_urls=[]
        )
        async with TortoiseContext() as context:
            await context.init(config=config)
            for n in range(50):
                await TaskRepository(USER).create(TaskCreate(title=f"task {n}"))
        # Measure from a standby that has replayed the set-up (the database, the table,
        # the rows); a first round before that would only measure the replay.
        deadline = time.monotonic() + 30
        while "50" not in _standby_count(pair):
            if time.monotonic() > deadline:
                raise RuntimeError("the standby did not replay the set-up within 30 s")
            await asyncio.sleep(0.05)
        check, routed, primary, served = [], [], [], 0
        plain_runs, routed_runs = [], []
        for _ in range(args.runs):
            _, alone, _ = await one_round(pair, replicas=False)
            primary.append(alone)
            first, both, reads = await one_round(pair, replicas=True)
            check.append(first)
            routed.append(both)
            served += reads
            plain_runs.append(await asyncio.to_thread(process, pair, replicas=False))
            routed_runs.append(await asyncio.to_thread(process, pair, replicas=True))
    finally:
        pair.stop()
    lines = [
        f"`python -m benchmarks.cli_replicas --runs {args.runs}` (ms, median / p90; "
        f"the check is bounded by {REPLICA_CHECK_BOUND}s)",
        "",
        "| | ms |",
        "|---|---|",
        f"| `list` on the primary, no read URL | {ms(primary)} |",
        f"| first replica check | {ms(check)} |",
        f"| first replica check + `list` on the replica | {ms(routed)} |",
        f"| whole `todo-app list`, no read URL | {ms(plain_runs)} |",
        f"| whole `todo-app list`, `TODO_APP_READ_URLS` | {ms(routed_runs)} |",
        "",
        f"Reads the replica served: {served} of {args.runs}.",
    ]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    asyncio.run(main())
