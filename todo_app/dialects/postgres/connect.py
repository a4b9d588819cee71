"""PostgreSQL's connections: from libpq's parameters to what Tortoise and asyncpg take,
asyncpg's connection failures, and databases made and dropped (for test servers).

asyncpg implements libpq's connection rules for one host and an ``sslmode`` name
(root and client certificates in ``~/.postgresql``, ``prefer``'s fall-back to plain
text, ``target_session_attrs``, unix sockets), so a plain URL becomes asyncpg's own
keyword arguments. What it lacks is done here: validation with libpq's messages,
``connect_timeout``'s integer rules, ``sslrootcert=system``, verification of the chain
under ``allow``/``prefer`` (asyncpg's never verifies), several hosts each with its own
port and timeout (Tortoise takes one port; asyncpg's timeout spans all hosts), the
substitute for channel binding, and the pooler detection. The last three need
:class:`~todo_app.dialects.postgres.pool.LibpqConnect` as the pool's ``connect`` hook; libpq's TCP
keepalive parameters are set on each connection's socket by the ``init`` hook
(:class:`~todo_app.dialects.postgres.pool.TcpKeepalives`), on by default.
"""

from __future__ import annotations

import math
import os
import ssl
import sys
from pathlib import Path
from typing import Any, Final

from todo_app.connection import integer_param
from todo_app.dialects.postgres.pool import LibpqConnect, TcpKeepalives, reset_session
from todo_app.dsn import REFUSED_KEYS, DatabaseURL, SSLMode
from todo_app.errors import DatabaseURLError, TaskStoreUnavailable

__all__ = [
    "connect_once",
    "create_database",
    "describe_failure",
    "drop_database",
    "is_connection_failure",
    "postgres_credentials",
    "tortoise_connection",
]

#: asyncpg's own default; PgBouncer in transaction mode needs 0.
_DEFAULT_STATEMENT_CACHE_SIZE: Final = 100
#: How much longer than the server's statement_timeout the client waits for an
#: answer (at most; never more than the timeout itself): the server's own
#: cancellation normally comes first, with its clear error. When the client gives up,
#: the connection is closed at once (todo_app.dialects.postgres.engine.BoundedConnection).
_CLIENT_TIMEOUT_MARGIN: Final = 5.0
_TARGET_SESSION_ATTRS: Final = (
    "any", "read-write", "read-only", "primary", "standby", "prefer-standby",
)  # fmt: skip
_TLS_VERSIONS: Final = {
    "tlsv1": ssl.TLSVersion.TLSv1,
    "tlsv1.1": ssl.TLSVersion.TLSv1_1,
    "tlsv1.2": ssl.TLSVersion.TLSv1_2,
    "tlsv1.3": ssl.TLSVersion.TLSv1_3,
}
_FILE_KEYS: Final = ("sslcert", "sslkey", "sslcrl", "ssl_min_protocol_version",
                     "ssl_max_protocol_version")  # fmt: skip
#: libpq's keepalive parameters in seconds: the socket option each sets and the
#: largest value Linux takes (libpq passes the value on; the kernel refuses 0 and more).
_KEEPALIVE_SECONDS: Final = {
    "keepalives_idle": ("idle", "TCP_KEEPIDLE", 32767),
    "keepalives_interval": ("interval", "TCP_KEEPINTVL", 32767),
    "keepalives_count": ("count", "TCP_KEEPCNT", 127),
}


def tortoise_connection(
    url: DatabaseURL,
    params: dict[str, str],
    *,
    pool_timeout: float | None,
    **options: Any,
) -> dict[str, Any]:
    """The connection entry of a PostgreSQL URL: Tortoise's asyncpg client with a fair,
    bounded pool (``todo_app.dialects.postgres.engine``)."""
    credentials = postgres_credentials(params, **options)
    credentials["pool_timeout"] = pool_timeout
    return {"engine": "todo_app.dialects.postgres.engine", "credentials": credentials}


