"""The task verbs: ``add``, ``list``, ``show``, ``edit``, ``done``, ``reopen``, ``rm``,
``stats``, and ``demo``. Each opens the database, calls the repository, and leaves
the showing to :mod:`todo_app.cli.render`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from todo_app.cli import render
from todo_app.cli.db import database, repository, task_id
from todo_app.cli.exits import EXIT_OK, EXIT_USAGE, CliError
from todo_app.cli.render import escape, mark, say, say_json, short_id

if TYPE_CHECKING:
    from todo_app.pagination import Order
    from todo_app.schemas import TaskRead

__all__ = [
    "cmd_add",
    "cmd_demo",
    "cmd_done",
    "cmd_edit",
    "cmd_list",
    "cmd_reopen",
    "cmd_rm",
    "cmd_show",
    "cmd_stats",
]


async def cmd_add(args: argparse.Namespace) -> int:
    from todo_app.cli.parser import schema_values
    from todo_app.rules import TaskStatus
    from todo_app.schemas import TaskCreate

    data = TaskCreate(
        title=args.title,
        description=args.description,
        status=TaskStatus.COMPLETED if args.done else TaskStatus.PENDING,
        # Every other field of TaskCreate, as given (pydantic parses the text).
        **schema_values(args),
    )
    async with database(args):
        task = await repository(args).create(data)
    if args.json:
        say_json(task.model_dump(mode="json"))
    else:
        say(f"added {short_id(task)}  {escape(task.title)}")
    return EXIT_OK


async def cmd_list(args: argparse.Namespace) -> int:
    from todo_app.repository import MAX_PAGE_SIZE

    order: Order = "oldest" if args.oldest else "newest"
    # No --limit: the repository's default page, or its largest one to fetch them all.
    size: dict[str, Any] = {}
    if args.limit is not None:
        size["limit"] = args.limit
    elif args.all:
        size["limit"] = MAX_PAGE_SIZE
    async with database(args, replica_reads=True):
        repo = repository(args)
        page = await repo.list(status=args.status, cursor=args.cursor, order=order, **size)
        tasks = list(page.items)
        while args.all and page.next_cursor:
            page = await repo.list(status=args.status, cursor=page.next_cursor, order=order, **size)
            tasks.extend(page.items)
    if args.json:
        items = [task.model_dump(mode="json") for task in tasks]
        say_json({"items": items, "next_cursor": page.next_cursor})
        return EXIT_OK
    say(*render.task_table(tasks))
    if page.next_cursor:
        say(f"more: todo-app list --cursor {page.next_cursor}")
    return EXIT_OK


async def cmd_show(args: argparse.Namespace) -> int:
    async with database(args, replica_reads=True):
        repo = repository(args)
        task = await repo.get(await task_id(args, repo))
    if args.json:
        say_json(task.model_dump(mode="json"))
    else:
        say(*render.task_details(task))
    return EXIT_OK


async def cmd_edit(args: argparse.Namespace) -> int:
    from todo_app.cli.parser import EDIT_FIELDS, schema_values
    from todo_app.schemas import TaskUpdate

    fields: dict[str, Any] = {}
    if args.title is not None:
        fields["title"] = args.title
    if args.clear_description:
        fields["description"] = None
    elif args.description is not None:
        fields["description"] = args.description
    fields.update(schema_values(args))
    if not fields:
        options = ["--title", "--description", "--clear-description", *EDIT_FIELDS.flags()]
        raise CliError(f"nothing to change: give {', '.join(options)}", EXIT_USAGE)
    change = TaskUpdate.model_validate(fields)
    async with database(args):
        repo = repository(args)
        task = await repo.update(
            await task_id(args, repo), change, expected_version=args.expect_version
        )
    say(f"updated {short_id(task)} (version {task.version})")
    return EXIT_OK


async def _set_status(args: argparse.Namespace, *, complete: bool) -> int:
    async with database(args):
        repo = repository(args)
        which = await task_id(args, repo)
        write = repo.complete if complete else repo.reopen
        task = await write(which, expected_version=args.expect_version)
    say(f"{mark(task.status)} {short_id(task)}  {escape(task.title)}")
    return EXIT_OK


async def cmd_done(args: argparse.Namespace) -> int:
    return await _set_status(args, complete=True)


async def cmd_reopen(args: argparse.Namespace) -> int:
    return await _set_status(args, complete=False)


async def cmd_rm(args: argparse.Namespace) -> int:
    async with database(args):
        repo = repository(args)
        which = await task_id(args, repo)
        await repo.delete(which, expected_version=args.expect_version)
    say(f"deleted {str(which)[:8]}")
    return EXIT_OK


async def cmd_stats(args: argparse.Namespace) -> int:
    async with database(args, replica_reads=True):
        counts = await repository(args).counts()
    if args.json:
        say_json({str(status): n for status, n in counts.items()})
        return EXIT_OK
    for status, n in counts.items():
        say(f"{escape(str(status)):<10}{n:>8}")
    say(f"{'total':<10}{sum(counts.values()):>8}")
    return EXIT_OK


async def cmd_demo(args: argparse.Namespace) -> int:
    """Migrate, then show two users' tasks side by side: a tour of the API."""
    from todo_app.migrator import upgrade
    from todo_app.repository import TaskRepository
    from todo_app.schemas import TaskCreate, TaskUpdate

    async with database(args, check_schema=False) as connection:
        applied = await upgrade(connection)
        say(f"database: {escape(str(args.db))}")
        say(f"migrations: {len(applied)} applied now" if applied else "migrations: at head")
        alice, bob = TaskRepository("demo-alice"), TaskRepository("demo-bob")
        # Start from a clean slate so the demo reads the same every time it runs.
        for repo in (alice, bob):
            await repo.delete_all()
        milk = await alice.create(TaskCreate(title="Buy milk", description="2 litres, oat"))
        await alice.create(TaskCreate(title="Book dentist"))
        await alice.create(TaskCreate(title="  Water the plants  "))
        await bob.create(TaskCreate(title="Write the quarterly report"))
        await bob.create(TaskCreate(title="Call mum"))
        await alice.complete(milk.id)
        await alice.update(milk.id, TaskUpdate(description="done: oat milk was on offer"))
        for repo in (alice, bob):
            say(f"\n{repo.owner_id}:")
            page: list[TaskRead] = list((await repo.list(order="oldest")).items)
            say(*render.task_table(page))
            counts = await repo.counts()
            say("  " + ", ".join(f"{n} {escape(str(status))}" for status, n in counts.items()))
        try:
            await bob.get(milk.id)
        except Exception as exc:
            say(f"\ndemo-bob asking for demo-alice's task: {type(exc).__name__}: {exc}")
    return EXIT_OK
