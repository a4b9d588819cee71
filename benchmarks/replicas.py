"""Read replicas: what spreading reads buys, and what read-your-writes costs.

    uv run python -m benchmarks.replicas                 # ~2 min
    uv run python -m benchmarks.replicas --seconds 3 --calls 200   # a quick look

It starts its own primary and streaming hot standby (``tests/infra.py``: ``initdb`` +
``pg_basebackup -R -X stream`` on free ports under a temporary directory, asynchronous
replication; as root, the servers run as the ``postgres`` user), loads ``--tasks``
tasks over ``--owners`` owners with COPY, and measures, through ``TaskRepository``
on ``todo_app.tortoise_config`` exactly as a host calls it:

1. **List-page throughput**: ``--coroutines`` coroutines, each listing the first page
   (50) of a random owner, for ``--seconds``; reads on the primary only (pool 10,
   and pool 20 so that the comparison is not only about connections), on the replica
   only, and spread over primary + replica (the primary's URL listed among the read
   URLs too: pool 10 each).
2. **Latency of one ``get``** (one coroutine, ``--calls`` rounds, the variants
   interleaved): on the primary (the ``primary`` token), on the replica without a
   token, with a *fresh* token against a caught-up replica (the write just made and
   replayed: one extra round trip asks the replica's position), and with a token
   the replica is already known to have replayed (no extra round trip).
3. **Latency of ``create``** without and with read replicas configured (with them, a
   write reads the primary's WAL position after its commit: the token).

Results go to ``benchmarks/results/<date>-<host>-replicas.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import random
import socket
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
from tortoise import Tortoise
from tortoise.context import TortoiseContext

import todo_app
from todo_app import Settings, TaskCreate, TaskRepository

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.infra import ReplicationPair  # noqa: E402 - the tests' own server harness

RESULTS = Path(__file__).parent / "results"
COLUMNS = ["id", "user_id", "title", "description", "status", "version", "created_at",
           "updated_at", "completed_at"]  # fmt: skip


async def load(url: str, tasks: int, owners: int) -> list[str]:
    names = [f"owner-{n}" for n in range(owners)]
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    rows = []
    for n in range(tasks):
        at = start + dt.timedelta(milliseconds=n)
        rows.append((uuid.uuid4(), names[n % owners], f"task {n}", None, "pending", 1, at, at,
                     None))  # fmt: skip
    connection = await asyncpg.connect(url)
    try:
        await connection.copy_records_to_table("todo_app_task", records=rows, columns=COLUMNS)
        await connection.execute("ANALYZE todo_app_task")
    finally:
        await connection.close()
    return names


class Replay:
    """Side connections that tell when the standby has replayed a position."""

    def __init__(self, pair: ReplicationPair) -> None:
        self.pair = pair

    async def __aenter__(self) -> Replay:
        self.primary = await asyncpg.connect(self.pair.primary.url())
        self.standby = await asyncpg.connect(self.pair.standby.url())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.primary.close()
        await self.standby.close()

    async def caught_up(self, position: int | None = None) -> None:
        target = position or await self.primary.fetchval("SELECT pg_current_wal_flush_lsn()")
        while await self.standby.fetchval("SELECT pg_last_wal_replay_lsn()") < target:  # noqa: ASYNC110
            await asyncio.sleep(0.0005)


@contextlib.asynccontextmanager
async def connected(url: str, read_urls: list[str], pool: int = 10) -> AsyncIterator[None]:
    settings = Settings(pool_max_size=pool, pool_min_size=1)
    name = f"bench_{uuid.uuid4().hex[:8]}"
    config = todo_app.tortoise_config(url, connection_name=name, settings=settings,
                                      read_urls=read_urls)  # fmt: skip
    async with TortoiseContext():
        await Tortoise.init(config=config)
        await todo_app.replica_status()  # the replicas are known before the clock starts
        yield


async def served_by(replica: str) -> int:
    """Reads the standby has served in this context (0 when it is not a read URL)."""
    statuses = await todo_app.replica_status()
    return sum(status.reads for status in statuses if status.standby)


async def throughput(owners: list[str], coroutines: int, seconds: float) -> float:
    stop = time.monotonic() + seconds
    done = 0

    async def worker(seed: int) -> None:
        nonlocal done
        chooser = random.Random(seed)
        while time.monotonic() < stop:
            await TaskRepository(chooser.choice(owners)).list(limit=50)
            done += 1

    await asyncio.gather(*(worker(n) for n in range(coroutines)))
    return done / seconds


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"{statistics.median(ordered):.0f} / {p95:.0f}"


async def latencies(pair: ReplicationPair, url: str, replica: str, calls: int) -> dict[str, str]:
    results: dict[str, list[float]] = {
        "primary": [], "replica, no token": [], "replica, fresh token": [],
        "replica, known token": [],
    }  # fmt: skip
    async with connected(url, [replica]), Replay(pair) as replay:
        writer = TaskRepository("latency")
        for _ in range(20):  # warm both pools
            task = await writer.create(TaskCreate(title="warm"))
            await TaskRepository("latency", writer.consistency_token).get(task.id)
        for n in range(calls):
            task = await writer.create(TaskCreate(title=f"t{n}"))
            token = writer.consistency_token
            await replay.caught_up(int(token or "0", 16))
            # A fresh token: todo_app does not know yet that the replica has replayed
            # it, and asks (one round trip); then it knows (the "known" read).
            slots: list[list[tuple[str, TaskRepository]]] = [
                [("replica, fresh token", TaskRepository("latency", token)),
                 ("replica, known token", TaskRepository("latency", token))],
                [("replica, no token", TaskRepository("latency"))],
                [("primary", TaskRepository("latency", "primary"))],
            ]  # fmt: skip
            shift = n % 3  # every order in turn
            for slot in slots[shift:] + slots[:shift]:
                for label, repo in slot:
                    started = time.perf_counter()
                    await repo.get(task.id)
                    results[label].append((time.perf_counter() - started) * 1e6)
        served = sum(status.reads for status in await todo_app.replica_status())
    summaries = {name: summary(values) for name, values in results.items()}
    extra = statistics.median(results["replica, fresh token"]) - statistics.median(
        results["replica, no token"]
    )
    summaries["fresh token minus no token (medians)"] = f"{extra:+.0f}"
    summaries["(reads the replica served)"] = str(served)
    return summaries


async def routing_overhead(url: str, owner: str, calls: int) -> dict[str, str]:
    """The replica machinery itself: the primary's own URL as the read URL, so that
    both variants read on the same server."""
    results: dict[str, list[float]] = {"direct (no routing)": [], "routed, no token": []}
    async with connected(url, [url]):
        task = (await TaskRepository(owner).list(limit=1)).items[0]
        for n in range(calls + 20):
            variants = [("routed, no token", TaskRepository(owner)),
                        ("direct (no routing)", TaskRepository(owner, "primary"))]  # fmt: skip
            for label, repo in variants if n % 2 else variants[::-1]:
                started = time.perf_counter()
                await repo.get(task.id)
                if n >= 20:
                    results[label].append((time.perf_counter() - started) * 1e6)
    summaries = {name: summary(values) for name, values in results.items()}
    extra = statistics.median(results["routed, no token"]) - statistics.median(
        results["direct (no routing)"]
    )
    summaries["routed minus direct (medians)"] = f"{extra:+.0f}"
    return summaries


async def write_latency(url: str, replica: str, calls: int) -> dict[str, str]:
    results: dict[str, list[float]] = {"no read replicas": [], "with a read replica": []}
    block = max(1, calls // 5)
    for _ in range(5):  # alternate blocks: drift hits both alike
        for label, read_urls in (("no read replicas", []), ("with a read replica", [replica])):
            async with connected(url, read_urls):
                repo = TaskRepository("writer")
                for _ in range(10):
                    await repo.create(TaskCreate(title="warm"))
                for _ in range(block):
                    started = time.perf_counter()
                    await repo.create(TaskCreate(title="timed"))
                    results[label].append((time.perf_counter() - started) * 1e6)
    return {name: summary(values) for name, values in results.items()}


async def run(args: argparse.Namespace) -> Path:
    pair = await asyncio.to_thread(ReplicationPair("todo_app_bench_replicas_").start)
    try:
        admin = await asyncpg.connect(pair.primary.url())
        await admin.execute('CREATE DATABASE "bench"')
        await admin.close()
        url, replica = pair.primary.url("bench"), pair.standby.url("bench")
        await todo_app.migrate(url)
        owners = await load(url, args.tasks, args.owners)
        async with Replay(pair) as replay:
            await replay.caught_up()

        setups = [
            ("primary only, pool 10", [], 10),
            ("primary only, pool 20", [], 20),
            ("replica only, pool 10", [replica], 10),
            ("primary + replica, pool 10 each", [replica, url], 10),
        ]
        rates: dict[str, list[float]] = {}
        replica_share: dict[str, list[float]] = {}
        for round_ in range(args.rounds):  # the order alternates: drift hits all alike
            for label, read_urls, pool in setups if round_ % 2 == 0 else reversed(setups):
                async with connected(url, read_urls, pool):
                    await throughput(owners, args.coroutines, min(1.0, args.seconds))  # warm
                    before = await served_by(replica)
                    rate = await throughput(owners, args.coroutines, args.seconds)
                    pages = rate * args.seconds
                    share = (await served_by(replica) - before) / pages if pages else 0.0
                rates.setdefault(label, []).append(rate)
                replica_share.setdefault(label, []).append(share)
                print(f"{label}: {rate:,.0f} pages/s", file=sys.stderr)
        reads = await latencies(pair, url, replica, args.calls)
        reads |= await routing_overhead(url, owners[0], args.calls)
        writes = await write_latency(url, replica, args.calls)
    finally:
        await asyncio.to_thread(pair.stop)
    return report(args, rates, replica_share, reads, writes)


def report(
    args: argparse.Namespace,
    rates: dict[str, list[float]],
    shares: dict[str, list[float]],
    reads: dict[str, str],
    writes: dict[str, str],
) -> Path:
    base = statistics.mean(rates["primary only, pool 10"])
    lines = [
        f"## Read replicas ({dt.date.today()}, {socket.gethostname()})",
        "",
        f"PostgreSQL primary + streaming standby on this machine, {args.tasks:,} tasks of "
        f"{args.owners} owners. Command: `uv run python -m benchmarks.replicas "
        f"--seconds {args.seconds:g} --rounds {args.rounds} --coroutines {args.coroutines} "
        f"--calls {args.calls}`",
        "",
        f"### List-page throughput ({args.coroutines} coroutines, first page of 50, "
        f"{args.seconds:g}s, {args.rounds} rounds in alternating order)",
        "",
        "| reads on | pages/s, mean (rounds' min-max) | vs primary only (pool 10) "
        "| pages the standby served |",
        "|---|---|---|---|",
        *(
            f"| {label} | {statistics.mean(rate):,.0f} ({min(rate):,.0f}-{max(rate):,.0f}) "
            f"| {statistics.mean(rate) / base:.2f}x | {statistics.mean(shares[label]):.0%} |"
            for label, rate in rates.items()
        ),
        "",
        f"### One `get`, µs (median / p95, {args.calls} interleaved rounds)",
        "",
        "| variant | µs |",
        "|---|---|",
        *(f"| {label} | {value} |" for label, value in reads.items()),
        "",
        f"### One `create`, µs (median / p95, {args.calls} calls in alternating blocks)",
        "",
        "| configuration | µs |",
        "|---|---|",
        *(f"| {label} | {value} |" for label, value in writes.items()),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"{dt.date.today()}-{socket.gethostname()}-replicas.md"
    out.write_text(text)
    return out


async def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--coroutines", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--owners", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    return await run(parser.parse_args(argv))


if __name__ == "__main__":
    asyncio.run(main())
