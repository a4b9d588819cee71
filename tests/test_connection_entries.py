"""A config's credentials are built once per connection: validating the settings builds
each URL's entry, and ``tortoise_config()`` takes it from there."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import todo_app.dialects.postgres.connect as postgres
import todo_app.dialects.sqlite.connect as sqlite
from todo_app import get_settings, tortoise_config

PRIMARY = "postgres://app:secret@db.example:5432/app"
READS = "postgres://app:secret@replica-1.example/app postgres://app:secret@replica-2.example/app"


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Counter[str]:
    """How often each dialect's credentials were built, in a directory with no .env."""
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "TODO_APP_DATABASE_URL", "TODO_APP_READ_URLS"):
        monkeypatch.delenv(name, raising=False)
    counts: Counter[str] = Counter()
    for module, builder in ((postgres, "postgres_credentials"), (sqlite, "sqlite_credentials")):
        real = getattr(module, builder)

        def counted(*args: Any, _real: Any = real, _name: str = builder, **kwargs: Any) -> Any:
            counts[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, builder, counted)
    return counts


def test_a_config_from_the_environment_builds_each_connection_once(
    builds: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", PRIMARY)
    monkeypatch.setenv("TODO_APP_READ_URLS", READS)
    config = tortoise_config()
    assert sorted(config["connections"]) == ["default", "default_read1", "default_read2"]
    assert builds == Counter({"postgres_credentials": 3})


def test_a_config_from_given_settings_builds_nothing_more(
    builds: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", PRIMARY)
    monkeypatch.setenv("TODO_APP_READ_URLS", READS)
    settings = get_settings()
    assert builds == Counter({"postgres_credentials": 3})
    tortoise_config(settings=settings)
    tortoise_config(settings=settings)
    assert builds == Counter({"postgres_credentials": 3})


def test_a_sqlite_config_builds_its_one_connection_once(
    builds: Counter[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite://{tmp_path / 'tasks.sqlite3'}")
    tortoise_config()
    assert builds == Counter({"sqlite_credentials": 1})


def test_other_urls_and_changed_settings_get_entries_of_their_own(
    builds: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", PRIMARY)
    settings = get_settings()
    other = tortoise_config("postgres://app@elsewhere.example/app", settings=settings)
    assert other["connections"]["default"]["credentials"]["host"] == "elsewhere.example"
    smaller = settings.model_copy(update={"pool_max_size": 3})
    entry = tortoise_config(settings=smaller)["connections"]["default"]
    assert entry["credentials"]["maxsize"] == 3  # not the original's cached 10
    assert builds == Counter({"postgres_credentials": 3})


def test_each_config_gets_its_own_copy_of_the_entry(
    builds: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", PRIMARY)
    settings = get_settings()
    first = tortoise_config(settings=settings)["connections"]["default"]
    first["credentials"]["maxsize"] = 99
    second = tortoise_config(settings=settings)["connections"]["default"]
    assert second["credentials"]["maxsize"] == settings.pool_max_size
    assert second["engine"] == "todo_app.dialects.postgres.engine"
