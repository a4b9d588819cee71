"""Real components the reliability tests start and stop themselves: a TCP proxy they
can cut, a throw-away PostgreSQL cluster (with TLS if asked), a primary with a
streaming standby, and PgBouncer.

Everything listens on 127.0.0.1 only, on free ports, and is torn down by the test
that made it. PostgreSQL and PgBouncer refuse to run as root: when the tests run as
root (as CI does), they are started as the ``postgres`` system user.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

POSTGRES_USER = "postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(args: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return args
    return ["runuser", "-u", POSTGRES_USER, "--", *args]


def _chown_to_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, POSTGRES_USER, POSTGRES_USER)
        for child in path.rglob("*"):
            shutil.chown(child, POSTGRES_USER, POSTGRES_USER)


def _wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class TcpProxy:
    """An asyncio TCP proxy: ``cut()`` drops every connection, ``stall()`` keeps
    them open but stops forwarding (a peer gone silent), ``resume()`` heals."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target_port = target_port
        #: A host name or address, or a Unix socket directory (PostgreSQL's).
        self.target_host = target_host
        self.port = 0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.StreamWriter] = set()
        self.connections_made = 0

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_made += 1
        try:
            if self.target_host.startswith("/"):
                socket_path = os.path.join(self.target_host, f".s.PGSQL.{self.target_port}")
                up_reader, up_writer = await asyncio.open_unix_connection(socket_path)
            else:
                up_reader, up_writer = await asyncio.open_connection(
                    self.target_host, self.target_port
                )
        except OSError:
            writer.close()
            return
        self._transports.update({writer, up_writer})
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._transports.difference_update({writer, up_writer})

    def cut(self) -> int:
        """Abort every open connection, both sides; returns how many there were."""
        cut = len(self._transports)
        for writer in list(self._transports):
            writer.transport.abort()
        self._transports.clear()
        return cut

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def _postgres_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not candidates:
        pytest.fail("PostgreSQL server binaries (pg_ctl, initdb) are not installed")
    return Path(candidates[-1]).parent


def make_certificates(directory: Path, *, hostname: str = "localhost") -> dict[str, Path]:
    """A CA, a server certificate it signed (for ``hostname`` only) and an unrelated
    CA, made with openssl for this test run."""
    directory.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    for name in ("ca", "other_ca"):
        subject = f"/CN=todo-app test {name}"
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", subject,
                "-keyout", f"{name}.key", "-out", f"{name}.crt")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={hostname}",
            "-keyout", "server.key", "-out", "server.csr")  # fmt: skip
    (directory / "san.ext").write_text(f"subjectAltName=DNS:{hostname}\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext",
            "-out", "server.crt")  # fmt: skip
    (directory / "server.key").chmod(0o600)
    return {
        "ca": directory / "ca.crt",
        "other_ca": directory / "other_ca.crt",
        "cert": directory / "server.crt",
        "key": directory / "server.key",
    }


