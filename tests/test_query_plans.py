"""The list query walks the (user_id, created_at, id) index from the cursor on: no
sort, no scan of earlier pages, so a deep page costs what the first one does."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

import todo_app
from tests.helpers import FreshURL
from todo_app.dialects import dialect_named
from todo_app.dsn import DatabaseURL

ROWS = 30_000
OWNERS = 30


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found += _nodes(child)
    return found


COLUMNS = (
    "id", "user_id", "title", "description", "status", "version",
    "created_at", "updated_at", "completed_at",
)  # fmt: skip


@pytest.mark.postgres
async def test_postgres_plan_is_an_index_scan_without_sort(fresh_database_url: FreshURL) -> None:
    url = await fresh_database_url("postgres")
    await todo_app.migrate(url)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    rows = [
        (uuid.uuid4(), f"owner-{n % OWNERS}", f"task {n}", None, "pending", 1,
         start + dt.timedelta(seconds=n), start + dt.timedelta(seconds=n), None)
        for n in range(ROWS)
    ]  # fmt: skip
    connection = await asyncpg.connect(url.reveal())
    try:
        # The columns the rows name; any added since are nullable or have a default.
        await connection.copy_records_to_table("todo_app_task", records=rows, columns=COLUMNS)
        await connection.execute("ANALYZE todo_app_task")
        middle = rows[ROWS // 2]
        for newest in (True, False):
            for after, args in (
                (False, ["owner-7", 51]),
                (True, ["owner-7", middle[6], middle[0], 51]),
            ):
                query = dialect_named("postgres").statements.listing(
                    newest=newest, with_status=False, after=after
                )
                explained = await connection.fetchval(f"EXPLAIN (FORMAT JSON) {query}", *args)
                plan = json.loads(explained)[0]["Plan"]
                nodes = _nodes(plan)
                kinds = [node["Node Type"] for node in nodes]
                assert "Sort" not in kinds, kinds
                assert "Seq Scan" not in kinds, kinds
                scans = [n for n in nodes if n["Node Type"] in ("Index Scan", "Index Only Scan")]
                assert [n["Index Name"] for n in scans] == ["todo_app_task_user_created_idx"]
                assert scans[0]["Scan Direction"] == ("Backward" if newest else "Forward")
                if after:
                    # The cursor is an index condition, not a filter over earlier rows.
                    assert "created_at" in scans[0]["Index Cond"], scans[0]
    finally:
        await connection.close()


async def test_sqlite_plan_uses_the_index_without_a_temp_sort(
    fresh_sqlite_url: Callable[[], DatabaseURL],
) -> None:
    import aiosqlite

    url = fresh_sqlite_url()
    await todo_app.migrate(url)
    async with aiosqlite.connect(str(url.database)) as connection:
        for after in (False, True):
            query = dialect_named("sqlite").statements.listing(
                newest=True, with_status=False, after=after
            )
            args = ["owner-1", "2026-01-01 00:00:00+00:00", str(uuid.uuid4()), 51][
                : 4 if after else 2
            ]
            if not after:
                args = ["owner-1", 51]
            plan = " | ".join(
                row[3]
                for row in await connection.execute_fetchall(f"EXPLAIN QUERY PLAN {query}", args)
            )
            assert "todo_app_task_user_created_idx" in plan, plan
            assert "TEMP B-TREE" not in plan, plan
