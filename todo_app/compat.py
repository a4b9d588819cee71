"""Every internal of a dependency that todo_app touches, each feature-checked, in one place.

Each use of a private API (an attribute or hook a dependency does not document) is a
:class:`Feature` in ``FEATURES``: what is used, by whom, and a check that it is there
as expected. Each is checked where it is first used, and then either falls back to
public behaviour (said in ``fallback``) or raises :class:`CompatError` naming the
versions todo_app supports (its own requirement, as installed). ``tests/test_compat.py``
runs every check on the installed versions and removes each internal to exercise the
fallback or the error.

Driver internals (asyncpg's pool and connection, Tortoise's SQLite client and
aiosqlite's worker) are reached in the database's own package, which alone may import
its driver (``todo_app.dialects.<name>``): there they are overrides of driver classes,
not attribute reads that could live here. Their checks are functions of that package,
listed here by name and imported only when ``check()`` asks, so that this module
imports no driver and a SQLite user never loads asyncpg.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import functools
import importlib
import inspect
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, metadata, requires
from typing import Any, Final

from todo_app.errors import TodoAppError

__all__ = [
    "FEATURES",
    "CompatError",
    "Feature",
    "argparse_hooks_present",
    "client_pool",
    "decompress_models_state",
    "exit_handlers_run",
    "feature",
    "global_fallback",
    "is_saved",
    "kept_connection_binding",
    "mark_saved",
    "models_describe",
    "require",
    "supported",
    "token_used",
    "transaction_leftovers",
]


class CompatError(TodoAppError, RuntimeError):
    """An installed dependency lacks an internal todo_app relies on (another version)."""


@dataclass(frozen=True)
class Feature:
    """One internal of a dependency that todo_app uses."""

    #: Short key, e.g. ``tortoise.client_pool``.
    name: str
    #: The distribution that has it, as pip names it.
    distribution: str
    #: What is used, and by which todo_app module.
    what: str
    #: ``"module:function"`` returning whether the internal is there as expected.
    check: str
    #: What todo_app does without it; empty: :func:`require` raises CompatError.
    fallback: str = ""

    def present(self) -> bool:
        module, _, name = self.check.partition(":")
        checker: Callable[[], bool] = getattr(importlib.import_module(module), name)
        return bool(checker())


def supported(distribution: str) -> str:
    """The versions of ``distribution`` todo_app supports: its own requirement."""
    try:
        if distribution == "python":
            return f"Python {metadata('todo-app')['Requires-Python']}"
        wanted = requires("todo-app") or []
    except PackageNotFoundError:  # pragma: no cover - a copy of the folder, not installed
        wanted = []
    for requirement in wanted:
        name = requirement.split(";")[0].strip()
        for cut in "<>=!~ [":
            name = name.split(cut)[0]
        if name.lower().replace("_", "-") == distribution:
            return requirement.split(";")[0].strip()
    return distribution  # pragma: no cover - every feature names a requirement


def require(name: str) -> None:
    """Raise :class:`CompatError` unless the feature ``name`` is present."""
    if not _present(name):
        found = feature(name)
        raise CompatError(
            f"{found.distribution} as installed lacks {found.what}; todo_app supports "
            f"{supported(found.distribution)}: install a version within that range"
        )


def feature(name: str) -> Feature:
    for found in FEATURES:
        if found.name == name:
            return found
    raise KeyError(name)


@functools.cache
def _present(name: str) -> bool:
    # Once per process: a check may build a probe object.
    return feature(name).present()


# -- Tortoise -------------------------------------------------------------------------


def _has_client_pool() -> bool:
    # The base of Tortoise's PostgreSQL clients: it does not import asyncpg.
    from tortoise.backends.base_postgres.client import BasePostgresClient

    return hasattr(BasePostgresClient, "_pool")


def client_pool(client: Any) -> Any:
    """The driver pool of a Tortoise PostgreSQL client (``client._pool``), None before
    it is opened, and None when Tortoise keeps it elsewhere: callers then go through
    Tortoise's own ``acquire_connection``."""
    if not _present("tortoise.client_pool"):
        return None
    return getattr(client, "_pool", None)


