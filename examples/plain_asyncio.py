"""todo_app in a plain asyncio program: init Tortoise, migrate, use, close.

python examples/plain_asyncio.py [DATABASE_URL]
"""

from __future__ import annotations

import asyncio
import sys

from tortoise import Tortoise

import todo_app
from todo_app import TaskCreate, TaskRepository


async def main(url: str | None = None) -> None:
    # Any connection name works; a host with its own apps adds todo_app.app_config(name).
    await Tortoise.init(config=todo_app.tortoise_config(url, connection_name="tasks"))
    try:
        await todo_app.migrate()  # idempotent: a no-op once the database is at head
        repo = TaskRepository("script-user")
        task = await repo.create(TaskCreate(title="Written by a plain asyncio program"))
        await repo.complete(task.id)
        for item in (await repo.list()).items:
            print(f"{item.status.value:<10} {item.title}")
        print({status.value: n for status, n in (await repo.counts()).items()})
    finally:
        await Tortoise.close_connections()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))
