"""From a database URL to Tortoise's connection entry, through the database's own module.

Each database has a *connect module* in its package (``CONNECTORS``), imported on
first use so that SQLite users never load asyncpg. It provides:

* ``tortoise_connection(url, params, **options)``: the ``{"engine", "credentials"}``
  entry for ``url`` (``params``: its parameters, consumed), refusing what its driver
  cannot honour with :class:`DatabaseURLError`;
* ``is_connection_failure(exc)``: whether its driver's ``exc`` means the database
  could not be reached, would not let us in, or the connection is gone;
* ``describe_failure(exc, said)``: one line for people about such a failure (None:
  not its driver's).

What the rest of the package asks (``tortoise_connection``, ``check_url``,
``is_connection_failure``, ``connection_failure``) is answered here, whatever the
database.
"""

from __future__ import annotations

import importlib
import re
from types import ModuleType
from typing import Any, Final

from todo_app.dsn import DatabaseURL, SSLMode
from todo_app.errors import DatabaseURLError

__all__ = [
    "CONNECTORS",
    "DEFAULT_POOL_TIMEOUT",
    "check_url",
    "connection_failure",
    "integer_param",
    "is_connection_failure",
    "tortoise_connection",
]

#: Each database's connect module, by the URL's dialect (Tortoise's name for it).
CONNECTORS: Final = {
    "postgres": "todo_app.dialects.postgres.connect",
    "sqlite": "todo_app.dialects.sqlite.connect",
}
#: Seconds a caller waits for a free connection: SQLAlchemy's ``pool_timeout`` and
#: psycopg_pool's ``timeout`` default, which operators already know.
DEFAULT_POOL_TIMEOUT: Final = 30.0
#: strtol() as libpq's pqParseIntParam uses it: C-locale blanks around a signed integer.
_INTEGER: Final = re.compile(r"[ \t\n\v\f\r]*([+-]?[0-9]+)[ \t\n\v\f\r]*")


def _connector(dialect: str) -> ModuleType:
    if dialect not in CONNECTORS:
        raise DatabaseURLError(f"todo_app supports {', '.join(CONNECTORS)}, not {dialect}")
    return importlib.import_module(CONNECTORS[dialect])


def tortoise_connection(
    url: DatabaseURL,
    *,
    pool_min_size: int = 1,
    pool_max_size: int = 10,
    pool_timeout: float | None = DEFAULT_POOL_TIMEOUT,
    ssl_mode: SSLMode | None = None,
    statement_cache_size: int | None = None,
    connect_timeout: float | None = None,
    statement_timeout: float | None = None,
) -> dict[str, Any]:
    """A Tortoise connection entry (``{"engine", "credentials"}``) for ``url``.

    Explicit arguments (from :class:`~todo_app.settings.Settings`) win over the URL's
    own parameters, except ``connect_timeout``, where the URL wins. Refusals are
    :class:`DatabaseURLError` naming the (masked) URL and the reason.
    """
    connector = _connector(url.dialect)
    with url.named():
        entry: dict[str, Any] = connector.tortoise_connection(
            url,
            url.params(),
            pool_min_size=pool_min_size,
            pool_max_size=pool_max_size,
            pool_timeout=pool_timeout,
            ssl_mode=ssl_mode,
            statement_cache_size=statement_cache_size,
            connect_timeout=connect_timeout,
            statement_timeout=statement_timeout,
        )
    return entry


def check_url(url: DatabaseURL) -> DatabaseURL:
    """``url`` if a connection entry can be built from it, else DatabaseURLError."""
    tortoise_connection(url)
    return url


def integer_param(text: str, key: str) -> int:
    """libpq's pqParseIntParam: an integer, or its exact refusal."""
    match = _INTEGER.fullmatch(text)
    if match is None or not -(2**31) <= int(match[1]) < 2**31:
        raise DatabaseURLError(f'invalid integer value "{text}" for connection option "{key}"')
    return int(match[1])


def is_connection_failure(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not be reached, would not let us in, or
    the connection is gone or unusable (as opposed to refusing a statement): the CLI's
    "unreachable" (exit 6), the repository's ``TaskStoreUnavailable``, a migration's
    pass-through. The one list of these, for every caller."""
    from tortoise.exceptions import DBConnectionError

    if isinstance(exc, DBConnectionError):
        return True
    return any(_connector(name).is_connection_failure(exc) for name in CONNECTORS)


def connection_failure(exc: BaseException) -> str:
    """One line with the server's reason for a failed connection, and what to check."""
    # Tortoise wraps a missing database in its own error; the driver's has the words.
    from tortoise.exceptions import DBConnectionError

    while isinstance(exc, DBConnectionError) and exc.__cause__ is not None:
        exc = exc.__cause__
    said = (str(exc).splitlines() or [""])[0][:300]
    for name in CONNECTORS:
        described: str | None = _connector(name).describe_failure(exc, said)
        if described is not None:
            return described
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror if not said or exc.strerror in said else said
    return said or type(exc).__name__
