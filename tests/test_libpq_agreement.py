"""todo_app reads a PostgreSQL URL as libpq does: checked against libpq itself.

libpq (bundled in psycopg's binary wheel, a test-only dependency) judges each URL of a
generated corpus plus hand-picked cases: ``conninfo_to_dict`` is its parser, and a
connection started with every host swapped for a missing unix socket (no network) runs
its connection-time checks and derives the effective ``sslmode``. todo_app's verdict is
what asyncpg would get: ``tortoise_connection()``'s credentials. Per URL, ten
classes are compared: verdict (accepted or refused), reason (the refusal names libpq's
reason), host list, ports, user, password, database, TLS (when plain text and TLS are
tried), verification (none, chain, chain and host name) and, for a URL naming a TCP
keepalive parameter, the socket options libpq sets (read back from libpq's own socket,
connected to a local port that never answers) against the ones todo_app sets.

The few places where todo_app deliberately differs are listed in ``DIVERGENCES``, each
with its reason, and asserted to be the only ones. Run as a script
(``python tests/test_libpq_agreement.py``) it prints the counts per class, also
against another checkout of todo_app put first on ``PYTHONPATH``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import ssl
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from psycopg import ProgrammingError, pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from todo_app import DatabaseURL, DatabaseURLError
from todo_app.connection import tortoise_connection

CLASSES = (
    "verdict", "reason", "hosts", "ports", "user", "password", "database", "tls",
    "verification", "keepalives",
)  # fmt: skip
#: libpq's keepalive parameters and the socket option each one sets (Linux).
KEEPALIVE_OPTIONS = {
    "keepalives": (socket.SOL_SOCKET, socket.SO_KEEPALIVE),
    "keepalives_idle": (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
    "keepalives_interval": (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
    "keepalives_count": (socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
    "tcp_user_timeout": (socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
}
MISSING_SOCKET = "/nonexistent-todo-app-dir"
CORPUS_SIZE = 1500
UNTYPED = "untyped error: "

# -- the two judges -----------------------------------------------------------------


@dataclass
class Verdict:
    refused: str | None = None
    values: dict[str, object] = field(default_factory=dict)


def _behaviour(mode: str, root: bool) -> tuple[str, str]:
    """libpq's documented TLS behaviour: (transport order, verification)."""
    tls = {"disable": "plain", "allow": "plain,tls", "prefer": "tls,plain"}.get(mode, "tls")
    if mode == "disable":
        return tls, "none"
    if mode == "verify-full":
        return tls, "full"
    return tls, "chain" if root or mode == "verify-ca" else "none"


