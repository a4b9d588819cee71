"""TaskRepository on both dialects: every method, its errors, and its guarantees."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import uuid
from collections.abc import Iterator

import pydantic
import pytest

from tests.helpers import raw_insert, row_count
from todo_app import (
    MAX_PAGE_SIZE,
    TaskConflict,
    TaskCreate,
    TaskNotFound,
    TaskRead,
    TaskRepository,
    TaskStatus,
    TaskStoreError,
    TaskUpdate,
    TaskValidationError,
    rules,
)
from todo_app.models import Task
from todo_app.testing import TodoDatabase

pytestmark = pytest.mark.usefixtures("todo_db")


def _cursor(document: object) -> str:
    extra = {"o": "newest", "s": None} if isinstance(document, dict) else {}
    payload = {**document, **extra} if isinstance(document, dict) else document
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


async def make(repo: TaskRepository, count: int, prefix: str = "task") -> list[TaskRead]:
    return [await repo.create(TaskCreate(title=f"{prefix} {n}")) for n in range(count)]


# -- create / get --------------------------------------------------------------------


async def test_create_and_get() -> None:
    repo = TaskRepository("alice")
    created = await repo.create(TaskCreate(title="  Buy milk ", description="2 litres"))
    assert created.title == "Buy milk"
    assert created.user_id == "alice"
    assert created.status is TaskStatus.PENDING
    assert created.version == 1
    assert created.completed_at is None
    assert created.created_at == created.updated_at
    assert await repo.get(created.id) == created
    assert await repo.get(str(created.id)) == created


async def test_create_completed_sets_completed_at() -> None:
    created = await TaskRepository("alice").create(
        TaskCreate(title="t", status=TaskStatus.COMPLETED)
    )
    assert created.completed_at == created.created_at


async def test_another_owners_task_is_not_found() -> None:
    task = await TaskRepository("alice").create(TaskCreate(title="private"))
    bob = TaskRepository("bob")
    with pytest.raises(TaskNotFound):
        await bob.get(task.id)
    with pytest.raises(TaskNotFound):
        await bob.update(task.id, TaskUpdate(title="mine now"))
    with pytest.raises(TaskNotFound):
        await bob.complete(task.id)
    with pytest.raises(TaskNotFound):
        await bob.reopen(task.id)
    with pytest.raises(TaskNotFound):
        await bob.delete(task.id)
    assert await TaskRepository("alice").get(task.id) == task


@pytest.mark.parametrize("bad_id", ["nope", "", "1234", "x" * 1000, 42, None, b"bytes"])
async def test_malformed_ids_are_not_found(bad_id: object) -> None:
    repo = TaskRepository("alice")
    with pytest.raises(TaskNotFound):
        await repo.get(bad_id)  # type: ignore[arg-type]
    with pytest.raises(TaskNotFound):
        await repo.update(bad_id, TaskUpdate(title="x"))  # type: ignore[arg-type]
    with pytest.raises(TaskNotFound):
        await repo.delete(bad_id)  # type: ignore[arg-type]


@pytest.mark.parametrize("owner", ["", "   ", "x" * 256, "a\x00b", 7])
def test_owner_id_is_validated(owner: object) -> None:
    with pytest.raises(TaskValidationError) as raised:
        TaskRepository(owner)  # type: ignore[arg-type]
    assert raised.value.field == "owner_id"


def test_repr_shows_the_owner() -> None:
    assert repr(TaskRepository("alice")) == "TaskRepository(owner_id='alice')"
    assert TaskRepository("alice").owner_id == "alice"


# -- schemas and validation ---------------------------------------------------------


def test_schemas_reject_bad_input_with_pydantics_error() -> None:
    with pytest.raises(pydantic.ValidationError):
        TaskCreate(title="   ")
    with pytest.raises(pydantic.ValidationError):
        TaskCreate(title="x" * 201)
    with pytest.raises(pydantic.ValidationError):
        TaskCreate(title="t", colour="red")  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError):
        TaskUpdate(title=None)
    with pytest.raises(pydantic.ValidationError):
        TaskUpdate(status=None)
    with pytest.raises(pydantic.ValidationError):
        TaskUpdate.model_validate({"priority": 1})
    assert TaskCreate(title="  t  ").title == "t"
    assert TaskCreate(title="t", description="").description is None
    assert TaskUpdate.model_validate({"description": None}).changes() == {"description": None}


def test_json_schema_is_sensible() -> None:
    schema = TaskCreate.model_json_schema()
    title = schema["properties"]["title"]
    assert title["maxLength"] == rules.TITLE_MAX_LENGTH
    assert title["minLength"] == 1
    assert "description" in title
    description = schema["properties"]["description"]
    assert description["maxLength"] == rules.DESCRIPTION_MAX_LENGTH
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["title"]
    read = TaskRead.model_json_schema()
    assert set(read["properties"]) == set(Task._meta.fields_db_projection), "every column"


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": "a\x00b"}, "title"),
        ({"title": "\udcff"}, "title"),
        ({"title": 5}, "title"),
        ({"title": "t", "description": "x" * 1001}, "description"),
        ({"title": "t", "status": "archived"}, "status"),
    ],
)
async def test_constructed_schemas_are_validated_again(
    todo_db: TodoDatabase, values: dict[str, object], field: str
) -> None:
    repo = TaskRepository("alice")
    with pytest.raises(TaskValidationError) as raised:
        await repo.create(TaskCreate.model_construct(**values))  # type: ignore[arg-type]
    assert raised.value.field == field
    assert await row_count(todo_db) == 0


async def test_non_schema_input_is_a_validation_error() -> None:
    repo = TaskRepository("alice")
    with pytest.raises(TaskValidationError):
        await repo.create({"title": "dict"})  # type: ignore[arg-type]
    with pytest.raises(TaskValidationError):
        await repo.bulk_create([{"title": "dict"}])  # type: ignore[list-item]


async def test_database_refusals_become_validation_errors(
    todo_db: TodoDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If Python's rules ever let something through (here: a limit raised in code
    but not in the schema), the database refuses it, as a typed error."""
    monkeypatch.setattr(rules, "TITLE_MAX_LENGTH", 500)
    repo = TaskRepository("alice")
    with pytest.raises(TaskValidationError):
        await repo.create(TaskCreate(title="x" * 300))
    task = await repo.create(TaskCreate(title="fits"))
    with pytest.raises(TaskValidationError):
        await repo.update(task.id, TaskUpdate(title="y" * 300))
    assert (await repo.get(task.id)).title == "fits"