def _has_token_used() -> bool:
    from tortoise.connection import ConnectionToken

    return "_used" in getattr(ConnectionToken, "__slots__", ())


def token_used(token: Any) -> bool:
    """Whether Tortoise's connection ``token`` was reset already (``token._used``)."""
    require("tortoise.token_used")
    return bool(token._used)


def _has_saved_in_db() -> bool:
    from tortoise.models import Model

    return "_saved_in_db" in Model.__init__.__code__.co_names


def mark_saved(instance: Any) -> None:
    """Tell Tortoise that ``instance`` is a stored row (``_saved_in_db``), so that its
    ``save()`` updates instead of inserting."""
    require("tortoise.saved_in_db")
    instance._saved_in_db = True


def is_saved(instance: Any) -> bool:
    """Whether Tortoise holds ``instance`` for a stored row (``_saved_in_db``)."""
    require("tortoise.saved_in_db")
    return bool(instance._saved_in_db)


def _has_transaction_internals() -> bool:
    # A PostgreSQL transaction's entry borrows ``_parent._pool`` into ``_connection``;
    # SQLite's ``_trxlock`` is checked with its client (sqlite_client_internals).
    from tortoise.backends.base.client import TransactionContextPooled

    used = set(TransactionContextPooled.__aenter__.__code__.co_names)
    return {"_parent", "_pool", "_connection"} <= used


def transaction_leftovers(context: Any) -> tuple[Any, Any, Any]:
    """What a Tortoise transaction context took before its entry failed: its lock
    (``_trxlock``), its client's connection (``_connection``) and the pool that lent it
    (the parent client's ``_pool``); None for each it did not take or does not have."""
    if not _present("tortoise.transaction_internals"):
        return None, None, None
    client = getattr(context, "client", None)
    return (
        getattr(context, "_trxlock", None),
        getattr(client, "_connection", None),
        client_pool(getattr(client, "_parent", None)),
    )


def _has_global_fallback() -> bool:
    from tortoise.context import TortoiseContext

    return "_enable_global_fallback" in inspect.signature(TortoiseContext.init).parameters


def global_fallback() -> bool:
    """The value for ``TortoiseContext.init(_enable_global_fallback=)``, which makes the
    context every task's fallback (as Tortoise's FastAPI, Starlette and Sanic helpers
    do), once it is known that this Tortoise takes it."""
    require("tortoise.global_fallback")
    return True


def _has_schema_generator_hooks() -> bool:
    from tortoise.backends.base.schema_generator import BaseSchemaGenerator

    return all(
        callable(getattr(BaseSchemaGenerator, name, None))
        for name in ("_get_models_to_create", "_get_table_sql", "get_create_schema_sql")
    )


def _has_default_connection() -> bool:
    from tortoise.models import MetaInfo

    return "default_connection" in getattr(MetaInfo, "__slots__", ())


@contextlib.contextmanager
def kept_connection_binding(model: Any) -> Iterator[None]:
    """Give ``model`` back the connection name it is bound to after the block.

    Tortoise binds models to connection names on the class itself (``_meta``), so a
    context of our own would otherwise leave a host's context looking for our name."""
    require("tortoise.default_connection")
    bound_to = model._meta.default_connection
    try:
        yield
    finally:
        model._meta.default_connection = bound_to


# -- Aerich ---------------------------------------------------------------------------


def _has_decompress_dict() -> bool:
    try:
        from aerich.utils import compress_dict, decompress_dict
    except ImportError:
        return False
    return bool(decompress_dict(compress_dict({"probe": [1]})) == {"probe": [1]})


def decompress_models_state(text: str) -> dict[str, Any]:
    """A migration's ``MODELS_STATE`` as a dict: Aerich's ``decompress_dict``, or the
    same decoding here (base64 of zlib of JSON, Aerich 0.9 to 0.10) without it."""
    if _present("aerich.decompress_dict"):
        from aerich.utils import decompress_dict

        state: dict[str, Any] = decompress_dict(text)
        return state
    decoded: dict[str, Any] = json.loads(zlib.decompress(base64.b64decode(text)))
    return decoded