class Libpq:
    """libpq's verdict, without touching the network."""

    def __init__(self, timeout_port: int, silent_port: int) -> None:
        self.timeout_port = timeout_port
        self.silent_port = silent_port

    def __call__(self, url: str) -> Verdict:
        try:
            params = conninfo_to_dict(url)
        except ProgrammingError as exc:
            return Verdict(refused=str(exc).strip())
        hosts = str(params.get("host", "")).split(",")
        probe = {**params, "host": ",".join([MISSING_SOCKET] * len(hosts))}
        probe.pop("connect_timeout", None)
        conn = pq.PGconn.connect_start(make_conninfo(**probe).encode())
        message = conn.error_message.decode(errors="replace")
        info = {o.keyword.decode(): o.val.decode() for o in conn.info if o.val is not None}
        conn.finish()
        problems = [
            line
            for line in message.splitlines()
            if line.strip()
            and not line.startswith(f'connection to server on socket "{MISSING_SOCKET}')
            and not line.startswith("\tIs the server running")
        ]
        if problems:
            return Verdict(refused=problems[0].strip())
        if "connect_timeout" in params and (
            refused := self._timeout(str(params["connect_timeout"]))
        ):
            return Verdict(refused=refused)
        keepalives = None
        if named := {k: str(v) for k, v in params.items() if k in KEEPALIVE_OPTIONS}:
            refused, keepalives = self._keepalives(named)
            if refused:
                return Verdict(refused=refused)
        ports = str(params.get("port", "")).split(",")
        ports = ports * len(hosts) if len(ports) == 1 else ports
        root = str(params.get("sslrootcert", ""))
        mode = info["sslmode"]
        tls, verification = _behaviour(
            mode, bool(root) and (root == "system" or Path(root).is_file())
        )
        return Verdict(
            values={
                "hosts": [host or None for host in hosts],
                "ports": [int(port) if port.strip() else 5432 for port in ports],
                "user": params.get("user"),
                "password": params.get("password"),
                "database": params.get("dbname"),
                "tls": tls,
                "verification": verification,
                "keepalives": keepalives,
            }
        )

    def _keepalives(self, named: dict[str, str]) -> tuple[str | None, dict[str, int] | None]:
        """libpq sets keepalive options (and refuses their values) only on a TCP
        socket: started towards a local port that never answers, and read back."""
        conninfo = make_conninfo(
            host="127.0.0.1", port=self.silent_port, sslmode="disable", gssencmode="disable",
            user="u", dbname="d", **named,
        )  # fmt: skip
        conn = pq.PGconn.connect_start(conninfo.encode())
        try:
            for _ in range(3):
                if conn.status == pq.ConnStatus.BAD:
                    break
                conn.connect_poll()
            message = conn.error_message.decode(errors="replace")
            if conn.status == pq.ConnStatus.BAD:
                return message.strip().splitlines()[0], None
            with socket.socket(fileno=os.dup(conn.socket)) as sock:
                return None, {
                    key: sock.getsockopt(*KEEPALIVE_OPTIONS[key]) for key in KEEPALIVE_OPTIONS
                }
        finally:
            conn.finish()

    def _timeout(self, value: str) -> str | None:
        """libpq parses connect_timeout only in a blocking connect: to a local port
        that accepts and hangs up at once."""
        conninfo = make_conninfo(
            host="127.0.0.1", port=self.timeout_port, sslmode="disable", gssencmode="disable",
            connect_timeout=value, user="u", dbname="d",
        )  # fmt: skip
        conn = pq.PGconn.connect(conninfo.encode())
        message = conn.error_message.decode(errors="replace")
        conn.finish()
        return message.strip() if "invalid integer value" in message else None


def _verification(transport: object) -> str:
    if isinstance(transport, ssl.SSLContext):
        if transport.verify_mode != ssl.CERT_REQUIRED:
            return "none"
        return "full" if transport.check_hostname else "chain"
    return {"verify-full": "full", "verify-ca": "chain"}.get(str(transport), "none")


def _transport_order(transports: list[object]) -> str:
    names = {"allow": "plain,tls", "prefer": "tls,plain"}
    if len(transports) == 1 and str(transports[0]) in names:
        return names[str(transports[0])]
    return ",".join("plain" if t is False else "tls" for t in transports)


def todo_app(url: str) -> Verdict:
    """What asyncpg gets from todo_app (works on the code before issue 11 too)."""
    try:
        creds = tortoise_connection(DatabaseURL(url))["credentials"]
    except DatabaseURLError as exc:
        return Verdict(refused=str(exc))
    except Exception as exc:  # the code before issue 11 let some through untyped
        return Verdict(refused=f"{UNTYPED}{type(exc).__name__}: {exc}")
    hook = creds.get("connect")
    if hook is not None:
        addresses = list(hook.addresses)
        transports = list(hook.transports)
    else:
        addresses = [(creds["host"], creds["port"])]
        transports = [creds.get("ssl", "prefer")]
    password = creds.get("password")
    verifications = {_verification(t) for t in transports if t is not False}
    keepalives = None
    hook = creds.get("init")
    if hasattr(hook, "socket_options"):  # todo_app's keepalive settings (issue 18)
        keepalives = {
            key: dict(hook.socket_options()).get(KEEPALIVE_OPTIONS[key], 0)
            for key in KEEPALIVE_OPTIONS
        }
    return Verdict(
        values={
            "hosts": [host for host, _ in addresses],
            "ports": [port for _, port in addresses],
            "user": creds.get("user"),
            "password": password() if callable(password) else password,
            "database": creds.get("database"),
            "tls": _transport_order(transports),
            "verification": verifications.pop() if verifications else "none",
            "keepalives": keepalives,
        }
    )


