"""The database URL as a secret, read with libpq's grammar.

A PostgreSQL URL means what libpq (psql, psycopg, the Neon and Supabase docs) says it
means: :func:`parse_uri` is libpq's URI parser (``conninfo_uri_parse`` in
``fe-connect.c``) rule for rule, refusals and their reasons included, and
``tests/test_libpq_agreement.py`` checks it against libpq itself. asyncpg's own DSN
parser is not used: built on urllib, it ends the user info at a raw ``?``, turns a
``+`` in the query into a space and sends unknown parameters to the server; on the
differential corpus it agrees with libpq's verdict for 872 URLs of 1,525.

A :class:`DatabaseURL` never shows a secret: ``repr()``, ``str()`` and every error
mask the user-info password and the value of every query parameter that is not known
to be harmless, so ``sslpassword`` and any misspelling of a password key are masked too.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterator
from enum import StrEnum
from typing import Any, Final
from urllib.parse import quote

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

from todo_app.errors import DatabaseURLError

__all__ = [
    "DatabaseURL",
    "SSLMode",
    "parse_uri",
]

_POSTGRES_SCHEMES: Final = frozenset({"postgres", "postgresql", "asyncpg"})
#: Keys whose values carry a secret. Values of unknown keys are masked as well.
SECRET_KEYS: Final = frozenset({"password", "sslpassword"})
#: Every libpq keyword todo_app acts on (see todo_app.connection), plus "pgbouncer",
#: todo_app's own marker of a transaction-mode pooler. Their values may be shown.
ACCEPTED_KEYS: Final = frozenset(
    {
        "host", "port", "user", "password", "dbname", "connect_timeout", "application_name",
        "fallback_application_name", "options", "sslmode", "sslrootcert", "sslcert", "sslkey",
        "sslpassword", "sslcrl", "ssl_min_protocol_version", "ssl_max_protocol_version",
        "sslnegotiation", "channel_binding", "target_session_attrs", "load_balance_hosts",
        "passfile", "krbsrvname", "gsslib", "gssencmode", "pgbouncer", "keepalives",
        "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout",
    }
)  # fmt: skip
#: libpq keywords asyncpg cannot honour: why, and what to write instead.
REFUSED_KEYS: Final = {
    "hostaddr": "asyncpg resolves host names itself: put the address in host instead",
    "service": "connection service files are not read: write the parameters in the URL",
    "require_auth": "asyncpg cannot restrict the server's authentication method: remove it",
    "sslcertmode": "asyncpg sends the client certificate it is given: remove it",
    "sslsni": "asyncpg always sends the host name (SNI): remove it",
    "sslcompression": "OpenSSL no longer compresses TLS (libpq ignores it too): remove it",
    "sslkeylogfile": "set the SSLKEYLOGFILE environment variable instead (asyncpg reads it)",
    "client_encoding": "asyncpg always speaks UTF8: remove it",
    "replication": "a replication connection cannot run todo_app's queries: remove it",
    "min_protocol_version": "asyncpg speaks protocol version 3.0 only: remove it",
    "max_protocol_version": "asyncpg speaks protocol version 3.0 only: remove it",
    "scram_client_key": "asyncpg authenticates with the password: use password instead",
    "scram_server_key": "asyncpg authenticates with the password: use password instead",
    "oauth_issuer": "asyncpg has no OAuth support: use password or a client certificate",
    "oauth_client_id": "asyncpg has no OAuth support: use password or a client certificate",
    "oauth_client_secret": "asyncpg has no OAuth support: use password or a client certificate",
    "oauth_scope": "asyncpg has no OAuth support: use password or a client certificate",
    "requirepeer": "asyncpg cannot check the peer of a unix socket: remove it",
    "sslcrldir": "asyncpg reads one revocation list: concatenate them into sslcrl",
    "gssdelegation": "asyncpg does not delegate GSSAPI credentials: remove it",
}
_HEX: Final = frozenset("0123456789abcdefABCDEF")


class SSLMode(StrEnum):
    """libpq's ``sslmode`` values, with libpq's meaning."""

    DISABLE = "disable"
    ALLOW = "allow"
    PREFER = "prefer"
    REQUIRE = "require"
    VERIFY_CA = "verify-ca"
    VERIFY_FULL = "verify-full"


def looks_secret(key: str) -> bool:
    """A password key, or a misspelling of one (``pasword``, ``sslpasswd``...)."""
    key = key.strip().lower()
    if key in SECRET_KEYS or "pass" in key or "pwd" in key or "secret" in key:
        return True
    return any(difflib.SequenceMatcher(None, key, s).ratio() >= 0.75 for s in SECRET_KEYS)


class DatabaseURL:
    """A database URL whose secrets never reach a repr, a log line or an error.

    Construction from a string never fails: a URL that cannot be used says why when used
    (``dialect``, ``params()``, ``check()``), so that a bad setting nobody reads
    (a test server URL, say) cannot break a program that does not need it.
    """

    __slots__ = ("_params", "_raw")

    def __init__(self, url: str) -> None:
        if not isinstance(url, str):
            raise DatabaseURLError("database URL must be a string")
        self._raw = url
        self._params: dict[str, str] | None = None

    # -- secrecy ---------------------------------------------------------------------

    def reveal(self) -> str:
        """The URL with its secrets. Pass it to a driver, never to a log."""
        return self._raw

    @property
    def masked(self) -> str:
        return mask(self._raw)

    def __repr__(self) -> str:
        return f"DatabaseURL({self.masked!r})"

    def __str__(self) -> str:
        return self.masked

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DatabaseURL) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash(self._raw)

    # -- what it points at ------------------------------------------------------------

    @property
    def scheme(self) -> str:
        return self._raw.partition("://")[0].lower() if "://" in self._raw else ""

    @property
    def dialect(self) -> str:
        """``"postgres"`` or ``"sqlite"``."""
        if self.scheme in _POSTGRES_SCHEMES:
            return "postgres"
        if self.scheme == "sqlite":
            return "sqlite"
        if not self.scheme:
            raise DatabaseURLError(
                "database URL must look like postgresql://user:password@host/db or sqlite://path"
            )
        raise DatabaseURLError(
            f"unsupported database scheme {self.scheme!r} in {self.masked}: "
            "use postgresql:// (or postgres://) or sqlite://"
        )

    def params(self) -> dict[str, str]:
        """libpq's keywords and values for a PostgreSQL URL (what ``conninfo_to_dict``
        returns); a SQLite URL's query parameters."""
        if self._params is None:
            rest = self._raw.partition("://")[2]
            dialect = self.dialect
            with self.named():
                if dialect == "sqlite":
                    query = rest.partition("?")[2]
                    self._params = _parse_query(query) if query else {}
                else:
                    self._params = parse_uri(rest)
        return dict(self._params)

    @contextlib.contextmanager
    def named(self) -> Iterator[None]:
        """Every refusal names the (masked) URL it is about."""
        try:
            yield
        except DatabaseURLError as exc:
            raise DatabaseURLError(f"database URL {self.masked}: {exc}") from None

    def check(self) -> DatabaseURL:
        """Parse now, raising :class:`DatabaseURLError` if the URL does not follow
        libpq's grammar (the rules of its parameters are checked when the connection
        entry is built: ``todo_app.connection.tortoise_connection``)."""
        if self.dialect == "sqlite":
            self.sqlite_path  # noqa: B018 - raises when it names no file
        self.params()
        return self

    @property
    def password(self) -> str | None:
        return self.params().get("password")

    @property
    def host(self) -> str | None:
        """The first host (libpq may be given several, tried in order)."""
        hosts = self.params().get("host")
        return hosts.split(",")[0] or None if hosts else None

    @property
    def database(self) -> str | None:
        if self.dialect == "sqlite":
            return self.sqlite_path
        return self.params().get("dbname") or None

    def with_database(self, database: str) -> DatabaseURL:
        """The same server and credentials, another database (tests create their own)."""
        if self.dialect != "postgres":
            raise DatabaseURLError("with_database() applies to PostgreSQL URLs only")
        self.params()  # refuse a URL that does not parse before rewriting it
        head, _, rest = self._raw.partition("://")
        # The path starts at the first "/" after the user info and the hosts.
        at = _userinfo_end(rest)
        start = at + 1 if at >= 0 else 0
        slash = _find_any(rest, "/?", start)
        query = rest.find("?", slash) if slash >= 0 else -1
        hosts = rest[:slash] if slash >= 0 else rest
        tail = rest[query:] if query >= 0 else ""
        return DatabaseURL(f"{head}://{hosts}/{_quote(database)}{tail}")

    @property
    def sqlite_path(self) -> str:
        # sqlite://relative.db, sqlite:///absolute.db and sqlite://:memory: all occur.
        path = _decode(self._raw.partition("://")[2].partition("?")[0], "the SQLite path")
        if not path or path.endswith("/"):  # sqlite:/// names the root directory
            raise DatabaseURLError(f"the SQLite URL {self.masked} names no file")
        return path

    # -- pydantic --------------------------------------------------------------------

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def build(value: object) -> DatabaseURL:
            if isinstance(value, DatabaseURL):
                return value
            if not isinstance(value, str):
                raise DatabaseURLError("database URL must be a string")
            return cls(value.strip())

        return core_schema.no_info_plain_validator_function(
            build, serialization=core_schema.plain_serializer_function_ser_schema(str)
        )