def private_directory(prefix: str) -> Path:
    """A fresh directory the ``postgres`` user can use (pytest's tmp_path is private
    to root when the tests run as root)."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    _chown_to_postgres(directory)
    return directory


class PostgresCluster:
    """A PostgreSQL cluster of the tests' own, in a temporary directory."""

    def __init__(
        self,
        directory: Path,
        *,
        certificates: dict[str, Path] | None = None,
        settings: list[str] | None = None,
    ) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()
        self.certificates = certificates
        self.settings = settings or []
        self.bindir = _postgres_bindir()

    def start(self) -> PostgresCluster:
        self.directory.mkdir(parents=True, exist_ok=True)
        _chown_to_postgres(self.directory)
        subprocess.run(
            _as_postgres([str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                          "--auth=trust", "--no-sync", "-E", "UTF8"]),
            check=True, capture_output=True,
        )  # fmt: skip
        settings = [
            f"port = {self.port}",
            "listen_addresses = '127.0.0.1'",
            f"unix_socket_directories = '{self.directory}'",
            "fsync = off",
            "max_connections = 150",
            *self.settings,
        ]
        if self.certificates:
            for key in ("cert", "key", "ca"):
                target = self.data / self.certificates[key].name
                shutil.copy(self.certificates[key], target)
            settings += ["ssl = on", "ssl_cert_file = 'server.crt'", "ssl_key_file = 'server.key'"]
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n".join(settings) + "\n")
        if self.certificates:
            (self.data / "server.key").chmod(0o600)
        _chown_to_postgres(self.directory)
        self._pg_ctl("start", "-w", "-l", str(self.directory / "log"))
        _wait_for_port(self.port)
        return self

    def _pg_ctl(self, *args: str) -> None:
        result = subprocess.run(
            _as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.data), *args]),
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            log = (self.directory / "log").read_text() if (self.directory / "log").exists() else ""
            raise RuntimeError(f"pg_ctl {args[0]} failed: {result.stderr}\n{log[-2000:]}")

    def restart(self) -> None:
        self._pg_ctl("restart", "-w", "-m", "fast", "-l", str(self.directory / "log"))
        _wait_for_port(self.port)

    def halt(self, mode: str = "fast") -> None:
        """Stop the server, keeping its data (``start_again`` brings it back)."""
        self._pg_ctl("stop", "-w", "-m", mode)

    def start_again(self) -> None:
        self._pg_ctl("start", "-w", "-l", str(self.directory / "log"))
        _wait_for_port(self.port)

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` with psql as the superuser; its unaligned output."""
        result = subprocess.run(
            _as_postgres([str(self.bindir / "psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1",
                          "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                          "-d", database, "-c", sql]),
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr}")
        return result.stdout.strip()

    def server_pids(self) -> list[int]:
        """The postmaster's process id and its children's (backends, WAL sender and
        receiver, background workers), postmaster first."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                # The command name may hold spaces and parentheses: fields after the last ")".
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                    children.append(int(stat.parent.name))
        return [postmaster, *children]

    def freeze(self) -> None:
        """SIGSTOP the postmaster and every child: a paused VM, as seen from a client
        (the kernel still accepts connections and acknowledges data; nothing answers)."""
        self.frozen = True
        for pid in self.server_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT what ``freeze`` stopped (and whatever was forked since)."""
        if not getattr(self, "frozen", False):
            return
        with contextlib.suppress(OSError, ValueError):
            for pid in self.server_pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
        self.frozen = False

    def stop(self) -> None:
        self.thaw()  # a stopped server cannot even be killed in order
        with contextlib.suppress(RuntimeError):
            self._pg_ctl("stop", "-w", "-m", "immediate")
        shutil.rmtree(self.directory, ignore_errors=True)

    def url(self, database: str = "postgres", host: str = "127.0.0.1", query: str = "") -> str:
        return f"postgresql://postgres@{host}:{self.port}/{database}{'?' + query if query else ''}"


class StandbyCluster(PostgresCluster):
    """A hot standby of ``primary``, streaming from it through a physical replication
    slot: ``pg_basebackup -R -X stream -C -S <slot>``, on a port of its own."""

    def __init__(self, directory: Path, primary: PostgresCluster) -> None:
        super().__init__(directory)
        self.primary = primary
        self.slot = f"todo_app_standby_{self.port}"

    def start(self) -> StandbyCluster:
        self.directory.mkdir(parents=True, exist_ok=True)
        _chown_to_postgres(self.directory)
        subprocess.run(
            _as_postgres([str(self.bindir / "pg_basebackup"), "-h", "127.0.0.1",
                          "-p", str(self.primary.port), "-U", "postgres", "-D", str(self.data),
                          "-R", "-X", "stream", "-C", "-S", self.slot, "--no-sync"]),
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        # The primary's postgresql.conf came along: the last setting of a name wins.
        settings = [
            f"port = {self.port}",
            f"unix_socket_directories = '{self.directory}'",
            # A standby waits for no one: once promoted, its commits must not wait for
            # a synchronous standby of its own that does not exist.
            "synchronous_standby_names = ''",
            "hot_standby = on",
        ]
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n".join(settings) + "\n")
        _chown_to_postgres(self.directory)
        self._pg_ctl("start", "-w", "-l", str(self.directory / "log"))
        _wait_for_port(self.port)
        return self

    def promote(self) -> None:
        self._pg_ctl("promote", "-w")


class ReplicationPair:
    """A primary and a streaming hot standby, on free ports under one temporary
    directory. ``synchronous``: the primary's commits wait until the standby has
    applied them (``synchronous_commit = remote_apply``). ``stop`` drops the
    replication slot, then both clusters and their files."""

    def __init__(self, prefix: str, *, synchronous: bool = False) -> None:
        self.root = private_directory(prefix)
        settings = ["wal_level = replica", "max_wal_senders = 4", "max_replication_slots = 4"]
        if synchronous:
            settings += ["synchronous_standby_names = '*'", "synchronous_commit = remote_apply"]
        self.primary = PostgresCluster(self.root / "primary", settings=settings)
        self.standby = StandbyCluster(self.root / "standby", self.primary)

    def start(self) -> ReplicationPair:
        self.primary.start()
        try:
            self.standby.start()
        except BaseException:
            self.primary.stop()
            raise
        return self

    def stop(self) -> None:
        for cluster in (self.primary, self.standby):
            cluster.thaw()
        with contextlib.suppress(RuntimeError, OSError, subprocess.SubprocessError):
            self.standby.halt("fast")
        for cluster in (self.primary, self.standby):
            # After a failover the promoted standby is the one running: no slot there.
            with contextlib.suppress(RuntimeError, OSError, subprocess.SubprocessError):
                cluster.psql(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    f"WHERE slot_name = '{self.standby.slot}'"
                )
        self.standby.stop()
        self.primary.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def debian_tool(command: str, *, package: str | None = None, where: str = "/usr/bin") -> str:
    """A command from one of Debian's packages. On a machine without it, the suite
    installs the package itself when it runs as root (as on CI and a fresh development
    machine), so that the README's test command needs nothing installed by hand;
    otherwise it fails with the command to run."""
    package = package or command
    found = shutil.which(command) or f"{where}/{command}"
    if Path(found).exists():
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.fail(f"{command} is not installed: run `sudo apt-get install {package}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
    ):
        result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
        if result.returncode:
            pytest.fail(f"installing {package} failed ({' '.join(args)}): {result.stderr[-800:]}")
    if package == "pgbouncer":
        # The package may start a service of its own on port 6432; the tests do not use it.
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["/etc/init.d/pgbouncer", "stop"], capture_output=True, timeout=30)
    return f"{where}/{command}"