def _same_keepalives(theirs: dict[str, int] | None, ours: dict[str, int] | None, url: str) -> bool:
    """The options the URL's keepalive parameters set are set alike (with keepalives
    off, libpq sets none, tcp_user_timeout included); the others are the kernel's for
    libpq and todo_app's defaults."""
    named = set(conninfo_to_dict(url)) & set(KEEPALIVE_OPTIONS)
    if theirs["keepalives"] == 0:  # type: ignore[index]
        named = {"keepalives", "tcp_user_timeout"}
    return ours is not None and all(theirs[k] == ours[k] for k in named)  # type: ignore[index]


def _stem(message: str) -> str:
    """The reason in a libpq message, without the quoted value (which may be secret)."""
    message = message.partition(" failed: ")[2] or message  # "connection to server at ..."
    return message.split('"')[0].rstrip(": ").strip()


def compare(theirs: Verdict, ours: Verdict, url: str) -> dict[str, bool]:
    """Per class: True (agree), False (disagree); classes that do not apply are absent."""
    result = {"verdict": (theirs.refused is None) == (ours.refused is None)}
    if theirs.refused is not None and ours.refused is not None:
        result["reason"] = _stem(theirs.refused) in ours.refused
    if theirs.refused is None and ours.refused is None:
        for name in CLASSES[2:-1]:
            result[name] = theirs.values[name] == ours.values[name]
        if theirs.values["keepalives"] is not None:  # the URL names one
            result["keepalives"] = _same_keepalives(
                theirs.values["keepalives"],  # type: ignore[arg-type]
                ours.values["keepalives"],  # type: ignore[arg-type]
                url,
            )
    return result


# -- what todo_app does differently, on purpose --------------------------------------

#: (name, why, predicate over the URL's libpq parameters and the failing classes)
DIVERGENCES: list[tuple[str, str, Callable[[dict[str, Any], set[str]], bool]]] = [
    (
        "refused libpq keyword",
        "asyncpg cannot honour it; the refusal says why and what to write instead",
        lambda p, failed: failed in ({"verdict"}, {"reason"}) and bool(set(p) & _refused_keys()),
    ),
    (
        "missing sslrootcert file",
        "libpq silently verifies nothing under allow/prefer/require; a typo must not",
        lambda p, failed: (
            failed == {"verdict"}
            and p.get("sslrootcert", "system") != "system"
            and not Path(p["sslrootcert"]).is_file()
        ),
    ),
    (
        "channel_binding=require",
        "asyncpg cannot bind the channel: the server's certificate and name are verified",
        lambda p, failed: (
            p.get("channel_binding") == "require"
            and failed <= {"verdict", "reason", "tls", "verification"}
        ),
    ),
    (
        "gssencmode=require",
        "asyncpg never encrypts with GSSAPI (libpq refuses it too, when it connects)",
        lambda p, failed: failed == {"reason"} and p.get("gssencmode") == "require",
    ),
    (
        "verify-ca/verify-full without a root certificate",
        "libpq refuses it when it connects, todo_app before: same verdict, earlier",
        lambda p, failed: (
            failed == {"verdict"}
            and "sslrootcert" not in p
            and p.get("sslmode") in ("verify-ca", "verify-full")
        ),
    ),
]


def _refused_keys() -> set[str]:
    try:
        from todo_app.dsn import REFUSED_KEYS
    except ImportError:  # measuring the code before issue 11: nothing is documented
        return set()
    return set(REFUSED_KEYS)


def divergence(url: str, failed: set[str]) -> str | None:
    """The documented divergence explaining ``failed``, if any."""
    try:
        params = conninfo_to_dict(url)
    except ProgrammingError:
        params = {}
    for name, _, applies in DIVERGENCES:
        if failed and applies(params, failed):
            return name
    return None


# -- the corpus ----------------------------------------------------------------------


@dataclass
class Case:
    url: str
    secrets: list[str]