# -- list ---------------------------------------------------------------------------


async def test_walking_pages_returns_every_task_once_in_order() -> None:
    repo = TaskRepository("alice")
    tasks = await make(repo, 23)
    await make(TaskRepository("bob"), 5, "bob")
    for order, expected in (("newest", tasks[::-1]), ("oldest", tasks)):
        seen: list[TaskRead] = []
        cursor = None
        while True:
            page = await repo.list(limit=5, cursor=cursor, order=order)  # type: ignore[arg-type]
            seen.extend(page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert [t.id for t in seen] == [t.id for t in expected]


async def test_exact_last_page_and_empty_list_have_no_cursor() -> None:
    repo = TaskRepository("alice")
    assert (await repo.list()).model_dump() == {"items": [], "next_cursor": None}
    await make(repo, 4)
    first = await repo.list(limit=2)
    assert first.next_cursor is not None
    second = await repo.list(limit=2, cursor=first.next_cursor)
    assert len(second.items) == 2
    assert second.next_cursor is None


async def test_inserts_during_a_walk_cause_no_repeats() -> None:
    repo = TaskRepository("alice")
    await make(repo, 10, "old")
    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        page = await repo.list(limit=3, cursor=cursor)
        seen.extend(t.id for t in page.items)
        await make(repo, 2, "new")  # newer than everything: ahead of the cursor
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == len(set(seen)) == 10


async def test_ties_on_created_at_are_ordered_by_id(todo_db: TodoDatabase) -> None:
    moment = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    ids = sorted(uuid.uuid4() for _ in range(7))
    for task_id in ids:
        await raw_insert(
            todo_db, id=task_id, user_id="alice", title="tie", created_at=moment, version=1
        )
    repo = TaskRepository("alice")
    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        page = await repo.list(limit=2, cursor=cursor, order="oldest")
        seen.extend(t.id for t in page.items)
        if not (cursor := page.next_cursor):
            break
    assert seen == ids


async def test_status_filter() -> None:
    repo = TaskRepository("alice")
    tasks = await make(repo, 5)
    await repo.complete(tasks[1].id)
    await repo.complete(tasks[3].id)
    done = await repo.list(status=TaskStatus.COMPLETED)
    assert [t.id for t in done.items] == [tasks[3].id, tasks[1].id]
    assert len((await repo.list(status="pending")).items) == 3
    with pytest.raises(TaskValidationError) as raised:
        await repo.list(status="archived")
    assert raised.value.field == "status"


@pytest.mark.parametrize("limit", [0, -1, MAX_PAGE_SIZE + 1, 2**63, 10**20, "2", True, 2.0])
async def test_ids_starting_with_takes_the_page_sizes(limit: object) -> None:
    """A limit no page can have is the caller's mistake, named before any SQL (it was
    a raw OverflowError on SQLite and a TaskStoreError, 500, on PostgreSQL)."""
    repo = TaskRepository("alice")
    expected = f"between 1 and {MAX_PAGE_SIZE}" if type(limit) is int else "an integer"
    with pytest.raises(TaskValidationError, match=expected) as raised:
        await repo.ids_starting_with("abcd", limit=limit)  # type: ignore[arg-type]
    assert raised.value.field == "limit"


async def test_ids_starting_with_finds_up_to_the_largest_page() -> None:
    repo = TaskRepository("alice")
    tasks = await make(repo, 3)
    for task in tasks:
        prefix = str(task.id)[:13]
        assert await repo.ids_starting_with(prefix, limit=MAX_PAGE_SIZE) == [task.id]
        assert await repo.ids_starting_with(prefix.upper(), limit=1) == [task.id]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": MAX_PAGE_SIZE + 1}, "limit"),
        ({"limit": "10"}, "limit"),
        ({"limit": True}, "limit"),
        ({"order": "random"}, "order"),
        ({"cursor": "garbage"}, "cursor"),
        ({"cursor": ""}, "cursor"),
        ({"cursor": "e30"}, "cursor"),  # base64 of "{}"
        ({"cursor": "A" * 10_000}, "cursor"),
        ({"cursor": "' OR 1=1 --"}, "cursor"),
        ({"cursor": _cursor({"t": "2026-01-01T00:00:00+00:00", "i": 123})}, "cursor"),
        (
            {"cursor": _cursor({"t": "9999-12-31T23:59:59-05:00", "i": str(uuid.UUID(int=1))})},
            "cursor",
        ),
        (
            {"cursor": _cursor({"t": "0001-01-01T00:00:00+05:00", "i": str(uuid.UUID(int=1))})},
            "cursor",
        ),
        ({"cursor": _cursor({"t": "2026-01-01T00:00:00", "i": str(uuid.UUID(int=1))})}, "cursor"),
        ({"cursor": _cursor([1, 2])}, "cursor"),
    ],
)
async def test_bad_list_arguments(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(TaskValidationError) as raised:
        await TaskRepository("alice").list(**kwargs)  # type: ignore[arg-type]
    assert raised.value.field == field


async def test_a_cursor_only_fits_its_own_listing() -> None:
    repo = TaskRepository("alice")
    await make(repo, 3)
    cursor = (await repo.list(limit=1)).next_cursor
    assert cursor is not None
    with pytest.raises(TaskValidationError, match="another order"):
        await repo.list(limit=1, cursor=cursor, order="oldest")
    with pytest.raises(TaskValidationError, match="another order"):
        await repo.list(limit=1, cursor=cursor, status=TaskStatus.PENDING)
    # Another owner may hold the cursor: it only positions, it never selects rows.
    assert (await TaskRepository("bob").list(cursor=cursor)).items == []


# -- update / complete / reopen / delete ---------------------------------------------


async def test_partial_update_and_version() -> None:
    repo = TaskRepository("alice")
    task = await repo.create(TaskCreate(title="t", description="d"))
    renamed = await repo.update(task.id, TaskUpdate(title=" renamed "))
    assert (renamed.title, renamed.description, renamed.version) == ("renamed", "d", 2)
    assert renamed.updated_at > task.updated_at
    assert renamed.created_at == task.created_at
    cleared = await repo.update(task.id, TaskUpdate.model_validate({"description": None}))
    assert (cleared.description, cleared.version) == (None, 3)
    same = await repo.update(task.id, TaskUpdate(title="renamed"))
    assert same == cleared, "a change that changes nothing is not a write"
    nothing = await repo.update(task.id, TaskUpdate())
    assert nothing == cleared


async def test_expected_version_mismatch_changes_nothing() -> None:
    repo = TaskRepository("alice")
    task = await repo.create(TaskCreate(title="t"))
    await repo.update(task.id, TaskUpdate(title="v2"), expected_version=1)
    for write in (
        repo.update(task.id, TaskUpdate(title="stale"), expected_version=1),
        repo.complete(task.id, expected_version=1),
        repo.delete(task.id, expected_version=1),
    ):
        with pytest.raises(TaskConflict):
            await write
    stored = await repo.get(task.id)
    assert (stored.title, stored.version, stored.status) == ("v2", 2, TaskStatus.PENDING)


@pytest.mark.parametrize("version", [0, -1, "2", 1.5, True, 2**31, 2**70])
async def test_bad_expected_version(version: object) -> None:
    repo = TaskRepository("alice")
    task = await repo.create(TaskCreate(title="t"))
    with pytest.raises(TaskValidationError) as raised:
        await repo.update(task.id, TaskUpdate(title="x"), expected_version=version)  # type: ignore[arg-type]
    assert raised.value.field == "expected_version"
    with pytest.raises(TaskValidationError):
        await repo.delete(task.id, expected_version=version)  # type: ignore[arg-type]
    assert (await repo.get(task.id)).version == 1


async def test_complete_and_reopen_are_idempotent() -> None:
    repo = TaskRepository("alice")
    task = await repo.create(TaskCreate(title="t"))
    done = await repo.complete(task.id, expected_version=1)
    assert done.status is TaskStatus.COMPLETED
    assert done.version == 2
    assert done.completed_at is not None
    assert await repo.complete(task.id) == done, "completing twice changes nothing"
    reopened = await repo.reopen(task.id)
    assert (reopened.status, reopened.completed_at, reopened.version) == (
        TaskStatus.PENDING,
        None,
        3,
    )
    assert await repo.reopen(task.id) == reopened


async def test_update_status_keeps_completed_at_consistent() -> None:
    repo = TaskRepository("alice")
    task = await repo.create(TaskCreate(title="t"))
    done = await repo.update(task.id, TaskUpdate(status=TaskStatus.COMPLETED))
    assert done.completed_at is not None
    renamed = await repo.update(task.id, TaskUpdate(title="still done"))
    assert renamed.completed_at == done.completed_at
    back = await repo.update(task.id, TaskUpdate(status=TaskStatus.PENDING))
    assert back.completed_at is None


async def test_delete() -> None:
    repo = TaskRepository("alice")
    keep, drop, versioned = await make(repo, 3)
    await repo.delete(drop.id)
    with pytest.raises(TaskNotFound):
        await repo.get(drop.id)
    with pytest.raises(TaskNotFound):
        await repo.delete(drop.id)
    with pytest.raises(TaskConflict):
        await repo.delete(versioned.id, expected_version=5)
    await repo.delete(versioned.id, expected_version=1)
    assert [t.id for t in (await repo.list()).items] == [keep.id]


async def test_counts_include_every_status() -> None:
    repo = TaskRepository("alice")
    assert await repo.counts() == {TaskStatus.PENDING: 0, TaskStatus.COMPLETED: 0}
    tasks = await make(repo, 3)
    await make(TaskRepository("bob"), 4)
    await repo.complete(tasks[0].id)
    assert await repo.counts() == {TaskStatus.PENDING: 2, TaskStatus.COMPLETED: 1}


# -- idempotent create, bulk ---------------------------------------------------------


async def test_idempotent_create() -> None:
    repo = TaskRepository("alice")
    client_id = uuid.uuid4()
    first = await repo.create(TaskCreate(id=client_id, title="t", description="d"))
    again = await repo.create(TaskCreate(id=client_id, title=" t ", description="d"))
    assert again == first
    with pytest.raises(TaskConflict) as different:
        await repo.create(TaskCreate(id=client_id, title="other"))
    with pytest.raises(TaskConflict) as other_owner:
        await TaskRepository("bob").create(TaskCreate(id=client_id, title="t", description="d"))
    # Same words whoever owns the id: the conflict reveals nothing of the other row.
    assert str(different.value) == str(other_owner.value)
    assert "alice" not in str(other_owner.value)
    assert await Task.filter(id=client_id).count() == 1


async def test_concurrent_identical_creates_return_the_same_task() -> None:
    repo = TaskRepository("alice")
    client_id = uuid.uuid4()
    results = await asyncio.gather(
        *(repo.create(TaskCreate(id=client_id, title="retry")) for _ in range(5))
    )
    assert {r.id for r in results} == {client_id}
    assert len({r.model_dump_json() for r in results}) == 1


async def test_bulk_create(todo_db: TodoDatabase) -> None:
    repo = TaskRepository("alice")
    items = [TaskCreate(title=f"imported {n}") for n in range(1200)]
    items.append(TaskCreate(title="done", status=TaskStatus.COMPLETED))
    assert await repo.bulk_create(iter(items)) == 1201
    assert await repo.counts() == {TaskStatus.PENDING: 1200, TaskStatus.COMPLETED: 1}
    page = await repo.list(status=TaskStatus.COMPLETED)
    assert page.items[0].completed_at is not None
    assert {t.version for t in (await repo.list(limit=200)).items} == {1}
    assert await repo.bulk_create([]) == 0


async def test_bulk_create_with_many_client_ids(todo_db: TodoDatabase) -> None:
    repo = TaskRepository("alice")
    ids = [uuid.uuid4() for _ in range(1300)]  # more than one existence-check chunk
    assert await repo.bulk_create(TaskCreate(id=i, title="x") for i in ids) == 1300
    with pytest.raises(TaskConflict):
        await repo.bulk_create([TaskCreate(title="new"), TaskCreate(id=ids[-1], title="x")])
    assert await row_count(todo_db) == 1300


async def test_bulk_create_is_all_or_nothing(todo_db: TodoDatabase) -> None:
    repo = TaskRepository("alice")
    existing = await repo.create(TaskCreate(title="exists"))
    good = [TaskCreate(title=f"ok {n}") for n in range(10)]
    with pytest.raises(TaskValidationError) as raised:
        await repo.bulk_create([*good, TaskCreate.model_construct(title=" ")])  # type: ignore[call-arg]
    assert raised.value.field == "items[10].title"
    twice = uuid.uuid4()
    with pytest.raises(TaskConflict):
        await repo.bulk_create(
            [*good, TaskCreate(id=twice, title="a"), TaskCreate(id=twice, title="b")]
        )
    with pytest.raises(TaskConflict):
        await repo.bulk_create([*good, TaskCreate(id=existing.id, title="exists")])
    assert await row_count(todo_db) == 1


async def test_every_write_path_moves_updated_at_and_version() -> None:
    repo = TaskRepository("alice")
    task = await repo.create(TaskCreate(title="t"))
    history = [task]
    for write in (
        lambda: repo.update(task.id, TaskUpdate(title="t2")),
        lambda: repo.complete(task.id),
        lambda: repo.reopen(task.id),
    ):
        await asyncio.sleep(0.001)
        history.append(await write())
    versions = [t.version for t in history]
    assert versions == list(range(1, len(history) + 1))
    stamps = [t.updated_at for t in history]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)
    assert {t.created_at for t in history} == {task.created_at}