def _has_models_describe() -> bool:
    try:
        from aerich.utils import get_models_describe
    except ImportError:
        return False
    return callable(get_models_describe)


def models_describe(app: str) -> dict[str, Any]:
    """Aerich's description of ``app``'s models, as its migrations record it."""
    require("aerich.models_describe")
    from aerich.utils import get_models_describe

    described: dict[str, Any] = get_models_describe(app)
    return described


#: What ``todo_app.makemigration`` sets and reads on Aerich's ``Migrate`` (class state,
#: as ``aerich migrate`` uses it) around its two diff calls.
_MIGRATE_STATE: Final = (
    "upgrade_operators",
    "downgrade_operators",
    "_upgrade_fk_m2m_index_operators",
    "_downgrade_fk_m2m_index_operators",
    "_upgrade_m2m",
    "_downgrade_m2m",
    "_rename_fields",
    "_rename_models",
)


def _has_migrate_diff() -> bool:
    try:
        from aerich.ddl.postgres import PostgresDDL
        from aerich.ddl.sqlite import SqliteDDL
        from aerich.exceptions import NotSupportError
        from aerich.migrate import Migrate
        from aerich.utils import get_formatted_compressed_data
    except ImportError:
        return False
    return (
        all(hasattr(Migrate, name) for name in _MIGRATE_STATE)
        and callable(getattr(Migrate, "diff_models", None))
        and callable(getattr(Migrate, "_merge_operators", None))
        and callable(getattr(SqliteDDL, "set_comment", None))
        and callable(get_formatted_compressed_data)
        and issubclass(NotSupportError, Exception)
        and PostgresDDL is not None
    )


# -- pydantic-settings, the standard library --------------------------------------------


def _has_dotenv_hooks() -> bool:
    from pydantic_settings import DotEnvSettingsSource

    return all(
        callable(getattr(DotEnvSettingsSource, name, None))
        for name in ("_read_env_file", "_read_env_files")
    )


def _has_argparse_hooks() -> bool:
    return callable(getattr(argparse.ArgumentParser, "_print_message", None)) and callable(
        getattr(argparse.HelpFormatter, "_expand_help", None)
    )


def argparse_hooks_present() -> bool:
    """Whether argparse has the two methods ``todo_app.cli.parser`` overrides."""
    return _present("argparse.hooks")


def _has_run_exitfuncs() -> bool:
    return callable(getattr(atexit, "_run_exitfuncs", None))


def exit_handlers_run() -> bool:
    """Run the ``atexit`` handlers now (before an ``os._exit``); False when this Python
    has no way to, and the caller must exit normally instead."""
    if not _present("atexit.run_exitfuncs"):
        return False
    atexit._run_exitfuncs()
    return True


_THIS: Final = __name__