def corpus(ca_file: Path, size: int = CORPUS_SIZE, seed: int = 11) -> list[Case]:
    """Hand-picked cases (the issue's) and ``size`` generated ones, deterministically."""
    rng = random.Random(seed)
    cases = [Case(url, secrets) for url, secrets in _hand_picked(ca_file)]
    for number in range(size):
        secret = f"Zq{number}SECRETx"
        userinfo = rng.choice([
            "", "", "u@", "app_user@", f"u:{secret}@", f"u:{secret}%40x@", f"u:{secret}?x@",
            f"u:{secret}#x@", f":{secret}@", "u:@", "%75ser@", f"u:{secret}%zz@", "@",
        ])  # fmt: skip
        hosts = rng.choice([
            *["h", "db.example.com", "127.0.0.1", "h1,h2", "h1:5432,h2:5433"] * 3,
            "h", "db.example.com", "127.0.0.1", "[::1]", "[2001:db8::1]:6432",
            "%2Fvar%2Frun%2Fpostgresql", "", "h1,h2", "h1:5432,h2:5433", "h1,h2:5433",
            "h:0", "h:65535", "h:65536", "h:abc", "h:", "h:%205432",
            "ep-cool-123-pooler.eu-central-1.aws.neon.tech", "[::1", "[]", "h1,,h3", "[::1]x",
        ])  # fmt: skip
        path = rng.choice(["/db"] * 6 + ["", "/", "/d%20b", "/d+b", "/d%2Fb", "/db#x", "/d%zz"])
        params = rng.sample(_parameter_pool(ca_file, secret), k=rng.choice([0, 1, 1, 2, 2, 3]))
        query = "?" + "&".join(params) if params else rng.choice(["", "", "?"])
        scheme = rng.choice(["postgresql", "postgres"])
        url = f"{scheme}://{userinfo}{hosts}{path}{query}"
        cases.append(Case(url, [secret] if secret in url else []))
    return cases


def _parameter_pool(ca_file: Path, secret: str) -> list[str]:
    return [
        *(
            f"sslmode={m}"
            for m in (
                "disable",
                "allow",
                "prefer",
                "require",
                "verify-ca",
                "verify-full",
                "bogus",
                "REQUIRE",
            )
        ),
        f"sslrootcert={ca_file}",
        "sslrootcert=system",
        "sslrootcert=/missing/root.crt",
        f"sslrootcert={ca_file}",
        "sslrootcert=system",
        *(f"channel_binding={m}" for m in ("disable", "prefer", "require", "bogus")),
        *(f"connect_timeout={t}" for t in ("10", "0", "-5", "2.5", "nan", "%207%20", "abc")),
        *(
            f"target_session_attrs={a}"
            for a in (
                "any",
                "read-write",
                "read-only",
                "primary",
                "standby",
                "prefer-standby",
                "master",
            )
        ),
        "host=%2Ftmp",
        "host=h9",
        "host=h8,h9",
        "port=5433",
        "port=0",
        "port=5433,5434",
        "port=x",
        "user=q",
        "dbname=qd",
        "dbname=a%2Bb",
        "application_name=a%20b",
        "options=-c%20work_mem%3D4MB",
        "ssl=true",
        "requiressl=1",
        "load_balance_hosts=random",
        "load_balance_hosts=bogus",
        "hostaddr=127.0.0.1",
        *(f"keepalives={v}" for v in ("1", "0", "2", "-1", "abc", "%201")),
        *(f"keepalives_idle={v}" for v in ("30", "1", "0", "-5", "32768", "x", "7200")),
        *(f"keepalives_interval={v}" for v in ("5", "0", "32767", "y")),
        *(f"keepalives_count={v}" for v in ("4", "0", "127", "128", "z")),
        *(f"tcp_user_timeout={v}" for v in ("5000", "0", "-1", "t", "2.5")),
        "foo=bar",
        "database=x",
        "sslmode",
        "a=b=c",
        "%zz=1",
        "gssencmode=disable",
        "gssencmode=require",
        "sslnegotiation=direct",
        "sslnegotiation=postgres",
        "ssl_min_protocol_version=TLSv1.3",
        f"password={secret}",
        f"sslpassword={secret}",
        f"pasword={secret}",
        f"passwordd={secret}",
        f"sslpasswd={secret}",
        f"pass%77ord={secret}",
        f"password={secret}%26tail",
        f"password={secret}+plus",
    ]


