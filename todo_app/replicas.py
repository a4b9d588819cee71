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

**Which server is a replica.** WAL positions of two clusters, or of one cluster's
databases, compare as numbers but mean nothing to each other: a position proves
freshness only on a physical standby of the primary's cluster (the same
``system_identifier`` in ``pg_control_system()``), connected to the same database
(``current_database()``), still in recovery. Each check asks this of its connection,
and each connection a read is about to use is asked once, when it is first used (so
every connection the pool (re)opens, wherever the replica's address now leads). A
server that is not one is ``not-a-replica``; a standby no longer in recovery is
``promoted`` (it follows the primary no more), unless it *is* the primary's server
(same cluster, database and ``pg_postmaster_start_time()``: the primary's own URL
listed as a read URL, or the standby the primary's URL now leads to after a failover).
Neither serves. The primary's side is read once, and again only to tell whether a
server out of recovery is the primary itself.

**States.** Every change of a replica's state (``ReplicaStatus.state``) is logged
once on ``todo_app.replicas`` and handed to the callbacks of ``on_replica_state``.

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

from tortoise.backends.base.client import TransactionalDBClient

from todo_app import replica_policy
from todo_app.dialects import replication_of
from todo_app.dialects.base import Replication
from todo_app.replica_policy import ReplicaPolicy
from todo_app.tokens import PRIMARY, lsn

__all__ = [
    "REPLICA_STATUS_TIMEOUT",
    "ReplicaStatus",
    "after_write",
    "in_use",
    "on_replica_state",
    "reader",
    "replica_status",
]

logger = logging.getLogger("todo_app.replicas")

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
    #: needs (a migration not replayed yet); ``not-a-replica``: its server is not a
    #: standby of the primary's cluster, or another database; ``promoted``: no
    #: longer in recovery (it follows the primary no more); ``unknown``: not checked
    #: yet, or the primary's position is not known yet. Only ``ok`` serves reads;
    #: ``reason`` says why not.
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


@dataclass(frozen=True)
class _Identity:
    """Which server, and which database on it, a connection reached."""

    system: int
    database: str
    started: datetime


class _Replica:
    __slots__ = (
        "check", "client", "fresh_as_of", "name", "position", "reads", "reason", "reported",
        "schema_ok", "standby", "state", "verified",
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
        #: Its connections (the driver's) proven to reach a standby of the primary.
        self.verified: weakref.WeakSet[Any] = weakref.WeakSet()
        #: The status last reported (logged, told to subscribers).
        self.reported = ReplicaStatus(name, "unknown", None, None, None, 0, self.reason)

    def usable(self, now: float, max_lag: float) -> bool:
        return self.state == "ok" and now - self.fresh_as_of <= max_lag

    def advance(self, position: int, samples: Sequence[tuple[float, int]]) -> None:
        if position > self.position:
            self.position = position
        for at, sampled in samples:
            if sampled <= self.position and at > self.fresh_as_of:
                self.fresh_as_of = at

    def fail(self, state: str, reason: str) -> None:
        """Stop serving (the caller reports the change: ``ReplicaSet._report``)."""
        self.state, self.reason = state, reason
        self.position, self.fresh_as_of = 0, -math.inf
        # A server that comes back, or is fixed, may be another one: prove it again.
        self.schema_ok = False
        self.verified = weakref.WeakSet()

    def status(self, now: float, max_lag: float, *, sampled: bool = True) -> ReplicaStatus:
        """``sampled``: whether the primary's position was ever read (else the lag
        of a well replica is not known yet: ``unknown``)."""
        lag = now - self.fresh_as_of if self.state == "ok" else None
        state = self.state
        if state == "ok" and not self.usable(now, max_lag):
            state = "lagging"
            if not sampled:
                state = "unknown"  # reason below
        return ReplicaStatus(
            name=self.name,
            state=state,
            standby=self.standby,
            lag=None if lag is None or math.isinf(lag) else round(lag, 3),
            position=lsn(self.position) if self.position else None,
            reads=self.reads,
            reason={
                "lagging": f"not shown to be within {max_lag:g}s of the primary",
                "unknown": self.reason or "the primary's WAL position is not known yet",
            }.get(state, self.reason),
        )


class ReplicaSet:
    """The replicas of one primary client, in one Tortoise context."""

    def __init__(self, primary: Any, policy: ReplicaPolicy) -> None:
        from tortoise.connection import connections
        from tortoise.exceptions import ConfigurationError

        self._primary = weakref.ref(primary)  # the set lives as long as its primary
        self.policy = policy
        replication = replication_of(primary)
        assert replication is not None, "a set is made for a primary that can have replicas"
        #: The database's side: its SQL, connections and failures (replicas share it).
        self.replication: Replication = replication
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
            if replication_of(client) is not None:
                self.replicas.append(_Replica(name, client))
                replication.prepare_replica(client)
            else:
                logger.warning("read connection %r is not PostgreSQL: not used", name)
        self._samples: deque[tuple[float, int]] = deque()
        self._sampling: asyncio.Task[None] | None = None
        self._due = 0.0
        self._turn = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
        #: The primary's server and database (None: not read yet).
        self._identity: _Identity | None = None

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
            async with self.replication.acquire(primary) as connection:
                lsn = await connection.fetchval(self.replication.committed_position)
        except Exception as exc:  # the primary being down is the writers' news, not ours
            logger.debug("cannot read the primary's WAL position: %s", self.replication.reason(exc))
            return
        self.add_sample(at, int(lsn))

    async def _check(self, replica: _Replica) -> None:
        from todo_app.schema_state import inspect_schema, schema_verdict

        try:
            async with self.replication.acquire(replica.client) as connection:
                row = await connection.fetchrow(self.replication.check)
                server = getattr(connection, "_con", None) or connection
            replica.standby = bool(row["standby"])
            if (difference := await self._difference(row)) is not None:
                replica.fail(*difference)
            else:
                replica.verified.add(server)
                verdict = None
                if not replica.schema_ok:
                    verdict = schema_verdict(await inspect_schema(replica.client))
                if verdict is not None:
                    replica.fail("schema-behind", _not_replayed(verdict))
                else:
                    replica.schema_ok = True
                    replica.state, replica.reason = "ok", ""
                    replica.advance(int(row["lsn"]), self._samples)
        except Exception as exc:
            if self._primary() is None:
                return  # the context closed under the check
            replica.fail("down", self.replication.reason(exc))
        self._report(replica)

    async def _primary_identity(self, *, again: bool = False) -> _Identity | None:
        """The primary's server and database (None: never reached); ``again``: read
        it anew (a restart changes its start time)."""
        primary = self._primary()
        if primary is None or (self._identity is not None and not again):
            return self._identity
        try:
            async with self.replication.acquire(primary) as connection:
                row = await connection.fetchrow(self.replication.identity)
        except Exception as exc:  # the primary being down is the writers' news
            logger.debug("cannot read the primary's identity: %s", self.replication.reason(exc))
            return self._identity
        self._identity = _Identity(int(row["system"]), row["database"], row["started"])
        return self._identity

    async def _difference(self, row: Mapping[str, Any]) -> tuple[str, str] | None:
        """Why the server that answered ``Replication.identity`` (a state and a reason), or None
        when it is a standby of the primary's cluster on the primary's database, or
        the primary's server itself."""
        primary = await self._primary_identity()
        if primary is None:
            return "unknown", "the primary did not answer: cannot prove it is a replica"
        system, database = int(row["system"]), row["database"]
        if system != primary.system:
            return "not-a-replica", (
                f"its server is not a standby of the primary's cluster (system identifier "
                f"{system}, the primary's {primary.system}): fix the read URL"
            )
        if database != primary.database:
            return "not-a-replica", (
                f"it is database {database!r}, the primary's is {primary.database!r}: "
                "fix the read URL"
            )
        if row["standby"]:
            return None
        if row["started"] != primary.started:
            primary = await self._primary_identity(again=True)
        if primary is not None and row["started"] == primary.started:
            return None  # the primary's own server
        return "promoted", (
            "its server is no longer a standby (pg_is_in_recovery() is false): promoted, "
            "it follows the primary no more"
        )

    async def _proven(self, replica: _Replica, connection: Any) -> bool:
        """Whether ``connection`` of ``replica`` may serve: asked once per connection
        (one round trip when the pool has (re)opened one), so that no read runs on a
        server a check has not seen."""
        server = getattr(connection, "_con", None) or connection
        if server in replica.verified:
            return True
        difference = await self._difference(await connection.fetchrow(self.replication.identity))
        if difference is None:
            replica.verified.add(server)
            return True
        replica.fail(*difference)
        self._report(replica)
        return False

    def _report(self, replica: _Replica) -> None:
        """Log a change of ``replica``'s state, once, and tell the subscribers."""
        after = replica.status(time.monotonic(), self.policy.max_lag, sampled=bool(self._samples))
        before, replica.reported = replica.reported, after
        if after.state == before.state:
            return
        if after.state == "ok":
            if before.state == "unknown":
                logger.info("read replica %r is ok: it serves reads", replica.name)
            else:
                logger.info(
                    "read replica %r is ok again: it serves reads again (it was %s)",
                    replica.name,
                    before.state,
                )
        else:
            logger.warning("read replica %r is %s: %s", replica.name, after.state, after.reason)
        for callback in tuple(_subscribers):
            try:
                callback(before, after)
            except Exception:  # a subscriber's bug never breaks a read
                logger.exception("a subscriber of replica states (%r) failed", callback)

    # -- reading -----------------------------------------------------------------------

    async def read(
        self, sql: str, args: tuple[Any, ...], token: int | None, bound: float | None = None
    ) -> Sequence[Mapping[str, Any]] | None:
        """Rows from a replica allowed to serve this read; None: read on the primary.
        ``bound``: the read's own lag bound, which tightens the policy's, never loosens
        it (older samples are not kept: no proof of a looser one)."""
        now = time.monotonic()
        self.due(now)
        max_lag = self.policy.max_lag if bound is None else min(bound, self.policy.max_lag)
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
            async with self.replication.acquire(replica.client) as connection:
                if not await self._proven(replica, connection):
                    return None
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
                async with self.replication.acquire(replica.client) as connection:
                    if not await self._proven(replica, connection):
                        return None
                    row = await connection.fetchrow(self.replication.position)
                    if replica.standby and not row["standby"]:
                        # Promoted since its check: its position is of a timeline of
                        # its own and proves nothing about the primary's writes.
                        replica.fail("promoted", "its server is no longer a standby")
                        self._report(replica)
                        return None
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
        failure = self.replication.read_failure(exc)
        if failure is None:
            # A recovery conflict or the statement timeout cancelled this one read:
            # the replica itself is well. The read runs on the primary.
            reason = self.replication.reason(exc)
            logger.info("read replica %r refused a read: %s", replica.name, reason)
            return
        replica.fail(*failure)
        self._report(replica)

    def statuses(self) -> list[ReplicaStatus]:
        for replica in self.replicas:
            self._report(replica)  # a replica may have become lagging since its check
        return [replica.reported for replica in self.replicas]


_sets: weakref.WeakKeyDictionary[Any, ReplicaSet] = weakref.WeakKeyDictionary()

#: A subscriber: called with a replica's status before and after a change of state.
StateCallback = Callable[[ReplicaStatus, ReplicaStatus], object]
_subscribers: list[StateCallback] = []


def on_replica_state(callback: StateCallback) -> Callable[[], None]:
    """Call ``callback(before, after)`` (two ``ReplicaStatus``) at every change of a
    read replica's state, in any connection of the process; returns the function that
    unsubscribes it. It runs in the event loop, inside the read or check that saw
    the change: keep it quick (start a task for I/O). Its exceptions are logged on
    ``todo_app.replicas`` and go no further."""
    _subscribers.append(callback)

    def unsubscribe() -> None:
        with contextlib.suppress(ValueError):
            _subscribers.remove(callback)

    return unsubscribe


def _replica_set(db: Any) -> ReplicaSet | None:
    """The replica set of ``db`` (a primary client outside a transaction), if any."""
    policy = replica_policy.policies.get(db.connection_name)
    if policy is None or replication_of(db) is None:
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

    __slots__ = ("_fallback", "_max_lag", "_primary", "_replicas", "_token", "sql")

    def __init__(
        self,
        replicas: ReplicaSet,
        token: int | None,
        primary: Any,
        fallback: Callable[[Any], Reader],
        max_lag: float | None = None,
    ) -> None:
        self._replicas = replicas
        self._token = token
        self._max_lag = max_lag
        self._primary = primary
        self._fallback = fallback
        # Replicas speak the primary's dialect: the same statements.
        self.sql = fallback(primary).sql

    async def fetch(
        self, sql: str, *args: Any, idempotent: bool = False
    ) -> Sequence[Mapping[str, Any]]:
        rows = await self._replicas.read(sql, args, self._token, self._max_lag)
        if rows is not None:
            return rows
        return await self._fallback(self._primary).fetch(sql, *args, idempotent=idempotent)

    async def fetchrow(
        self, sql: str, *args: Any, idempotent: bool = False
    ) -> Mapping[str, Any] | None:
        rows = await self.fetch(sql, *args, idempotent=idempotent)
        return rows[0] if rows else None


def reader(
    db: Any, token: int | None, fallback: Callable[[Any], Reader], *, max_lag: float | None = None
) -> Reader | None:
    """Where a read of the repository runs: a reader over ``db``'s replicas, or None
    for ``fallback(db)`` itself (no replicas, inside a transaction, the ``primary``
    token, a ``max_lag`` of 0). ``fallback`` makes the primary's reader (``Runner``);
    ``max_lag`` is the read's own lag bound (s), within the configured one."""
    if not replica_policy.policies or token == PRIMARY:
        return None  # the common case costs this one test
    if max_lag is not None and max_lag <= 0:
        return None  # no replica can prove it holds what was committed an instant ago
    replicas = _replica_set(db)
    if replicas is None:
        return None
    return _RoutedReader(replicas, token, db, fallback, max_lag)


def in_use() -> bool:
    """Whether any connection has read replicas: without them the repository's
    replica seam costs this one test per write."""
    return bool(replica_policy.policies)


async def after_write(db: Any, token: int | None) -> int | None:
    """The token after a write on ``db`` that succeeded: the primary's committed WAL
    position now, which lies at or after the write's commit record. Unchanged when ``db``
    has no replicas; ``PRIMARY`` inside the caller's transaction (the commit is still
    to come) or when the position cannot be read (the write itself succeeded)."""
    policy = replica_policy.policies.get(db.connection_name) if replica_policy.policies else None
    if policy is None or replication_of(db) is None:
        return token
    if isinstance(db, TransactionalDBClient):
        return PRIMARY
    replicas = _replica_set(db)
    if replicas is None:
        return token
    at = time.monotonic()
    try:
        async with replicas.replication.acquire(db) as connection:
            position = int(await connection.fetchval(replicas.replication.committed_position))
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


def _not_replayed(verdict: Any) -> str:
    """The guard's verdict on a standby's table, said for a standby: it cannot be
    migrated, only replay the primary's migrations."""
    if verdict.pending:
        return (
            f"{len(verdict.pending)} migration(s) not replayed yet "
            f"({', '.join(verdict.pending)}): it serves again once it has replayed them "
            "(migrate the primary; a standby only replays)"
        )
    return str(verdict)
