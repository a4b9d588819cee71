"""Pool hygiene for asyncpg: what runs when a connection goes back to the pool.

asyncpg resets every connection it takes back (``RESET ALL``, ``UNLISTEN *``, release
of advisory locks, ...; here also ``DISCARD TEMP``, since asyncpg's reset leaves
temporary tables behind): one network round trip per release, that is, per Tortoise
query. The reset exists because the previous user of the connection may have changed
its session state. ``reset_session`` keeps it for every checkout but one kind: a
checkout that todo_app itself made and used only for its own statements (see
``todo_app.sql``), which is then marked clean.

Why skipping is safe there: every checkout that is not marked ends with the full
reset, so a connection enters a marked checkout clean; during it, only the package's
fixed, parameterised SELECT/INSERT/UPDATE/DELETE/COPY statements run, none of which
sets a session variable, listens, takes a session-level advisory lock, opens a cursor
or creates a temporary object; an open transaction is rolled back by asyncpg before
this hook runs, in every case. So the connection leaves the marked checkout as clean
as it came, and the next user of the pool cannot see anything of the previous one.
``tests/test_pool_reset.py`` holds this to account on a pool of one connection.
"""

from __future__ import annotations

import weakref
from typing import Any

__all__ = ["mark_clean", "reset_session"]

_clean: weakref.WeakSet[Any] = weakref.WeakSet()


def mark_clean(connection: Any) -> None:
    """Mark an asyncpg connection (or its pool proxy) as used by todo_app alone,
    for the current checkout only."""
    _clean.add(getattr(connection, "_con", None) or connection)


async def reset_session(connection: Any) -> None:
    """The pool's ``reset`` hook: asyncpg's own reset query plus ``DISCARD TEMP``,
    unless the checkout was marked clean; a connection that died is discarded
    quietly (asyncpg would raise from the *release*, reporting a write that had
    succeeded as failed)."""
    if connection in _clean:
        _clean.discard(connection)
        return
    import asyncpg  # deferred: SQLite users never need it

    try:
        # asyncpg's reset leaves temporary tables behind: drop them too, so that the
        # next user of the pool cannot see (or collide with) the previous one's.
        await connection.execute(connection.get_reset_query() + "DISCARD TEMP;")
    except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError):
        connection.terminate()  # the pool opens a fresh one on the next acquire
