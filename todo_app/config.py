"""Tortoise configuration for todo_app: the app fragment a host adds, or a whole config.

``TORTOISE_ORM`` is computed on access (PEP 562), so Aerich's ``tortoise_orm`` entry in
``pyproject.toml`` reads the environment when the command runs, not when it is imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from todo_app import replica_policy
from todo_app.connection import tortoise_connection
from todo_app.dsn import DatabaseURL
from todo_app.errors import DatabaseURLError
from todo_app.settings import Settings, get_settings, read_url_rules

__all__ = ["APP_LABEL", "MODELS_MODULE", "app_config", "connection_entry", "tortoise_config"]

APP_LABEL: Final = "todo_app"
MODELS_MODULE: Final = "todo_app.models"
#: Aerich keeps its bookkeeping table through this model; it must be in some app.
AERICH_MODELS_MODULE: Final = "aerich.models"


def app_config(
    connection_name: str = "default",
    *,
    with_aerich: bool = False,
    read_connections: Sequence[str] | None = None,
    replica_max_lag: float = 5.0,
    consistency_wait: float = 0.1,
    replica_check_interval: float = 1.0,
) -> dict[str, Any]:
    """The ``apps["todo_app"]`` entry of a Tortoise config, bound to ``connection_name``.

    A host that already lists ``aerich.models`` in one of its own apps leaves
    ``with_aerich`` off; Tortoise must see that model exactly once.

    ``read_connections`` names connections of the same config that are read replicas
    of ``connection_name`` (PostgreSQL streaming replicas, one server each):
    ``TaskRepository`` reads there (see ``todo_app.replicas`` and
    docs/scaling-out.md). Tortoise keeps no extra keys of an app entry, so this is
    recorded for the process, by connection name: the last call that gives
    ``read_connections`` for a name decides (``[]``: no replicas); a call without
    it leaves the record alone.
    """
    if read_connections is not None:
        replica_policy.register(
            connection_name,
            read_connections,
            max_lag=replica_max_lag,
            consistency_wait=consistency_wait,
            check_interval=replica_check_interval,
        )
    models = [MODELS_MODULE, AERICH_MODELS_MODULE] if with_aerich else [MODELS_MODULE]
    return {"models": models, "default_connection": connection_name}


def connection_entry(settings: Settings, url: DatabaseURL | str | None = None) -> dict[str, Any]:
    """The Tortoise connection entry for ``url`` (default: ``DATABASE_URL``), with the
    package's defaults from ``settings`` (pool, TLS mode, statement cache, timeouts)."""
    if url is None:
        url = settings.database_url
    elif isinstance(url, str):
        url = DatabaseURL(url)
    # Validating the settings built the entries of their own URLs: not again.
    entry = settings.built_entry(url)
    return entry if entry is not None else tortoise_connection(url, **settings.connection_options())


def tortoise_config(
    db_url: DatabaseURL | str | None = None,
    *,
    connection_name: str = "default",
    settings: Settings | None = None,
    read_urls: Sequence[DatabaseURL | str] | None = None,
) -> dict[str, Any]:
    """A whole Tortoise config for todo_app alone, built from settings.

    ``db_url`` overrides ``DATABASE_URL``. The connection carries the package's
    defaults (pool size, SSL mode, statement cache); timestamps are UTC-aware.

    ``read_urls`` are read replicas of the database (each becomes the connection
    ``<connection_name>_read<n>``); by default ``TODO_APP_READ_URLS``, but only for
    ``DATABASE_URL`` itself: another ``db_url`` gets replicas only when given here.
    The config decides for ``connection_name``: without read URLs, it has none.
    """
    settings = settings or get_settings()
    if db_url is None:
        url = settings.database_url
    else:
        url = db_url if isinstance(db_url, DatabaseURL) else DatabaseURL(db_url)
    if read_urls is None:
        read_urls = settings.read_urls if url == settings.database_url else []
    connections = {connection_name: connection_entry(settings, url)}
    names: list[str] = []
    for number, read_url in enumerate(read_urls, start=1):
        read = read_url_rules(
            read_url if isinstance(read_url, DatabaseURL) else DatabaseURL(read_url)
        )
        if url.dialect != "postgres":
            raise DatabaseURLError(f"{url.masked}: read replicas need a PostgreSQL database")
        names.append(f"{connection_name}_read{number}")
        connections[names[-1]] = connection_entry(settings, read)
    return {
        "connections": connections,
        # No "aerich.models": todo_app's own runner does not need it, and the aerich
        # CLI adds it by itself to a config of one app.
        "apps": {
            APP_LABEL: app_config(
                connection_name,
                read_connections=names,
                replica_max_lag=settings.replica_max_lag,
                consistency_wait=settings.consistency_wait,
                replica_check_interval=settings.replica_check_interval,
            )
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def __getattr__(name: str) -> Any:
    if name == "TORTOISE_ORM":
        return tortoise_config()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