def postgres_credentials(
    params: dict[str, str],
    *,
    pool_min_size: int,
    pool_max_size: int,
    ssl_mode: SSLMode | None,
    statement_cache_size: int | None,
    connect_timeout: float | None,
    statement_timeout: float | None,
) -> dict[str, Any]:
    """Tortoise's asyncpg credentials for libpq's ``params`` (see the module doc).

    Checks run in libpq's order (its option checks, then each host's port, then
    connect_timeout), so a URL with several mistakes is refused for the one libpq
    names; what libpq would accept and todo_app refuses comes last.
    """
    hosts = params.get("host", "").split(",")
    port_texts = params.get("port", "").split(",")
    if len(port_texts) == 1:
        port_texts *= len(hosts)
    elif len(port_texts) != len(hosts):
        raise DatabaseURLError(
            f"could not match {len(port_texts)} port numbers to {len(hosts)} hosts"
        )
    mode, root = _ssl_mode(params, ssl_mode)
    attrs = _one_of(params, "target_session_attrs", _TARGET_SESSION_ATTRS, "any")
    load_balance = _one_of(params, "load_balance_hosts", ("disable", "random"), "disable")
    ports = [_port(port) for port in port_texts]
    timeout = connect_timeout
    if (text := params.get("connect_timeout")) is not None:
        seconds = integer_param(text, "connect_timeout")
        timeout = float(seconds) if seconds > 0 else None  # libpq: 0 or less waits forever
    keepalives = _keepalives(params)
    if refused := sorted(set(params) & set(REFUSED_KEYS)):
        raise DatabaseURLError(
            f"unsupported PostgreSQL URL parameter {refused[0]!r}: {REFUSED_KEYS[refused[0]]}"
        )
    if params.get("gssencmode") == "require":
        raise DatabaseURLError(
            "gssencmode=require: asyncpg cannot encrypt with GSSAPI; use sslmode instead"
        )
    # libpq's "prefer" does without GSSAPI encryption when it cannot have it: so does asyncpg.
    _one_of(params, "gssencmode", ("disable", "prefer"), "prefer")
    password = params.get("password")
    credentials: dict[str, Any] = {
        "host": hosts[0] or None,
        "port": ports[0],
        "user": params.get("user"),
        # A callable: asyncpg calls it per connection, and Tortoise's DEBUG log of
        # the config (which prints a third of a string password) shows "***".
        "password": _Password(password) if password else None,
        "database": params.get("dbname"),
        "minsize": pool_min_size,
        "maxsize": pool_max_size,
    }
    if params.get("sslnegotiation") == "direct":
        credentials["direct_tls"] = True
    transports = _transports(params, mode, root)
    if len(hosts) > 1 or len(transports) > 1:
        credentials["connect"] = LibpqConnect(
            [(host or None, port) for host, port in zip(hosts, ports, strict=True)],
            transports,
            timeout=timeout,
            target_session_attrs=attrs,
            load_balance=load_balance == "random",
        )
    else:
        credentials["ssl"] = transports[0]
        credentials["timeout"] = timeout
        if attrs != "any":
            credentials["target_session_attrs"] = attrs

    name = params.get("application_name") or params.get("fallback_application_name")
    if name:
        credentials["application_name"] = name
    for key in ("passfile", "krbsrvname", "gsslib"):
        if key in params:
            credentials[key] = params[key]
    server_settings: dict[str, str] = {}
    if options := params.get("options", ""):
        # The server itself reads "options" from the startup packet, as with libpq.
        server_settings["options"] = options

    pooler = params.get("pgbouncer", "").lower() in ("1", "true", "yes")
    pooler = pooler or any("-pooler" in host for host in hosts)
    if statement_cache_size is None:
        statement_cache_size = 0 if pooler else _DEFAULT_STATEMENT_CACHE_SIZE
    credentials["statement_cache_size"] = statement_cache_size
    credentials["reset"] = reset_session
    credentials["init"] = keepalives
    if statement_timeout is not None:
        if not pooler and "statement_timeout" not in options:
            # Rounded up: PostgreSQL reads 0 as "no limit".
            server_settings["statement_timeout"] = str(max(1, math.ceil(statement_timeout * 1000)))
        margin = min(_CLIENT_TIMEOUT_MARGIN, statement_timeout)
        credentials["command_timeout"] = statement_timeout + margin
    if server_settings:
        credentials["server_settings"] = server_settings
    return credentials


