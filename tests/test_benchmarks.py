"""The benchmark harness runs end to end (tiny sizes). Timings are never asserted:
they belong in benchmarks/results, measured side by side in one run."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import bench


@pytest.mark.postgres
async def test_harness_runs_on_both_dialects(tmp_path: Path) -> None:
    out = await bench.main(
        ["--sizes", "300", "--ops", "15", "--mix-seconds", "0.2", "--bulk", "50",
         "--out", str(tmp_path)]
    )  # fmt: skip
    text = out.read_text()
    for expected in ("### postgres, 300 rows", "### sqlite, 300 rows", "list page 200",
                     "todo_app / raw+parse", "raw COPY", "sqlalchemy", "ops/s",
                     "calls per caller min / mean", "| raw+parse (pool 10) |",
                     "fewest calls of a caller",
                     "todo_app / raw+parse (pool, no reset)"):  # fmt: skip
        assert expected in text, expected
    assert out.parent == tmp_path
    # SQLite's tail is in the same table, beside PostgreSQL's.
    sqlite_part = text.split("### sqlite, 300 rows")[1]
    assert "| todo_app |" in sqlite_part.split("Concurrent mix")[1]


@pytest.mark.postgres
async def test_http_benchmark_runs(tmp_path: Path) -> None:
    """The end-to-end benchmark: real uvicorn servers (the shipped example, that is the
    packaged router, the raw asyncpg twin and the SQLModel twin), loaded by wrk; the
    numbers are not asserted, only that every endpoint answered without an error and
    the table has each server's tail and the ratios."""
    from benchmarks import http
    from tests.infra import debian_tool

    debian_tool("wrk")
    out = await http.main(
        ["--rows", "300", "--seconds", "1", "--rounds", "1", "--connections", "4",
         "--gc-variant", "--floor", "--out", str(tmp_path)]
    )  # fmt: skip
    text = out.read_text()
    servers = ("todo_app", "todo_app, no gc freeze", "raw asyncpg", "sqlmodel", "no database")
    header = "| endpoint | " + " | ".join(servers) + " |"
    for expected in (header,
                     "| GET id |", "| list |", "| POST |", "| PATCH |", "| PATCH new |", "p99",
                     "Against raw asyncpg", "Against sqlmodel",
                     "Against raw asyncpg, round by round"):  # fmt: skip
        assert expected in text, expected
    assert "errors" not in text, text
    assert "| server | full passes |" in text
    assert "(no report)" not in text, "every server reported its collector passes at exit"


@pytest.mark.postgres
async def test_replica_benchmark_runs(tmp_path: Path) -> None:
    from benchmarks import replicas

    out = await replicas.main(
        ["--seconds", "0.1", "--calls", "6", "--tasks", "300", "--owners", "10",
         "--coroutines", "5", "--out", str(tmp_path)]
    )  # fmt: skip
    text = out.read_text()
    for expected in ("primary + replica, pool 10 each", "replica, fresh token",
                     "routed minus direct", "with a read replica"):  # fmt: skip
        assert expected in text, expected


async def test_only_times_the_ops_asked_for(tmp_path: Path) -> None:
    out = await bench.main(
        ["--sizes", "200", "--ops", "10", "--dialects", "sqlite", "--only", "get,bulk",
         "--bulk", "20", "--out", str(tmp_path)]
    )  # fmt: skip
    text = out.read_text()
    assert "| get |" in text
    assert "Bulk import" in text
    assert "| create |" not in text
    assert "ops/s" not in text
    assert "--only get,bulk" in text


def test_cli_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import cli

    cli.main(["--runs", "1", "--tasks", "50"])
    out = capsys.readouterr().out
    for expected in ("| todo-app list |", "import tortoise", "with bytecode", "at every start"):
        assert expected in out, expected


@pytest.mark.postgres
async def test_failover_benchmark_runs() -> None:
    """benchmarks/failover.py end to end on one scenario (its own pair of servers)."""
    from benchmarks import failover

    text = await failover.main(
        ["--only", "sync-crash", "--writers", "2", "--pool", "2", "--warmup", "0.5",
         "--promote-after", "0.2", "--after", "20"]
    )  # fmt: skip
    row = next(line for line in text.splitlines() if line.startswith("| sync, crashed"))
    assert row.split("|")[3].strip() == "0", "an acknowledged write was lost (synchronous)"
