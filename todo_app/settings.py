"""Settings from the environment and ``.env``: loud about every mistake.

A ``.env`` line that does not parse is an error naming the file and line (python-dotenv
itself only warns, and the default database would silently be used instead); an empty
variable counts as unset; an error names the variable the user actually set. The
database URL itself lives in :mod:`todo_app.dsn`, its translation for the driver in
:mod:`todo_app.connection`.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Annotated, Any, Final, Self

from dotenv.parser import parse_stream
from pydantic import (
    AliasChoices,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from todo_app.compat import require
from todo_app.connection import DEFAULT_POOL_TIMEOUT, check_url, tortoise_connection
from todo_app.dsn import DatabaseURL, SSLMode
from todo_app.errors import DatabaseURLError, TodoAppError

__all__ = [
    "DEFAULT_DATABASE_URL",
    "DEFAULT_TEST_DATABASE_URL",
    "Settings",
    "SettingsError",
    "check_read_url",
    "get_settings",
    "read_url_rules",
]

DEFAULT_DATABASE_URL: Final = "sqlite://todo_app.sqlite3"
DEFAULT_TEST_DATABASE_URL: Final = "postgres://postgres@127.0.0.1:5432/test"


class SettingsError(TodoAppError, ValueError):
    """A setting that cannot be used, named as the user wrote it. Never shows a secret."""


class _StrictDotEnv(DotEnvSettingsSource):
    """python-dotenv skips a line it cannot parse with a warning, and pydantic-settings
    skips a ``.env`` that is not a file (a directory, a dangling symlink) as if it were
    missing; refuse both instead. Only a ``.env`` that does not exist means "none"."""

    def _read_env_files(self) -> Any:
        files = self.env_file
        for env_file in [files] if isinstance(files, str | os.PathLike) else files or []:
            path = Path(env_file).expanduser()
            if os.path.lexists(path) and not (path.is_file() or path.is_fifo()):
                raise SettingsError(f"{path}: cannot be read as a .env file: {_what(path)}")
        return super()._read_env_files()

    def _read_env_file(self, file_path: Path) -> Any:
        encoding = self.env_file_encoding or "utf-8"
        try:
            with open(file_path, encoding=encoding) as stream:
                for binding in parse_stream(stream):
                    if binding.error:
                        # The line is not echoed: it may hold a password.
                        raise SettingsError(
                            f"{file_path}: line {binding.original.line} cannot be parsed "
                            "(an unclosed quote?)"
                        )
            return super()._read_env_file(file_path)
        except OSError as exc:  # unreadable, an I/O error
            raise SettingsError(
                f"{file_path}: cannot be read as a .env file: {exc.strerror or exc}"
            ) from None


def _what(path: Path) -> str:
    """Why ``path``, which exists (perhaps as a broken link), is no file to read."""
    if path.is_dir():
        return "it is a directory"
    try:
        os.stat(path)
    except OSError as exc:  # a symbolic link that cannot be followed
        if exc.errno == errno.ELOOP:
            return "it is a symbolic link loop"
        if exc.errno == errno.ENOENT and path.is_symlink():
            return f"it is a symbolic link to {os.readlink(path)}, which does not exist"
        return exc.strerror or str(exc)
    return "it is not a regular file"


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
        env_ignore_empty=True,
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
    pool_timeout: float | None = Field(
        default=DEFAULT_POOL_TIMEOUT,
        ge=0,
        allow_inf_nan=False,
        validation_alias=AliasChoices("TODO_APP_POOL_TIMEOUT", "pool_timeout"),
        description="Seconds a call waits for a free pool connection before TaskStoreTimeout "
        "(SQLAlchemy's pool_timeout). 0: no limit.",
    )
    ssl_mode: SSLMode | None = Field(
        default=None,
        validation_alias=AliasChoices("TODO_APP_SSL_MODE", "ssl_mode"),
        description="Replaces the URL's sslmode with one at least as strict (a weaker one "
        "is refused). None: the URL decides (libpq default: prefer).",
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
        ge=0,
        validation_alias=AliasChoices("TODO_APP_STATEMENT_TIMEOUT", "statement_timeout"),
        description="Seconds a PostgreSQL statement may run. 0: no limit (PostgreSQL's own).",
    )

    gc_freeze: bool = Field(
        default=True,
        validation_alias=AliasChoices("TODO_APP_GC_FREEZE", "gc_freeze"),
        description="Whether freeze_startup_objects() freezes what start-up made out of "
        "the cyclic collector's full passes (see todo_app.startup).",
    )

    read_urls: Annotated[list[DatabaseURL], NoDecode] = Field(
        default_factory=list,
        validation_alias=AliasChoices("TODO_APP_READ_URLS", "read_urls"),
        description="Read replicas of DATABASE_URL, one server each: whitespace-separated "
        "URLs, or a JSON list. get/list/counts read there (see docs/scaling-out.md).",
    )
    replica_max_lag: float = Field(
        default=5.0,
        gt=0,
        validation_alias=AliasChoices("TODO_APP_REPLICA_MAX_LAG", "replica_max_lag"),
        description="Seconds of writes a replica may be missing and still serve reads.",
    )
    consistency_wait: float = Field(
        default=0.1,
        ge=0,
        validation_alias=AliasChoices("TODO_APP_CONSISTENCY_WAIT", "consistency_wait"),
        description="Seconds a read with a consistency token waits for a replica to "
        "replay it before reading on the primary.",
    )
    replica_check_interval: float = Field(
        default=1.0,
        gt=0,
        validation_alias=AliasChoices("TODO_APP_REPLICA_CHECK_INTERVAL", "replica_check_interval"),
        description="Seconds between two looks at the primary's position and each replica.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        require("pydantic_settings.dotenv_hooks")  # _StrictDotEnv's overrides
        env_file = getattr(dotenv_settings, "env_file", None)
        strict = _StrictDotEnv(settings_cls, env_file=env_file)
        return init_settings, env_settings, strict, file_secret_settings

    #: The connection entries built (and so checked) by validation, by URL and the
    #: options they were built with: ``connection_entry`` takes them from here, so a
    #: config made from these settings builds each connection's credentials once.
    _entries: dict[tuple[Any, ...], dict[str, Any]] = PrivateAttr(default_factory=dict)

    @field_validator("read_urls", mode="before")
    @classmethod
    def _url_list(cls, value: object) -> object:
        # Commas belong to libpq's multi-host URLs: the separator is whitespace.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    return json.loads(text)
                except ValueError:
                    raise ValueError("is not a valid JSON list of URLs") from None
            return text.split()
        return value

    @field_validator("read_urls")
    @classmethod
    def _usable_read_urls(cls, urls: list[DatabaseURL]) -> list[DatabaseURL]:
        for url in urls:
            read_url_rules(url)
        return urls

    @field_validator("statement_timeout", "pool_timeout")
    @classmethod
    def _zero_is_no_limit(cls, value: float | None) -> float | None:
        return value or None

    @model_validator(mode="after")
    def _pool_bounds(self) -> Self:
        if self.pool_min_size > self.pool_max_size:
            raise ValueError("TODO_APP_POOL_MIN_SIZE must not exceed TODO_APP_POOL_MAX_SIZE")
        if self.read_urls and self.database_url.dialect != "postgres":
            raise ValueError(
                "TODO_APP_READ_URLS needs a PostgreSQL DATABASE_URL (replicas of a SQLite "
                "file do not exist)"
            )
        # Each URL is checked by building its entry, kept for connection_entry. The
        # TEST_DATABASE_URL is not: a test-only setting must never break a program that
        # does not run tests; the tests see its error when they use it.
        for field, urls in (("database_url", [self.database_url]), ("read_urls", self.read_urls)):
            for url in urls:
                try:
                    self._entries[self.entry_key(url)] = tortoise_connection(
                        url, **self.connection_options()
                    )
                except DatabaseURLError as exc:
                    raise _Refused(field, str(exc)) from None
        return self

    def connection_options(self) -> dict[str, Any]:
        """What these settings add to a URL's connection entry (pool, TLS, timeouts)."""
        return {
            "pool_min_size": self.pool_min_size,
            "pool_max_size": self.pool_max_size,
            "pool_timeout": self.pool_timeout,
            "ssl_mode": self.ssl_mode,
            "statement_cache_size": self.statement_cache_size,
            "connect_timeout": self.connect_timeout,
            "statement_timeout": self.statement_timeout,
        }

    def entry_key(self, url: DatabaseURL) -> tuple[Any, ...]:
        # The options are part of the key: ``model_copy(update=...)`` keeps the entries
        # of the original, which must not serve the copy's other pool or timeouts.
        return (url, *self.connection_options().items())

    def built_entry(self, url: DatabaseURL) -> dict[str, Any] | None:
        """A copy of the connection entry validation built for ``url`` with these
        settings' options; None when it built none (another URL, changed options)."""
        entry = self._entries.get(self.entry_key(url))
        if entry is None:
            return None
        return {**entry, "credentials": dict(entry["credentials"])}


