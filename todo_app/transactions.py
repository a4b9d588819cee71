"""Write transactions that wait for each other instead of failing, and that clean up
after themselves when the connection dies.

* Tortoise begins SQLite transactions as ``BEGIN`` (deferred): two processes that each
  read and then write inside a transaction do not queue on SQLite's busy timeout; one
  fails at once with "database is locked". Here a write transaction takes the write
  lock up front (``BEGIN IMMEDIATE``), so concurrent writers wait their turn.
  PostgreSQL needs nothing: row locks and MVCC do the queueing.
* Tortoise 1.1's pooled transaction marks the task as "in a transaction" *before* it
  sends ``BEGIN``; if the connection is dead by then, the mark and the pooled
  connection are never given back, and every later transaction of that task becomes a
  savepoint on a released connection. Here both are restored whatever fails.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from tortoise.backends.base.client import (
    BaseDBAsyncClient,
    NestedTransactionContext,
    TransactionContext,
)
from tortoise.connection import get_connections
from tortoise.transactions import in_transaction

from todo_app.compat import token_used, transaction_leftovers
from todo_app.dialects import dialect_for

__all__ = ["write_transaction"]


@contextlib.asynccontextmanager
async def write_transaction(connection_name: str) -> AsyncIterator[BaseDBAsyncClient]:
    """``in_transaction(connection_name)``, holding SQLite's write lock from the start.

    Inside a caller's transaction it is a savepoint, as Tortoise makes it, and the
    caller's transaction already decides the locking.
    """
    context = in_transaction(connection_name)
    nested = isinstance(context, NestedTransactionContext)
    try:
        tx = await context.__aenter__()
    except BaseException:
        await _give_back(context, release=True)
        raise
    try:
        if not nested:
            # The dialect's write lock (SQLite: BEGIN IMMEDIATE instead of Tortoise's
            # deferred BEGIN); a caller's transaction already decides the locking.
            await dialect_for(tx).begin_write(tx)
        yield tx
    except BaseException as exc:
        try:
            await context.__aexit__(type(exc), exc, exc.__traceback__)
        finally:
            await _give_back(context, release=False)
        raise
    else:
        try:
            await context.__aexit__(None, None, None)
        finally:
            await _give_back(context, release=False)


async def _give_back(context: TransactionContext, *, release: bool) -> None:
    """Undo what a transaction context left behind; a no-op when it left nothing."""
    token = getattr(context, "token", None)
    if token is None or token_used(token):
        return
    get_connections().reset(token)
    if not release:
        return
    # Entering failed after the context took its resources: the pooled connection
    # (PostgreSQL) or the connection lock (SQLite) must be given back.
    lock, connection, pool = transaction_leftovers(context)
    if lock is not None and lock.locked():
        lock.release()
    if connection is not None and pool is not None:
        with contextlib.suppress(Exception):  # it is being discarded: it may be dead
            await pool.release(connection)
