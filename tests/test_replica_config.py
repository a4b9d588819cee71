"""Read replicas without a server: the settings, the config, the registry, tokens,
and that nothing changes (or costs) without read URLs."""

from __future__ import annotations

import math
import os
import time
from collections import deque
from types import SimpleNamespace
from typing import Any

import pytest

import todo_app
from todo_app import Settings, TaskRepository, TaskValidationError, replica_policy, replicas
from todo_app.replica_policy import ReplicaPolicy
from todo_app.replicas import ReplicaSet, _Replica
from todo_app.settings import SettingsError, get_settings
from todo_app.tokens import PRIMARY, format_token, newest_token, parse_token

PRIMARY_URL = "postgresql://app:secret@db.example/app"
REPLICA = "postgresql://app:secret@replica-1.example/app"
OTHER = "postgresql://app:secret@replica-2.example/app"


@pytest.fixture(autouse=True)
def _clean_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replica_policy, "policies", {})
    for name in list(os.environ):
        if name.startswith("TODO_APP_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir("/")  # no .env


# -- tokens ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position"),
    [(None, None), ("1", 1), ("16B374D848", 0x16B374D848), (" 16b374d848 ", 0x16B374D848),
     ("ffffffffffffffff", 2**64 - 1), ("primary", PRIMARY)],
)  # fmt: skip
def test_tokens_parse(text: str | None, position: int | None) -> None:
    assert parse_token(text) == position
    if position is not None:
        assert parse_token(format_token(position)) == position


#: Not a token todo_app makes: an old or foreign cookie, a default value, pg_lsn's own
#: spelling, a negative or absurdly large number, something that is not even text.
NOT_OURS = [
    "", "  ", "0", "00", "zzz", "yesterday", "16/B374D848", "x", "1" * 17, "F" * 40, "-1",
    "+1", "primary!", "PRIMARY", "0x10", "1A 2B", "\x00", "1\n2", 42, 0, -5, b"16B3", 1.5, [],
]  # fmt: skip


@pytest.mark.parametrize("text", NOT_OURS, ids=repr)
def test_a_token_that_is_not_ours_reads_on_the_primary(
    text: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="todo_app.replicas")
    # Never an error (an old cookie must not break a page), never a replica that
    # may be stale: the primary.
    assert parse_token(text) == PRIMARY
    repo = TaskRepository("alice", consistency=text)
    assert repo.consistency_token == "primary"
    assert newest_token(text, "1A") == "primary"
    assert all(record.levelname == "DEBUG" for record in caplog.records)
    assert "not a consistency token" in caplog.text


def test_tokens_are_header_and_cookie_safe() -> None:
    text = format_token(0x16B374D848)
    assert text == "16B374D848"
    assert text.isalnum()
    assert TaskRepository("alice", consistency=text).consistency_token == text
    assert TaskRepository("alice").consistency_token is None


def test_newest_token_covers_them_all() -> None:
    assert newest_token() is None
    assert newest_token(None, None) is None
    assert newest_token("A", "10", None, "F") == "10"
    assert newest_token("A", "primary") == "primary"  # a position unknown: the primary


@pytest.mark.parametrize("bound", [-1, -0.001, math.inf, math.nan, "1", True, None])
def test_a_per_request_lag_bound_is_seconds(bound: Any) -> None:
    if bound is None:
        TaskRepository("alice", max_lag=None)  # the default: the configured limit
        return
    with pytest.raises(TaskValidationError) as caught:
        TaskRepository("alice", max_lag=bound)
    assert caught.value.field == "max_lag"


async def test_a_lag_bound_of_zero_reads_on_the_primary() -> None:
    replica_policy.register("main", ["main_ro"])
    db = _client("main")
    # No replica can prove it holds what was committed an instant ago.
    assert replicas.reader(db, None, lambda db: db, max_lag=0) is None
    assert replicas.reader(db, 5, lambda db: db, max_lag=0.0) is None


# -- settings -------------------------------------------------------------------------


