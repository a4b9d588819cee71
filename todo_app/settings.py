"""Settings from the environment and ``.env``, and the database URL as a secret.

This is the only module that parses a DSN or prints one. A :class:`DatabaseURL`
never shows its password: ``repr()``, ``str()`` and every error message mask it.
PostgreSQL URLs are accepted the way libpq (and so Neon, Supabase, RDS...) writes
them; :meth:`DatabaseURL.connection` translates the libpq parameters into the
keyword arguments asyncpg takes, because Tortoise would pass them through raw.
"""

from __future__ import annotations

import logging
import math
import ssl
from enum import StrEnum
from typing import Any, Final, Self
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pydantic import AliasChoices, Field, GetCoreSchemaHandler, field_validator, model_validator
from pydantic_core import core_schema
from pydantic_settings import BaseSettings, SettingsConfigDict

from todo_app.pool import reset_session

__all__ = [
    "DEFAULT_DATABASE_URL",
    "DEFAULT_TEST_DATABASE_URL",
    "DatabaseURL",
    "DatabaseURLError",
    "SSLMode",
    "Settings",
    "get_settings",
]

logger = logging.getLogger("todo_app")

DEFAULT_DATABASE_URL: Final = "sqlite://todo_app.sqlite3"
DEFAULT_TEST_DATABASE_URL: Final = "postgres://postgres@127.0.0.1:5432/test"
_POSTGRES_SCHEMES: Final = frozenset({"postgres", "postgresql", "asyncpg"})
#: asyncpg's own default; PgBouncer in transaction mode needs 0.
_DEFAULT_STATEMENT_CACHE_SIZE: Final = 100
#: How much longer than the server's statement_timeout the client waits for an
#: answer (at most; never more than the timeout itself): the server's own
#: cancellation normally comes first, with its clear error.
_CLIENT_TIMEOUT_MARGIN: Final = 5.0


class DatabaseURLError(ValueError):
    """A database URL that cannot be used. The message never contains the password."""


class SSLMode(StrEnum):
    """libpq's ``sslmode`` values, with libpq's meaning (asyncpg implements the same)."""

    DISABLE = "disable"
    ALLOW = "allow"
    PREFER = "prefer"
    REQUIRE = "require"
    VERIFY_CA = "verify-ca"
    VERIFY_FULL = "verify-full"


