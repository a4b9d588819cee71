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


@pytest.mark.postgres
async def test_an_update_that_waited_for_a_concurrent_same_write_returns_the_row_as_it_now_is(
    todo_postgres: TodoDatabase,
) -> None:
    """The UPDATE waits for a concurrent writer's lock, then finds its change already
    made: it writes nothing. The row its statement's snapshot saw is older than that
    write, so the repository reads the row again rather than answer with the old one
    (PostgreSQL's one-statement update returns the row it left alone)."""
    import asyncpg

    repo = TaskRepository("alice")
    task = await repo.create(TaskCreate(title="before"))
    other = await asyncpg.connect(todo_postgres.url.reveal())
    try:
        writer = other.transaction()
        await writer.start()
        await other.execute(
            "UPDATE todo_app_task SET title = 'after', version = version + 1 WHERE id = $1",
            task.id,
        )
        waiting = asyncio.create_task(repo.update(task.id, TaskUpdate(title="after")))
        await asyncio.sleep(0.3)  # the UPDATE now waits for the writer's row lock
        assert not waiting.done()
        await writer.commit()
        updated = await asyncio.wait_for(waiting, 10)
    finally:
        await other.close()
    assert (updated.title, updated.version) == ("after", 2)
    assert await repo.get(task.id) == updated
