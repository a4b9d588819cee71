"""Reads on PostgreSQL streaming replicas, with read-your-writes through a token.

A connection (the *primary*: the one ``Task`` is bound to) may have read replicas:
other Tortoise connections of the same config, named by
``app_config(name, read_connections=[...])`` (``tortoise_config`` does it from
``TODO_APP_READ_URLS``). Then ``TaskRepository.get``/``list``/``counts`` read on a
replica; writes, reads inside a transaction and everything else stay on the primary.
Without read connections nothing here runs but one dict lookup per call.

**Which replica may serve a read.** Every ``check_interval`` seconds (lazily, in the
background of the reads that come due) two things are measured: the primary's
*committed* WAL position, as *samples* ``(t, L)`` ("every commit acknowledged before
``t`` lies at or before ``L``"; each write's token is such a sample too), and each
replica's replayed position ``R`` (``pg_last_wal_replay_lsn()``; on a server that is
not in recovery, its insert position). A replica then provably holds every
commit acknowledged before ``fresh_as_of``, the newest sample time whose ``L <= R``.
It serves reads while ``now - fresh_as_of <= max_lag``, it answered its last check,
and its schema passed the start-up guard's verdict (``schema_verdict``). The bound
is measured with this process's monotonic clock: no clock of any server is trusted.

**The committed position.** A commit is acknowledged once its WAL record is flushed,
so the primary's flush position (``pg_current_wal_flush_lsn()``) read after it lies
at or after that record, and never ahead of what a standby can be sent (the insert
position may be: WAL inserted but not yet flushed, which on a quiet server can wait
seconds for the WAL writer). Under ``synchronous_commit = off`` a commit is
acknowledged before its flush: there the insert position is used.

**Tokens.** A write leaves a consistency token, the primary's committed position
read after the commit (one cheap round trip, made only when replicas are
configured); it lies at or after the write's commit record.
A read given a token is served by a usable replica known to have replayed that far,
else by one that gets there within ``consistency_wait`` seconds (asked on the very
connection that then runs the read, *before* the read takes its snapshot), else by
the primary: never stale. A write inside the caller's own transaction cannot know
its commit position: it leaves the token ``"primary"``, which reads on the primary.

**Failures.** A replica that fails a read (down, dropped, behind the schema,
cancelled by a recovery conflict) is given up for that read, which runs on the
primary instead: a replica never turns a read into an error. A failed replica is
checked again every interval and serves again once a check finds it well.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from tortoise.backends.base.client import TransactionalDBClient

from todo_app import consistency
from todo_app.consistency import (
    PRIMARY,
    PRIMARY_TOKEN,
    ReplicaPolicy,
    format_token,
    lsn,
    newest_token,
    parse_token,
    register,
)
from todo_app.dialects import has_replicas
from todo_app.pool import mark_clean, release_clean

__all__ = [
    "PRIMARY_TOKEN",
    "REPLICA_STATUS_TIMEOUT",
    "ReplicaPolicy",
    "ReplicaStatus",
    "after_write",
    "format_token",
    "in_use",
    "newest_token",
    "parse_token",
    "reader",
    "register",
    "replica_status",
]

logger = logging.getLogger("todo_app.replicas")

#: The token of a write whose commit position is unknown: read on the primary.
_POSITION: Final = (
    "SELECT pg_is_in_recovery() AS standby, CASE WHEN pg_is_in_recovery() "
    "THEN COALESCE(pg_last_wal_replay_lsn(), '0/0') ELSE pg_current_wal_insert_lsn() END AS lsn"
)
#: Every commit acknowledged before this statement lies at or before its answer.
_COMMITTED_POSITION: Final = (
    "SELECT CASE WHEN current_setting('synchronous_commit') = 'off' "
    "THEN pg_current_wal_insert_lsn() ELSE pg_current_wal_flush_lsn() END"
)
#: A write's commit position is kept as a freshness sample at most this often.
_SAMPLE_SPACING: Final = 0.05
#: Longest pause between two looks at a replica a token read is waiting for.
_MAX_POLL: Final = 0.02
#: Seconds ``replica_status()`` waits for the checks it starts.
REPLICA_STATUS_TIMEOUT: Final = 5.0


# -- the replica set of one primary ----------------------------------------------------


class Reader(Protocol):
    """What the repository reads through (``todo_app.dialects.Runner`` is one)."""

    #: The dialect's statements (``todo_app.dialects.Statements``).
    sql: Any

    async def fetch(
        self, sql: str, *args: Any, idempotent: bool = False
    ) -> Sequence[Mapping[str, Any]]: ...

    async def fetchrow(
        self, sql: str, *args: Any, idempotent: bool = False
    ) -> Mapping[str, Any] | None: ...


@dataclass(frozen=True)
class ReplicaStatus:
    """One replica as the last check (or read) found it."""

    name: str
    #: ``ok``: serves reads; ``lagging``: not provably within ``max_lag``; ``down``:
    #: unreachable or failing; ``schema-behind``: its table is not what this code
    #: needs (``reason`` says why); ``unknown``: not checked yet.
    state: str
    #: Whether the server is a standby (False: a primary, say after a promotion).
    standby: bool | None
    #: Seconds of writes it may be missing (None: unknown).
    lag: float | None
    #: The WAL position it has replayed, as pg_lsn spells it (``0/3000148``).
    position: str | None
    #: Reads it has served in this process.
    reads: int
    reason: str


class _Replica:
    __slots__ = (
        "check", "client", "fresh_as_of", "name", "position", "reads", "reason", "schema_ok",
        "standby", "state",
    )  # fmt: skip

    def __init__(self, name: str, client: Any) -> None:
        self.name = name
        self.client = client
        self.state = "unknown"
        self.reason = "not checked yet"
        self.standby: bool | None = None
        #: The highest replayed position seen since it was last found well.
        self.position = 0
        self.fresh_as_of = -math.inf
        self.schema_ok = False
        self.reads = 0
        self.check: asyncio.Task[None] | None = None

    def usable(self, now: float, max_lag: float) -> bool:
        return self.state == "ok" and now - self.fresh_as_of <= max_lag

    def advance(self, position: int, samples: Sequence[tuple[float, int]]) -> None:
        if position > self.position:
            self.position = position
        for at, sampled in samples:
            if sampled <= self.position and at > self.fresh_as_of:
                self.fresh_as_of = at

    def fail(self, state: str, reason: str) -> None:
        if self.state != state:
            logger.warning("read replica %r is %s: %s", self.name, state, reason)
        self.state, self.reason = state, reason
        self.position, self.fresh_as_of = 0, -math.inf
        if state == "down":
            self.schema_ok = False  # a server that comes back may be another one

    def status(self, now: float, max_lag: float) -> ReplicaStatus:
        lag = now - self.fresh_as_of if self.state == "ok" else None
        state = self.state
        if state == "ok" and not self.usable(now, max_lag):
            state = "lagging"
        return ReplicaStatus(
            name=self.name,
            state=state,
            standby=self.standby,
            lag=None if lag is None or math.isinf(lag) else round(lag, 3),
            position=lsn(self.position) if self.position else None,
            reads=self.reads,
            reason=self.reason
            if state != "lagging"
            else f"not shown to be within {max_lag:g}s of the primary",
        )


class ReplicaSet:
    """The replicas of one primary client, in one Tortoise context."""

    def __init__(self, primary: Any, policy: ReplicaPolicy) -> None:
        from tortoise.connection import connections
        from tortoise.exceptions import ConfigurationError

        self._primary = weakref.ref(primary)  # the set lives as long as its primary
        self.policy = policy
        self.replicas: list[_Replica] = []
        for name in policy.connections:
            try:
                client = connections.get(name)
            except ConfigurationError:
                logger.warning(
                    "read connection %r of %r is not in the Tortoise config: not used",
                    name,
                    primary.connection_name,
                )
                continue
            if has_replicas(client):
                self.replicas.append(_Replica(name, client))
            else:
                logger.warning("read connection %r is not PostgreSQL: not used", name)
        self._samples: deque[tuple[float, int]] = deque()
        self._sampling: asyncio.Task[None] | None = None
        self._due = 0.0
        self._turn = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- measuring ---------------------------------------------------------------------

    def add_sample(self, at: float, lsn: int) -> None:
        """Every commit acknowledged before ``at`` lies at or before ``lsn``."""
        samples = self._samples
        if samples and at - samples[-1][0] < _SAMPLE_SPACING and lsn >= samples[-1][1]:
            return  # often enough: the check interval is the resolution promised
        samples.append((at, lsn))
        horizon = at - self.policy.max_lag - 2 * self.policy.check_interval
        while len(samples) > 1 and samples[0][0] < horizon:
            samples.popleft()
        for replica in self.replicas:
            replica.advance(replica.position, ((at, lsn),))

    def _spawn(self, coroutine: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _start_checks(self) -> list[asyncio.Task[None]]:
        if self._sampling is None or self._sampling.done():
            self._sampling = self._spawn(self._sample_primary())
        running = [self._sampling]
        for replica in self.replicas:
            # A replica that hangs holds up its own check only.
            if replica.check is None or replica.check.done():
                replica.check = self._spawn(self._check(replica))
            running.append(replica.check)
        return running

    def due(self, now: float) -> None:
        if now >= self._due:
            self._due = now + self.policy.check_interval
            self._start_checks()

    async def check_now(self) -> None:
        self._due = time.monotonic() + self.policy.check_interval
        # The primary's position first, then the replicas': a replica that has
        # replayed it is found fresh on this very round.
        await self._sample_primary()
        await asyncio.gather(*self._start_checks()[1:])

    async def _sample_primary(self) -> None:
        primary = self._primary()
        if primary is None:
            return
        at = time.monotonic()
        try:
            async with _acquire(primary) as connection:
                lsn = await connection.fetchval(_COMMITTED_POSITION)
        except Exception as exc:  # the primary being down is the writers' news, not ours
            logger.debug("cannot read the primary's WAL position: %s", _reason(exc))
            return
        self.add_sample(at, int(lsn))

    async def _check(self, replica: _Replica) -> None:
        from todo_app.guard import inspect_schema, schema_verdict

        try:
            async with _acquire(replica.client) as connection:
                row = await connection.fetchrow(_POSITION)
            if not replica.schema_ok:
                verdict = schema_verdict(await inspect_schema(replica.client))
                if verdict is not None:
                    replica.fail("schema-behind", str(verdict))
                    return
                replica.schema_ok = True
        except Exception as exc:
            if self._primary() is not None:  # else: the context closed under the check
                replica.fail("down", _reason(exc))
            return
        if replica.state != "ok":
            logger.info("read replica %r serves reads again", replica.name)
        replica.state, replica.reason = "ok", ""
        replica.standby = bool(row["standby"])
        replica.advance(int(row["lsn"]), self._samples)

    # -- reading -----------------------------------------------------------------------

    async def read(
        self, sql: str, args: tuple[Any, ...], token: int | None
    ) -> Sequence[Mapping[str, Any]] | None:
        """Rows from a replica allowed to serve this read; None: read on the primary."""
        now = time.monotonic()
        self.due(now)
        max_lag = self.policy.max_lag
        usable = [replica for replica in self.replicas if replica.usable(now, max_lag)]
        if not usable:
            return None
        start = next(self._turn) % len(usable)
        usable = usable[start:] + usable[:start]  # spread the reads
        if token is not None:
            known = [replica for replica in usable if replica.position >= token]
            if not known:
                best = max(usable, key=lambda replica: replica.position)
                return await self._wait_and_read(best, sql, args, token)
            usable = known
        for replica in usable:
            rows = await self._try(replica, sql, args)
            if rows is not None:
                return rows
        return None

    async def _try(
        self, replica: _Replica, sql: str, args: tuple[Any, ...]
    ) -> Sequence[Mapping[str, Any]] | None:
        try:
            async with _acquire(replica.client) as connection:
                rows: Sequence[Mapping[str, Any]] = await connection.fetch(sql, *args)
        except Exception as exc:
            self._failed(replica, exc)
            return None
        replica.reads += 1
        return rows

    async def _wait_and_read(
        self, replica: _Replica, sql: str, args: tuple[Any, ...], token: int
    ) -> Sequence[Mapping[str, Any]] | None:
        """Rows read on ``replica`` once it has replayed ``token``; None if it does not
        within the wait. The position is asked on the connection that then reads, in
        a statement of its own: the read's snapshot is taken after the replay."""
        deadline = time.monotonic() + self.policy.consistency_wait
        pause = 0.001
        while True:
            try:
                async with _acquire(replica.client) as connection:
                    row = await connection.fetchrow(_POSITION)
                    replica.advance(int(row["lsn"]), self._samples)
                    if int(row["lsn"]) >= token:
                        rows: Sequence[Mapping[str, Any]] = await connection.fetch(sql, *args)
                        replica.reads += 1
                        return rows
            except Exception as exc:
                self._failed(replica, exc)
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, _MAX_POLL)

    def _failed(self, replica: _Replica, exc: Exception) -> None:
        import asyncpg

        if isinstance(exc, asyncpg.UndefinedTableError | asyncpg.UndefinedColumnError):
            replica.schema_ok = False
            replica.fail("schema-behind", _reason(exc))
        elif isinstance(exc, asyncpg.SerializationError | asyncpg.QueryCanceledError):
            # A recovery conflict or the statement timeout cancelled this one read:
            # the replica itself is well. The read runs on the primary.
            logger.info("read replica %r refused a read: %s", replica.name, _reason(exc))
        else:
            replica.fail("down", _reason(exc))

    def statuses(self) -> list[ReplicaStatus]:
        now = time.monotonic()
        return [replica.status(now, self.policy.max_lag) for replica in self.replicas]


