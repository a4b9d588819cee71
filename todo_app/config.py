"""Tortoise configuration for todo_app: the app fragment a host adds, or a whole config.

``TORTOISE_ORM`` is computed on access (PEP 562), so Aerich's ``tortoise_orm`` entry in
``pyproject.toml`` reads the environment when the command runs, not when it is imported.
"""

from __future__ import annotations

from typing import Any, Final

from todo_app.connection import tortoise_connection
from todo_app.settings import DatabaseURL, Settings, get_settings

__all__ = ["APP_LABEL", "MODELS_MODULE", "app_config", "connection_entry", "tortoise_config"]

APP_LABEL: Final = "todo_app"
MODELS_MODULE: Final = "todo_app.models"
#: Aerich keeps its bookkeeping table through this model; it must be in some app.
AERICH_MODELS_MODULE: Final = "aerich.models"


def app_config(connection_name: str = "default", *, with_aerich: bool = False) -> dict[str, Any]:
    """The ``apps["todo_app"]`` entry of a Tortoise config, bound to ``connection_name``.

    A host that already lists ``aerich.models`` in one of its own apps leaves
    ``with_aerich`` off; Tortoise must see that model exactly once.
    """
    models = [MODELS_MODULE, AERICH_MODELS_MODULE] if with_aerich else [MODELS_MODULE]
    return {"models": models, "default_connection": connection_name}


def connection_entry(settings: Settings, url: DatabaseURL | str | None = None) -> dict[str, Any]:
    """The Tortoise connection entry for ``url`` (default: ``DATABASE_URL``), with the
    package's defaults from ``settings`` (pool, TLS mode, statement cache, timeouts)."""
    if url is None:
        url = settings.database_url
    elif isinstance(url, str):
        url = DatabaseURL(url)
    return tortoise_connection(
        url,
        pool_min_size=settings.pool_min_size,
        pool_max_size=settings.pool_max_size,
        ssl_mode=settings.ssl_mode,
        statement_cache_size=settings.statement_cache_size,
        connect_timeout=settings.connect_timeout,
        statement_timeout=settings.statement_timeout,
    )


def tortoise_config(
    db_url: DatabaseURL | str | None = None,
    *,
    connection_name: str = "default",
    settings: Settings | None = None,
) -> dict[str, Any]:
    """A whole Tortoise config for todo_app alone, built from settings.

    ``db_url`` overrides ``DATABASE_URL``. The connection carries the package's
    defaults (pool size, SSL mode, statement cache); timestamps are UTC-aware.
    """
    settings = settings or get_settings()
    return {
        "connections": {connection_name: connection_entry(settings, db_url)},
        # No "aerich.models": todo_app's own runner does not need it, and the aerich
        # CLI adds it by itself to a config of one app.
        "apps": {APP_LABEL: app_config(connection_name)},
        "use_tz": True,
        "timezone": "UTC",
    }


def __getattr__(name: str) -> Any:
    if name == "TORTOISE_ORM":
        return tortoise_config()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