def test_read_urls_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", PRIMARY_URL)
    monkeypatch.setenv("TODO_APP_READ_URLS", f"  {REPLICA}\n {OTHER} ")
    settings = get_settings()
    assert [url.reveal() for url in settings.read_urls] == [REPLICA, OTHER]
    assert "secret" not in repr(settings.read_urls)
    monkeypatch.setenv("TODO_APP_READ_URLS", f'["{REPLICA}"]')
    assert [url.reveal() for url in get_settings().read_urls] == [REPLICA]
    monkeypatch.setenv("TODO_APP_READ_URLS", "")
    assert get_settings().read_urls == []
    defaults = get_settings()
    assert (defaults.replica_max_lag, defaults.consistency_wait) == (5.0, 0.1)
    assert defaults.replica_check_interval == 1.0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("sqlite://replica.db", "a read replica must be PostgreSQL"),
        ("postgresql://u@r1,r2/app", "names several hosts"),
        ("postgresql://u@h/app?host=r1,r2", "names several hosts"),
        ("postgresql://u@h:0/app", "invalid port number"),
        ('["postgresql://u@h/app"', "not a valid JSON list"),
    ],
)
def test_read_urls_refused(monkeypatch: pytest.MonkeyPatch, value: str, message: str) -> None:
    monkeypatch.setenv("DATABASE_URL", PRIMARY_URL)
    monkeypatch.setenv("TODO_APP_READ_URLS", value)
    with pytest.raises(SettingsError, match=message) as caught:
        get_settings()
    assert str(caught.value).startswith("TODO_APP_READ_URLS")


def test_read_urls_need_a_postgresql_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TODO_APP_READ_URLS", REPLICA)
    with pytest.raises(SettingsError, match="needs a PostgreSQL DATABASE_URL"):
        get_settings()


@pytest.mark.parametrize(
    ("variable", "value"),
    [("TODO_APP_REPLICA_MAX_LAG", "0"), ("TODO_APP_CONSISTENCY_WAIT", "-1"),
     ("TODO_APP_REPLICA_CHECK_INTERVAL", "0")],
)  # fmt: skip
def test_replica_timings_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        get_settings()


# -- config and registry ----------------------------------------------------------------


def test_tortoise_config_adds_one_connection_per_read_url() -> None:
    settings = Settings(database_url=PRIMARY_URL, read_urls=[REPLICA, OTHER], replica_max_lag=2)
    config = todo_app.tortoise_config(connection_name="main", settings=settings)
    assert list(config["connections"]) == ["main", "main_read1", "main_read2"]
    assert config["connections"]["main_read2"]["credentials"]["host"] == "replica-2.example"
    assert config["apps"]["todo_app"] == {
        "models": ["todo_app.models"],
        "default_connection": "main",
    }
    policy = replica_policy.policies["main"]
    assert policy.connections == ("main_read1", "main_read2")
    assert (policy.max_lag, policy.consistency_wait, policy.check_interval) == (2, 0.1, 1)

    # Another database than DATABASE_URL does not inherit its replicas...
    other = todo_app.tortoise_config(
        "postgresql://u@elsewhere/x", connection_name="main", settings=settings
    )
    assert list(other["connections"]) == ["main"]
    assert "main" not in replica_policy.policies  # the config decides for its name
    # ...unless they are given; and given replicas apply to DATABASE_URL too.
    given = todo_app.tortoise_config(
        "postgresql://u@elsewhere/x", connection_name="x", settings=settings, read_urls=[OTHER]
    )
    assert list(given["connections"]) == ["x", "x_read1"]
    none = todo_app.tortoise_config(connection_name="y", settings=settings, read_urls=[])
    assert list(none["connections"]) == ["y"]


def test_tortoise_config_refuses_replicas_of_sqlite() -> None:
    settings = Settings()
    with pytest.raises(todo_app.DatabaseURLError, match="read replicas need a PostgreSQL"):
        todo_app.tortoise_config("sqlite://:memory:", settings=settings, read_urls=[REPLICA])
    with pytest.raises(todo_app.DatabaseURLError, match="several hosts"):
        todo_app.tortoise_config(PRIMARY_URL, settings=settings, read_urls=["postgres://a,b/x"])


def test_app_config_registers_read_connections() -> None:
    entry = todo_app.app_config("main", read_connections=["main_ro"], replica_max_lag=3)
    assert entry == {"models": ["todo_app.models"], "default_connection": "main"}
    assert replica_policy.policies["main"] == ReplicaPolicy(("main_ro",), max_lag=3)
    todo_app.app_config("main")  # says nothing about replicas: the record stays
    assert "main" in replica_policy.policies
    todo_app.app_config("main", read_connections=[])
    assert "main" not in replica_policy.policies
    for bad, error in (("main", ValueError), (["a", "a"], ValueError), ("ro", TypeError)):
        with pytest.raises(error):
            todo_app.app_config("main", read_connections=bad if bad != "main" else ["main"])
    with pytest.raises(ValueError, match="max_lag must be a positive number"):
        todo_app.app_config("main", read_connections=["ro"], replica_max_lag=math.inf)


# -- nothing changes without replicas ---------------------------------------------------


def _client(name: str, dialect: str = "postgres") -> Any:
    return SimpleNamespace(connection_name=name, capabilities=SimpleNamespace(dialect=dialect))


