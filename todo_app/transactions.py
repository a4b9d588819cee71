"""Write transactions that wait for each other instead of failing, on both dialects.

Tortoise begins SQLite transactions as ``BEGIN`` (deferred): two processes that each
read and then write inside a transaction do not queue on SQLite's busy timeout, one
of them fails at once with "database is locked". A write transaction here takes the
write lock up front (``BEGIN IMMEDIATE``), so concurrent writers wait their turn.
PostgreSQL needs nothing: row locks and MVCC do the queueing.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from tortoise.backends.base.client import BaseDBAsyncClient, NestedTransactionContext
from tortoise.transactions import in_transaction

__all__ = ["write_transaction"]


@contextlib.asynccontextmanager
async def write_transaction(connection_name: str) -> AsyncIterator[BaseDBAsyncClient]:
    """``in_transaction(connection_name)``, holding SQLite's write lock from the start.

    Inside a caller's transaction it is a savepoint, as Tortoise makes it, and the
    caller's transaction already decides the locking.
    """
    context = in_transaction(connection_name)
    nested = isinstance(context, NestedTransactionContext)
    async with context as tx:
        if not nested and tx.capabilities.dialect == "sqlite":
            # Swap the deferred BEGIN Tortoise just issued for an immediate one. The
            # connection is Tortoise's single SQLite connection, held under its lock.
            await tx.execute_query("COMMIT")
            await tx.execute_query("BEGIN IMMEDIATE")
        yield tx