def _pgbouncer_binary() -> str:
    """PgBouncer's binary (installed by the suite where missing, see debian_tool)."""
    return debian_tool("pgbouncer", where="/usr/sbin")


class PgBouncer:
    """PgBouncer in transaction pooling mode, as Neon's pooler runs it."""

    def __init__(self, directory: Path, *, server_port: int, databases: list[str]) -> None:
        self.directory = directory
        self.port = free_port()
        self.server_port = server_port
        self.databases = databases
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> PgBouncer:
        binary = _pgbouncer_binary()
        self.directory.mkdir(parents=True, exist_ok=True)
        lines = ["[databases]"]
        lines += [
            f"{db} = host=127.0.0.1 port={self.server_port} dbname={db}" for db in self.databases
        ]
        lines += [
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {self.port}",
            "auth_type = trust",
            f"auth_file = {self.directory / 'users.txt'}",
            "pool_mode = transaction",
            "default_pool_size = 4",
            "max_client_conn = 200",
            "ignore_startup_parameters = extra_float_digits",
            f"unix_socket_dir = {self.directory}",
            f"logfile = {self.directory / 'pgbouncer.log'}",
        ]
        (self.directory / "pgbouncer.ini").write_text("\n".join(lines) + "\n")
        (self.directory / "users.txt").write_text('"postgres" ""\n')
        _chown_to_postgres(self.directory)
        args = [binary, str(self.directory / "pgbouncer.ini")]
        if os.geteuid() == 0:
            args[1:1] = ["-u", POSTGRES_USER]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _wait_for_port(self.port)
        return self

    def url(self, database: str, query: str = "") -> str:
        return (
            f"postgresql://postgres@127.0.0.1:{self.port}/{database}{'?' + query if query else ''}"
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
            if self.process.poll() is None:
                self.process.kill()


REPO_ROOT = Path(__file__).resolve().parent.parent


def run(*args: str | Path, cwd: Path, env: dict[str, str], code: int = 0) -> str:
    """Run a host's command; its output, or a failure showing it when it did not exit
    with ``code``."""
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == code, f"{args} -> {result.returncode}:\n{output}"
    return output


def wheel_venv(base: Path, *packages: str) -> Path:
    """A virtualenv under ``base``, outside the repository, with this checkout built as
    a wheel and installed next to ``packages``: what a host project gets."""
    uv = shutil.which("uv")
    assert uv, "uv is needed to build the wheel (pip install uv)"
    env = dict(os.environ)
    run(uv, "build", "--wheel", "--out-dir", base / "dist", "--quiet", cwd=REPO_ROOT, env=env)
    (wheel,) = (base / "dist").glob("todo_app-*.whl")
    run(uv, "venv", "--quiet", "--python", sys.executable, base / "venv", cwd=base, env=env)
    python = base / "venv" / "bin" / "python"
    run(uv, "pip", "install", "--quiet", "--python", python, wheel, *packages, cwd=base, env=env)
    return base / "venv"