class DatabaseURL:
    """A database URL whose password never reaches a repr, a log line or an error."""

    __slots__ = ("_parts", "_raw")

    def __init__(self, url: str) -> None:
        if not isinstance(url, str) or "://" not in url:
            raise DatabaseURLError(
                "database URL must look like postgresql://user:password@host/db or sqlite://path"
            )
        try:
            parts = urlsplit(url)
            if parts.scheme.lower() in _POSTGRES_SCHEMES:
                parts.port  # noqa: B018 - urlsplit only validates the port when asked
        except ValueError as exc:
            # The message of urlsplit's error may quote the URL: do not chain it.
            raise DatabaseURLError(
                f"malformed database URL {_mask(url)}: {type(exc).__name__}"
            ) from None
        self._raw = url
        self._parts = parts

    # -- secrecy ---------------------------------------------------------------------

    def reveal(self) -> str:
        """The URL with its password. Pass it to a driver, never to a log."""
        return self._raw

    @property
    def masked(self) -> str:
        return _mask(self._raw)

    def __repr__(self) -> str:
        return f"DatabaseURL({self.masked!r})"

    def __str__(self) -> str:
        return self.masked

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DatabaseURL) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash(self._raw)

    @property
    def password(self) -> str | None:
        password = self._parts.password
        if password is not None:
            return unquote(password)
        return self.query().get("password")

    # -- what it points at ------------------------------------------------------------

    @property
    def scheme(self) -> str:
        return self._parts.scheme.lower()

    @property
    def dialect(self) -> str:
        """``"postgres"`` or ``"sqlite"``."""
        if self.scheme in _POSTGRES_SCHEMES:
            return "postgres"
        if self.scheme == "sqlite":
            return "sqlite"
        raise DatabaseURLError(
            f"unsupported database scheme {self.scheme!r} in {self.masked}: "
            "use postgresql:// (or postgres://) or sqlite://"
        )

    @property
    def host(self) -> str | None:
        return self._parts.hostname

    @property
    def database(self) -> str | None:
        if self.dialect == "sqlite":
            return self._sqlite_path()
        return unquote(self._parts.path.lstrip("/")) or None

    def query(self) -> dict[str, str]:
        return _parse_query(self._parts.query)

    def with_database(self, database: str) -> DatabaseURL:
        """The same server and credentials, another database (tests create their own)."""
        if self.dialect != "postgres":
            raise DatabaseURLError("with_database() applies to PostgreSQL URLs only")
        return DatabaseURL(urlunsplit(self._parts._replace(path="/" + quote(database))))

    def _sqlite_path(self) -> str:
        # sqlite://relative.db, sqlite:///absolute.db and sqlite://:memory: all occur.
        path = self._parts.netloc + self._parts.path
        if not path:
            raise DatabaseURLError(f"SQLite URL {self.masked} names no file")
        return unquote(path)

    # -- what the driver gets ---------------------------------------------------------

    def connection(
        self,
        *,
        pool_min_size: int = 1,
        pool_max_size: int = 10,
        ssl_mode: SSLMode | None = None,
        statement_cache_size: int | None = None,
        connect_timeout: float | None = None,
        statement_timeout: float | None = None,
    ) -> dict[str, Any]:
        """A Tortoise connection entry (``{"engine", "credentials"}``) for this URL.

        Explicit arguments (from :class:`Settings`) win over the URL's own query
        parameters. ``statement_cache_size=None`` means: 0 when the host is a known
        transaction-mode pooler (Neon's ``-pooler`` hosts, or ``pgbouncer=true`` in
        the URL), asyncpg's default otherwise.

        ``statement_timeout`` (seconds) is set on the server where it can be (not
        through a pooler, which refuses startup parameters) and, a few seconds
        longer, as asyncpg's client-side ``command_timeout``, which also catches a
        peer that went silent.
        """
        if self.dialect == "sqlite":
            return self._sqlite_connection()
        return self._postgres_connection(
            pool_min_size=pool_min_size,
            pool_max_size=pool_max_size,
            ssl_mode=ssl_mode,
            statement_cache_size=statement_cache_size,
            connect_timeout=connect_timeout,
            statement_timeout=statement_timeout,
        )

    def _sqlite_connection(self) -> dict[str, Any]:
        params = self.query()
        credentials: dict[str, Any] = {
            "file_path": self._sqlite_path(),
            "journal_mode": params.pop("journal_mode", "WAL"),
            "journal_size_limit": int(params.pop("journal_size_limit", "16384")),
        }
        if params:
            raise DatabaseURLError(
                f"unsupported SQLite URL parameter(s) {sorted(params)} in {self.masked}"
            )
        return {"engine": "tortoise.backends.sqlite", "credentials": credentials}

    def _postgres_connection(
        self,
        *,
        pool_min_size: int,
        pool_max_size: int,
        ssl_mode: SSLMode | None,
        statement_cache_size: int | None,
        connect_timeout: float | None,
        statement_timeout: float | None,
    ) -> dict[str, Any]:
        params = self.query()
        password = params.pop("password", None) or self.password
        credentials: dict[str, Any] = {
            "host": self._parts.hostname or "127.0.0.1",
            "port": self._parts.port or 5432,
            "user": unquote(self._parts.username) if self._parts.username else None,
            # A callable: asyncpg calls it per connection, and Tortoise's DEBUG log of
            # the config (which prints a third of a string password) shows "***".
            "password": _Password(password) if password else None,
            "database": self.database,
            "minsize": pool_min_size,
            "maxsize": pool_max_size,
        }
        url_sslmode = params.pop("sslmode", None)
        mode = ssl_mode or (_parse_sslmode(url_sslmode, self.masked) if url_sslmode else None)
        root_cert = params.pop("sslrootcert", None)
        cert = params.pop("sslcert", None)
        key = params.pop("sslkey", None)
        if mode is not None or root_cert or cert:
            credentials["ssl"] = _ssl_argument(mode or SSLMode.PREFER, root_cert, cert, key)

        channel_binding = params.pop("channel_binding", None)
        if channel_binding not in (None, "disable", "prefer", "require"):
            raise DatabaseURLError(
                f"channel_binding must be disable, prefer or require in {self.masked}"
            )
        if channel_binding == "require":
            # asyncpg speaks SCRAM-SHA-256 but not its -PLUS variant: the password is
            # still never sent in clear, and TLS is governed by sslmode.
            logger.info("channel_binding=require: asyncpg authenticates without channel binding")

        if (timeout := params.pop("connect_timeout", None)) is not None:
            credentials["timeout"] = _number(timeout, "connect_timeout", self.masked)
        elif connect_timeout is not None:
            credentials["timeout"] = connect_timeout
        if (name := params.pop("application_name", None)) is not None:
            credentials["application_name"] = name
        if (attrs := params.pop("target_session_attrs", None)) is not None:
            credentials["target_session_attrs"] = attrs
        if (options := params.pop("options", None)) is not None:
            credentials["server_settings"] = _parse_options(options, self.masked)

        pooler = params.pop("pgbouncer", "").lower() in ("1", "true", "yes")
        pooler = pooler or "-pooler" in (self._parts.hostname or "")
        if statement_cache_size is None:
            statement_cache_size = 0 if pooler else _DEFAULT_STATEMENT_CACHE_SIZE
        credentials["statement_cache_size"] = statement_cache_size
        credentials["reset"] = reset_session
        if statement_timeout is not None:
            if not pooler:
                server_settings = credentials.setdefault("server_settings", {})
                # Rounded up: PostgreSQL reads 0 as "no limit".
                milliseconds = max(1, math.ceil(statement_timeout * 1000))
                server_settings.setdefault("statement_timeout", str(milliseconds))
            margin = min(_CLIENT_TIMEOUT_MARGIN, statement_timeout)
            credentials["command_timeout"] = statement_timeout + margin

        if params:
            raise DatabaseURLError(
                f"unsupported PostgreSQL URL parameter(s) {sorted(params)} in {self.masked}"
            )
        return {"engine": "tortoise.backends.asyncpg", "credentials": credentials}

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
            url = cls(value.strip())
            url.dialect  # noqa: B018 - reject unknown schemes when settings load
            return url

        return core_schema.no_info_plain_validator_function(
            build, serialization=core_schema.plain_serializer_function_ser_schema(str)
        )


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


