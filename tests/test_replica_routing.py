"""Per-request routing on a real primary and streaming standby (issue 18, items 4-5):
tokens that are not ours, a per-request lag bound, and the CLI's one-shot reads.

Which server served a read is not inferred: the repository's reads are followed by
``pg_is_in_recovery()`` on their own connection (``served``), and a CLI process's
reads are found in the standby's statement log (``log_statement = 'all'``, with
their parameters: the command's unique owner id)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

import todo_app
from tests import test_replicas
from tests.infra import ReplicationPair
from tests.test_replicas import caught_up, connected, pause, resume, state_becomes
from todo_app import ReplicaStatus, TaskCreate, TaskNotFound, TaskRepository, TaskStatus

pytestmark = pytest.mark.postgres

# The fixtures of tests/test_replicas.py, on this module's own pair.
database = test_replicas.database
served = test_replicas.served


@pytest.fixture(scope="module")
def pair() -> Iterator[ReplicationPair]:
    pair = ReplicationPair("todo_app_routing_").start()
    try:
        with (pair.standby.data / "postgresql.conf").open("a") as conf:
            conf.write("log_statement = 'all'\n")
        pair.standby.psql("SELECT pg_reload_conf()")
        yield pair
    finally:
        pair.stop()


def standby_log(pair: ReplicationPair) -> str:
    return (pair.standby.directory / "log").read_text(errors="replace")


async def lagging_by_more_than(seconds: float) -> ReplicaStatus:
    """Check until the replica is provably more than ``seconds`` behind (20 s at most)."""
    status: ReplicaStatus | None = None
    for _ in range(400):
        [status] = await todo_app.replica_status()
        if status.lag is not None and status.lag > seconds:
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"the replica stayed {status}")


# -- tokens -------------------------------------------------------------------------------


async def test_a_token_that_is_not_ours_reads_on_the_primary(
    pair: ReplicationPair, database: str, served: list[bool]
) -> None:
    async with connected(pair, database, consistency_wait=0.05, replica_max_lag=60):
        repo = TaskRepository("tok")
        await repo.create(TaskCreate(title="replayed"))
        await caught_up(pair)
        await state_becomes("ok")
        await pause(pair)
        task = await repo.create(TaskCreate(title="not replayed"))
        # Without a token the replica (within the limit) serves, and misses it.
        served.clear()
        with pytest.raises(TaskNotFound):
            await TaskRepository("tok").get(task.id)
        assert served == [True]

        # An old cookie, a default value, a forged or mangled token: never an error,
        # never the replica that lacks the write.
        for bad in ("zzz", "", "0", "-1", "1" * 17, "16/B374D848", "primary!", " "):
            served.clear()
            reader = TaskRepository("tok", consistency=bad)
            assert (await reader.get(task.id)).title == "not replayed", bad
            assert len((await reader.list()).items) == 2, bad
            assert (await reader.counts())[TaskStatus.PENDING] == 2, bad
            assert served == [False, False, False], bad
        await resume(pair)


# -- a per-request lag bound ----------------------------------------------------------------


async def test_a_per_request_lag_bound(
    pair: ReplicationPair, database: str, served: list[bool]
) -> None:
    async with connected(pair, database, replica_max_lag=60, replica_check_interval=0.1):
        repo = TaskRepository("bound")
        first = await repo.create(TaskCreate(title="replayed"))
        await caught_up(pair)
        await state_becomes("ok")
        served.clear()
        assert (await TaskRepository("bound", max_lag=30).get(first.id)).id == first.id
        assert served == [True]
        # 0: nothing committed may be missing, which only the primary can promise.
        served.clear()
        assert (await TaskRepository("bound", max_lag=0).get(first.id)).id == first.id
        assert served == [False]

        await pause(pair)
        task = await repo.create(TaskCreate(title="not replayed"))
        await lagging_by_more_than(1.0)
        # Tighter than the replica's lag: the primary, which has the write.
        served.clear()
        tight = TaskRepository("bound", max_lag=0.5)
        assert (await tight.get(task.id)).title == "not replayed"
        assert len((await tight.list()).items) == 2
        assert (await tight.counts())[TaskStatus.PENDING] == 2
        assert served == [False, False, False]
        # Looser than it: the replica, which may miss that much (and does).
        served.clear()
        loose = TaskRepository("bound", max_lag=30)
        with pytest.raises(TaskNotFound):
            await loose.get(task.id)
        assert len((await loose.list()).items) == 1
        assert served == [True, True]

    # A bound never loosens the configured limit: past it, the primary.
    async with connected(pair, database, replica_max_lag=0.5, replica_check_interval=0.1):
        await state_becomes("lagging")
        served.clear()
        assert (await TaskRepository("bound", max_lag=3600).get(task.id)).id == task.id
        assert served == [False]
    await resume(pair)


# -- the CLI: one-shot processes ------------------------------------------------------------


def cli(
    pair: ReplicationPair,
    database: str,
    user: str,
    *args: str,
    read_url: str | None = None,
    timeout: float = 120,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TODO_APP_")}
    environment |= {
        "DATABASE_URL": pair.primary.url(database),
        "TODO_APP_READ_URLS": read_url or pair.standby.url(database),
        **env,
    }
    result = subprocess.run(
        [sys.executable, "-m", "todo_app", "--user", user, *args],
        capture_output=True, text=True, timeout=timeout, env=environment, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result


async def test_the_cli_reads_on_a_replica_that_has_every_earlier_write(
    pair: ReplicationPair, database: str
) -> None:
    user = f"cli-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(cli, pair, database, user, "add", "written by the command before")
    await caught_up(pair)
    verbs = [["list", "--json"], ["stats", "--json"], ["export"]]
    task_id = ""
    for verb in [*verbs, ["show"]]:
        if verb == ["show"]:
            verb = ["show", task_id, "--json"]
        before = len(standby_log(pair))
        out = (await asyncio.to_thread(cli, pair, database, user, *verb)).stdout
        # The standby ran this command's read (its owner is a parameter of it)...
        assert user in standby_log(pair)[before:], verb
        # ...and it had the previous command's write: a command sees every write
        # acknowledged before it started.
        if verb[0] == "list":
            [item] = json.loads(out)["items"]
            assert item["title"] == "written by the command before"
            task_id = item["id"]
        elif verb[0] == "stats":
            assert json.loads(out)["pending"] == 1
        else:
            assert "written by the command before" in out


async def test_the_cli_never_reads_older_than_its_start(
    pair: ReplicationPair, database: str
) -> None:
    user = f"cli-{uuid.uuid4().hex[:8]}"
    await caught_up(pair)
    await pause(pair)
    try:
        # A write the standby will not replay while the next command runs.
        await asyncio.to_thread(cli, pair, database, user, "add", "not replayed")
        before = len(standby_log(pair))
        out = (await asyncio.to_thread(cli, pair, database, user, "list", "--json")).stdout
        # The standby cannot show it has it: the primary served, and the row is there.
        assert [item["title"] for item in json.loads(out)["items"]] == ["not replayed"]
        assert user not in standby_log(pair)[before:]
    finally:
        await resume(pair)


async def test_a_silent_replica_does_not_hold_up_a_command(
    pair: ReplicationPair, database: str
) -> None:
    # A server that accepts connections and never answers (a frozen VM): the first
    # check gives up after REPLICA_CHECK_BOUND, far within the connect timeout.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        read_url = f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/{database}"
        user = f"cli-{uuid.uuid4().hex[:8]}"
        await asyncio.to_thread(cli, pair, database, user, "add", "on the primary")
        for verb, shown in (("list", "on the primary"), ("stats", "pending")):
            result = await asyncio.to_thread(
                cli, pair, database, user, verb, read_url=read_url, timeout=30,
                TODO_APP_CONNECT_TIMEOUT="120",
            )  # fmt: skip
            assert shown in result.stdout
            assert result.stderr == ""


def test_the_cli_replica_benchmark_runs() -> None:
    from benchmarks import cli_replicas

    text = asyncio.run(cli_replicas.main(["--runs", "1"]))
    assert "| first replica check + `list` on the replica |" in text
    assert "Reads the replica served: 1 of 1." in text
