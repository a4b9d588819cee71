"""What read replicas need of PostgreSQL: the WAL positions and server identity asked of
each server (streaming replication), checkouts on the client's asyncpg pool for the
package's own statements, and asyncpg's failures read for a replica's state.
``todo_app.replicas`` holds the state machine; nothing there knows asyncpg.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Final

from todo_app.compat import client_pool
from todo_app.connection import connection_failure, is_connection_failure
from todo_app.dialects.base import Replication
from todo_app.dialects.postgres.pool import mark_clean, release_clean

__all__ = ["StreamingReplication"]

#: Whether the server is a standby, and the position it has replayed (a primary: its
#: insert position).
_POSITION: Final = (
    "SELECT pg_is_in_recovery() AS standby, CASE WHEN pg_is_in_recovery() "
    "THEN COALESCE(pg_last_wal_replay_lsn(), '0/0') ELSE pg_current_wal_insert_lsn() END AS lsn"
)
#: Which server a connection reached: a replica's is compared with the primary's.
_IDENTITY: Final = (
    "SELECT pg_is_in_recovery() AS standby, "
    "(SELECT system_identifier FROM pg_control_system()) AS system, "
    "current_database() AS database, pg_postmaster_start_time() AS started"
)
#: A replica's check: ``_IDENTITY`` and ``_POSITION`` in one round trip.
_CHECK: Final = (
    _IDENTITY + ", CASE WHEN pg_is_in_recovery() "
    "THEN COALESCE(pg_last_wal_replay_lsn(), '0/0') ELSE pg_current_wal_insert_lsn() END AS lsn"
)
#: Every commit acknowledged before this statement lies at or before its answer.
_COMMITTED_POSITION: Final = (
    "SELECT CASE WHEN current_setting('synchronous_commit') = 'off' "
    "THEN pg_current_wal_insert_lsn() ELSE pg_current_wal_flush_lsn() END"
)


class StreamingReplication(Replication):
    """PostgreSQL's physical standbys, as ``todo_app.replicas`` measures them."""

    position = _POSITION
    identity = _IDENTITY
    check = _CHECK
    committed_position = _COMMITTED_POSITION

    def prepare_replica(self, client: Any) -> None:
        if client_pool(client) is None and hasattr(client, "pool_minsize"):
            # No connection floor: the checks are a replica's reconnect loop. asyncpg
            # would keep one by reconnecting a replica that is down in the background,
            # logging a traceback at every attempt.
            client.pool_minsize = 0

    @contextlib.asynccontextmanager
    async def acquire(self, client: Any) -> AsyncIterator[Any]:
        """A pooled asyncpg connection of ``client`` for todo_app's own statements only
        (so the pool may skip its reset: see ``todo_app.dialects.postgres.pool``)."""
        pool = client_pool(client)
        if pool is None:  # not opened yet: Tortoise opens it, once, under its lock
            async with client.acquire_connection() as connection:
                mark_clean(connection)
                yield connection
            return
        connection = await pool.acquire()
        mark_clean(connection)
        try:
            yield connection
        except BaseException:
            await pool.release(connection)  # shielded: a cancelled caller strands nothing
            raise
        await release_clean(pool, connection)

    def read_failure(self, exc: BaseException) -> tuple[str, str] | None:
        import asyncpg

        if isinstance(exc, asyncpg.UndefinedTableError | asyncpg.UndefinedColumnError):
            return "schema-behind", f"{self.reason(exc)}: it has not replayed a migration yet"
        if isinstance(exc, asyncpg.SerializationError | asyncpg.QueryCanceledError):
            # A recovery conflict or the statement timeout cancelled this one read: the
            # replica itself is well.
            return None
        return "down", self.reason(exc)

    def reason(self, exc: BaseException) -> str:
        import asyncpg

        if isinstance(exc, TimeoutError | asyncio.TimeoutError):  # an OSError: first
            return "no answer in time"
        if isinstance(exc, asyncpg.ConnectionDoesNotExistError):
            # An open connection that broke: the server was reached before, so it is one.
            return f"the server closed the connection ({exc}): stopped, crashed or restarted"
        if is_connection_failure(exc) or isinstance(exc, OSError):
            return connection_failure(exc)
        return (str(exc).splitlines() or [type(exc).__name__])[0][:300] or type(exc).__name__