def _mask(url: str) -> str:
    """Replace the password of a URL with ``***``, however malformed the URL is."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "***"
    # A raw (unencoded) password may contain "/", "?", "#" or "@": everything up to
    # the last "@" is user info. This over-masks when a query value holds an "@",
    # which is the safe way to be wrong.
    userinfo, at, location = rest.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        rest = f"{user}:***@{location}" if colon else f"{user}@{location}"
    before_query, qmark, query = rest.partition("?")
    # libpq also accepts the password as a query parameter, its key perhaps encoded.
    query = "&".join(
        f"{key}=***" if unquote(key).strip().lower() == "password" else part
        for part in query.split("&")
        for key in [part.partition("=")[0]]
    )
    return f"{scheme}://{before_query}{qmark}{query}"


def _parse_query(query: str) -> dict[str, str]:
    """URL query parameters as libpq reads them: percent-decoded, and a "+" is a
    plus sign (``parse_qsl`` would make it a space, changing a password)."""
    params = {}
    for part in query.split("&"):
        if part:
            key, _, value = part.partition("=")
            params[unquote(key)] = unquote(value)
    return params


def _parse_sslmode(value: str, where: str) -> SSLMode:
    try:
        return SSLMode(value.lower())
    except ValueError:
        modes = ", ".join(mode.value for mode in SSLMode)
        raise DatabaseURLError(f"sslmode must be one of {modes} in {where}") from None


def _ssl_argument(
    mode: SSLMode, root_cert: str | None, cert: str | None, key: str | None
) -> str | bool | ssl.SSLContext:
    """What asyncpg's ``ssl=`` should be for a libpq sslmode plus certificate files."""
    if mode is SSLMode.DISABLE:
        return False
    if not (root_cert or cert):
        # asyncpg maps these names exactly as libpq does, including ~/.postgresql/root.crt.
        return mode.value
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if mode in (SSLMode.VERIFY_CA, SSLMode.VERIFY_FULL) or (root_cert and mode is SSLMode.REQUIRE):
        # libpq: "require" with a root certificate behaves like "verify-ca".
        if root_cert == "system":
            context.load_default_certs()
        elif root_cert:
            context.load_verify_locations(cafile=root_cert)
        else:
            context.load_default_certs()
        context.verify_mode = ssl.CERT_REQUIRED
        context.check_hostname = mode is SSLMode.VERIFY_FULL
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert:
        context.load_cert_chain(cert, keyfile=key)
    return context


