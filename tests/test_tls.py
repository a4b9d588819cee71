"""TLS against a PostgreSQL cluster the test run starts, with a certificate it
makes: each sslmode means what libpq means, and failures are clear."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tortoise import Tortoise
from tortoise.context import TortoiseContext

import todo_app
from tests.infra import PostgresCluster, make_certificates, private_directory
from todo_app import TaskCreate, TaskRepository, TaskStoreUnavailable

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def tls_cluster() -> Iterator[tuple[PostgresCluster, dict[str, Path]]]:
    directory = private_directory("todo_app_tls_")
    certificates = make_certificates(directory / "certs", hostname="localhost")
    cluster = PostgresCluster(directory / "cluster", certificates=certificates).start()
    yield cluster, certificates
    cluster.stop()


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
