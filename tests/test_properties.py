"""Property-based tests (hypothesis) on both dialects: arbitrary text in, and
arbitrary interleavings of two owners' operations."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from todo_app import (
    TaskConflict,
    TaskCreate,
    TaskNotFound,
    TaskRead,
    TaskRepository,
    TaskStatus,
    TaskUpdate,
    TaskValidationError,
    rules,
)
from todo_app.testing import TodoDatabase

# Unicode at large (surrogates included: a JSON body with "\ud800" decodes to one),
# plus the characters that break naive code: NUL, controls, whitespace of every kind,
# combining marks, emoji.
SPECIAL = "\x00\x01\x1b\x7f\t\n\r \u00a0\u2028\u3000\u200b\u0301\u0338\ufeff😀👩‍👩‍👧"
text = st.one_of(
    st.text(st.characters(), max_size=50),
    st.text(st.sampled_from(SPECIAL), max_size=20),
    st.text(st.characters(exclude_categories=("Cs",)), min_size=190, max_size=210),
    st.text(st.sampled_from("ab \u3000"), min_size=990, max_size=1010),
    st.builds(lambda s: f"\ud800{s}\udfff", st.text(max_size=5)),
)


def expected_title(value: str) -> str | None:
    """What the rules say is stored, or None when the rules refuse it."""
    try:
        return rules.clean_title(value)
    except ValueError:
        return None


def expected_description(value: str) -> tuple[bool, str | None]:
    try:
        return True, rules.clean_description(value)
    except ValueError:
        return False, None


@given(title=text, description=text)
async def test_create_round_trips_or_refuses(
    todo_db: TodoDatabase, title: str, description: str
) -> None:
    repo = TaskRepository(f"owner-{uuid.uuid4()}")
    title_ok = expected_title(title)
    description_ok, stored_description = expected_description(description)
    try:
        # model_construct: skip pydantic, so the repository's own checks are tested.
        created = await repo.create(
            TaskCreate.model_construct(title=title, description=description)
        )
    except TaskValidationError:
        assert title_ok is None or not description_ok
        assert await repo.counts() == dict.fromkeys(TaskStatus, 0)
        return
    assert title_ok is not None
    assert description_ok
    stored = await repo.get(created.id)
    assert stored.title == title_ok
    assert stored.description == stored_description


@given(title=text, description=text)
async def test_update_round_trips_or_changes_nothing(
    todo_db: TodoDatabase, title: str, description: str
) -> None:
    repo = TaskRepository(f"owner-{uuid.uuid4()}")
    task = await repo.create(TaskCreate(title="original", description="kept"))
    title_ok = expected_title(title)
    description_ok, stored_description = expected_description(description)
    change = TaskUpdate.model_construct(
        _fields_set={"title", "description"}, title=title, description=description
    )
    try:
        updated = await repo.update(task.id, change, expected_version=1)
    except TaskValidationError:
        assert title_ok is None or not description_ok
        assert await repo.get(task.id) == task, "a refused write changed the row"
        return
    assert (updated.title, updated.description) == (title_ok, stored_description)
    assert await repo.get(task.id) == updated


@given(title=text)
def test_schema_and_repository_agree(title: str) -> None:
    """The pydantic schema refuses exactly what the repository would refuse."""
    try:
        schema_title: str | None = TaskCreate(title=title).title
    except ValueError:  # pydantic.ValidationError is a ValueError
        schema_title = None
    assert schema_title == expected_title(title)


Operation = tuple[str, str, int]
operations = st.lists(
    st.tuples(
        st.sampled_from(["alice", "bob"]),
        st.sampled_from(["get", "update", "complete", "reopen", "delete", "create", "list"]),
        st.integers(min_value=0, max_value=5),
    ),
    min_size=1,
    max_size=25,
)


async def snapshot(repo: TaskRepository) -> list[dict[str, Any]]:
    page = await repo.list(limit=200)
    return [task.model_dump() for task in page.items]


@given(ops=operations)
async def test_no_operation_of_one_owner_touches_anothers_rows(
    todo_db: TodoDatabase, ops: list[Operation]
) -> None:
    run = uuid.uuid4().hex[:8]
    repos = {name: TaskRepository(f"{name}-{run}") for name in ("alice", "bob")}
    own: dict[str, list[TaskRead]] = {
        name: [await repo.create(TaskCreate(title=f"{name} {n}")) for n in range(3)]
        for name, repo in repos.items()
    }
    for actor, op, index in ops:
        other = "bob" if actor == "alice" else "alice"
        repo = repos[actor]
        before = await snapshot(repos[other])
        # Aim at the other owner's task half of the time: it must look missing.
        targets = own[other] + own[actor]
        target = targets[index % len(targets)]
        foreign = target.user_id != repo.owner_id
        try:
            result: Any = None
            if op == "get":
                result = await repo.get(target.id)
            elif op == "update":
                result = await repo.update(target.id, TaskUpdate(title=f"{actor} was here"))
            elif op == "complete":
                result = await repo.complete(target.id)
            elif op == "reopen":
                result = await repo.reopen(target.id)
            elif op == "delete":
                await repo.delete(target.id)
            elif op == "create":
                result = await repo.create(TaskCreate(title=f"new by {actor}"))
                own[actor].append(result)
            else:
                result = await repo.list(limit=200)
                assert all(t.user_id == repo.owner_id for t in result.items)
            assert not foreign or op in ("create", "list"), "reached another owner's task"
            if isinstance(result, TaskRead):
                assert result.user_id == repo.owner_id
        except TaskNotFound:
            pass  # foreign, or deleted earlier
        except TaskConflict:  # pragma: no cover - no versions are used here
            raise
        assert await snapshot(repos[other]) == before