def _number(value: str, name: str, where: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise DatabaseURLError(f"{name} must be a number in {where}") from None


def _parse_options(options: str, where: str) -> dict[str, str]:
    """libpq ``options=-c key=value -c key2=value2`` as asyncpg ``server_settings``."""
    settings: dict[str, str] = {}
    tokens = options.split()
    index = 0
    while index < len(tokens):
        option = tokens[index]
        if option == "-c" and index + 1 < len(tokens):
            assignment = tokens[index + 1]
            index += 2
        elif option.startswith("-c") and len(option) > 2:
            assignment = option[2:]
            index += 1
        else:
            raise DatabaseURLError(f"options supports only '-c name=value' in {where}")
        name, eq, value = assignment.partition("=")
        if not eq or not name:
            raise DatabaseURLError(f"options supports only '-c name=value' in {where}")
        settings[name] = value
    return settings


class Settings(BaseSettings):
    """todo_app's settings, read from the environment and a ``.env`` file.

    ``DATABASE_URL`` and ``TEST_DATABASE_URL`` are read unprefixed (the names every
    platform uses); the tuning knobs carry a ``TODO_APP_`` prefix so that they cannot
    collide with a host's own variables.
    """

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        # Pydantic echoes the input in its errors; here the input may be a DSN.
        hide_input_in_errors=True,
    )

    database_url: DatabaseURL = Field(
        default=DatabaseURL(DEFAULT_DATABASE_URL),
        validation_alias=AliasChoices("TODO_APP_DATABASE_URL", "DATABASE_URL", "database_url"),
        description="Where tasks live. Default: an embedded SQLite file in the working directory.",
    )
    test_database_url: DatabaseURL = Field(
        default=DatabaseURL(DEFAULT_TEST_DATABASE_URL),
        validation_alias=AliasChoices(
            "TODO_APP_TEST_DATABASE_URL", "TEST_DATABASE_URL", "test_database_url"
        ),
        description="PostgreSQL server the integration tests create their databases on.",
    )
    pool_min_size: int = Field(
        default=1,
        ge=0,
        validation_alias=AliasChoices("TODO_APP_POOL_MIN_SIZE", "pool_min_size"),
    )
    pool_max_size: int = Field(
        default=10,
        ge=1,
        validation_alias=AliasChoices("TODO_APP_POOL_MAX_SIZE", "pool_max_size"),
    )
    ssl_mode: SSLMode | None = Field(
        default=None,
        validation_alias=AliasChoices("TODO_APP_SSL_MODE", "ssl_mode"),
        description="Overrides the URL's sslmode. None: the URL decides (libpq default: prefer).",
    )
    statement_cache_size: int | None = Field(
        default=None,
        ge=0,
        validation_alias=AliasChoices("TODO_APP_STATEMENT_CACHE_SIZE", "statement_cache_size"),
        description="asyncpg prepared-statement cache. None: 0 behind a known pooler, else 100.",
    )

    connect_timeout: float = Field(
        default=10.0,
        gt=0,
        validation_alias=AliasChoices("TODO_APP_CONNECT_TIMEOUT", "connect_timeout"),
        description="Seconds to wait for a new PostgreSQL connection (URL connect_timeout wins).",
    )
    statement_timeout: float | None = Field(
        default=30.0,
        gt=0,
        validation_alias=AliasChoices("TODO_APP_STATEMENT_TIMEOUT", "statement_timeout"),
        description="Seconds a PostgreSQL statement may run. Empty: no limit.",
    )

    @field_validator("ssl_mode", mode="before")
    @classmethod
    def _blank_ssl_mode_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("statement_cache_size", "statement_timeout", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _pool_bounds(self) -> Self:
        if self.pool_min_size > self.pool_max_size:
            raise ValueError("TODO_APP_POOL_MIN_SIZE must not exceed TODO_APP_POOL_MAX_SIZE")
        return self

    def connection(self, url: DatabaseURL | str | None = None) -> dict[str, Any]:
        """The Tortoise connection entry for ``url`` (default ``DATABASE_URL``)."""
        if url is None:
            url = self.database_url
        elif isinstance(url, str):
            url = DatabaseURL(url)
        return url.connection(
            pool_min_size=self.pool_min_size,
            pool_max_size=self.pool_max_size,
            ssl_mode=self.ssl_mode,
            statement_cache_size=self.statement_cache_size,
            connect_timeout=self.connect_timeout,
            statement_timeout=self.statement_timeout,
        )


def get_settings() -> Settings:
    """Settings as the environment and ``.env`` say now (read on every call, never cached)."""
    return Settings()
