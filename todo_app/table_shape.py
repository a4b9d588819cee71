"""The task table as it really is in a database, and how it differs from a recorded shape.

The migration runner and the start-up guard never trust the ``aerich`` bookkeeping
rows alone: a row can be lost, a constraint dropped by hand, a table made by
Tortoise's schema generator. Each dialect reads the live table from its catalog
(columns, types, nullability, primary key, indexes, named CHECK constraints) into a
:class:`TableShape` (``todo_app.dialects``), which is compared with the shape each
migration is recorded to leave behind (``todo_app.schema_history``).

Column defaults are read but do not count as a difference: the generator and the
migrations disagree about them harmlessly (the repository always writes every
column), and they matter only to decide whether a column added by a newer version
would break this version's inserts (:meth:`TableShape.accepts_writes_of`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

__all__ = ["TABLE", "TableShape", "column_definition", "differences", "index_definition"]

#: The one table todo_app owns.
TABLE: Final = "todo_app_task"


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


def column_definition(type_name: str, not_null: bool) -> str:
    """A column as :class:`TableShape` compares it."""
    return f"{type_name} NOT NULL" if not_null else type_name


def index_definition(columns: list[str], unique: bool) -> str:
    """An index as :class:`TableShape` compares it."""
    listed = f"({', '.join(columns)})"
    return f"UNIQUE {listed}" if unique else listed