# -- libpq's URI grammar ---------------------------------------------------------------


def _userinfo_end(rest: str) -> int:
    """Index of the "@" ending the user info, or -1. libpq looks for it before the
    first "/" only: a raw "?" or "#" belongs to the password."""
    for index, char in enumerate(rest):
        if char == "@":
            return index
        if char == "/":
            return -1
    return -1


def _find_any(text: str, chars: str, start: int = 0) -> int:
    for index in range(start, len(text)):
        if text[index] in chars:
            return index
    return -1


def parse_uri(rest: str) -> dict[str, str]:
    """libpq's keywords for the part of a PostgreSQL URI after ``scheme://``.

    Mirrors ``conninfo_uri_parse_options``: user info up to the first "@" before any
    "/", a comma-separated host list (``[v6]`` bracketed, each with an optional
    ``:port``), the database after "/", then ``key=value`` parameters joined by "&".
    """
    params: dict[str, str] = {}
    at = _userinfo_end(rest)
    position = 0
    if at >= 0:
        user, colon, password = rest[:at].partition(":")
        if user:
            params["user"] = _decode(user, "the user name")
        if colon and password:
            params["password"] = _decode(password, "the password")
        position = at + 1
    hosts: list[str] = []
    ports: list[str] = []
    stop = ""
    while True:
        if rest.startswith("[", position):
            end = rest.find("]", position)
            if end < 0:
                raise DatabaseURLError(
                    'end of string reached when looking for matching "]" in IPv6 host '
                    "address in URI"
                )
            if end == position + 1:
                raise DatabaseURLError("IPv6 host address may not be empty in URI")
            hosts.append(rest[position + 1 : end])
            position = end + 1
            if position < len(rest) and rest[position] not in ":/?,":
                raise DatabaseURLError(
                    f'unexpected character "{rest[position]}" at position {position} in URI '
                    '(expected ":" or "/")'
                )
        else:
            end = _find_any(rest, ":/?,", position)
            end = len(rest) if end < 0 else end
            hosts.append(rest[position:end])
            position = end
        stop = rest[position] if position < len(rest) else ""
        port = ""
        if stop == ":":
            end = _find_any(rest, "/?,", position + 1)
            end = len(rest) if end < 0 else end
            port = rest[position + 1 : end]
            position = end
            stop = rest[position] if position < len(rest) else ""
        ports.append(port)
        if stop != ",":
            break
        position += 1
    if any(hosts) or len(hosts) > 1:
        params["host"] = _decode(",".join(hosts), "the host")
    if any(ports) or len(ports) > 1:
        params["port"] = _decode(",".join(ports), "the port")
    if stop == "/":
        end = rest.find("?", position)
        end = len(rest) if end < 0 else end
        if database := rest[position + 1 : end]:
            params["dbname"] = _decode(database, "the database name")
        position = end
        stop = "?" if end < len(rest) else ""
    if stop == "?":
        params.update(_parse_query(rest[position + 1 :], postgres=True))
    return params


