"""The aware-datetime rule (``rules.clean_datetime``) at every datetime input, and
``create`` returning the stored row, on both dialects and in any process time zone
(issue 20).

Aware datetimes compare equal across offsets (``18:00+02:00 == 16:00Z``), so these
tests compare what clients see: the JSON, and each value's offset.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import DIALECTS, FreshURL
from todo_app import (
    TaskCreate,
    TaskRead,
    TaskRepository,
    TaskStatus,
    TaskUpdate,
    TaskValidationError,
    rules,
)
from todo_app.models import Task
from todo_app.pagination import Cursor
from todo_app.schemas import AwareDatetime
from todo_app.testing import TodoDatabase

ZONES = ["UTC", "Europe/Berlin", "America/St_Johns", "Asia/Kathmandu", "Pacific/Kiritimati"]
offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)
aware = st.datetimes(
    min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=offsets
)
naive = st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1))


@contextmanager
def process_time_zone(zone: str) -> Iterator[None]:
    """The process's local time zone (what a naive datetime would be read in)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def assert_utc(task: TaskRead) -> None:
    for name in ("created_at", "updated_at", "completed_at"):
        value = getattr(task, name)
        assert value is None or value.utcoffset() == dt.timedelta(0), (name, value)


# -- the rule ---------------------------------------------------------------------------


@given(value=aware)
def test_an_aware_datetime_is_the_same_instant_in_utc(value: dt.datetime) -> None:
    cleaned = rules.clean_datetime(value)
    assert cleaned == value
    assert cleaned.tzinfo is dt.UTC


@given(value=naive, zone=st.sampled_from(ZONES))
def test_a_naive_datetime_is_refused_in_any_time_zone(value: dt.datetime, zone: str) -> None:
    with process_time_zone(zone), pytest.raises(ValueError, match="must be timezone-aware"):
        rules.clean_datetime(value)


def test_the_rule_refuses_what_is_no_instant_python_holds_in_utc() -> None:
    plus_one = dt.timezone(dt.timedelta(hours=1))
    with pytest.raises(ValueError, match="out of range once converted to UTC"):
        rules.clean_datetime(dt.datetime(1, 1, 1, tzinfo=plus_one))
    with pytest.raises(ValueError, match="must be a datetime, not str"):
        rules.clean_datetime("2026-01-01T00:00:00Z")


class Appointment(pydantic.BaseModel):
    """A schema with a datetime a client sends, as a new field of TaskCreate is typed."""

    at: AwareDatetime


def test_the_schema_type_refuses_naive_naming_the_field_and_stores_utc() -> None:
    with pytest.raises(pydantic.ValidationError) as refused:
        Appointment.model_validate({"at": "2026-12-06T18:00:00"})
    (error,) = refused.value.errors()
    assert error["loc"] == ("at",)
    assert "must be timezone-aware" in error["msg"]
    moment = Appointment.model_validate_json('{"at": "2026-12-06T18:00:00+02:00"}').at
    assert (moment.isoformat(), moment.tzinfo) == ("2026-12-06T16:00:00+00:00", dt.UTC)


def _datetime_validators(annotation: Any) -> list[Any] | None:
    """The validators on the datetime in ``annotation`` (also inside ``X | None`` and
    ``Annotated``), or None when it holds no datetime."""
    if annotation is dt.datetime:
        return []
    if get_origin(annotation) is Annotated:
        inner, *metadata = get_args(annotation)
        found = _datetime_validators(inner)
        return None if found is None else found + [getattr(m, "func", None) for m in metadata]
    for member in get_args(annotation):
        found = _datetime_validators(member)
        if found is not None:
            return found
    return None


def _datetime_fields(schema: type[pydantic.BaseModel]) -> dict[str, list[Any]]:
    """Each field of ``schema`` whose type holds a datetime, with its validators."""
    found = {}
    for name, field in schema.model_fields.items():
        validators = _datetime_validators(field.annotation)
        if validators is not None:
            found[name] = validators + [getattr(meta, "func", None) for meta in field.metadata]
    return found