_sets: weakref.WeakKeyDictionary[Any, ReplicaSet] = weakref.WeakKeyDictionary()


def _replica_set(db: Any) -> ReplicaSet | None:
    """The replica set of ``db`` (a primary client outside a transaction), if any."""
    policy = consistency.policies.get(db.connection_name)
    if policy is None or not has_replicas(db):
        return None
    if isinstance(db, TransactionalDBClient):
        return None
    replica_set = _sets.get(db)
    if replica_set is None or replica_set.policy is not policy:
        replica_set = _sets[db] = ReplicaSet(db, policy)
    return replica_set if replica_set.replicas else None


# -- the repository's seam ---------------------------------------------------------------


class _RoutedReader:
    """Reads on a replica the token allows, else on the primary's reader."""

    __slots__ = ("_fallback", "_primary", "_replicas", "_token", "sql")

    def __init__(
        self,
        replicas: ReplicaSet,
        token: int | None,
        primary: Any,
        fallback: Callable[[Any], Reader],
    ) -> None:
        self._replicas = replicas
        self._token = token
        self._primary = primary
        self._fallback = fallback
        # Replicas speak the primary's dialect: the same statements.
        self.sql = fallback(primary).sql

    async def fetch(
        self, sql: str, *args: Any, idempotent: bool = False
    ) -> Sequence[Mapping[str, Any]]:
        rows = await self._replicas.read(sql, args, self._token)
        if rows is not None:
            return rows
        return await self._fallback(self._primary).fetch(sql, *args, idempotent=idempotent)

    async def fetchrow(
        self, sql: str, *args: Any, idempotent: bool = False
    ) -> Mapping[str, Any] | None:
        rows = await self.fetch(sql, *args, idempotent=idempotent)
        return rows[0] if rows else None


