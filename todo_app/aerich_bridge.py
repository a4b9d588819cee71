"""Aerich in a host project: todo_app's migrations as files in the host's own folder.

Aerich reads every app's migrations from one ``location`` (``<location>/<app>/``,
relative to the working directory), so a host that deploys with ``aerich upgrade``
needs todo_app's files there. ``todo-app install-migrations`` writes them, the way
Rails engines install theirs: it adds what is new, never overwrites a file that
differs, and says what it did; ``todo-app check`` says when the host's copy is
behind the installed package.

Each installed file is a small stub, not a copy of the SQL: its ``upgrade`` and
``downgrade`` hand Aerich's transaction to the package, which holds the frozen SQL
and checks the live table first, exactly as ``todo_app.migrate()`` does. That is
what makes the order of a host's deployment steps irrelevant: a ``todo_app_task``
table that the host's own ``aerich init-db`` (or ``generate_schemas()``) made
without CHECK constraints is completed into the real one with its rows kept, and an
effect that is already present is only recorded.
"""

from __future__ import annotations

import tomllib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from tortoise.backends.base.client import BaseDBAsyncClient

from todo_app.config import APP_LABEL
from todo_app.dialects import dialect_for
from todo_app.errors import MigrationPlanError, SchemaAhead, SchemaMismatch
from todo_app.migrator import adopt, lock_aerich_transaction, run_script
from todo_app.schema_history import SOURCE_DIR
from todo_app.schema_state import inspect_schema, migration_history

__all__ = [
    "InstallReport",
    "aerich_migration",
    "host_migrations_dir",
    "install_migrations",
    "missing_from",
]

_STUB: Final = '''"""todo_app migration {filename}, installed by `todo-app install-migrations`.

The SQL is frozen inside the installed todo_app package; this file hands Aerich's
transaction to it, and todo_app checks the live table first. Do not edit: a newer
todo_app installs its new migrations next to this one.
"""

from todo_app.aerich_bridge import aerich_migration

RUN_IN_TRANSACTION = True

upgrade, downgrade, MODELS_STATE = aerich_migration("{filename}")
'''

Step = Callable[[BaseDBAsyncClient], Awaitable[str]]
#: What Aerich is handed to run once the package has done the work itself (asyncpg
#: refuses an empty script).
_DONE: Final = "SELECT 1; -- todo_app applied this migration itself"


def aerich_migration(filename: str) -> tuple[Step, Step, str]:
    """``upgrade``, ``downgrade`` and ``MODELS_STATE`` of an installed stub file."""
    history = migration_history()
    names = [migration.filename for migration in history]
    if filename not in names:
        raise MigrationPlanError(
            f"{filename} is not a migration of the installed todo_app: install the "
            "todo_app version that wrote it, or remove the file"
        )
    index = names.index(filename)
    migration = history[index]
    state_string = str(getattr(migration.load(), "MODELS_STATE", ""))

    async def upgrade(db: BaseDBAsyncClient) -> str:
        await lock_aerich_transaction(db)
        # Committed here rather than by Aerich's executescript (which commits first).
        async with dialect_for(db).migration_transaction(db):
            await _apply(db)
        # Aerich checked for this file's row before the lock; another runner may have
        # recorded it (and later ones) since. Aerich inserts its row after the handed
        # back script: clearing this file's rows and the later ones first leaves one
        # row each, in order (Aerich records the later ones as it goes on).
        return await dialect_for(db).handoff_to_aerich(
            db, _DONE, forget=names[index:], revert=False
        )

    async def _apply(db: BaseDBAsyncClient) -> None:
        state = await inspect_schema(db)
        if state.unknown:
            raise SchemaAhead(
                "the database was migrated by a newer version of todo_app "
                f"({', '.join(state.unknown)} unknown here): upgrade the package",
                state.unknown,
            )
        if state.level is not None and state.level > index:
            pass  # its effect is there already: Aerich records it
        elif state.level == index:
            await run_script(db, await migration.load().upgrade(db))
        elif (level := state.adoptable_level()) is not None and level > index:
            await adopt(db, history[:level], state)
        else:
            found = state.differences()
            raise SchemaMismatch(
                f"cannot apply {filename}: the table is not what the earlier migrations "
                "made: " + "; ".join(found),
                found,
            )

    async def downgrade(db: BaseDBAsyncClient) -> str:
        await lock_aerich_transaction(db)
        state = await inspect_schema(db)
        if state.level != index + 1 or set(state.known) != set(names[: index + 1]):
            if state.irregular_rows:
                raise SchemaMismatch(
                    f"cannot revert {filename} with Aerich: todo_app's rows of the aerich "
                    "table are out of order, and Aerich reverts the newest row first: run "
                    "`todo-app migrate` (it rewrites them) and revert again",
                    ["the bookkeeping rows are out of order"],
                )
            found = state.differences() or ["the bookkeeping rows are out of order"]
            raise SchemaMismatch(
                f"cannot revert {filename}: the table is not what it made: " + "; ".join(found),
                found,
            )
        # Aerich deletes the row it read before the lock, by id; another runner may
        # have rewritten the rows since. Every row of this file goes with the revert.
        script: str = await migration.load().downgrade(db)
        return await dialect_for(db).handoff_to_aerich(db, script, forget=[filename], revert=True)

    return upgrade, downgrade, state_string