async def test_callers_own_errors_are_not_database_errors() -> None:
    repo = TaskRepository("alice")

    def items() -> Iterator[TaskCreate]:
        yield TaskCreate(title="one")
        raise FileNotFoundError("/nonexistent/tasks.jsonl")

    with pytest.raises(FileNotFoundError):
        await repo.bulk_create(items())

    def progress(done: int) -> None:
        raise BrokenPipeError("stderr closed")

    with pytest.raises(BrokenPipeError):
        await repo.bulk_create([TaskCreate(title="two")], progress=progress)
    with pytest.raises(TaskValidationError) as raised:
        await repo.bulk_create(None)  # type: ignore[arg-type]
    assert raised.value.field == "items"
    assert await repo.counts() == {TaskStatus.PENDING: 0, TaskStatus.COMPLETED: 0}


async def test_a_task_at_its_last_version_takes_no_more_writes(todo_db: TodoDatabase) -> None:
    repo = TaskRepository("alice")
    task = await repo.create(TaskCreate(title="old"))
    await todo_db.connection.execute_query(f'UPDATE "todo_app_task" SET "version" = {2**31 - 1}')
    with pytest.raises(TaskConflict, match="last version"):
        await repo.update(task.id, TaskUpdate(title="new"))
    assert (await repo.reopen(task.id)).version == 2**31 - 1  # a no-op stays a no-op
    assert (await repo.get(task.id)).title == "old"


async def test_other_database_failures_are_typed(todo_db: TodoDatabase) -> None:
    await todo_db.connection.execute_script('ALTER TABLE "todo_app_task" RENAME TO "moved"')
    try:
        # SQLite also says what a missing table means on an in-memory database.
        with pytest.raises(TaskStoreError, match='refused|has no "todo_app_task" table'):
            await TaskRepository("alice").get(uuid.uuid4())
    finally:
        await todo_db.connection.execute_script('ALTER TABLE "moved" RENAME TO "todo_app_task"')
