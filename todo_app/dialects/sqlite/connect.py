"""SQLite's connections: a ``sqlite://`` URL's parameters as Tortoise's SQLite client
takes them. A file that cannot be opened is classified by the dialect's error table
(``todo_app.dialects.sqlite.dialect``), not as a connection failure: there is no
server to reach.
"""

from __future__ import annotations

from typing import Any

from todo_app.connection import integer_param
from todo_app.dsn import DatabaseURL
from todo_app.errors import DatabaseURLError

__all__ = ["describe_failure", "is_connection_failure", "sqlite_credentials", "tortoise_connection"]


def tortoise_connection(
    url: DatabaseURL, params: dict[str, str], **_options: Any
) -> dict[str, Any]:
    """The connection entry of a SQLite URL (the pool and server options do not apply):
    Tortoise's SQLite client, safe after a failed open
    (``todo_app.dialects.sqlite.engine``)."""
    return {
        "engine": "todo_app.dialects.sqlite.engine",
        "credentials": sqlite_credentials(url.sqlite_path, params),
    }


def sqlite_credentials(path: str, params: dict[str, str]) -> dict[str, Any]:
    credentials: dict[str, Any] = {
        "file_path": path,
        "journal_mode": params.pop("journal_mode", "WAL"),
        "journal_size_limit": integer_param(
            params.pop("journal_size_limit", "16384"), "journal_size_limit"
        ),
    }
    if params:
        raise DatabaseURLError(f"unsupported SQLite URL parameter(s) {sorted(params)}")
    return credentials


def is_connection_failure(exc: BaseException) -> bool:
    """Never: a SQLite file is not reached over a connection."""
    return False


def describe_failure(exc: BaseException, said: str) -> str | None:
    """None: SQLite's errors are described by the dialect's error table."""
    return None
