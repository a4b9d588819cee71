"""Concurrency on PostgreSQL, where writers really run in parallel."""

from __future__ import annotations

import asyncio

import pytest

from todo_app import TaskConflict, TaskCreate, TaskRead, TaskRepository, TaskUpdate
from todo_app.testing import TodoDatabase


@pytest.mark.postgres
async def test_concurrent_updates_with_one_expected_version_have_one_winner(
    todo_postgres: TodoDatabase,
) -> None:
    repo = TaskRepository("alice")
    task = await repo.create(TaskCreate(title="contended"))
    outcomes = await asyncio.gather(
        *(
            repo.update(task.id, TaskUpdate(title=f"writer {n}"), expected_version=1)
            for n in range(8)
        ),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if isinstance(o, TaskRead)]
    losers = [o for o in outcomes if isinstance(o, TaskConflict)]
    assert len(winners) == 1
    assert len(losers) == 7
    stored = await repo.get(task.id)
    assert stored.version == 2
    assert stored.title == winners[0].title
