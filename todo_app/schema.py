"""The task table as it really is in a database, and how it differs from a recorded shape.

The migration runner and the start-up guard never trust the ``aerich`` bookkeeping
rows alone: a row can be lost, a constraint dropped by hand, a table made by
Tortoise's schema generator. They read the live table from the catalog (columns,
types, nullability, primary key, indexes, named CHECK constraints) into a
:class:`TableShape` and compare it with the shape each migration is recorded to
leave behind (``todo_app.schema_history``).

Column defaults are read but do not count as a difference: the generator and the
migrations disagree about them harmlessly (the repository always writes every
column), and they matter only to decide whether a column added by a newer version
would break this version's inserts (:meth:`TableShape.accepts_writes_of`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from tortoise.backends.base.client import BaseDBAsyncClient

__all__ = ["TABLE", "TableShape", "aerich_columns", "read_shape"]

#: The one table todo_app owns.
TABLE: Final = "todo_app_task"

_SQLITE_CHECK_NAME: Final = re.compile(r'CONSTRAINT\s+"?([A-Za-z0-9_]+)"?\s+CHECK', re.IGNORECASE)


@dataclass(frozen=True)
class TableShape:
    """What a table is made of, as comparable values.

    ``columns`` maps a name to ``"<type>"`` or ``"<type> NOT NULL"`` (the type as the
    database reports it); ``indexes`` maps an index name to ``"(a, b)"`` or
    ``"UNIQUE (a, b)"``, the primary key's own index excluded.
    """

    columns: Mapping[str, str]
    primary_key: tuple[str, ...]
    indexes: Mapping[str, str]
    checks: frozenset[str]
    #: Columns with a default value (not part of equality: see the module docstring).
    defaults: frozenset[str] = field(default=frozenset(), compare=False)

    def without_checks(self) -> TableShape:
        """The same table with no CHECK constraint: what Tortoise's generator makes."""
        return TableShape(self.columns, self.primary_key, self.indexes, frozenset())

    def differences(self, live: TableShape | None) -> list[str]:
        """What ``live`` lacks or has in excess, one line each; empty when they match."""
        return differences(self, live)

    def accepts_writes_of(self, expected: TableShape) -> bool:
        """Whether this (newer) table still takes everything ``expected``'s code does:
        each expected column, index and CHECK is there unchanged, and each extra
        column may be left out of an INSERT (nullable, or with a default)."""
        for name, definition in expected.columns.items():
            if self.columns.get(name) != definition:
                return False
        for name, definition in expected.indexes.items():
            if self.indexes.get(name) != definition:
                return False
        if not expected.checks <= self.checks or self.primary_key != expected.primary_key:
            return False
        extra = self.columns.keys() - expected.columns.keys()
        return all(
            not self.columns[name].endswith(" NOT NULL") or name in self.defaults for name in extra
        )


def differences(expected: TableShape | None, live: TableShape | None) -> list[str]:
    """Lines naming each difference of ``live`` from ``expected`` (None: no table)."""
    if expected is None and live is None:
        return []
    if expected is None:
        return [f'table "{TABLE}" exists, but no migration of todo_app made it']
    if live is None:
        return [f'table "{TABLE}" does not exist']
    lines: list[str] = []
    lines += _compare("column", expected.columns, live.columns)
    if expected.primary_key != live.primary_key:
        lines.append(
            f"primary key is ({', '.join(live.primary_key)}), "
            f"expected ({', '.join(expected.primary_key)})"
        )
    lines += _compare("index", expected.indexes, live.indexes)
    for name in sorted(expected.checks - live.checks):
        lines.append(f'CHECK constraint "{name}" is missing')
    for name in sorted(live.checks - expected.checks):
        lines.append(f'unexpected CHECK constraint "{name}"')
    return lines


def _compare(kind: str, expected: Mapping[str, str], live: Mapping[str, str]) -> list[str]:
    lines = []
    for name in sorted(expected.keys() | live.keys()):
        want, have = expected.get(name), live.get(name)
        if have is None:
            lines.append(f'{kind} "{name}" is missing (expected {want})')
        elif want is None:
            lines.append(f'unexpected {kind} "{name}" ({have})')
        elif want != have:
            lines.append(f'{kind} "{name}" is {have}, expected {want}')
    return lines


async def read_shape(db: BaseDBAsyncClient) -> TableShape | None:
    """The live ``todo_app_task`` table on ``db`` (None when there is none).

    On PostgreSQL the table is the one the connection's ``search_path`` resolves,
    exactly the one every query of the package reaches.
    """
    if db.capabilities.dialect == "postgres":
        return await _read_postgres(db)
    return await _read_sqlite(db)