def _hand_picked(ca: Path) -> list[tuple[str, list[str]]]:
    """The cases issue 11 lists, and a few more around them."""
    s = "Hand7picked"
    return [
        ("postgresql://u@h/db?sslrootcert=system", []),
        (f"postgresql://u@h/db?sslmode=prefer&sslrootcert={ca}", []),
        (f"postgresql://u@h/db?sslmode=allow&sslrootcert={ca}", []),
        (f"postgresql://u@h/db?sslrootcert={ca}", []),
        ("postgresql://u@h/db?sslmode=require&sslrootcert=system", []),
        ("postgresql://u@h/db?sslmode=disable&channel_binding=require", []),
        (f"postgresql://u@h/db?sslmode=verify-full&sslrootcert={ca}&sslpassword={s}", [s]),
        (f"postgresql://u@h/db?pasword={s}", [s]),
        (f"postgresql://u@h/db?passwordd={s}", [s]),
        (f"postgresql://u:{s}?rest@h/db", [s]),
        (f"postgresql://u:{s}?x=1&y@h/db?sslmode=disable", [s]),
        ("postgresql://u@h1,h2/db?target_session_attrs=read-write", []),
        ("postgresql://u@h1:5432,h2:5433/db?target_session_attrs=primary", []),
        ("postgresql://%2Fvar%2Frun%2Fpostgresql/db", []),
        ("postgresql:///db?host=/var/run/postgresql&port=5433&user=me&dbname=other", []),
        ("postgresql://u@h:0/db", []),
        ("postgresql://u@h/db?connect_timeout=0", []),
        ("postgresql://u@h/db?connect_timeout=-1", []),
        ("postgresql://u@h/db?connect_timeout=2.5", []),
        ("postgresql://u@h/db?connect_timeout=nan", []),
        ("postgresql://u@h/db?sslrootcert=/missing", []),
        ("postgresql://u@h/db?sslmode=verify-ca&sslrootcert=/missing", []),
        ("postgresql://u@h/db?target_session_attrs=bogus", []),
        (f"postgres://u@h/db?password={s}+x", [s]),
        ("postgresql://u@h/db?sslmode=verify-full", []),
        ("postgresql://u@h/db?keepalives=0&keepalives_idle=x&tcp_user_timeout=5000", []),
        ("postgresql://u@h/db?keepalives_idle=30&keepalives_interval=5&keepalives_count=4", []),
        ("postgresql://u@h/db?keepalives_idle=0", []),
        ("postgresql://u@h/db?tcp_user_timeout=-1", []),
        ("postgresql://u@h1,h2/db?keepalives=1&tcp_user_timeout=10000", []),
    ]


# -- running it ----------------------------------------------------------------------


_HANG_UP = """
import socket, sys
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(64)
print(server.getsockname()[1], flush=True)
while True:
    server.accept()[0].close()
"""


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A local port whose connections are accepted by the kernel and never answered."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4096)
        yield server.getsockname()[1]


@contextlib.contextmanager
def hang_up_server() -> Iterator[int]:
    """A local port that accepts connections and closes them at once. In a process of
    its own: libpq's blocking connect holds the GIL, a thread here would never answer."""
    process = subprocess.Popen([sys.executable, "-c", _HANG_UP], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield int(process.stdout.readline())
    finally:
        process.kill()
        process.wait()


def make_ca(directory: Path) -> Path:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=todo-app agreement", "-keyout", "ca.key", "-out", "ca.crt"],
        check=True, capture_output=True, cwd=directory,
    )  # fmt: skip
    return directory / "ca.crt"


@dataclass
class Tally:
    agree: Counter[str] = field(default_factory=Counter)
    total: Counter[str] = field(default_factory=Counter)
    diverged: Counter[str] = field(default_factory=Counter)
    untyped: int = 0
    unexplained: list[tuple[str, set[str], Verdict, Verdict]] = field(default_factory=list)


def run(cases: list[Case], libpq: Libpq) -> Tally:
    tally = Tally()
    for case in cases:
        theirs, ours = libpq(case.url), todo_app(case.url)
        tally.untyped += (ours.refused or "").startswith(UNTYPED)
        outcome = compare(theirs, ours, case.url)
        for name, agreed in outcome.items():
            tally.total[name] += 1
            tally.agree[name] += agreed
        failed = {name for name, agreed in outcome.items() if not agreed}
        if failed:
            if (reason := divergence(case.url, failed)) is not None:
                tally.diverged[reason] += 1
            else:
                tally.unexplained.append((case.url, failed, theirs, ours))
    return tally