def _keepalives(params: dict[str, str]) -> TcpKeepalives:
    """libpq's keepalive parameters, read and refused as libpq does when it opens a TCP
    socket (which refuses a value the kernel does not take, as setsockopt's error)."""
    if integer_param(params.get("keepalives", "1"), "keepalives") == 0:
        return TcpKeepalives(enabled=False)  # libpq then reads none of the others
    values: dict[str, int] = {}
    for key, (name, option, top) in _KEEPALIVE_SECONDS.items():
        if (text := params.get(key)) is not None:
            value = max(0, integer_param(text, key))  # libpq: a negative value is 0
            if not 1 <= value <= top:
                raise DatabaseURLError(
                    f'invalid {key} value "{text}": setsockopt({option}) failed: Invalid '
                    f"argument (give 1 to {top})"
                )
            values[name] = value
    if (text := params.get("tcp_user_timeout")) is not None:
        # Milliseconds; 0 (or less) is the kernel's default, as in libpq.
        values["user_timeout"] = max(0, integer_param(text, "tcp_user_timeout"))
    defaults = TcpKeepalives.DEFAULTS
    return TcpKeepalives(
        idle=values.get("idle", defaults["idle"]),
        interval=values.get("interval", defaults["interval"]),
        count=values.get("count", defaults["count"]),
        user_timeout=values.get("user_timeout", defaults["user_timeout"]),
    )


def _ssl_mode(params: dict[str, str], override: SSLMode | None) -> tuple[SSLMode, str | None]:
    """libpq's effective sslmode and sslrootcert, and its refusals of them.

    ``override`` (``TODO_APP_SSL_MODE``) replaces the URL's ``sslmode`` only with one at
    least as strict: a setting made for a whole fleet must not quietly turn one URL's
    ``verify-full`` into plain text (libpq's ``PGSSLMODE`` never overrides a URL)."""
    binding = _one_of(params, "channel_binding", ("disable", "prefer", "require"), "prefer")
    root = params.get("sslrootcert") or os.environ.get("PGSSLROOTCERT") or None
    own = params.get("sslmode")
    if own is not None and override is not None:
        own = _one_of(params, "sslmode", tuple(SSLMode), "prefer")
        # SSLMode lists libpq's modes weakest first.
        if list(SSLMode).index(override) < list(SSLMode).index(SSLMode(own)):
            raise DatabaseURLError(
                f'TODO_APP_SSL_MODE="{override}" would weaken the URL\'s own '
                f'sslmode="{own}": unset it, or give a mode at least as strict'
            )
    text = override or own or os.environ.get("PGSSLMODE")
    if text is None:
        mode = SSLMode.VERIFY_FULL if root == "system" else SSLMode.PREFER
    else:
        mode = SSLMode(_one_of({"sslmode": text}, "sslmode", tuple(SSLMode), "prefer"))
    if root == "system" and mode is not SSLMode.VERIFY_FULL:
        raise DatabaseURLError(
            f'weak sslmode "{mode}" may not be used with sslrootcert=system (use "verify-full")'
        )
    if binding == "require":
        if mode is SSLMode.DISABLE:
            raise DatabaseURLError(
                "channel binding required, but SSL not in use (sslmode=disable): "
                "remove channel_binding=require or use sslmode=verify-full"
            )
        # asyncpg cannot bind SCRAM to the TLS channel (no SCRAM-SHA-256-PLUS). What
        # binding would prevent, a man in the middle, is prevented instead by verifying
        # the server's certificate and name: against sslrootcert, else the system's CAs.
        mode, root = SSLMode.VERIFY_FULL, root or "system"
    negotiation = _one_of(params, "sslnegotiation", ("postgres", "direct"), "postgres")
    weak = mode not in (SSLMode.REQUIRE, SSLMode.VERIFY_CA, SSLMode.VERIFY_FULL)
    if negotiation == "direct" and weak:
        raise DatabaseURLError(
            f'weak sslmode "{mode}" may not be used with sslnegotiation=direct '
            '(use "require", "verify-ca", or "verify-full")'
        )
    for key in ("ssl_min_protocol_version", "ssl_max_protocol_version"):
        if params.get(key):
            _tls_version(params, key, "")
    return mode, root


def _transports(
    params: dict[str, str], mode: SSLMode, root: str | None
) -> list[bool | str | ssl.SSLContext]:
    """The transports to try in order, each an asyncpg ``ssl=`` value, as libpq would."""
    if mode is SSLMode.DISABLE:
        return [False]
    root_file = _root_certificate(root, mode)
    if root_file is None and not any(params.get(key) for key in _FILE_KEYS):
        # asyncpg gives these names libpq's meaning, client certificate defaults included.
        return [mode.value]
    context = _context(params, mode, root_file)
    if mode is SSLMode.ALLOW:
        return [False, context]
    if mode is SSLMode.PREFER:
        return [context, False]
    return [context]