def _parse_query(query: str, *, postgres: bool = False) -> dict[str, str]:
    """``key=value&...`` as libpq reads it: percent-decoded, "+" kept as a plus sign
    (form decoding would turn it into a space and change a password)."""
    params: dict[str, str] = {}
    after_secret = False
    for part in query.split("&") if query else ():
        key, eq, value = part.partition("=")
        if "=" in value:
            raise DatabaseURLError(
                _bad_parameter(
                    'extra key/value separator "=" in URI query parameter', key, after_secret
                )
            )
        if not eq:
            raise DatabaseURLError(
                _bad_parameter(
                    'missing key/value separator "=" in URI query parameter', key, after_secret
                )
            )
        key = _decode(key, "a parameter name")
        value = _decode(value, f"the value of {key}" if not looks_secret(key) else "a secret")
        if postgres:
            # libpq's own aliases (fe-connect.c): JDBC's ssl=true, and old requiressl.
            if key == "ssl" and value == "true":
                key, value = "sslmode", "require"
            elif key == "requiressl":
                key, value = "sslmode", "require" if value.startswith("1") else "prefer"
            if key not in ACCEPTED_KEYS and key not in REFUSED_KEYS:
                raise DatabaseURLError(_unknown(key, after_secret))
        params[key] = value
        after_secret = (after_secret and key not in ACCEPTED_KEYS) or looks_secret(key)
    return params


