"""The table each migration leaves behind, per dialect: frozen, like the migrations.

Written once, when a migration is written, from what the database reports after
applying it (``todo_app.table_shape.shape_literal`` prints it), and never edited after:
a later version of the package must still recognise the tables older ones made.
``tests/test_schema_guard.py`` applies the migrations one by one on both dialects and
asserts each recorded shape is exactly what the database holds.
"""

from __future__ import annotations

from typing import Final

from todo_app.table_shape import TableShape

__all__ = ["SHAPES"]

_INIT: Final = "0_20261126030000_init.py"
_VERSION: Final = "1_20261126040000_version_completed_at.py"

_INDEXES_0: Final = {
    "todo_app_task_user_created_idx": "(user_id, created_at, id)",
    "todo_app_task_user_status_idx": "(user_id, status)",
}
_CHECKS_0: Final = frozenset(
    {
        "todo_app_task_description_max_length",
        "todo_app_task_description_not_empty",
        "todo_app_task_status_max_length",
        "todo_app_task_status_not_empty",
        "todo_app_task_title_max_length",
        "todo_app_task_title_not_blank",
        "todo_app_task_title_stripped",
        "todo_app_task_user_id_max_length",
        "todo_app_task_user_id_not_blank",
    }
)
# SQLite stores NUL, PostgreSQL text cannot: the *_no_nul CHECKs exist on SQLite only.
_SQLITE_NO_NUL: Final = frozenset(
    {
        "todo_app_task_description_no_nul",
        "todo_app_task_title_no_nul",
        "todo_app_task_user_id_no_nul",
    }
)
_CHECKS_1: Final = frozenset(
    {"todo_app_task_completed_at_matches_status", "todo_app_task_version_positive"}
)

_SQLITE_0: Final = TableShape(
    columns={
        "id": "CHAR(36) NOT NULL",
        "user_id": "VARCHAR(255) NOT NULL",
        "title": "VARCHAR(200) NOT NULL",
        "description": "VARCHAR(1000)",
        "status": "VARCHAR(32) NOT NULL",
        "created_at": "TIMESTAMP NOT NULL",
        "updated_at": "TIMESTAMP NOT NULL",
    },
    primary_key=("id",),
    indexes=_INDEXES_0,
    checks=_CHECKS_0 | _SQLITE_NO_NUL,
)
_POSTGRES_0: Final = TableShape(
    columns={
        "id": "uuid NOT NULL",
        "user_id": "character varying(255) NOT NULL",
        "title": "character varying(200) NOT NULL",
        "description": "character varying(1000)",
        "status": "character varying(32) NOT NULL",
        "created_at": "timestamp with time zone NOT NULL",
        "updated_at": "timestamp with time zone NOT NULL",
    },
    primary_key=("id",),
    indexes=_INDEXES_0,
    checks=_CHECKS_0,
)

#: Migration file name -> dialect -> the table right after that migration.
SHAPES: Final[dict[str, dict[str, TableShape]]] = {
    _INIT: {"sqlite": _SQLITE_0, "postgres": _POSTGRES_0},
    _VERSION: {
        "sqlite": TableShape(
            columns={**_SQLITE_0.columns, "version": "INT NOT NULL", "completed_at": "TIMESTAMP"},
            primary_key=("id",),
            indexes=_INDEXES_0,
            checks=_SQLITE_0.checks | _CHECKS_1,
            defaults=frozenset({"version"}),
        ),
        "postgres": TableShape(
            columns={
                **_POSTGRES_0.columns,
                "version": "integer NOT NULL",
                "completed_at": "timestamp with time zone",
            },
            primary_key=("id",),
            indexes=_INDEXES_0,
            checks=_POSTGRES_0.checks | _CHECKS_1,
            defaults=frozenset({"version"}),
        ),
    },
}