def _root_certificate(root: str | None, mode: SSLMode) -> str | None:
    """The root certificate file libpq would verify with ("system": the system's CAs)."""
    if root == "system":
        return root
    if root:
        if not Path(root).expanduser().is_file():
            # libpq refuses this under verify-*, and silently verifies nothing under
            # allow/prefer/require: todo_app refuses both, a typo must not turn
            # verification off.
            raise DatabaseURLError(
                f'root certificate file "{root}" does not exist: fix the path, use the '
                "system's trusted roots with sslrootcert=system, or remove sslrootcert "
                "to encrypt without verifying the server"
            )
        return root
    default = _dot_postgresql("root.crt")
    if default is not None and default.is_file():
        return str(default)
    if mode in (SSLMode.VERIFY_CA, SSLMode.VERIFY_FULL):
        raise DatabaseURLError(
            f'root certificate file "{default or "~/.postgresql/root.crt"}" does not exist: '
            "either provide the file (sslrootcert=...), use the system's trusted roots with "
            "sslrootcert=system, or change sslmode to disable server certificate verification"
        )
    return None


def _context(params: dict[str, str], mode: SSLMode, root_file: str | None) -> ssl.SSLContext:
    """An SSL context with libpq's verification for ``mode``, and the client certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.set_alpn_protocols(["postgresql"])  # what PostgreSQL 17+ expects of direct TLS
    if keylog := os.environ.get("SSLKEYLOGFILE"):  # as asyncpg's own contexts do
        context.keylog_filename = keylog
    if root_file is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        if root_file == "system":
            context.load_default_certs()
        else:
            _load(context.load_verify_locations, root_file, "root certificate")
        context.verify_mode = ssl.CERT_REQUIRED
        context.check_hostname = mode is SSLMode.VERIFY_FULL
    if crl := params.get("sslcrl"):
        _load(context.load_verify_locations, crl, "certificate revocation list")
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_CHAIN
    context.minimum_version = _tls_version(params, "ssl_min_protocol_version", "TLSv1.2")
    if params.get("ssl_max_protocol_version"):
        context.maximum_version = _tls_version(params, "ssl_max_protocol_version", "")
    cert = params.get("sslcert") or _existing(_dot_postgresql("postgresql.crt"))
    key = params.get("sslkey") or _existing(_dot_postgresql("postgresql.key"))
    if cert:
        secret = params.get("sslpassword") or ""
        try:
            context.load_cert_chain(cert, keyfile=key, password=lambda: secret)
        except (OSError, ssl.SSLError):
            raise DatabaseURLError(
                f'could not load client certificate "{cert}" with key "{key or cert}": '
                "check both files and sslpassword"
            ) from None
    return context


def _load(load: Any, path: str, what: str) -> None:
    try:
        load(cafile=path)
    except (OSError, ssl.SSLError):
        raise DatabaseURLError(f'could not read {what} file "{path}"') from None


def _tls_version(params: dict[str, str], key: str, default: str) -> ssl.TLSVersion:
    text = params.get(key) or default
    if text.lower() not in _TLS_VERSIONS:
        raise DatabaseURLError(
            f'invalid "{key}" value: "{text}" (valid: TLSv1, TLSv1.1, TLSv1.2, TLSv1.3)'
        )
    return _TLS_VERSIONS[text.lower()]


def _dot_postgresql(name: str) -> Path | None:
    try:
        return Path.home() / ".postgresql" / name
    except RuntimeError:  # no home directory
        return None


def _existing(path: Path | None) -> str | None:
    return str(path) if path is not None and path.is_file() else None


def _one_of(params: dict[str, str], key: str, valid: tuple[str, ...], default: str) -> str:
    value = params.get(key, default)
    if value not in valid:
        raise DatabaseURLError(f'invalid {key} value: "{value}" (valid: {", ".join(valid)})')
    return value


def _port(text: str) -> int:
    if not text:
        return 5432
    port = integer_param(text, "port")
    if not 1 <= port <= 65535:
        raise DatabaseURLError(f'invalid port number: "{text}"')
    return port


class _Password:
    """A password asyncpg can call for, that prints as ``***``."""

    __slots__ = ("_value",)

    def __init__(self, value: str | None) -> None:
        self._value = value

    def __call__(self) -> str | None:
        return self._value

    def __repr__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Password) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


#: Pool options among the credentials, which a single connection does not take.
_POOL_ONLY: Final = (
    "minsize", "maxsize", "pool_timeout", "reset", "connect", "application_name", "init",
)  # fmt: skip


async def connect_once(credentials: dict[str, Any]) -> Any:
    """One asyncpg connection made exactly as the package's pool makes them (hosts in
    libpq's order, TLS, timeouts), from ``postgres_credentials``' output. For tools
    and tests that need a session of their own (creating a database, say)."""
    import asyncpg

    arguments = {k: v for k, v in credentials.items() if k not in _POOL_ONLY}
    password = arguments.get("password")
    arguments["password"] = password() if callable(password) else password
    if name := credentials.get("application_name"):
        arguments["server_settings"] = {
            **arguments.get("server_settings", {}),
            "application_name": name,
        }
    connect = credentials.get("connect") or asyncpg.connect
    connection = await connect(**arguments)
    if (init := credentials.get("init")) is not None:
        await init(connection)
    return connection


def _driver() -> Any:
    """asyncpg, if anything loaded it: an error of asyncpg's cannot exist otherwise, and
    a SQLite user's error is classified without importing it."""
    return sys.modules.get("asyncpg")


