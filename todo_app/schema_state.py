"""The live schema against the recorded history: what the runner, the start-up guard
and the replica checks all read before they act.

:func:`inspect_schema` reads todo_app's rows of the ``aerich`` table and the live task
table (through the dialect's catalog reader) and says how many migrations' effect the
table shows; :func:`schema_verdict` says whether this version of the code can run on
it. Nothing here writes.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Final

from tortoise.backends.base.client import BaseDBAsyncClient

from todo_app import schema_history
from todo_app.compat import decompress_models_state
from todo_app.config import APP_LABEL
from todo_app.dialects import aerich_columns, dialect_for, read_shape
from todo_app.errors import ForeignAerichTable, MigrationPlanError, SchemaOutOfDate
from todo_app.schema_history import SHAPES
from todo_app.table_shape import TableShape, differences

__all__ = [
    "HOW_TO_MIGRATE",
    "Migration",
    "SchemaState",
    "inspect_schema",
    "migration_history",
    "recorded_migrations",
    "recorded_rows",
    "schema_verdict",
]

logger = logging.getLogger("todo_app.migrations")

#: The folder :func:`migration_history` reads (``schema_history`` finds it); a module
#: global of its own here, so that a test can point the history at a copy.
MIGRATIONS_DIR = schema_history.MIGRATIONS_DIR
_AERICH_COLUMNS: Final = frozenset({"id", "version", "app", "content"})
#: What to run, in words that work where a host stands.
HOW_TO_MIGRATE: Final = (
    "apply todo_app's migrations: `todo-app --db <database URL> migrate`, or "
    "`await todo_app.migrate()` at start-up, or with Aerich "
    "`todo-app install-migrations && aerich --app todo_app upgrade`"
)


@dataclass(frozen=True)
class Migration:
    """One migration file: ``<number>_<timestamp>_<name>.py``."""

    number: int
    filename: str
    path: Path

    def load(self) -> ModuleType:
        spec = importlib.util.spec_from_file_location(
            f"todo_app_migration_{self.number}", self.path
        )
        if spec is None or spec.loader is None:  # pragma: no cover - a .py path always loads
            raise MigrationPlanError(f"cannot load migration {self.filename}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    def models_state(self) -> dict[str, Any]:
        state = getattr(self.load(), "MODELS_STATE", None)
        if not state:
            raise MigrationPlanError(f"migration {self.filename} records no MODELS_STATE")
        return decompress_models_state(state)


def migration_history(directory: Path | None = None) -> list[Migration]:
    """Every migration file, oldest first (Aerich's naming and ordering)."""
    directory = MIGRATIONS_DIR if directory is None else directory
    migrations = []
    for path in directory.glob("*.py"):
        number, sep, _ = path.stem.partition("_")
        if sep and number.isdigit():
            migrations.append(Migration(int(number), path.name, path))
    migrations.sort(key=lambda migration: migration.number)
    numbers = [migration.number for migration in migrations]
    if len(set(numbers)) != len(numbers):
        raise MigrationPlanError(f"two migrations share a number in {directory}")
    return migrations


async def recorded_migrations(db: BaseDBAsyncClient) -> list[str]:
    """todo_app's rows of the ``aerich`` table, oldest first, each name once."""
    return list(dict.fromkeys(version for _, version in await recorded_rows(db)))


async def recorded_rows(db: BaseDBAsyncClient) -> list[tuple[int, str]]:
    """todo_app's rows of the ``aerich`` table as ``(id, version)``, in id order,
    duplicates included (the runner repairs them; readers use
    :func:`recorded_migrations`)."""
    columns = await aerich_columns(db)
    if columns is None:
        return []
    if not columns >= _AERICH_COLUMNS:
        raise ForeignAerichTable(
            'the table "aerich" is not Aerich\'s bookkeeping table (it lacks the columns '
            f"{', '.join(sorted(_AERICH_COLUMNS - columns))}): rename or move it, or give "
            "todo_app a database (or PostgreSQL schema) of its own"
        )
    mark = dialect_for(db).param(1)
    _, rows = await db.execute_query(
        f'SELECT "id", "version" FROM "aerich" WHERE "app" = {mark} ORDER BY "id"',  # noqa: S608
        [APP_LABEL],
    )
    return [(int(row["id"]), str(row["version"])) for row in rows]


@dataclass(frozen=True)
class SchemaState:
    """The bookkeeping rows and the live table, read together, and what they mean.

    ``level`` is how many of this version's migrations the live table shows the
    effect of (it equals the shape recorded after that many), or None when it
    matches no recorded shape.
    """

    dialect: str
    names: list[str]
    recorded: list[str]
    live: TableShape | None
    level: int | None
    shapes: list[TableShape | None] = field(repr=False)
    #: The raw ``(id, version)`` rows behind ``recorded``, duplicates included.
    rows: list[tuple[int, str]] = field(default_factory=list, repr=False)

    @property
    def unknown(self) -> list[str]:
        """Recorded migrations this version has no file for (a newer version's)."""
        return [name for name in self.recorded if name not in self.names]

    @property
    def known(self) -> list[str]:
        return [name for name in self.recorded if name in self.names]

    @property
    def expected(self) -> TableShape | None:
        """The table the bookkeeping says should be there."""
        return self.shapes[len(self.known)]

    @property
    def head(self) -> TableShape | None:
        return self.shapes[-1]

    def adoptable_level(self) -> int | None:
        """The migration level of a table made by Tortoise's schema generator (the
        real table without any CHECK constraint) that todo_app has no row for."""
        if self.recorded or self.live is None or self.live.checks:
            return None
        for level in range(len(self.shapes) - 1, 0, -1):
            shape = self.shapes[level]
            if shape is not None and self.live == shape.without_checks():
                return level
        return None

    @property
    def irregular_rows(self) -> bool:
        """The known rows hold a duplicate or are out of history order: what two
        runners racing (before todo_app serialised Aerich's stubs) could leave. Aerich
        reverts the row with the highest id first, so the order matters."""
        versions = [version for _, version in self.rows if version in self.names]
        return versions != self.names[: len(versions)]

    @property
    def pending(self) -> list[str]:
        return self.names[len(self.known) :]

    def differences(self) -> list[str]:
        """How the live table differs from what the bookkeeping says it should be; for
        a table no migration of todo_app made, how it differs from the newest one."""
        if self.expected is None and self.live is not None:
            return differences(self.head, self.live)
        return differences(self.expected, self.live)


async def inspect_schema(db: BaseDBAsyncClient) -> SchemaState:
    """Read todo_app's bookkeeping rows and its live table on ``db``."""
    names = [migration.filename for migration in migration_history()]
    dialect = str(db.capabilities.dialect)
    rows = await recorded_rows(db)
    recorded = list(dict.fromkeys(version for _, version in rows))
    live = await read_shape(db)
    shapes: list[TableShape | None] = [None]
    for name in names:
        try:
            shapes.append(SHAPES[name][dialect])
        except KeyError:  # pragma: no cover - tests/test_schema_guard.py checks every file
            raise MigrationPlanError(f"no recorded table shape for {name} on {dialect}") from None
    matches = [level for level, shape in enumerate(shapes) if shape == live]
    known = len([name for name in recorded if name in names])
    # Migrations that leave the table as it was (data-only ones) make several levels
    # look alike: the bookkeeping decides between them when it agrees with the table.
    level = known if known in matches else (matches[-1] if matches else None)
    return SchemaState(dialect, names, recorded, live, level, shapes, rows)


def schema_verdict(state: SchemaState, *, allow_newer: bool = True) -> SchemaOutOfDate | None:
    """The guard's verdict on ``state``: None when this code can run on it.

    A database migrated by a newer todo_app passes when ``allow_newer`` is set and
    its table still takes this version's reads and writes (every column, index and
    CHECK this version knows is unchanged; each new column is nullable or has a
    default): the expand phase of an expand-contract migration, during a rolling
    deploy.
    """
    names, head = state.names, len(state.names)
    if state.unknown:
        head_shape = state.head
        compatible = (
            state.live is not None
            and head_shape is not None
            and state.live.accepts_writes_of(head_shape)
        )
        if compatible and allow_newer:
            logger.warning(
                "the database was migrated by a newer version of todo_app (%s unknown here); "
                "its table still takes this version's writes",
                ", ".join(state.unknown),
            )
            return None
        why = (
            "upgrade the package (this version may run on it: pass allow_newer=True, "
            "or `todo-app check --allow-newer`)"
            if compatible
            else "its table no longer takes this version's writes: upgrade the package"
        )
        return SchemaOutOfDate(
            f"the database was migrated by a newer version of todo_app "
            f"({', '.join(state.unknown)} unknown here): {why}",
            unknown=state.unknown,
            differences=state.differences() if state.expected is not None else [],
        )
    recorded = set(state.known)
    if state.level is not None and not recorded - set(names[: state.level]):
        unrecorded = [name for name in names[: state.level] if name not in recorded]
        pending = names[state.level :]
        if pending:
            return SchemaOutOfDate(
                f"the database schema is behind this version of todo_app: {len(pending)} "
                f"migration(s) not applied ({', '.join(pending)}); {HOW_TO_MIGRATE}",
                pending=pending,
            )
        if unrecorded:
            return SchemaOutOfDate(
                "the table is at this version's schema, but the aerich rows of "
                f"{', '.join(unrecorded)} are missing; {HOW_TO_MIGRATE} (it records them "
                "without running them again)",
                pending=unrecorded,
            )
        return None
    if state.adoptable_level() is not None:
        return SchemaOutOfDate(
            f'the table "todo_app_task" was made by Tortoise\'s schema generator, without '
            f"todo_app's database rules (CHECK constraints); {HOW_TO_MIGRATE}: it completes "
            "the table and keeps every row",
            pending=names,
            differences=state.differences(),
        )
    found = state.differences() or [
        "aerich rows record migrations whose effect the table lacks: "
        + ", ".join(name for name in state.known if name not in names[: state.level or 0])
    ]
    return SchemaOutOfDate(
        f"the table is not what todo_app's migrations made ({len(state.known)} of {head} "
        f"recorded as applied): {'; '.join(found)}",
        pending=state.pending,
        differences=found,
    )
