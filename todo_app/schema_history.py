"""The table each migration leaves behind, per dialect: frozen, like the migrations.

Each migration ``<n>_<timestamp>_<name>.py`` has a recorded shape beside it,
``shapes/<n>_<timestamp>_<name>.json``: per dialect, the columns (type and
nullability as the catalog reports them), primary key, indexes, named CHECK
constraints and the columns with a default. ``todo-app makemigration`` writes it when
it writes the migration, from what throw-away databases hold after applying it, and
nothing edits it afterwards: a later version of the package must still recognise the
tables older ones made. ``tests/test_schema_guard.py`` applies the migrations one by
one on both dialects and asserts each recorded shape is exactly what the database
holds.

The files ship in the wheel with the migrations (``todo_app/_migrations``), so this
module reads whichever folder ``migration_history()`` reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from todo_app.table_shape import TableShape

__all__ = [
    "MIGRATIONS_DIR",
    "SHAPES",
    "SOURCE_DIR",
    "load_shapes",
    "shape_from_json",
    "shape_path",
    "shape_to_json",
]

_APP: Final = "todo_app"  # todo_app.config.APP_LABEL, a layer above this one
PACKAGED_DIR: Final = Path(__file__).parent / "_migrations" / _APP
SOURCE_DIR: Final = Path(__file__).parent.parent / "migrations" / _APP
#: The migrations shipped with this package (inside a wheel) or, in a source
#: checkout, the repository's ``migrations/todo_app``.
MIGRATIONS_DIR: Final = PACKAGED_DIR if PACKAGED_DIR.is_dir() else SOURCE_DIR
_SHAPES_FOLDER: Final = "shapes"


def shape_path(migration: Path) -> Path:
    """Where the recorded shape of the migration file ``migration`` lives."""
    return migration.parent / _SHAPES_FOLDER / f"{migration.stem}.json"


def shape_to_json(shapes: Mapping[str, TableShape]) -> str:
    """``{dialect: shape}`` as the text of a shape file (stable key order, so that a
    recorded file reads the same whichever run wrote it)."""
    data = {
        dialect: {
            "columns": dict(shape.columns),
            "primary_key": list(shape.primary_key),
            "indexes": dict(sorted(shape.indexes.items())),
            "checks": sorted(shape.checks),
            "defaults": sorted(shape.defaults),
        }
        for dialect, shape in sorted(shapes.items())
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def shape_from_json(data: Mapping[str, Any]) -> TableShape:
    """One dialect's entry of a shape file."""
    return TableShape(
        columns=dict(data["columns"]),
        primary_key=tuple(data["primary_key"]),
        indexes=dict(data["indexes"]),
        checks=frozenset(data["checks"]),
        defaults=frozenset(data.get("defaults", ())),
    )


def load_shapes(directory: Path) -> dict[str, dict[str, TableShape]]:
    """Migration file name -> dialect -> the table right after that migration, for
    every shape file recorded in ``directory``."""
    shapes: dict[str, dict[str, TableShape]] = {}
    for path in sorted((directory / _SHAPES_FOLDER).glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        shapes[f"{path.stem}.py"] = {
            dialect: shape_from_json(entry) for dialect, entry in data.items()
        }
    return shapes


#: Migration file name -> dialect -> the table right after that migration.
#: ``todo-app makemigration`` adds the one it records to this dict too, so the process
#: that wrote a migration can apply it at once.
SHAPES: Final[dict[str, dict[str, TableShape]]] = load_shapes(MIGRATIONS_DIR)
