"""TLS against PostgreSQL clusters the test run starts (one with a certificate it
makes, one without TLS): each combination of sslmode, sslrootcert, host name and
server ends as libpq's own connection does (TLS, plain text or refused), and failures
are clear. Several hosts and unix sockets are tried against the same clusters."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import pq
from tortoise import Tortoise
from tortoise.context import TortoiseContext

import todo_app
from tests.infra import PostgresCluster, free_port, make_certificates, private_directory
from todo_app import TaskCreate, TaskRepository, TaskStoreUnavailable
from todo_app.connection import tortoise_connection

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def tls_cluster() -> Iterator[tuple[PostgresCluster, dict[str, Path]]]:
    directory = private_directory("todo_app_tls_")
    certificates = make_certificates(directory / "certs", hostname="localhost")
    cluster = PostgresCluster(directory / "cluster", certificates=certificates).start()
    yield cluster, certificates
    cluster.stop()


@pytest.fixture(scope="module")
def plain_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster(private_directory("todo_app_plain_") / "cluster").start()
    yield cluster
    cluster.stop()


def _libpq(url: str) -> str:
    """How libpq itself ends: "TLS", "PLAIN" or "FAIL"."""
    conn = pq.PGconn.connect(url.encode())
    try:
        if conn.status != pq.ConnStatus.OK:
            return "FAIL"
        result = conn.exec_(b"SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        return "TLS" if result.get_value(0, 0) == b"t" else "PLAIN"
    finally:
        conn.finish()


async def _todo_app(url: str) -> str:
    """How todo_app ends, through the client and pool of the entry's engine, as
    Tortoise makes them."""
    import importlib

    try:
        entry = tortoise_connection(todo_app.DatabaseURL(url), pool_min_size=1, pool_max_size=1)
    except todo_app.DatabaseURLError:
        return "FAIL"
    client_class = importlib.import_module(entry["engine"]).client_class
    client = client_class(connection_name="tls_matrix", **entry["credentials"])
    try:
        await client.create_connection(with_db=True)
        _, rows = await client.execute_query(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        )
        return "TLS" if rows[0]["ssl"] else "PLAIN"
    except Exception:
        return "FAIL"
    finally:
        await client.close()


async def test_tls_matrix_ends_as_libpq_does(  # type: ignore[no-untyped-def]
    tls_cluster, plain_cluster: PostgresCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every sslmode (and none) x sslrootcert absent, right CA, wrong CA, system x the
    certificate's host name or not x a server with and without TLS."""
    cluster, certs = tls_cluster
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.postgresql for either side
    for name in ("PGSSLMODE", "PGSSLROOTCERT"):
        monkeypatch.delenv(name, raising=False)
    modes = ["", "disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
    roots = ["", f"sslrootcert={certs['ca']}", f"sslrootcert={certs['other_ca']}",
             "sslrootcert=system"]  # fmt: skip
    outcomes: dict[tuple[str, str], int] = {}
    differ = []
    for server, mode, root, host in itertools.product(
        (cluster, plain_cluster), modes, roots, ("localhost", "127.0.0.1")
    ):
        query = "&".join(part for part in (mode and f"sslmode={mode}", root) if part)
        url = server.url(host=host, query=query)
        theirs, ours = _libpq(url), await _todo_app(url)
        outcomes[theirs, ours] = outcomes.get((theirs, ours), 0) + 1
        if theirs != ours:
            differ.append(f"{url}: libpq {theirs}, todo_app {ours}")
    assert not differ, "\n".join(differ)
    # The matrix has all three endings, so it tests something on each side.
    assert {theirs for theirs, _ in outcomes} == {"TLS", "PLAIN", "FAIL"}
    assert sum(outcomes.values()) == 2 * 7 * 4 * 2


async def test_several_hosts_fail_over_in_order(  # type: ignore[no-untyped-def]
    tls_cluster, plain_cluster: PostgresCluster
) -> None:
    """libpq's host list: a dead host is skipped, each with its own port; a
    target_session_attrs no host matches says so."""
    cluster, _ = tls_cluster
    dead = free_port()
    url = (
        f"postgresql://postgres@127.0.0.1:{dead},127.0.0.1:{plain_cluster.port},"
        f"127.0.0.1:{cluster.port}/postgres?sslmode=prefer&connect_timeout=5"
    )
    assert await _todo_app(url) == _libpq(url) == "PLAIN"
    url = f"postgresql://postgres@127.0.0.1:{dead},127.0.0.1:{cluster.port}/postgres"
    assert await _todo_app(url) == _libpq(url) == "TLS"
    url = (
        f"postgresql://postgres@127.0.0.1:{plain_cluster.port},127.0.0.1:{cluster.port}"
        "/postgres?target_session_attrs=standby"
    )
    assert await _todo_app(url) == _libpq(url) == "FAIL"
    assert await _todo_app(url.replace("=standby", "=prefer-standby")) == "PLAIN"


async def test_unix_socket_as_host_and_as_query(plain_cluster: PostgresCluster) -> None:
    from urllib.parse import quote

    socket_dir = str(plain_cluster.directory)
    netloc = f"postgresql://postgres@{quote(socket_dir, safe='')}:{plain_cluster.port}/postgres"
    query = f"postgresql:///postgres?host={socket_dir}&port={plain_cluster.port}&user=postgres"
    for url in (netloc, query):
        assert await _todo_app(url) == _libpq(url) == "PLAIN"


async def _ssl_in_use(url: str, name: str) -> bool:
    """Connect as the package does, do real work, and ask the server about TLS."""
    async with TortoiseContext():
        await Tortoise.init(config=todo_app.tortoise_config(url, connection_name=name))
        repo = TaskRepository("tls-user")
        task = await repo.create(TaskCreate(title="over TLS"))
        assert (await repo.get(task.id)).title == "over TLS"
        _, rows = await Tortoise.get_connection(name).execute_query(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        )
        return bool(rows[0]["ssl"])


@pytest.fixture
async def database(tls_cluster: tuple[PostgresCluster, dict[str, Path]]) -> str:
    import asyncpg

    cluster, _ = tls_cluster
    admin = await asyncpg.connect(cluster.url(), ssl=False)
    await admin.execute("DROP DATABASE IF EXISTS tls_test WITH (FORCE)")
    await admin.execute("CREATE DATABASE tls_test")
    await admin.close()
    await todo_app.migrate(cluster.url("tls_test", query="sslmode=disable"))
    return "tls_test"


async def test_require_encrypts(tls_cluster, database: str) -> None:  # type: ignore[no-untyped-def]
    cluster, _ = tls_cluster
    assert await _ssl_in_use(cluster.url(database, query="sslmode=require"), "tls_require")
    assert not await _ssl_in_use(cluster.url(database, query="sslmode=disable"), "tls_disable")


async def test_verify_ca_and_verify_full_with_the_right_root(tls_cluster, database: str) -> None:  # type: ignore[no-untyped-def]
    cluster, certs = tls_cluster
    ca = certs["ca"]
    # The certificate names "localhost": verify-ca accepts any host, verify-full that one.
    url = cluster.url(database, host="127.0.0.1", query=f"sslmode=verify-ca&sslrootcert={ca}")
    assert await _ssl_in_use(url, "tls_verify_ca")
    url = cluster.url(database, host="localhost", query=f"sslmode=verify-full&sslrootcert={ca}")
    assert await _ssl_in_use(url, "tls_verify_full")


@pytest.mark.parametrize(
    ("mode", "host", "root", "reason"),
    [
        ("verify-ca", "127.0.0.1", "other_ca", "certificate verify failed"),
        ("verify-full", "localhost", "other_ca", "certificate verify failed"),
        ("verify-full", "127.0.0.1", "ca", "IP address mismatch"),
    ],
)
async def test_verification_failures_are_clear(  # type: ignore[no-untyped-def]
    tls_cluster, database: str, mode: str, host: str, root: str, reason: str
) -> None:
    cluster, certs = tls_cluster
    url = cluster.url(database, host=host, query=f"sslmode={mode}&sslrootcert={certs[root]}")
    with pytest.raises(TaskStoreUnavailable, match=reason):
        await _ssl_in_use(url, f"tls_fail_{mode}_{root}")


async def test_require_against_a_server_without_tls_fails(fresh_database_url) -> None:  # type: ignore[no-untyped-def]
    # The machine's own server runs with ssl = off: no silent fall-back to plain text.
    plain = await fresh_database_url("postgres")
    await todo_app.migrate(plain)
    url = plain.reveal() + "?sslmode=require"
    with pytest.raises(TaskStoreUnavailable, match="rejected SSL upgrade"):
        await _ssl_in_use(url, "tls_plain_server")