def _bad_parameter(problem: str, key: str, after_secret: bool) -> str:
    """libpq's message, but a key that may be part of a password is not shown."""
    if after_secret:
        return (
            f'{problem} after a password (percent-encode "&" and "=" in a password as %26 and %3D)'
        )
    return f'{problem}: "{"***" if looks_secret(key) else key}"'


def _unknown(key: str, after_secret: bool) -> str:
    if after_secret:
        return _bad_parameter("invalid URI query parameter", key, True)
    message = f'invalid URI query parameter: "{key}"'
    if key == "database":
        return message + ' (libpq calls it "dbname")'
    if close := difflib.get_close_matches(key.lower(), sorted(ACCEPTED_KEYS), n=1, cutoff=0.7):
        return message + f" (did you mean {close[0]!r}?)"
    return message


def _decode(text: str, what: str) -> str:
    """libpq's percent-decoding: "%zz" and "%00" are refused, "+" is a plus sign."""
    if "%" not in text:
        return text
    out = bytearray()
    index = 0
    while index < len(text):
        char = text[index]
        if char != "%":
            out += char.encode()
            index += 1
            continue
        digits = text[index + 1 : index + 3]
        if len(digits) < 2 or not set(digits) <= _HEX:
            raise DatabaseURLError(f"invalid percent-encoded token in {what}")
        if not int(digits, 16):
            raise DatabaseURLError(f"forbidden value %00 in percent-encoded value in {what}")
        out.append(int(digits, 16))
        index += 3
    try:
        return out.decode()
    except UnicodeDecodeError:
        raise DatabaseURLError(f"percent-encoded bytes in {what} are not UTF-8") from None


def _quote(text: str) -> str:
    return quote(text, safe="")


# -- masking --------------------------------------------------------------------------


def mask(url: str) -> str:
    """The URL with every possible secret replaced by ``***``, however malformed.

    The user info ends at the *last* "@" (a raw "@" in a password is common); a query
    value is shown only for keys known to be harmless, and nothing after a password-like
    key's unencoded "&". Both over-mask rather than under-mask.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "***"
    userinfo, at, location = rest.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        rest = f"{user}:***@{location}" if colon else f"{user}@{location}"
    before, qmark, query = rest.partition("?")
    parts = []
    after_secret = False
    for part in query.split("&") if qmark else ():
        key, eq, _ = part.partition("=")
        try:
            name = _decode(key, "a key").strip().lower()
        except DatabaseURLError:
            name = ""
        if name in ACCEPTED_KEYS and name not in SECRET_KEYS:
            parts.append(part)
        elif name and eq and not after_secret:
            parts.append(f"{key}=***")
        else:
            parts.append("***")
        # A raw "&" in a password makes its tail look like more parameters.
        after_secret = (after_secret and name not in ACCEPTED_KEYS) or looks_secret(name)
    return f"{scheme}://{before}{qmark}{'&'.join(parts)}"