def reader(db: Any, token: int | None, fallback: Callable[[Any], Reader]) -> Reader | None:
    """Where a read of the repository runs: a reader over ``db``'s replicas, or None
    for ``fallback(db)`` itself (no replicas, inside a transaction, the ``primary``
    token). ``fallback`` makes the primary's reader (``Runner``)."""
    if not consistency.policies or token == PRIMARY:
        return None  # the common case costs this one test
    replicas = _replica_set(db)
    if replicas is None:
        return None
    return _RoutedReader(replicas, token, db, fallback)


def in_use() -> bool:
    """Whether any connection has read replicas: without them the repository's
    replica seam costs this one test per write."""
    return bool(consistency.policies)


async def after_write(db: Any, token: int | None) -> int | None:
    """The token after a write on ``db`` that succeeded: the primary's committed WAL
    position now, which lies at or after the write's commit record. Unchanged when ``db``
    has no replicas; ``PRIMARY`` inside the caller's transaction (the commit is still
    to come) or when the position cannot be read (the write itself succeeded)."""
    policy = consistency.policies.get(db.connection_name) if consistency.policies else None
    if policy is None or not has_replicas(db):
        return token
    if isinstance(db, TransactionalDBClient):
        return PRIMARY
    replicas = _replica_set(db)
    if replicas is None:
        return token
    at = time.monotonic()
    try:
        async with _acquire(db) as connection:
            position = int(await connection.fetchval(_COMMITTED_POSITION))
    except Exception as exc:
        logger.info("no consistency token after a write (%s): reads go to the primary", exc)
        return PRIMARY
    replicas.add_sample(at, position)
    return position