def is_connection_failure(exc: BaseException) -> bool:
    """Whether asyncpg's ``exc`` means the server could not be reached, would not let us
    in, or the connection is gone or unusable (see ``todo_app.connection``)."""
    asyncpg = _driver()
    if asyncpg is None:
        return False
    return isinstance(
        exc,
        asyncpg.exceptions.ConnectionFailureError
        | asyncpg.exceptions.PostgresConnectionError
        | asyncpg.exceptions.InsufficientResourcesError
        | asyncpg.exceptions.TargetServerAttributeNotMatched
        | asyncpg.exceptions.InvalidAuthorizationSpecificationError
        | asyncpg.exceptions.InvalidCatalogNameError
        | asyncpg.exceptions.ClientConfigurationError
        | asyncpg.exceptions.InterfaceError
        # Operator intervention (a restart, a standby still starting) and asyncpg's
        # own state machine when the server vanished mid-operation.
        | asyncpg.exceptions.CannotConnectNowError
        | asyncpg.exceptions.AdminShutdownError
        | asyncpg.exceptions.InternalClientError,
    )


def describe_failure(exc: BaseException, said: str) -> str | None:
    """One line for people about asyncpg's failed connection ``exc`` (``said``: its
    first line), naming what to check; None when ``exc`` is not asyncpg's."""
    asyncpg = _driver()
    if asyncpg is None:
        return None
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return f"{said} (create it, or fix the database name in the URL)"
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return f"authentication failed: {said}"
    if isinstance(exc, asyncpg.TooManyConnectionsError):
        return f"too many connections: {said} (lower TODO_APP_POOL_MAX_SIZE, or use a pooler)"
    if isinstance(exc, asyncpg.TargetServerAttributeNotMatched):
        return f"no host matches target_session_attrs: {said}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verify failed: {exc.verify_message} (check sslrootcert and host)"
    if isinstance(exc, asyncpg.ConnectionDoesNotExistError):
        return f"the server closed the connection ({said}): is it a PostgreSQL server?"
    if isinstance(exc, ConnectionError) and "SSL upgrade" in said:
        # asyncpg says this both for "no TLS here" and for an answer that is not
        # PostgreSQL's: it has no separate error type for either.
        return f"TLS refused: {said} (the server has no TLS, or is not a PostgreSQL server)"
    return None


async def _admin(url: DatabaseURL) -> Any:
    """A connection of its own to ``url``'s server, or ``TaskStoreUnavailable`` naming
    why there is none."""
    import asyncpg

    with url.named():
        credentials = postgres_credentials(
            url.params(), pool_min_size=1, pool_max_size=1, ssl_mode=None,
            statement_cache_size=None, connect_timeout=None, statement_timeout=None,
        )  # fmt: skip
    try:
        return await connect_once(credentials)
    except (OSError, asyncpg.PostgresError) as exc:
        raise TaskStoreUnavailable(f"{type(exc).__name__}: {exc}") from exc


async def create_database(url: DatabaseURL, name: str) -> None:
    """``CREATE DATABASE name`` on ``url``'s server (``name``: a plain identifier)."""
    admin = await _admin(url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


async def drop_database(url: DatabaseURL, name: str) -> None:
    """Drop the database ``name`` on ``url``'s server, if there, whoever is connected."""
    admin = await _admin(url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
