"""Pool hooks for asyncpg: how the pool opens a connection (``LibpqConnect``, for
what asyncpg's keyword arguments cannot say), in what order waiting callers get one
(``make_fair``), and what runs when one goes back.

Fair hand-off. asyncpg's pool keeps free connections in an ``asyncio.Queue``. When a
connection is put back while callers wait, the queue only *wakes* the first waiter;
the connection stays in the queue until that waiter runs. A releaser that does not
suspend (``release_clean`` below) runs on, asks for a connection again and takes the
one it just gave back; the woken waiter finds the queue empty and ``Queue.get`` puts it
at the *end* of the line. Measured with 50 callers on a pool of 10 for 10 s: the
unluckiest got 2 calls done, the mean 451. ``make_fair`` changes the queue so that a connection put
back while callers wait is handed to the longest waiter directly (FIFO), whoever puts
it back (``release_clean``, ``Pool.release``, a failed connect, a cancelled caller),
and bounds the wait (``TaskStoreTimeout`` naming the pool size and the queue).

asyncpg resets every connection it takes back (``RESET ALL``, ``UNLISTEN *``, release
of advisory locks, ...; here also ``DISCARD TEMP``, since asyncpg's reset leaves
temporary tables behind): one network round trip per release, that is, per Tortoise
query. The reset exists because the previous user of the connection may have changed
its session state. ``reset_session`` keeps it for every checkout but one kind: a
checkout that todo_app itself made and used only for its own statements (see
``todo_app.dialects.postgres.dialect``), which is then marked clean.

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

import asyncio
import collections
import contextlib
import functools
import random
import socket
import ssl
import weakref
from collections.abc import Sequence
from typing import Any, Final

from todo_app.connection import DEFAULT_POOL_TIMEOUT
from todo_app.errors import TaskStoreTimeout

__all__ = [
    "LibpqConnect",
    "TcpKeepalives",
    "direct_release",
    "fair_queue_possible",
    "is_fair",
    "make_fair",
    "mark_clean",
    "release_clean",
    "reset_session",
]

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


async def release_clean(pool: Any, connection: Any) -> None:
    """Give back a marked checkout whose statements all succeeded.

    ``Pool.release`` runs the release in a shielded task, so that a caller cancelled
    during it cannot strand the connection: a task and two more turns of the event
    loop per checkout, about 15 µs (a tenth of a primary-key read). Here nothing can
    be stranded: no transaction is open after a statement that succeeded outside one,
    and the reset hook returns at once for a marked checkout, so the holder's release
    runs to its end without suspending. (It suspends only to close a connection past
    its ``max_queries`` or of an expired generation, and closing gives the holder back
    even when cancelled.) So the holder's own release is awaited directly. That is
    asyncpg's private API, checked here: where it is not as expected (another asyncpg),
    ``Pool.release`` does the job. ``tests/test_pool_reset.py`` holds both to account.

    A releaser that runs on must not jump the queue: the direct path is taken only on a
    pool :func:`make_fair` changed, where the connection goes to the longest waiter.
    """
    holder: Any = getattr(connection, "_holder", None)
    con: Any = getattr(connection, "_con", None)
    if (
        con is None
        or getattr(holder, "_pool", None) is not pool
        or not is_fair(pool)
        or not direct_release()
    ):
        # A pool with asyncpg's own queue (a host's plain URL): its shielded release
        # lets the woken waiter run before the releaser asks again, which is what keeps
        # that queue from starving callers (see the module doc).
        await pool.release(connection)
        return
    con._on_release()
    await holder.release(holder._timeout)


@functools.cache
def direct_release() -> bool:
    """Whether the installed asyncpg has the holder API ``release_clean`` relies on
    (asked on first use: SQLite users never import asyncpg)."""
    from asyncpg import connection, pool

    holder = getattr(pool, "PoolConnectionHolder", None)
    return all(
        callable(getattr(cls, name, None))
        for cls, name in ((holder, "release"), (connection.Connection, "_on_release"))
    ) and "_timeout" in getattr(holder, "__slots__", ())


def fair_queue_possible() -> bool:
    """Whether the installed asyncpg's pool keeps its free connections in ``_queue``,
    the attribute :func:`make_fair` changes (``todo_app.compat`` lists the check)."""
    from asyncpg import pool

    return "_queue" in pool.Pool.__init__.__code__.co_names


class _FairHandOff(asyncio.Queue[Any]):
    """Mixed into the class of an asyncpg pool's queue by :func:`make_fair`.

    Invariant: callers wait only while the queue is empty, so a free connection never
    sits in the queue while someone waits for one."""

    # Set by make_fair: the object's own __init__ has run long before.
    _fair_waiters: collections.deque[asyncio.Future[Any]]
    _fair_timeout: float | None

    def put_nowait(self, item: Any) -> None:
        waiters = self._fair_waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():  # not cancelled, not timed out
                waiter.set_result(item)
                return
        super().put_nowait(item)

    async def get(self) -> Any:
        if not self._fair_waiters and not self.empty():
            return self.get_nowait()  # the common case: a free connection, nobody waits
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()
        self._fair_waiters.append(waiter)
        timer = None
        if self._fair_timeout is not None:
            timer = loop.call_later(self._fair_timeout, self._give_up, waiter)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed a connection as the caller was cancelled: to the next in line.
                self.put_nowait(waiter.result())
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):  # already taken off by _give_up
                    self._fair_waiters.remove(waiter)
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _give_up(self, waiter: asyncio.Future[Any]) -> None:
        if waiter.done():
            return
        self._fair_waiters.remove(waiter)
        waiting = 1 + len(self._fair_waiters)  # only callers still waiting are in it
        size = self.maxsize  # asyncpg sizes its queue to the pool
        waiter.set_exception(
            TaskStoreTimeout(
                f"no free database connection after {self._fair_timeout:g} s: the pool's "
                f"{size} connection{'s' if size != 1 else ''} all in use, {waiting} "
                f"caller{'s' if waiting != 1 else ''} waiting (raise TODO_APP_POOL_MAX_SIZE "
                "within the server's max_connections, or TODO_APP_POOL_TIMEOUT)"
            )
        )


_fair_classes: dict[type[Any], type[Any]] = {}


def _fair_class(base: type[Any]) -> type[Any]:
    fair = _fair_classes.get(base)
    if fair is None:
        fair = type(f"Fair{base.__name__}", (_FairHandOff, base), {"__module__": __name__})
        _fair_classes[base] = fair
    return fair


def is_fair(pool: Any) -> bool:
    """Whether :func:`make_fair` changed ``pool``."""
    return isinstance(getattr(pool, "_queue", None), _FairHandOff)


def make_fair(pool: Any, *, timeout: float | None = DEFAULT_POOL_TIMEOUT) -> bool:
    """Make an asyncpg pool hand a connection given back to the longest waiter, and
    end a wait for one after ``timeout`` seconds (None: no limit) with
    :class:`TaskStoreTimeout`; see the module doc. Returns whether it did.

    Done in place (the queue object's class), right after the pool is created, before
    anybody can wait on it; an asyncpg whose pool keeps no ``asyncio.Queue`` is left
    alone (``False``), and then ``release_clean`` uses asyncpg's own release.
    """
    queue = getattr(pool, "_queue", None)
    if isinstance(queue, _FairHandOff):
        queue._fair_timeout = timeout
        return True
    if not isinstance(queue, asyncio.Queue) or getattr(queue, "_getters", None):
        return False
    queue._fair_waiters = collections.deque()  # type: ignore[attr-defined]
    queue._fair_timeout = timeout  # type: ignore[attr-defined]
    queue.__class__ = _fair_class(type(queue))
    return True


class LibpqConnect:
    """The pool's ``connect`` hook: libpq's order of attempts, one asyncpg connect each.

    Hosts are tried in order (shuffled under ``load_balance_hosts=random``), each with
    its own port and its own ``connect_timeout``, as libpq does; asyncpg's timeout
    would spend itself on the first host. On each host the transports are tried in
    order: ``[context, False]`` is ``prefer`` with a verifying context (TLS, verified;
    plain text if the server has no TLS or fails verification, as libpq falls back),
    ``[False, context]`` is ``allow``. ``prefer-standby`` looks for a standby on every
    host first, then takes any, like libpq.
    """

    __slots__ = ("addresses", "load_balance", "target_session_attrs", "timeout", "transports")

    def __init__(
        self,
        addresses: Sequence[tuple[str | None, int]],
        transports: Sequence[bool | str | ssl.SSLContext],
        *,
        timeout: float | None,
        target_session_attrs: str = "any",
        load_balance: bool = False,
    ) -> None:
        self.addresses = tuple(addresses)
        self.transports = tuple(transports)
        self.timeout = timeout
        self.target_session_attrs = target_session_attrs
        self.load_balance = load_balance

    def __repr__(self) -> str:
        hosts = ",".join(f"{host or ''}:{port}" for host, port in self.addresses)
        return f"LibpqConnect({hosts})"

    async def __call__(self, dsn: str | None = None, **kwargs: Any) -> Any:
        import asyncpg

        for key in ("host", "port", "ssl", "timeout", "target_session_attrs"):
            kwargs.pop(key, None)  # the pool's copies of what this hook decides
        addresses = list(self.addresses)
        if self.load_balance:
            random.shuffle(addresses)
        attrs = self.target_session_attrs
        passes = ("standby", "any") if attrs == "prefer-standby" else (attrs,)
        error: BaseException | None = None
        for attrs in passes:
            for host, port in addresses:
                for index, transport in enumerate(self.transports, start=1):
                    try:
                        return await asyncpg.connect(
                            host=host,
                            port=port,
                            ssl=transport,
                            timeout=self.timeout,
                            target_session_attrs=attrs,
                            **kwargs,
                        )
                    except (
                        asyncpg.TargetServerAttributeNotMatched,
                        asyncpg.CannotConnectNowError,
                    ) as exc:
                        error = exc  # libpq: on to the next host
                        break
                    except OSError as exc:  # refused, timed out, TLS refused or unverified
                        error = exc
                    except asyncpg.PostgresError as exc:
                        if index == len(self.transports):
                            raise  # authenticated or refused by a live server: libpq stops
                        error = exc
        assert error is not None  # every path above returns or sets it
        raise error


class TcpKeepalives:
    """The pool's ``init`` hook: libpq's TCP keepalive parameters, set on each new
    connection's socket (asyncpg takes none of them).

    With libpq's meanings: ``keepalives`` off sets nothing (not even
    ``tcp_user_timeout``, as in libpq); otherwise ``SO_KEEPALIVE`` and each of
    ``TCP_KEEPIDLE`` (``keepalives_idle``, seconds), ``TCP_KEEPINTVL``
    (``keepalives_interval``), ``TCP_KEEPCNT`` (``keepalives_count``) and
    ``TCP_USER_TIMEOUT`` (``tcp_user_timeout``, milliseconds) the platform has. Unix
    sockets are left alone, as libpq leaves them. Where libpq uses the kernel's value
    for a parameter the URL does not give (two hours of silence before the first
    probe, on Linux), todo_app uses ``DEFAULTS``: a peer gone silent is found out
    within a minute, not hours, on a connection idle in the pool too.
    """

    #: idle, interval, count: the first probe after 30 s of silence, one every 10 s,
    #: 3 unanswered end the connection (60 s); data unacknowledged for 60 s ends it too.
    DEFAULTS: Final = {"idle": 30, "interval": 10, "count": 3, "user_timeout": 60_000}

    __slots__ = ("count", "enabled", "idle", "interval", "user_timeout")

    def __init__(
        self,
        *,
        enabled: bool = True,
        idle: int = DEFAULTS["idle"],
        interval: int = DEFAULTS["interval"],
        count: int = DEFAULTS["count"],
        user_timeout: int = DEFAULTS["user_timeout"],
    ) -> None:
        self.enabled = enabled
        self.idle = idle
        self.interval = interval
        self.count = count
        self.user_timeout = user_timeout

    def __repr__(self) -> str:
        if not self.enabled:
            return "TcpKeepalives(off)"
        return (
            f"TcpKeepalives(idle={self.idle}s, interval={self.interval}s, count={self.count}, "
            f"tcp_user_timeout={self.user_timeout}ms)"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TcpKeepalives) and repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))

    def socket_options(self) -> dict[tuple[int, int], int]:
        """``{(level, option): value}``, what ``setsockopt`` is given."""
        if not self.enabled:
            return {(socket.SOL_SOCKET, socket.SO_KEEPALIVE): 0}
        options = {(socket.SOL_SOCKET, socket.SO_KEEPALIVE): 1}
        for name, value in (
            ("TCP_KEEPIDLE", self.idle),
            ("TCP_KEEPINTVL", self.interval),
            ("TCP_KEEPCNT", self.count),
            ("TCP_USER_TIMEOUT", self.user_timeout),
        ):
            option = getattr(socket, name, None)  # as libpq: where the platform has it
            if option is not None:
                options[(socket.IPPROTO_TCP, option)] = value
        return options

    def apply(self, sock: socket.socket) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            for (level, option), value in self.socket_options().items():
                sock.setsockopt(level, option, value)

    async def __call__(self, connection: Any) -> None:
        # asyncpg's connection keeps its transport in a private attribute; without
        # it (another asyncpg) the kernel's settings stay.
        transport = getattr(getattr(connection, "_con", connection), "_transport", None)
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            self.apply(sock)