class _Refused(ValueError):
    """A setting's refusal raised after its field was read (in the model's own check):
    ``get_settings`` names ``field``'s variable, as for a field's own refusal."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_read_url(url: DatabaseURL) -> DatabaseURL:
    """A read replica's URL: PostgreSQL, one server, usable as a connection."""
    read_url_rules(url)
    return check_url(url)


def read_url_rules(url: DatabaseURL) -> DatabaseURL:
    """What a read replica's URL must be besides usable: PostgreSQL, one server."""
    if url.dialect != "postgres":
        raise DatabaseURLError(f"read URL {url.masked}: a read replica must be PostgreSQL")
    if "," in url.params().get("host", ""):
        raise DatabaseURLError(
            f"read URL {url.masked} names several hosts: give each replica a read URL of its "
            "own (todo_app measures each replica's lag on its own)"
        )
    return url


def get_settings(**overrides: Any) -> Settings:
    """Settings as the environment and ``.env`` say now (read on every call, never cached).

    Raises :class:`SettingsError` naming the variable at fault, as it was set.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        error = exc.errors(include_input=False)[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, _Refused):
            field = cause.field
        message = str(error["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"{_variable(field, overrides)}: {message}") from None


def _variable(field: str, overrides: dict[str, Any]) -> str:
    """Which of a field's names the user set: the environment's wins over .env's."""
    names: list[str] = []
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else []
        if field in (name, *choices):  # pydantic reports a field by its first alias
            if name in overrides:
                return name
            names = [choice for choice in choices if isinstance(choice, str)]
    environ = {key.upper(): value for key, value in os.environ.items() if value}
    for name in names:
        if name.upper() in environ:
            return name
    dotenv = Path(str(Settings.model_config.get("env_file") or ".env"))
    if dotenv.is_file():
        with dotenv.open(encoding="utf-8") as stream:
            keys = {b.key.upper() for b in parse_stream(stream) if b.key and b.value}
        for name in names:
            if name.upper() in keys:
                return f"{name} (in {dotenv})"
    return names[0] if names else field
