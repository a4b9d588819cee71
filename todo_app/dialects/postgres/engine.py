"""The Tortoise engine of the PostgreSQL connections todo_app configures.

Tortoise's asyncpg client, with two changes: its pool hands a connection given back to
the caller that has waited longest and bounds that wait
(:func:`todo_app.dialects.postgres.pool.make_fair`), and its connections are
:class:`BoundedConnection`, which never make a caller wait on a server that has stopped
answering. ``connection_entry()`` and ``tortoise_config()`` name
this module as the ``engine``; a host's plain URL keeps Tortoise's own client and
asyncpg's queue.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final

from asyncpg import connect_utils
from asyncpg.connection import Connection
from tortoise.backends.asyncpg.client import AsyncpgDBClient

from todo_app.connection import DEFAULT_POOL_TIMEOUT
from todo_app.dialects.postgres.pool import make_fair

__all__ = ["BoundedConnection", "FairPoolClient", "bounded_hooks_present", "client_class"]

#: Longest a cancel request sent in the background (see BoundedConnection) may take.
CANCEL_REQUEST_TIMEOUT: Final = 10.0
_cancel_requests: set[asyncio.Task[None]] = set()


class BoundedConnection(Connection):  # type: ignore[misc]  # asyncpg is untyped
    """asyncpg's connection, which ends itself where asyncpg would wait for a cancel.

    When a statement's client-side timeout passes (the server's ``statement_timeout``
    plus a margin: the server has not answered) or its caller is cancelled, asyncpg
    sends a cancel request on a second connection and keeps the first until the server
    acknowledges it; the pool's release (and the next statement) wait for that, up to
    the timeout once more. A frozen server (a paused VM, a silent partition) never
    acknowledges: each call then cost twice its bound. Here the connection is closed
    at once instead (the pool opens a new one when needed), and the cancel request
    still goes out in the background (bounded by ``CANCEL_REQUEST_TIMEOUT``), so that
    a live server stops the statement. A timeout also closes the pool's *idle*
    connections to the same server: they are as dead, and the next caller would
    otherwise wait out the timeout again on one of them instead of connecting (to a
    promoted standby, say).

    asyncpg calls ``_cancel_current_command`` from its protocol and ``_execute`` for
    every statement with parameters: private API. With an asyncpg where they are
    not what this expects, the overrides are simply not called, and asyncpg's own
    behaviour remains (``tests/test_frozen.py`` fails)."""

    __slots__ = ("_todo_pool",)

    def _cancel_current_command(self, waiter: Any, cancel_waiter: Any = None) -> None:
        protocol = self._protocol
        holder = self._pool_holder() if getattr(self, "_pool_holder", None) else None
        self._todo_pool = getattr(holder, "_pool", None)
        pid = getattr(protocol, "backend_pid", None)
        secret = getattr(protocol, "backend_secret", None)
        # Not now: the protocol goes on using itself once this returns. Aborting
        # completes asyncpg's cancellation futures, so nothing waits on them, and
        # leaves the cleanup to the release (which sees a closed connection and
        # terminates it): a cleanup here would give the holder back to the pool under
        # a release already under way (asyncpg: "release() called on a free holder").
        self._loop.call_soon(self._give_up)
        cancel = getattr(connect_utils, "_cancel", None)
        if pid and secret is not None and callable(cancel):
            task = self._loop.create_task(
                _cancel_request(cancel, self._loop, self._addr, self._params, pid, secret)
            )
            _cancel_requests.add(task)
            task.add_done_callback(_cancel_requests.discard)

    def _give_up(self) -> None:
        if not self._aborted and self._protocol is not None:
            self._abort()

    async def _execute(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super()._execute(*args, **kwargs)
        except TimeoutError:
            self._drop_idle_peers()
            raise

    def _drop_idle_peers(self) -> None:
        pool = getattr(self, "_todo_pool", None)
        self._todo_pool = None
        for holder in getattr(pool, "_holders", ()):
            peer = getattr(holder, "_con", None)
            if (
                peer is not None
                and peer is not self
                and getattr(holder, "_in_use", True) is None  # idle in the pool
                and getattr(peer, "_addr", None) == self._addr
            ):
                peer.terminate()


def bounded_hooks_present() -> bool:
    """Whether asyncpg still calls the private methods :class:`BoundedConnection`
    overrides and has what they use (``todo_app.compat`` lists the check)."""
    return all(
        callable(getattr(Connection, name, None))
        for name in ("_cancel_current_command", "_execute", "_abort")
    ) and callable(getattr(connect_utils, "_cancel", None))


async def _cancel_request(
    cancel: Any, loop: Any, addr: Any, params: Any, pid: int, secret: int
) -> None:
    with contextlib.suppress(Exception):  # best effort: the caller has its answer
        async with asyncio.timeout(CANCEL_REQUEST_TIMEOUT):
            await cancel(
                loop=loop, addr=addr, params=params, backend_pid=pid, backend_secret=secret
            )


class FairPoolClient(AsyncpgDBClient):
    """``AsyncpgDBClient`` whose pool is fair and whose connections are bounded;
    ``pool_timeout`` (seconds, None: no limit) bounds a wait for a free connection."""

    connection_class = BoundedConnection

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
