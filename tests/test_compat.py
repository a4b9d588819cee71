"""Each dependency internal todo_app uses is there on the installed versions, and
without it todo_app falls back or says which versions it supports (``todo_app.compat``)."""

from __future__ import annotations

import argparse
import atexit
import base64
import json
import zlib
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from todo_app import compat
from todo_app.compat import FEATURES, CompatError


@pytest.fixture(autouse=True)
def _fresh_checks() -> Iterator[None]:
    """Checks are cached per process: each test sees them run against what it patched."""
    from todo_app.dialects.postgres.pool import direct_release

    compat._present.cache_clear()
    direct_release.cache_clear()
    yield
    compat._present.cache_clear()
    direct_release.cache_clear()


@pytest.mark.parametrize("feature", FEATURES, ids=lambda f: f.name)
def test_every_internal_is_there_on_the_installed_versions(feature: compat.Feature) -> None:
    assert feature.present(), feature.what
    compat.require(feature.name)  # and requiring it raises nothing


def _remove_client_pool(mp: pytest.MonkeyPatch) -> None:
    from tortoise.backends.base_postgres.client import BasePostgresClient

    mp.delattr(BasePostgresClient, "_pool")


def _remove_token_used(mp: pytest.MonkeyPatch) -> None:
    from tortoise.connection import ConnectionToken

    mp.setattr(ConnectionToken, "__slots__", ("var", "old"), raising=False)


def _remove_transaction_internals(mp: pytest.MonkeyPatch) -> None:
    from tortoise.backends.base.client import TransactionContextPooled

    async def elsewhere(self: Any) -> Any:
        return self.client

    mp.setattr(TransactionContextPooled, "__aenter__", elsewhere)


def _remove_saved_in_db(mp: pytest.MonkeyPatch) -> None:
    from tortoise.models import Model

    def init(self: Any, **kwargs: Any) -> None:
        self.kwargs = kwargs

    mp.setattr(Model, "__init__", init)


def _remove_global_fallback(mp: pytest.MonkeyPatch) -> None:
    from tortoise.context import TortoiseContext

    async def init(self: Any, config: Any = None) -> None:
        return None

    mp.setattr(TortoiseContext, "init", init)


def _remove_schema_generator_hooks(mp: pytest.MonkeyPatch) -> None:
    from tortoise.backends.base.schema_generator import BaseSchemaGenerator

    mp.delattr(BaseSchemaGenerator, "_get_table_sql")


def _remove_default_connection(mp: pytest.MonkeyPatch) -> None:
    from tortoise.models import MetaInfo

    mp.setattr(MetaInfo, "__slots__", ("db_table", "app"), raising=False)


def _remove_sqlite_client_internals(mp: pytest.MonkeyPatch) -> None:
    from tortoise.backends.sqlite.client import SqliteTransactionContext

    mp.setattr(SqliteTransactionContext, "__slots__", ("connection",), raising=False)


def _remove_direct_release(mp: pytest.MonkeyPatch) -> None:
    from asyncpg.connection import Connection

    mp.delattr(Connection, "_on_release")


def _remove_fair_queue(mp: pytest.MonkeyPatch) -> None:
    from asyncpg import pool

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        self.free = []

    mp.setattr(pool.Pool, "__init__", init)


def _remove_bounded_connection(mp: pytest.MonkeyPatch) -> None:
    from asyncpg import connect_utils

    mp.delattr(connect_utils, "_cancel")


def _remove_decompress_dict(mp: pytest.MonkeyPatch) -> None:
    import aerich.utils

    mp.delattr(aerich.utils, "decompress_dict")


def _remove_models_describe(mp: pytest.MonkeyPatch) -> None:
    import aerich.utils

    mp.delattr(aerich.utils, "get_models_describe")


def _remove_migrate_diff(mp: pytest.MonkeyPatch) -> None:
    from aerich.migrate import Migrate

    mp.delattr(Migrate, "_merge_operators")


def _remove_dotenv_hooks(mp: pytest.MonkeyPatch) -> None:
    from pydantic_settings import DotEnvSettingsSource

    mp.delattr(DotEnvSettingsSource, "_read_env_file")


def _remove_argparse_hooks(mp: pytest.MonkeyPatch) -> None:
    mp.delattr(argparse.HelpFormatter, "_expand_help")


def _remove_run_exitfuncs(mp: pytest.MonkeyPatch) -> None:
    mp.delattr(atexit, "_run_exitfuncs")


REMOVERS: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    "tortoise.client_pool": _remove_client_pool,
    "tortoise.token_used": _remove_token_used,
    "tortoise.transaction_internals": _remove_transaction_internals,
    "tortoise.saved_in_db": _remove_saved_in_db,
    "tortoise.global_fallback": _remove_global_fallback,
    "tortoise.schema_generator_hooks": _remove_schema_generator_hooks,
    "tortoise.default_connection": _remove_default_connection,
    "tortoise.sqlite_client_internals": _remove_sqlite_client_internals,
    "asyncpg.direct_release": _remove_direct_release,
    "asyncpg.fair_queue": _remove_fair_queue,
    "asyncpg.bounded_connection": _remove_bounded_connection,
    "aerich.decompress_dict": _remove_decompress_dict,
    "aerich.models_describe": _remove_models_describe,
    "aerich.migrate_diff": _remove_migrate_diff,
    "pydantic_settings.dotenv_hooks": _remove_dotenv_hooks,
    "argparse.hooks": _remove_argparse_hooks,
    "atexit.run_exitfuncs": _remove_run_exitfuncs,
}