async def replica_status(
    connection: str | None = None, *, within: float = REPLICA_STATUS_TIMEOUT
) -> list[ReplicaStatus]:
    """Check every read replica of ``connection`` (default: the one ``Task`` is bound
    to) now, and say how each one is; empty when it has none.

    Returns within ``within`` seconds: a replica whose check has not answered by then
    (a frozen server, a silent partition) is reported and treated as ``down``, and its
    check goes on in the background (it serves again once a check finds it well)."""
    from tortoise.connection import connections

    from todo_app.models import Task

    db = Task._meta.db if connection is None else connections.get(connection)
    replicas = _replica_set(db)
    if replicas is None:
        return []
    checking = replicas._spawn(replicas.check_now())
    done, _ = await asyncio.wait({checking}, timeout=within)
    if done:
        checking.result()  # its errors are the caller's
    else:
        for replica in replicas.replicas:
            if replica.check is not None and not replica.check.done():
                replica.fail("down", f"no answer to its check within {within:g} s")
    return replicas.statuses()


# -- plumbing ----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _acquire(client: Any) -> AsyncIterator[Any]:
    """A pooled asyncpg connection of ``client`` for todo_app's own statements only
    (so the pool may skip its reset: see ``todo_app.pool``)."""
    pool = client._pool
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


def _reason(exc: BaseException) -> str:
    from todo_app.connection import connection_failure, is_connection_failure

    if isinstance(exc, TimeoutError | asyncio.TimeoutError):  # an OSError: first
        return "no answer in time"
    if is_connection_failure(exc) or isinstance(exc, OSError):
        return connection_failure(exc)
    return (str(exc).splitlines() or [type(exc).__name__])[0][:300] or type(exc).__name__
