"""The Tortoise engine of the SQLite connections todo_app configures.

Tortoise's SQLite client, with one change: a failed open leaves nothing behind.
Tortoise 1.1.9 takes the client's connection lock, then opens the file; when the open
raises (a missing directory, a directory, a file that is not a database, a read-only
mount), the lock is never released and the half-opened connection is kept, so every
later call on that client waits for ever. Here the lock is released and the
connection dropped, so the next call opens the file afresh: it works once the cause
is fixed, or fails the same way.

``connection_entry()`` and ``tortoise_config()`` name this module as the ``engine``;
a host's plain ``sqlite://`` URL keeps Tortoise's own client, and the SQLite dialect
opens such a client itself, safely, before the package's statements use it
(``todo_app.dialects.sqlite``).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from typing import Any, Final

import aiosqlite
from tortoise.backends.base.client import ConnectionWrapper, TransactionalDBClient
from tortoise.backends.sqlite.client import (
    SqliteClient,
    SqliteTransactionContext,
    SqliteTransactionWrapper,
)
from tortoise.connection import get_connections

__all__ = [
    "SafeOpenSqliteClient",
    "client_class",
    "discard_connection",
    "internals_as_expected",
    "open_connection",
]


#: How long a failed open waits for aiosqlite's worker thread to stop.
_WORKER_STOP_WAIT: Final = 5.0


async def open_connection(client: Any) -> None:
    """Tortoise 1.1's ``SqliteClient.create_connection``, leaving nothing behind when
    it fails: the half-opened connection (a file that is not a database fails at the
    first PRAGMA) is closed and dropped, and aiosqlite's worker thread has stopped.

    aiosqlite queues its worker's stop when ``connect`` fails but does not wait for
    it; a process that ends right after the error (the CLI) then closes the event
    loop under the worker, which prints a traceback from its thread."""
    if client._connection:
        return
    pending = aiosqlite.connect(client.filename, isolation_level=None)
    try:
        connection = await pending
    except BaseException:
        await _worker_stopped(pending)
        raise
    client._connection = connection
    try:
        connection._conn.row_factory = sqlite3.Row
        for pragma, value in client.pragmas.items():
            cursor = await connection.execute(f"PRAGMA {pragma}={value}")
            await cursor.close()
        await client._post_connect()
    except BaseException:
        await discard_connection(client)
        raise


async def _worker_stopped(pending: Any) -> None:
    # aiosqlite's private worker thread (feature-checked): without it, nothing to wait.
    thread = getattr(pending, "_thread", None)
    if not isinstance(thread, threading.Thread):
        return
    await asyncio.to_thread(thread.join, _WORKER_STOP_WAIT)


async def discard_connection(client: Any) -> None:
    """Drop ``client``'s connection after a failed open: Tortoise keeps the one it
    made before its PRAGMAs failed (a file that is not a database fails there)."""
    connection = getattr(client, "_connection", None)
    client._connection = None
    if connection is not None:
        with contextlib.suppress(Exception):  # it never worked
            await connection.close()


class _SafeConnectionWrapper(ConnectionWrapper[Any]):
    """Tortoise's wrapper, releasing the lock when opening the connection fails."""

    async def __aenter__(self) -> Any:
        await self._lock.acquire()
        try:
            await self.ensure_connection()
        except BaseException:
            self._lock.release()
            raise
        return self.connection


class _SafeTransactionContext(SqliteTransactionContext):
    """Tortoise's transaction context, releasing the lock (and the task's connection
    mark) when opening the connection or beginning fails."""

    async def __aenter__(self) -> TransactionalDBClient:
        await self._trxlock.acquire()
        try:
            await self.ensure_connection()
            self.token = get_connections().set(self.connection_name, self.connection)
            try:
                await self.connection.begin()
            except BaseException:
                get_connections().reset(self.token)
                raise
        except BaseException:
            self._trxlock.release()
            raise
        client: TransactionalDBClient = self.connection
        return client


class SafeOpenSqliteClient(SqliteClient):
    """``SqliteClient`` whose failed open releases its lock and drops the connection."""

    async def create_connection(self, with_db: bool) -> None:
        await open_connection(self)

    def acquire_connection(self) -> ConnectionWrapper[Any]:
        return _SafeConnectionWrapper(self._lock, self)

    def _in_transaction(self) -> SqliteTransactionContext:
        return _SafeTransactionContext(SqliteTransactionWrapper(self), self._lock)


def internals_as_expected() -> bool:
    """Whether Tortoise's SQLite client still has the lock and connection attributes
    the overrides above rely on (private API of Tortoise 1.1)."""
    probe = SqliteClient(file_path=":memory:", connection_name="probe")
    return (
        all(hasattr(probe, name) for name in ("_connection", "_lock", "filename", "pragmas"))
        and "_lock" in getattr(ConnectionWrapper, "__slots__", ())
        and "_trxlock" in getattr(SqliteTransactionContext, "__slots__", ())
        and hasattr(ConnectionWrapper, "ensure_connection")
        and hasattr(SqliteTransactionContext, "ensure_connection")
    )


#: What Tortoise looks up in an engine module. Should a later Tortoise rename the
#: internals, its own client is used unchanged (and the dialect's safe open remains).
client_class: type[SqliteClient] = SafeOpenSqliteClient if internals_as_expected() else SqliteClient