def host_migrations_dir(config_file: Path | None = None) -> Path | None:
    """todo_app's folder in the host's Aerich ``location``, found as Aerich finds it,
    or None when there is none.

    Aerich reads ``config_file`` (its ``-c``, default ``pyproject.toml`` in the
    working directory), takes ``[tool.aerich]`` when it is there and not empty, else
    ``[tool.tortoise]`` (what ``aerich init`` writes next to Tortoise 1.x), and
    resolves ``location`` against the working directory, not the file's folder.
    """
    config_file = Path("pyproject.toml") if config_file is None else config_file
    try:
        config = tomllib.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    tool = config.get("tool", {})
    section = (tool.get("aerich") or tool.get("tortoise")) if isinstance(tool, dict) else None
    location = section.get("location") if isinstance(section, dict) else None
    if not isinstance(location, str) or not location:
        return None
    return aerich_dir(location)


def aerich_dir(location: str) -> Path:
    """Where Aerich looks for todo_app's files, given its ``location`` setting."""
    if "{app}" in location:
        return Path(location.format(app=APP_LABEL))
    return Path(location, APP_LABEL)


@dataclass
class InstallReport:
    """What :func:`install_migrations` did, file by file."""

    directory: Path
    installed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # present, but not what we would write
    unknown: list[str] = field(default_factory=list)  # not a migration of this version


def _is_source(directory: Path) -> bool:
    return directory.resolve() == SOURCE_DIR.resolve()


def install_migrations(directory: Path) -> InstallReport:
    """Write the stub of every migration of this version into ``directory``.

    Never overwrites: a file of the same name whose content differs is kept and
    reported. Refuses the package's own source folder.
    """
    if _is_source(directory):
        raise MigrationPlanError(
            f"{directory} is todo_app's own source folder: install into a host project"
        )
    directory.mkdir(parents=True, exist_ok=True)
    report = InstallReport(directory)
    names = [migration.filename for migration in migration_history()]
    for name in names:
        path = directory / name
        stub = _STUB.format(filename=name)
        if not path.exists():
            path.write_text(stub, encoding="utf-8")
            report.installed.append(name)
        elif path.read_text(encoding="utf-8") == stub:
            report.unchanged.append(name)
        else:
            report.kept.append(name)
    report.unknown = sorted(
        path.name
        for path in directory.glob("*.py")
        if path.stem.partition("_")[0].isdigit() and path.name not in names
    )
    return report


def missing_from(directory: Path) -> list[str]:
    """This version's migrations that ``directory`` (a host's copy) lacks."""
    if _is_source(directory) or not directory.is_dir():
        return []
    present = {path.name for path in directory.glob("*.py")}
    return [m.filename for m in migration_history() if m.filename not in present]