def test_every_datetime_a_client_sends_takes_the_rule() -> None:
    """A datetime field added to an input schema (``due_at``, say) must be typed
    ``AwareDatetime``."""
    stored = _datetime_fields(TaskRead)
    # The probe works: it finds the datetimes the store keeps (and any field added since).
    assert {"completed_at", "created_at", "updated_at"} <= set(stored)
    assert _datetime_fields(Appointment) == {"at": [rules.clean_datetime]}
    for schema in (TaskCreate, TaskUpdate):
        for name, validators in _datetime_fields(schema).items():
            assert rules.clean_datetime in validators, f"{schema.__name__}.{name}"


# -- datetime inputs of the store -------------------------------------------------------


@pytest.mark.usefixtures("todo_db")
@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
async def test_a_naive_filter_is_refused_naming_the_field(zone: str) -> None:
    await TaskRepository("alice").create(TaskCreate(title="a"))
    with process_time_zone(zone):
        for value in (dt.datetime(2026, 12, 6, 18), "2026-12-06T18:00:00"):
            with pytest.raises(TaskValidationError) as refused:
                await Task.filter(created_at__lt=value).count()
            assert refused.value.field == "created_at"
            assert "must be timezone-aware" in refused.value.message


@pytest.mark.usefixtures("todo_db")
@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
async def test_an_aware_filter_means_its_instant_whatever_its_offset(zone: str) -> None:
    repo = TaskRepository("alice")
    created = (await repo.create(TaskCreate(title="a"))).created_at
    with process_time_zone(zone):
        for hours in (-11, -1, 0, 2, 14):
            shifted = created.astimezone(dt.timezone(dt.timedelta(hours=hours)))
            assert await Task.filter(created_at__lt=shifted).count() == 0
            assert await Task.filter(created_at__lte=shifted).count() == 1
            assert await Task.filter(created_at__lte=shifted.isoformat()).count() == 1


def test_a_cursor_with_a_naive_moment_is_refused() -> None:
    moment = dt.datetime(2026, 12, 6, 18, tzinfo=dt.UTC)
    token = Cursor(moment, uuid.uuid4(), "newest", None).encode()
    assert Cursor.decode(token, order="newest", status=None).created_at == moment
    naive_document = {"t": "2026-12-06T18:00:00", "i": str(uuid.uuid4()), "o": "newest", "s": None}
    forged = base64.urlsafe_b64encode(json.dumps(naive_document).encode()).decode().rstrip("=")
    with pytest.raises(TaskValidationError, match="is not a cursor"):
        Cursor.decode(forged, order="newest", status=None)


# -- create returns the stored row ------------------------------------------------------


def _create_inputs() -> st.SearchStrategy[dict[str, Any]]:
    """A TaskCreate's fields: text with surrounding whitespace (stored stripped), any
    status, and every datetime field (none today; ``due_at`` tomorrow) at any offset."""
    fields: dict[str, st.SearchStrategy[Any]] = {
        "title": st.sampled_from(["a", "  padded\t", "\u3000wide\u3000"]),
        "description": st.sampled_from([None, "", "kept  "]),
        "status": st.sampled_from(list(TaskStatus)),
    }
    for name in _datetime_fields(TaskCreate):
        fields[name] = aware
    return st.fixed_dictionaries(fields)


@given(values=_create_inputs(), zone=st.sampled_from(ZONES))
async def test_create_returns_what_get_returns(
    todo_db: TodoDatabase, values: dict[str, Any], zone: str
) -> None:
    repo = TaskRepository(f"owner-{uuid.uuid4()}")
    with process_time_zone(zone):
        created = await repo.create(TaskCreate.model_validate(values))
        stored = await repo.get(created.id)
        modelled = await Task.create(user_id=repo.owner_id, **values)
        fetched = await Task.get(id=modelled.id)
    assert created.model_dump_json() == stored.model_dump_json()
    assert_utc(created)
    assert TaskRead.model_validate(modelled).model_dump_json() == (
        TaskRead.model_validate(fetched).model_dump_json()
    )
    for name in _datetime_fields(TaskCreate):
        assert getattr(created, name) == values[name]  # the same instant, in UTC


