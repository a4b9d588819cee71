"""Pydantic schemas: what a web layer accepts and returns.

They apply the very functions of ``rules.py`` that the model applies, so a payload
the schema accepts is one the model and the database accept. Building a schema with
bad data raises pydantic's ``ValidationError`` (pydantic's contract);
``TaskRepository`` validates again whatever reaches it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from todo_app import rules
from todo_app.rules import TaskStatus

__all__ = ["AwareDatetime", "TaskCreate", "TaskPage", "TaskRead", "TaskUpdate"]


Title = Annotated[
    str,
    BeforeValidator(rules.clean_title),
    Field(
        description=(
            "Surrounding whitespace is stripped; the rest must be "
            f"1..{rules.TITLE_MAX_LENGTH} characters (no NUL, no lone surrogates)."
        ),
        # The pattern: something besides whitespace, and no NUL (what clean_title checks).
        json_schema_extra={
            "minLength": 1,
            "maxLength": rules.TITLE_MAX_LENGTH,
            "pattern": r"^[^\u0000]*[^\s\u0000][^\u0000]*$",
        },
    ),
]
Description = Annotated[
    str | None,
    BeforeValidator(rules.clean_description),
    Field(
        description=(
            f"Optional, at most {rules.DESCRIPTION_MAX_LENGTH} characters, kept verbatim; "
            "an empty string is stored as null."
        ),
        json_schema_extra={"maxLength": rules.DESCRIPTION_MAX_LENGTH},
    ),
]
#: The type of every datetime a client sends (a new field such as ``due_at``):
#: naive refused, aware normalised to UTC, so what ``create`` returns is what is stored.
AwareDatetime = Annotated[
    dt.datetime,
    AfterValidator(rules.clean_datetime),
    Field(description="With its offset (e.g. Z or +02:00); stored and returned in UTC."),
]
Status = Annotated[
    TaskStatus, Field(description="pending or completed; more statuses may be added.")
]
# What a stored row may hold: during a rolling deploy a newer version of todo_app can
# write a status this one does not know. It is returned as stored, never refused, so
# that one such row cannot make an owner's whole listing fail.
StoredStatus = Annotated[
    TaskStatus | str,
    Field(
        union_mode="left_to_right",
        description=(
            "A TaskStatus value; a status written by a newer version of todo_app is "
            "returned as the string stored."
        ),
    ),
]


class TaskCreate(BaseModel):
    """A new task. ``id`` may be chosen by the client to make retries idempotent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: Title
    description: Description = None
    status: Status = TaskStatus.PENDING
    id: uuid.UUID | None = Field(
        default=None,
        description=(
            "Client-chosen id for idempotent retries: repeating the same create returns "
            "the existing task; the same id with other content is a conflict."
        ),
    )


def _never_null(schema: dict[str, Any]) -> None:
    """JSON schema of a field that may be left out but is never null (``null`` is
    refused by the model validator): its non-null alternative alone."""
    options = [option for option in schema.pop("anyOf", []) if option.get("type") != "null"]
    schema.pop("default", None)
    if len(options) == 1:
        schema.update(options[0])


class TaskUpdate(BaseModel):
    """A partial change. Fields left out stay as they are; an explicit ``null``
    description clears it. Title and status cannot be null."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: Annotated[Title | None, Field(json_schema_extra=_never_null)] = None
    description: Description = None
    status: Annotated[Status | None, Field(json_schema_extra=_never_null)] = None

    @model_validator(mode="after")
    def _no_null_title_or_status(self) -> TaskUpdate:
        for name in ("title", "status"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields the client sent, with their cleaned values."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class TaskRead(BaseModel):
    """A stored task, as a web layer returns it. ``version`` is its ETag."""

    model_config = ConfigDict(from_attributes=True, frozen=True)

    id: uuid.UUID
    user_id: str
    title: str
    description: str | None
    status: StoredStatus
    version: int = Field(description="Starts at 1; +1 on every write. Send it back to update.")
    # Stored in UTC by the rule above: read back as stored, with no validator of
    # ours on the way (a Python call per value: 5% of a 50-task page).
    created_at: dt.datetime
    updated_at: dt.datetime
    completed_at: dt.datetime | None


class TaskPage(BaseModel):
    """One page of a listing. ``next_cursor`` is None on the last page."""

    model_config = ConfigDict(frozen=True)

    items: list[TaskRead]
    next_cursor: str | None = Field(
        default=None, description="Opaque; pass it back as `cursor` for the next page."
    )