#: Every internal todo_app uses, by dependency.
FEATURES: Final = (
    Feature(
        "tortoise.client_pool",
        "tortoise-orm",
        "AsyncpgDBClient._pool (the PostgreSQL dialect's and the replicas' direct "
        "checkouts, todo_app.transactions' clean-up)",
        f"{_THIS}:_has_client_pool",
        fallback="statements go through Tortoise's acquire_connection (slower)",
    ),
    Feature(
        "tortoise.token_used",
        "tortoise-orm",
        "ConnectionToken._used (todo_app.transactions: undo a failed transaction entry)",
        f"{_THIS}:_has_token_used",
    ),
    Feature(
        "tortoise.transaction_internals",
        "tortoise-orm",
        "TransactionContext._trxlock, the client's _connection and _parent "
        "(todo_app.transactions: give back what a failed entry took)",
        f"{_THIS}:_has_transaction_internals",
        fallback="nothing is given back by hand (Tortoise's own clean-up only)",
    ),
    Feature(
        "tortoise.saved_in_db",
        "tortoise-orm",
        "Model._saved_in_db (todo_app.models: a row read by SQL saves as an update)",
        f"{_THIS}:_has_saved_in_db",
    ),
    Feature(
        "tortoise.global_fallback",
        "tortoise-orm",
        "TortoiseContext.init(_enable_global_fallback=) (todo_app.startup.lifespan)",
        f"{_THIS}:_has_global_fallback",
    ),
    Feature(
        "tortoise.schema_generator_hooks",
        "tortoise-orm",
        "BaseSchemaGenerator._get_models_to_create/_get_table_sql (todo_app.testing: "
        "a host's tables next to the migrated ones)",
        f"{_THIS}:_has_schema_generator_hooks",
    ),
    Feature(
        "tortoise.default_connection",
        "tortoise-orm",
        "MetaInfo.default_connection writes (todo_app.migrator: bind Task to a target)",
        f"{_THIS}:_has_default_connection",
    ),
    Feature(
        "tortoise.sqlite_client_internals",
        "tortoise-orm",
        "SqliteClient._connection/_lock, ConnectionWrapper._lock, "
        "SqliteTransactionContext._trxlock (todo_app.dialects.sqlite.engine)",
        "todo_app.dialects.sqlite.engine:internals_as_expected",
        fallback="Tortoise's own SQLite client; the dialect still opens it safely",
    ),
    Feature(
        "asyncpg.direct_release",
        "asyncpg",
        "PoolConnectionHolder.release/_timeout, Connection._on_release "
        "(todo_app.dialects.postgres.pool.release_clean)",
        "todo_app.dialects.postgres.pool:direct_release",
        fallback="Pool.release (a shielded task per checkout, about 15 us)",
    ),
    Feature(
        "asyncpg.fair_queue",
        "asyncpg",
        "Pool._queue, an asyncio.Queue (todo_app.dialects.postgres.pool.make_fair)",
        "todo_app.dialects.postgres.pool:fair_queue_possible",
        fallback="asyncpg's own queue (a waiter can be overtaken; no pool timeout)",
    ),
    Feature(
        "asyncpg.bounded_connection",
        "asyncpg",
        "Connection._cancel_current_command/_execute/_abort "
        "(todo_app.dialects.postgres.engine.BoundedConnection)",
        "todo_app.dialects.postgres.engine:bounded_hooks_present",
        fallback="asyncpg's own cancellation (a frozen server costs twice the timeout)",
    ),
    Feature(
        "aerich.decompress_dict",
        "aerich",
        "aerich.utils.decompress_dict (todo_app.schema_state: a migration's MODELS_STATE)",
        f"{_THIS}:_has_decompress_dict",
        fallback="the same decoding in todo_app.compat",
    ),
    Feature(
        "aerich.models_describe",
        "aerich",
        "aerich.utils.get_models_describe (todo_app.migrator: check_drift)",
        f"{_THIS}:_has_models_describe",
    ),
    Feature(
        "aerich.migrate_diff",
        "aerich",
        "Migrate.diff_models/_merge_operators and its class state, the DDL classes, "
        "get_formatted_compressed_data (todo_app.makemigration: Aerich's autodetection)",
        f"{_THIS}:_has_migrate_diff",
    ),
    Feature(
        "pydantic_settings.dotenv_hooks",
        "pydantic-settings",
        "DotEnvSettingsSource._read_env_file(s) (todo_app.settings: a strict .env)",
        f"{_THIS}:_has_dotenv_hooks",
    ),
    Feature(
        "argparse.hooks",
        "python",
        "ArgumentParser._print_message, HelpFormatter._expand_help (todo_app.cli.parser)",
        f"{_THIS}:_has_argparse_hooks",
        fallback="argparse's own formatter, the page sizes filled in when the parser is "
        "built (importing the repository), and argparse's own writing",
    ),
    Feature(
        "atexit.run_exitfuncs",
        "python",
        "atexit._run_exitfuncs (todo_app.cli.process: flush before os._exit)",
        f"{_THIS}:_has_run_exitfuncs",
        fallback="a normal exit (SystemExit), which runs the handlers itself",
    ),
)
