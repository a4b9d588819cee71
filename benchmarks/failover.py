"""Failover, measured: a crashed or frozen primary, a promoted standby, writers on.

    uv run python -m benchmarks.failover                    # ~3 min, every scenario
    uv run python -m benchmarks.failover --only async-freeze-detected --only replica-freeze

For each scenario it starts its own primary and streaming standby (``tests/infra.py``:
``initdb`` + ``pg_basebackup -R -X stream`` through a slot; synchronous means
``synchronous_standby_names = '*'`` and ``synchronous_commit = remote_apply``), and
runs ``--writers`` coroutines creating tasks through ``TaskRepository`` on
``tortoise_config`` with the URL a newcomer would write::

    postgresql://postgres@127.0.0.1:<primary>,127.0.0.1:<standby>/app
        ?target_session_attrs=read-write&connect_timeout=<--connect-timeout>

(``TODO_APP_STATEMENT_TIMEOUT`` = ``--statement-timeout``, ``--pool`` connections,
opened by a burst of creates first, so that some sit idle when the primary fails; the
readers of ``replica-freeze`` use 5 per server). A create that
raised is retried with its id (so it is stored once, whatever the failed attempt did).
After ``--warmup`` seconds the primary fails:

* ``crash``: SIGKILL to the postmaster and every child (a power cut, as far as the
  clients can tell: the kernel resets their connections);
* ``freeze``: SIGSTOP to all of them (a paused VM: the kernel still accepts and
  acknowledges, nothing answers); the old primary is killed before the end and never
  comes back (no split brain).

Then ``pg_ctl promote`` on the standby: ``--promote-after`` seconds after the failure,
or (``freeze-detected``) once a writer got its first error, as a failover manager
would act on a health check. The table: writes acknowledged, acknowledged writes not
on the new primary (lost), failed calls (errors; all ``TaskStoreUnavailable`` unless
said), the longest failed call, and the time from the end of ``pg_ctl promote`` to
the first successful write, and until every writer has written again. Last, ``replica-freeze``: readers on a primary and a
read replica that freezes; the longest read, failed reads, and ``replica_status()``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from tortoise import Tortoise
from tortoise.context import TortoiseContext

import todo_app
from todo_app import Settings, TaskCreate, TaskRepository, TaskStoreUnavailable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.infra import ReplicationPair  # noqa: E402 - the tests' own server harness

SCENARIOS = {
    # name: (synchronous, fault, promote when)
    "sync-crash": (True, "crash", "delay"),
    "sync-freeze": (True, "freeze", "delay"),
    "sync-freeze-detected": (True, "freeze", "detected"),
    "async-crash": (False, "crash", "delay"),
    "async-freeze": (False, "freeze", "delay"),
    "async-freeze-detected": (False, "freeze", "detected"),
}


@dataclass
class Run:
    name: str
    acknowledged: list[uuid.UUID] = field(default_factory=list)
    errors: int = 0
    untyped: list[str] = field(default_factory=list)
    longest_failure: float = 0.0
    promoted_at: float | None = None
    first_write_after: float | None = None
    #: Per writer: its first successful write after the promotion.
    back_after: dict[int, float] = field(default_factory=dict)
    lost: int = 0
    stored: int = 0
    failed_at: float | None = None
    first_error_at: float | None = None


def _kill(pair: ReplicationPair, sig: signal.Signals) -> None:
    for pid in pair.primary.server_pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


async def scenario(name: str, args: argparse.Namespace) -> Run:
    synchronous, fault, when = SCENARIOS[name]
    pair = ReplicationPair(f"todo_app_failover_{name}_", synchronous=synchronous).start()
    run = Run(name)
    try:
        admin = await asyncpg.connect(pair.primary.url())
        await admin.execute('CREATE DATABASE "app"')
        await admin.close()
        await todo_app.migrate(pair.primary.url("app"))
        url = (
            f"postgresql://postgres@127.0.0.1:{pair.primary.port},127.0.0.1:{pair.standby.port}"
            f"/app?target_session_attrs=read-write&connect_timeout={args.connect_timeout}"
        )
        settings = Settings(statement_timeout=args.statement_timeout, pool_max_size=args.pool)
        config = todo_app.tortoise_config(url, connection_name=f"fo_{name}", settings=settings)
        stop = asyncio.Event()
        first_error = asyncio.Event()
        wrote_after = asyncio.Event()

        async def writer(n: int) -> None:
            repo = TaskRepository(f"writer-{n}")
            while not stop.is_set():
                task_id = uuid.uuid4()
                while not stop.is_set():
                    started = time.monotonic()
                    try:
                        await repo.create(TaskCreate(id=task_id, title=f"w{n}"))
                    except TaskStoreUnavailable:
                        run.errors += 1
                        run.longest_failure = max(run.longest_failure, time.monotonic() - started)
                        if run.first_error_at is None:
                            run.first_error_at = time.monotonic()
                        first_error.set()
                        await asyncio.sleep(0.05)
                        continue
                    except Exception as exc:  # noqa: BLE001 - counted, shown in the table
                        run.errors += 1
                        run.untyped.append(f"{type(exc).__name__}: {exc}"[:120])
                        await asyncio.sleep(0.05)
                        continue
                    now = time.monotonic()
                    run.acknowledged.append(task_id)
                    if run.promoted_at is not None:
                        if run.first_write_after is None:
                            run.first_write_after = now - run.promoted_at
                            wrote_after.set()
                        run.back_after.setdefault(n, now - run.promoted_at)
                    break

        async def operator() -> None:
            # A burst opens every connection of the pool: some sit idle at the failure.
            burst = [uuid.uuid4() for _ in range(args.pool)]
            warm = TaskRepository("burst")
            await asyncio.gather(*(warm.create(TaskCreate(id=i, title="burst")) for i in burst))
            run.acknowledged.extend(burst)
            await asyncio.sleep(args.warmup)
            run.failed_at = time.monotonic()
            _kill(pair, signal.SIGKILL if fault == "crash" else signal.SIGSTOP)
            if fault == "freeze":
                pair.primary.frozen = True  # the harness thaws it at the end
            if when == "detected":
                await first_error.wait()
            else:
                await asyncio.sleep(args.promote_after)
            await asyncio.to_thread(pair.standby.promote)
            run.promoted_at = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wrote_after.wait(), args.after)
            # Until every writer has written on the new primary (or --after passed).
            deadline = run.promoted_at + args.after
            while len(run.back_after) < args.writers and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # writes go on for a second on the new primary
            stop.set()

        async with TortoiseContext():
            await Tortoise.init(config=config)
            await asyncio.gather(*(writer(n) for n in range(args.writers)), operator())
        if fault == "freeze":
            _kill(pair, signal.SIGKILL)  # never back as a primary
        new_primary = await asyncpg.connect(pair.standby.url("app"))
        try:
            stored = {row["id"] for row in await new_primary.fetch("SELECT id FROM todo_app_task")}
        finally:
            await new_primary.close()
        run.stored = len(stored)
        run.lost = len(set(run.acknowledged) - stored)
    finally:
        pair.stop()
    return run


async def frozen_replica(args: argparse.Namespace) -> str:
    """Readers on a primary and a read replica; the replica freezes (SIGSTOP) for
    ``--replica-seconds``: the longest read, failed reads, and what
    ``replica_status()`` says and how long it takes, asked right after the freeze."""
    pair = ReplicationPair("todo_app_frozen_replica_").start()
    try:
        admin = await asyncpg.connect(pair.primary.url())
        await admin.execute('CREATE DATABASE "app"')
        await admin.close()
        await todo_app.migrate(pair.primary.url("app"))
        settings = Settings(
            statement_timeout=args.statement_timeout,
            connect_timeout=args.connect_timeout,
            pool_max_size=5,
            replica_max_lag=60,
        )
        config = todo_app.tortoise_config(
            pair.primary.url("app"),
            connection_name="fo_replica",
            settings=settings,
            read_urls=[pair.standby.url("app")],
        )
        longest, failed, reads = 0.0, 0, 0
        stop = asyncio.Event()
        async with TortoiseContext():
            await Tortoise.init(config=config)
            task = await TaskRepository("reader").create(TaskCreate(title="read me"))
            for _ in range(100):
                if [s.state for s in await todo_app.replica_status()] == ["ok"]:
                    break
                await asyncio.sleep(0.1)

            async def reader() -> None:
                nonlocal longest, failed, reads
                while not stop.is_set():
                    started = time.monotonic()
                    try:
                        await TaskRepository("reader").get(task.id)
                        reads += 1
                    except Exception:  # noqa: BLE001 - counted
                        failed += 1
                    longest = max(longest, time.monotonic() - started)
                    await asyncio.sleep(0.01)

            readers = [asyncio.ensure_future(reader()) for _ in range(args.writers)]
            await asyncio.sleep(args.warmup)
            pair.standby.freeze()
            try:
                await asyncio.sleep(0.1)
                started = time.monotonic()
                [status] = await todo_app.replica_status()
                took = time.monotonic() - started
                await asyncio.sleep(args.replica_seconds)
                stop.set()
                await asyncio.gather(*readers)
            finally:
                pair.standby.thaw()
    finally:
        pair.stop()
    return (
        f"| read replica frozen (SIGSTOP) for {args.replica_seconds:g} s, {args.writers} "
        f"readers | {reads} reads, {failed} failed, longest {longest:.1f} s | "
        f"replica_status(): {took:.1f} s, {status.state} ({status.reason}) |"
    )


def table(runs: list[Run], args: argparse.Namespace) -> str:
    lines = [
        f"{args.writers} writers, pool {args.pool}, statement timeout {args.statement_timeout:g} s "
        f"(bound {args.statement_timeout + min(5, args.statement_timeout):g} s), "
        f"connect_timeout {args.connect_timeout} s, promotion {args.promote_after:g} s "
        "after the failure unless 'detected' (promoted at the first failed write)",
        "",
        "| replication, primary | acknowledged | lost | errors (longest) "
        "| promoted after the failure | first write after promote | every writer back |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        synchronous, fault, when = SCENARIOS[run.name]
        kind = "sync" if synchronous else "async"
        what = {"crash": "crashed (kill -9)", "freeze": "frozen (SIGSTOP)"}[fault]
        if when == "detected":
            what += ", promoted on the first error"
        promoted = (
            f"{run.promoted_at - run.failed_at:.1f} s"
            if run.promoted_at is not None and run.failed_at is not None
            else "-"
        )
        first = f"{run.first_write_after:.2f} s" if run.first_write_after is not None else "none"
        untyped = f", {len(run.untyped)} untyped" if run.untyped else ""
        every = (
            f"{max(run.back_after.values()):.2f} s"
            if len(run.back_after) == args.writers
            else f"{len(run.back_after)} of {args.writers}"
        )
        lines.append(
            f"| {kind}, {what} | {len(run.acknowledged)} | {run.lost} | "
            f"{run.errors} ({run.longest_failure:.1f} s){untyped} | {promoted} | {first} "
            f"| {every} |"
        )
    for run in runs:
        for text in sorted(set(run.untyped))[:3]:
            lines.append(f"\n{run.name}: {text}")
    return "\n".join(lines)


async def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--pool", type=int, default=10, help="TODO_APP_POOL_MAX_SIZE")
    parser.add_argument("--statement-timeout", type=float, default=5.0)
    parser.add_argument("--connect-timeout", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--promote-after", type=float, default=1.0)
    parser.add_argument("--after", type=float, default=30.0, help="longest wait for a write")
    parser.add_argument("--replica-seconds", type=float, default=15.0)
    parser.add_argument("--only", choices=[*sorted(SCENARIOS), "replica-freeze"], action="append")
    args = parser.parse_args(argv)
    runs = []
    for name in args.only or SCENARIOS:
        if name in SCENARIOS:
            print(f"{name} ...", file=sys.stderr, flush=True)
            runs.append(await scenario(name, args))
    text = table(runs, args) if runs else ""
    if not args.only or "replica-freeze" in args.only:
        print("replica-freeze ...", file=sys.stderr, flush=True)
        text += "\n\n| frozen read replica | reads | replica_status() |\n|---|---|---|\n"
        text += await frozen_replica(args)
    print(text)
    return text


if __name__ == "__main__":
    asyncio.run(main())