@pytest.mark.usefixtures("todo_db")
async def test_an_update_returns_what_get_returns() -> None:
    repo = TaskRepository("alice")
    task = await repo.create(TaskCreate(title="a"))
    with process_time_zone("Asia/Kathmandu"):
        done = await repo.complete(task.id)
        renamed = await repo.update(task.id, TaskUpdate(title="  b "))
    assert done.completed_at is not None
    assert renamed.model_dump_json() == (await repo.get(task.id)).model_dump_json()
    assert_utc(renamed)


# -- in a process whose local time is not UTC ------------------------------------------

BERLIN_SCRIPT = """
    import asyncio
    import datetime as dt
    import sys

    import pydantic

    import todo_app
    from todo_app import TaskCreate, TaskRepository, TaskValidationError
    from todo_app.models import Task
    from todo_app.schemas import AwareDatetime


    class Appointment(pydantic.BaseModel):
        at: AwareDatetime


    async def main() -> None:
        assert dt.datetime(2026, 12, 6, 18).astimezone().utcoffset() == dt.timedelta(hours=1)
        async with todo_app.lifespan(todo_app.tortoise_config(sys.argv[1]), schema="migrate"):
            repo = TaskRepository("alice")
            created = await repo.create(TaskCreate(title="in Berlin"))
            assert created.model_dump_json() == (await repo.get(created.id)).model_dump_json()
            assert created.created_at.utcoffset() == dt.timedelta(0)
            try:
                await Task.filter(created_at__gte=dt.datetime(2026, 12, 6, 18)).count()
            except TaskValidationError as exc:
                assert exc.field == "created_at", exc
            else:
                raise AssertionError("a naive filter was accepted")
            try:
                Appointment(at="2026-12-06T18:00:00")
            except pydantic.ValidationError:
                pass
            else:
                raise AssertionError("a naive datetime was accepted")
            at = Appointment(at="2026-12-06T18:00:00+01:00").at
            assert at.isoformat() == "2026-12-06T17:00:00+00:00", at
        print("ok")


    asyncio.run(main())
"""


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_in_berlin_naive_is_refused_and_create_is_get(
    dialect: str, fresh_database_url: FreshURL, tmp_path: Path
) -> None:
    url = (await fresh_database_url(dialect)).reveal()
    script = tmp_path / "berlin.py"
    script.write_text(textwrap.dedent(BERLIN_SCRIPT))
    env = {**os.environ, "TZ": "Europe/Berlin"}
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(script), url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (result.returncode, result.stdout.strip()) == (0, "ok"), result.stderr


# -- rows written around the package ------------------------------------------------------


@pytest.mark.parametrize("stored", ["2026-01-01 10:00:00", "2026-01-01 10:00:00.250000"])
async def test_a_sqlite_timestamp_stored_without_offset_reads_back_as_utc(
    todo_sqlite: TodoDatabase, stored: str
) -> None:
    """SQLite text without an offset is UTC, as everything stored is: it never comes back
    naive, where a cursor (or a host) would take it for local time and page in a loop."""
    from tests.helpers import raw_insert

    first = await raw_insert(todo_sqlite, user_id="alice", title="first")
    second = await raw_insert(todo_sqlite, user_id="alice", title="second")
    await todo_sqlite.connection.execute_query(
        'UPDATE "todo_app_task" SET "created_at" = ?, "updated_at" = ? WHERE "id" = ?',
        [stored, stored, str(first)],
    )
    repo = TaskRepository("alice")
    expected = dt.datetime.fromisoformat(stored).replace(tzinfo=dt.UTC)
    with process_time_zone("Europe/Berlin"):
        task = await repo.get(first)
        assert task.created_at == expected
        assert_utc(task)
        seen: list[uuid.UUID] = []
        page = await repo.list(limit=1, order="oldest")
        while True:
            seen += [item.id for item in page.items]
            assert len(seen) <= 2, f"the listing repeats itself: {seen}"
            if page.next_cursor is None:
                break
            page = await repo.list(limit=1, order="oldest", cursor=page.next_cursor)
    assert seen == [first, second]
