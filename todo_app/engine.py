"""The Tortoise engine of the PostgreSQL connections todo_app configures.

Tortoise's asyncpg client, with one change: its pool hands a connection given back to
the caller that has waited longest and bounds that wait (:func:`todo_app.pool.make_fair`).
``connection_entry()`` and ``tortoise_config()`` name this module as the ``engine``; a
host's plain URL keeps Tortoise's own client and asyncpg's queue.
"""

from __future__ import annotations

from typing import Any

from tortoise.backends.asyncpg.client import AsyncpgDBClient

from todo_app.pool import DEFAULT_POOL_TIMEOUT, make_fair

__all__ = ["FairPoolClient", "client_class"]


class FairPoolClient(AsyncpgDBClient):
    """``AsyncpgDBClient`` whose pool is fair; ``pool_timeout`` (seconds, None: no
    limit) bounds a wait for a free connection."""

    def __init__(self, *, pool_timeout: float | None = DEFAULT_POOL_TIMEOUT, **kwargs: Any):
        super().__init__(**kwargs)
        self.pool_timeout = pool_timeout

    async def create_pool(self, **kwargs: Any) -> Any:
        pool = await super().create_pool(**kwargs)
        # Before anyone can wait on it: the pool has not been handed out yet.
        make_fair(pool, timeout=self.pool_timeout)
        return pool


#: What Tortoise looks up in an engine module.
client_class = FairPoolClient