async def test_without_read_connections_reads_and_writes_are_untouched() -> None:
    db = _client("main")
    assert replicas.reader(db, None, lambda db: db) is None
    assert replicas.reader(db, 5, lambda db: db) is None
    assert await replicas.after_write(db, None) is None
    assert await replicas.after_write(db, 7) == 7
    # Replicas of a SQLite connection (a hand-made registration) are ignored.
    replica_policy.register("lite", ["lite_ro"])
    lite = _client("lite", "sqlite")
    assert replicas.reader(lite, None, lambda db: db) is None
    assert await replicas.after_write(lite, 3) == 3
    # The "primary" token reads on the primary whatever is configured.
    replica_policy.register("main", ["main_ro"])
    assert replicas.reader(db, PRIMARY, lambda db: db) is None


# -- freshness arithmetic -----------------------------------------------------------------


def test_a_replica_is_as_fresh_as_the_newest_primary_position_it_has_replayed() -> None:
    replica = _Replica("ro", client=None)
    assert not replica.usable(time.monotonic(), 5)
    replica.state = "ok"
    samples = [(10.0, 100), (11.0, 200), (12.0, 300)]
    replica.advance(250, samples)
    assert (replica.position, replica.fresh_as_of) == (250, 11.0)
    assert replica.usable(15.9, 5)
    assert not replica.usable(16.1, 5)
    replica.advance(240, [(13.0, 300)])  # a position never goes back
    assert (replica.position, replica.fresh_as_of) == (250, 11.0)
    status = replica.status(17.0, 5)
    assert (status.state, status.lag, status.position) == ("lagging", 6.0, "0/FA")
    replica.fail("down", "connection refused")
    assert (replica.position, replica.fresh_as_of, replica.schema_ok) == (0, -math.inf, False)
    assert replica.status(17.0, 5).lag is None


def test_samples_are_spaced_and_pruned() -> None:
    rs = ReplicaSet.__new__(ReplicaSet)
    rs.policy = ReplicaPolicy(("ro",), max_lag=1, check_interval=0.5)
    replica = _Replica("ro", client=None)
    replica.position = 45
    rs.replicas = [replica]
    rs._samples = deque()
    for n in range(100):
        rs.add_sample(n * 0.01, n)  # a write every 10 ms: one sample kept per 50 ms
    assert 16 <= len(rs._samples) <= 20
    assert replica.fresh_as_of <= 0.45  # each kept sample moves the replicas on
    assert replica.fresh_as_of >= 0.35
    rs.add_sample(10.0, 1000)
    assert list(rs._samples) == [(10.0, 1000)]  # older than lag + 2 intervals: gone


class _Primary:
    """A stand-in primary client (weak-referenceable, as Tortoise's are)."""

    def __init__(self, name: str) -> None:
        self.connection_name = name
        self.capabilities = SimpleNamespace(dialect="postgres")


async def test_read_connections_missing_or_not_postgresql_are_not_used(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tortoise import Tortoise
    from tortoise.context import TortoiseContext

    config = {
        "connections": {"main": "sqlite://:memory:", "lite_ro": "sqlite://:memory:"},
        "apps": {"todo_app": {"models": ["todo_app.models"], "default_connection": "main"}},
    }
    async with TortoiseContext():
        await Tortoise.init(config=config)
        replica_policy.register("main", ["lite_ro", "nowhere"])
        assert replicas.reader(_Primary("main"), None, lambda db: db) is None
    assert "read connection 'lite_ro' is not PostgreSQL" in caplog.text
    assert "read connection 'nowhere' of 'main' is not in the Tortoise config" in caplog.text


def test_what_a_failed_replica_read_says_about_the_replica() -> None:
    import asyncpg

    from todo_app.dialects.postgres.replication import StreamingReplication

    rs = ReplicaSet.__new__(ReplicaSet)
    rs.policy, rs._samples = ReplicaPolicy(("ro",)), deque()
    rs.replication = StreamingReplication()
    replica = _Replica("ro", client=None)
    for error, state in (
        (asyncpg.SerializationError("canceling statement due to conflict with recovery"), "ok"),
        (asyncpg.QueryCanceledError("canceling statement due to statement timeout"), "ok"),
        (asyncpg.UndefinedColumnError('column "version" does not exist'), "schema-behind"),
        (ConnectionResetError("reset by peer"), "down"),
        (TimeoutError(), "down"),
    ):
        replica.state, replica.schema_ok = "ok", True
        rs._failed(replica, error)
        assert replica.state == state, error
        assert replica.schema_ok == (state == "ok")
    assert replica.reason == "no answer in time"
