"""Every limit and normalisation rule of a Task, written once.

The model (``models.py``) and the pydantic schemas use these functions, so Python
rejects bad data before any SQL is built. The database holds the same rules as named
CHECK constraints; the migrations carry their own frozen copy of the numbers and
the whitespace set, and the test suite proves both sides agree at every boundary.

Each ``clean_*`` function returns the value as it will be stored, or raises
``ValueError`` with a message that does not repeat the (possibly huge) input.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Final


class TaskStatus(StrEnum):
    """Where a task stands. Stored as its value in a VARCHAR(32), so a new member
    needs no migration: add it here and it round-trips."""

    PENDING = "pending"
    COMPLETED = "completed"


def utc_now() -> dt.datetime:
    """Now, timezone-aware, in UTC, at microsecond precision (what both dialects keep)."""
    return dt.datetime.now(dt.UTC)


def clean_datetime(value: object) -> dt.datetime:
    """The aware-datetime rule of every datetime a caller gives (schemas, filters,
    cursors, the CLI): it must carry its offset, and is stored in UTC.

    A naive datetime is refused rather than guessed at: read as the machine's local
    time (as drivers do) it would mean another instant on another server."""
    if not isinstance(value, dt.datetime):
        raise ValueError(f"must be a datetime, not {type(value).__name__}")
    if value.utcoffset() is None:
        raise ValueError(
            "must be timezone-aware (with an offset such as +00:00 or Z): a naive "
            "datetime would be read in the server's local time zone"
        )
    return _in_utc(value)


def stored_datetime(value: dt.datetime) -> dt.datetime:
    """A datetime read back from the database, in UTC. Both dialects store UTC, so a
    value without an offset (SQLite text written around the package) is UTC."""
    if value.tzinfo is dt.UTC:
        return value  # what PostgreSQL gives and todo_app writes: nothing to do
    if value.utcoffset() is None:
        return value.replace(tzinfo=dt.UTC)
    return _in_utc(value)


def _in_utc(value: dt.datetime) -> dt.datetime:
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:  # year 1 at +01:00, year 9999 at -01:00
        raise ValueError("is out of range once converted to UTC (years 1 to 9999)") from None


TITLE_MAX_LENGTH: Final = 200
DESCRIPTION_MAX_LENGTH: Final = 1000
USER_ID_MAX_LENGTH: Final = 255
#: Room for future statuses: adding an enum member must not change the column.
STATUS_MAX_LENGTH: Final = 32
#: The version column is a 32-bit integer: a task at this version takes no more writes.
MAX_VERSION: Final = 2**31 - 1

#: Exactly the characters ``str.strip()`` removes (``str.isspace()``). The CHECK
#: constraints trim the same set, so "blank" means the same thing in Python and SQL
#: (SQL's own ``trim()`` strips spaces only).
WHITESPACE: Final = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)


def _check_storable(value: str) -> None:
    # PostgreSQL text cannot hold NUL, and a lone surrogate cannot be encoded as
    # UTF-8: reject both here, on every dialect, rather than fail in the driver.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if not value.isascii():
        # UTF-8 encodes every code point but a surrogate: one C pass, where a loop
        # over the characters cost ~50 ns each (a 1,000-character description, 50 µs).
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("must not contain unpaired surrogate characters") from None


def _require_str(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {type(value).__name__}")
    return value


def clean_title(value: object) -> str:
    """Strip surrounding whitespace; require 1..TITLE_MAX_LENGTH characters."""
    title = _require_str(value).strip()
    if not title:
        raise ValueError("must not be empty or whitespace only")
    if len(title) > TITLE_MAX_LENGTH:
        raise ValueError(f"must be at most {TITLE_MAX_LENGTH} characters (got {len(title)})")
    _check_storable(title)
    return title


def clean_description(value: object) -> str | None:
    """Keep the text as given; an empty string becomes ``None`` (stored as NULL)."""
    if value is None or value == "":
        return None
    description = _require_str(value)
    if len(description) > DESCRIPTION_MAX_LENGTH:
        raise ValueError(
            f"must be at most {DESCRIPTION_MAX_LENGTH} characters (got {len(description)})"
        )
    _check_storable(description)
    return description


def clean_user_id(value: object) -> str:
    """Owner ids are opaque: kept verbatim, but never blank and at most 255 characters."""
    user_id = _require_str(value)
    if not user_id.strip():
        raise ValueError("must not be empty or whitespace only")
    if len(user_id) > USER_ID_MAX_LENGTH:
        raise ValueError(f"must be at most {USER_ID_MAX_LENGTH} characters (got {len(user_id)})")
    _check_storable(user_id)
    return user_id