def test_every_feature_has_a_removal_test() -> None:
    assert sorted(REMOVERS) == sorted(feature.name for feature in FEATURES)


@pytest.mark.parametrize("feature", FEATURES, ids=lambda f: f.name)
def test_without_the_internal_the_check_says_so_and_todo_app_falls_back_or_names_versions(
    feature: compat.Feature, monkeypatch: pytest.MonkeyPatch
) -> None:
    REMOVERS[feature.name](monkeypatch)
    assert not feature.present()
    if feature.fallback:
        return  # todo_app goes on without it: the tests below (and test_pool_reset) show how
    with pytest.raises(CompatError) as refused:
        compat.require(feature.name)
    wanted = compat.supported(feature.distribution)
    assert wanted in str(refused.value)
    assert any(sign in wanted for sign in "<>=")  # a range of versions, not just a name


def test_without_the_client_pool_statements_go_through_tortoise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = SimpleNamespace(_pool=object())
    assert compat.client_pool(client) is client._pool
    compat._present.cache_clear()
    _remove_client_pool(monkeypatch)
    assert compat.client_pool(client) is None  # the dialects then use acquire_connection


def test_without_transaction_internals_nothing_is_given_back_by_hand(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lock, connection, pool = object(), object(), object()
    parent = SimpleNamespace(_pool=pool)
    context = SimpleNamespace(
        _trxlock=lock, client=SimpleNamespace(_connection=connection, _parent=parent)
    )
    assert compat.transaction_leftovers(context) == (lock, connection, pool)
    compat._present.cache_clear()
    _remove_transaction_internals(monkeypatch)
    assert compat.transaction_leftovers(context) == (None, None, None)


def test_models_state_decodes_the_same_without_aerichs_helper(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from todo_app.schema_state import migration_history

    texts = [m.load().MODELS_STATE for m in migration_history()]
    assert texts
    with_aerich = [compat.decompress_models_state(text) for text in texts]
    compat._present.cache_clear()
    _remove_decompress_dict(monkeypatch)
    assert [compat.decompress_models_state(text) for text in texts] == with_aerich
    assert with_aerich[0] == json.loads(zlib.decompress(base64.b64decode(texts[0])))


def test_settings_refuse_to_load_without_the_dotenv_hooks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from todo_app.settings import get_settings

    _remove_dotenv_hooks(monkeypatch)
    with pytest.raises(CompatError, match="pydantic-settings"):
        get_settings()


def test_a_task_read_by_sql_refuses_to_guess_without_saved_in_db(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    instance = SimpleNamespace(_saved_in_db=False)
    compat.mark_saved(instance)
    assert compat.is_saved(instance)
    compat._present.cache_clear()
    _remove_saved_in_db(monkeypatch)
    with pytest.raises(CompatError, match="tortoise-orm"):
        compat.mark_saved(instance)


def test_lifespan_refuses_without_the_global_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    assert compat.global_fallback() is True
    compat._present.cache_clear()
    _remove_global_fallback(monkeypatch)
    with pytest.raises(CompatError, match="tortoise-orm"):
        compat.global_fallback()


def test_the_sqlite_engine_falls_back_to_tortoises_client(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    from tortoise.backends.sqlite.client import SqliteClient

    import todo_app.dialects.sqlite.engine as engine

    assert engine.client_class is engine.SafeOpenSqliteClient
    _remove_sqlite_client_internals(monkeypatch)
    try:
        assert importlib.reload(engine).client_class is SqliteClient
    finally:
        monkeypatch.undo()
        importlib.reload(engine)


async def test_check_drift_refuses_without_aerichs_models_describe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from todo_app.migrator import check_drift

    assert await check_drift() == []
    compat._present.cache_clear()
    _remove_models_describe(monkeypatch)
    with pytest.raises(CompatError, match="aerich"):
        await check_drift()


async def test_a_context_of_our_own_refuses_without_default_connection_writes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from todo_app.models import Task

    bound_to = Task._meta.default_connection
    with compat.kept_connection_binding(Task):
        Task._meta.default_connection = "elsewhere"
    assert Task._meta.default_connection == bound_to  # given back
    compat._present.cache_clear()
    _remove_default_connection(monkeypatch)
    with pytest.raises(CompatError, match="tortoise-orm"), compat.kept_connection_binding(Task):
        pass


def test_without_argparse_hooks_help_still_names_the_page_sizes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from todo_app.cli import parser as cli_parser
    from todo_app.repository import MAX_PAGE_SIZE

    # argparse cannot run without the hooks themselves: what is left to prove is that
    # the parser built for such an argparse uses none of them.
    monkeypatch.setattr(cli_parser, "hooks_present", lambda: False)
    monkeypatch.setattr(cli_parser._HelpFormatter, "_expand_help", None)
    parser = cli_parser.build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["list", "--help"])
    shown = capsys.readouterr().out
    assert f"page size, 1..{MAX_PAGE_SIZE} (default 50" in shown
    assert "%(" not in shown


def test_without_run_exitfuncs_the_cli_exits_normally(monkeypatch: pytest.MonkeyPatch) -> None:
    from todo_app.cli import process

    ran: list[int] = []
    monkeypatch.setattr(process.os, "_exit", ran.append)  # must not be reached
    monkeypatch.setattr(process, "_flush_stdout", lambda code: code)
    _remove_run_exitfuncs(monkeypatch)
    assert compat.exit_handlers_run() is False
    with pytest.raises(SystemExit) as exited:
        process._exit(3)
    assert exited.value.code == 3
    assert ran == []