async def aerich_columns(db: BaseDBAsyncClient) -> set[str] | None:
    """Column names of the ``aerich`` bookkeeping table, None when it does not exist."""
    if db.capabilities.dialect == "postgres":
        _, rows = await db.execute_query(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass('aerich') "
            "AND attnum > 0 AND NOT attisdropped"
        )
        if not rows:
            _, present = await db.execute_query("SELECT to_regclass('aerich') IS NOT NULL AS p")
            return set() if present[0]["p"] else None
        return {str(row["attname"]) for row in rows}
    _, tables = await db.execute_query(
        "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'aerich'"
    )
    if not tables[0]["n"]:
        return None
    _, rows = await db.execute_query('PRAGMA table_info("aerich")')
    return {str(dict(row)["name"]) for row in rows}


def _column(type_name: str, not_null: bool) -> str:
    return f"{type_name} NOT NULL" if not_null else type_name


def _index(columns: list[str], unique: bool) -> str:
    listed = f"({', '.join(columns)})"
    return f"UNIQUE {listed}" if unique else listed


_PG_COLUMNS: Final = f"""
SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
       a.attnotnull AS not_null, a.atthasdef AS has_default
FROM pg_attribute a
WHERE a.attrelid = to_regclass('{TABLE}') AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
_PG_CHECKS: Final = f"""
SELECT conname AS name FROM pg_constraint
WHERE conrelid = to_regclass('{TABLE}') AND contype = 'c'
"""
_PG_INDEXES: Final = f"""
SELECT c.relname AS name, i.indisunique AS is_unique, i.indisprimary AS is_primary,
       array(
           SELECT coalesce(a.attname, '<expression>')
           FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
           LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
           ORDER BY k.ord
       ) AS columns,
       i.indpred IS NOT NULL AS partial
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = to_regclass('{TABLE}')
"""


async def _read_postgres(db: BaseDBAsyncClient) -> TableShape | None:
    _, columns = await db.execute_query(_PG_COLUMNS)
    if not columns:
        return None  # no table (a table always has a column here: todo_app's do)
    _, checks = await db.execute_query(_PG_CHECKS)
    _, indexes = await db.execute_query(_PG_INDEXES)
    primary_key: tuple[str, ...] = ()
    named: dict[str, str] = {}
    for row in indexes:
        if row["is_primary"]:
            primary_key = tuple(row["columns"])
            continue
        definition = _index(list(row["columns"]), bool(row["is_unique"]))
        named[str(row["name"])] = definition + (" WHERE ..." if row["partial"] else "")
    return TableShape(
        columns={str(r["name"]): _column(str(r["type"]), bool(r["not_null"])) for r in columns},
        primary_key=primary_key,
        indexes=named,
        checks=frozenset(str(row["name"]) for row in checks),
        defaults=frozenset(str(r["name"]) for r in columns if r["has_default"]),
    )


async def _read_sqlite(db: BaseDBAsyncClient) -> TableShape | None:
    _, tables = await db.execute_query(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", [TABLE]
    )
    if not tables:
        return None
    ddl = str(dict(tables[0])["sql"])
    _, info = await db.execute_query(f'PRAGMA table_xinfo("{TABLE}")')
    columns = [dict(row) for row in info if dict(row).get("hidden", 0) == 0]
    _, index_list = await db.execute_query(f'PRAGMA index_list("{TABLE}")')
    indexes: dict[str, str] = {}
    for row in map(dict, index_list):
        if row["origin"] == "pk":
            continue
        _, parts = await db.execute_query(f'PRAGMA index_info("{row["name"]}")')
        names = [str(dict(part)["name"]) for part in sorted(parts, key=lambda p: dict(p)["seqno"])]
        definition = _index(names, bool(row["unique"]))
        indexes[str(row["name"])] = definition + (" WHERE ..." if row.get("partial") else "")
    primary = sorted((c for c in columns if c["pk"]), key=lambda c: c["pk"])
    return TableShape(
        columns={
            str(c["name"]): _column(str(c["type"]).upper(), bool(c["notnull"])) for c in columns
        },
        primary_key=tuple(str(c["name"]) for c in primary),
        indexes=indexes,
        checks=frozenset(_SQLITE_CHECK_NAME.findall(ddl)),
        defaults=frozenset(str(c["name"]) for c in columns if c["dflt_value"] is not None),
    )


def shape_literal(shape: TableShape) -> str:
    """``shape`` as Python source, to paste into ``schema_history`` for a new migration."""
    lines = ["TableShape(", "    columns={"]
    lines += [f"        {name!r}: {value!r}," for name, value in shape.columns.items()]
    lines += ["    },", f"    primary_key={shape.primary_key!r},", "    indexes={"]
    lines += [f"        {name!r}: {value!r}," for name, value in sorted(shape.indexes.items())]
    lines += ["    },", "    checks=frozenset({"]
    lines += [f"        {name!r}," for name in sorted(shape.checks)]
    lines += ["    }),", f"    defaults=frozenset({sorted(shape.defaults)!r}),", ")"]
    return "\n".join(lines)