@pytest.fixture(scope="module")
def judged() -> Iterator[tuple[list[Case], Tally]]:
    with (
        tempfile.TemporaryDirectory() as home,
        hang_up_server() as port,
        silent_server() as silent,
    ):
        patched = {"HOME": home}
        saved = {
            k: os.environ.get(k) for k in [*patched, *(k for k in os.environ if k.startswith("PG"))]
        }
        os.environ.update(patched)
        for key in saved:
            if key.startswith("PG"):
                os.environ.pop(key)
        try:
            cases = corpus(make_ca(Path(home)))
            yield cases, run(cases, Libpq(port, silent))
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def test_todo_app_agrees_with_libpq(judged: tuple[list[Case], Tally]) -> None:
    cases, tally = judged
    assert len(cases) > CORPUS_SIZE
    shown = "\n".join(
        f"{url}\n  differs in {sorted(failed)}\n  libpq: {theirs}\n  todo_app: {ours}"
        for url, failed, theirs, ours in tally.unexplained[:10]
    )
    assert not tally.unexplained, f"{len(tally.unexplained)} unexplained differences:\n{shown}"
    assert tally.untyped == 0, "every refusal is a DatabaseURLError"
    # Every class was exercised, on both sides of the verdict.
    assert min(tally.total[name] for name in CLASSES) > 100
    assert tally.total["verdict"] - tally.total["reason"] > 500  # accepted by both


def test_each_divergence_is_exercised(judged: tuple[list[Case], Tally]) -> None:
    _, tally = judged
    assert set(tally.diverged) == {name for name, _, _ in DIVERGENCES}


def leaks(cases: list[Case], logged: Callable[[], str]) -> list[str]:
    """URLs a secret of which shows in a repr, a str, an error or a log line."""
    found = []
    for case in cases:
        shown = []
        try:
            url = DatabaseURL(case.url)
            shown += [repr(url), str(url), f"{url!r}"]
            shown.append(repr(tortoise_connection(url)))
        except Exception as exc:  # the code before issue 11 raised untyped errors too
            shown.append(str(exc))
        shown.append(logged())
        if any(secret in text for secret in case.secrets for text in shown):
            found.append(case.url)
    return found


def test_no_secret_is_ever_shown(
    judged: tuple[list[Case], Tally], caplog: pytest.LogCaptureFixture
) -> None:
    cases, _ = judged
    caplog.set_level(logging.DEBUG)
    with_secrets = [case for case in cases if case.secrets]
    assert len(with_secrets) > 300
    assert leaks(with_secrets, lambda: caplog.text) == []


def test_every_libpq_keyword_is_accepted_or_refused_with_a_reason() -> None:
    from todo_app.dsn import ACCEPTED_KEYS, REFUSED_KEYS

    keywords = {option.keyword.decode() for option in pq.Conninfo.get_defaults()}
    assert keywords - ACCEPTED_KEYS - set(REFUSED_KEYS) == set()
    for key in REFUSED_KEYS:
        with pytest.raises(DatabaseURLError, match=f"'{key}': .+"):
            tortoise_connection(DatabaseURL(f"postgresql://h/db?{key}=1"))


def main() -> None:
    """Print the agreement per class (``python tests/test_libpq_agreement.py``)."""
    with (
        tempfile.TemporaryDirectory() as home,
        hang_up_server() as port,
        silent_server() as silent,
    ):
        os.environ["HOME"] = home
        for key in [k for k in os.environ if k.startswith("PG")]:
            os.environ.pop(key)
        cases = corpus(make_ca(Path(home)))
        tally = run(cases, Libpq(port, silent))
        with_secrets = [case for case in cases if case.secrets]
        leaked = leaks(with_secrets, lambda: "")
    print(f"corpus: {len(cases)} URLs ({len(_hand_picked(Path()))} hand-picked)")
    for name in CLASSES:
        print(f"  {name:13} {tally.agree[name]:5} / {tally.total[name]:5} agree")
    print(f"  documented divergences: {dict(tally.diverged)}")
    print(f"  unexplained differences: {len(tally.unexplained)}")
    print(f"  refusals that were not a DatabaseURLError: {tally.untyped}")
    print(f"  URLs showing a secret: {len(leaked)} of {len(with_secrets)} carrying one")


if __name__ == "__main__":
    main()
