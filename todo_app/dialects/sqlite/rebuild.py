"""A table rebuild, as SQL: how a SQLite migration changes what ``ALTER TABLE`` cannot.

SQLite cannot change a column's type, nullability or default in place. Its documented
way is a rebuild, as migration 1 does by hand: create the new table under another
name, copy the rows, drop the old table, rename the new one, create the indexes again.
:func:`rebuild_scripts` writes both directions from the table's ``CREATE TABLE`` text
as SQLite keeps it (the previous migration's, with its named CHECKs) and the text
Tortoise's schema generator makes for the model now:

* a column whose type and nullability are unchanged keeps its old definition (its
  default included); a changed or new column takes the generator's; a column the
  model no longer has is left out;
* every table constraint of the old text is kept unless it names a column left out;
* the rows of the columns both tables have are copied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model

__all__ = ["Rebuild", "rebuild_for", "rebuild_scripts", "split_statements"]

_COLUMN: Final = re.compile(r'\s*"(?P<name>[^"]+)"\s+(?P<type>[A-Za-z]+(?:\s*\([^)]*\))?)')
_IDENTIFIER: Final = re.compile(r'"([^"]+)"')
_COMMENT: Final = re.compile(r"/\*.*?\*/|--[^\n]*", re.DOTALL)
_CONSTRAINT_NAME: Final = re.compile(r'^\s*CONSTRAINT\s+"[^"]+"', re.IGNORECASE)


@dataclass(frozen=True)
class Rebuild:
    """Both directions of a rebuild, each a script of statements."""

    upgrade: str
    downgrade: str


def _scan(text: str, start: int) -> tuple[list[str], int]:
    """The top-level comma-separated items from just after the ``(`` at ``start`` to
    its matching ``)``, and the index after that ``)``. Quotes and comments are
    skipped whole: a comma or parenthesis inside them does not count."""
    items: list[str] = []
    depth, n, begin = 0, start + 1, start + 1
    while n < len(text):
        char = text[n]
        if char in "'\"":
            n = text.index(char, n + 1)  # SQL doubles a quote inside: two spans, same result
        elif text.startswith("/*", n):
            n = text.index("*/", n) + 1
        elif text.startswith("--", n):
            n = text.find("\n", n) if "\n" in text[n:] else len(text) - 1
        elif char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                items.append(text[begin:n])
                return [item.strip() for item in items if item.strip()], n + 1
            depth -= 1
        elif char == "," and depth == 0:
            items.append(text[begin:n])
            begin = n + 1
        n += 1
    raise ValueError("CREATE TABLE text without its closing parenthesis")


def _parts(ddl: str) -> tuple[list[str], str]:
    """The items of a ``CREATE TABLE`` and what follows its list (a comment)."""
    items, end = _scan(ddl, ddl.index("("))
    trailer = ddl[end:].strip().rstrip(";").strip()
    return items, trailer


def _column(item: str) -> tuple[str, str, bool] | None:
    """``(name, type, not null)`` of a column definition; None for a constraint."""
    if not item.startswith('"'):
        return None
    plain = _COMMENT.sub(" ", item)
    match = _COLUMN.match(plain)
    if match is None:
        raise ValueError(f"a column definition todo_app cannot read: {item}")
    kind = re.sub(r"\s+", "", match["type"]).upper()
    return match["name"], kind, "NOT NULL" in plain.upper()


def split_statements(script: str) -> list[str]:
    """The statements of a script of our own (one per ``;`` outside quotes and
    comments: the generator writes each column's description as a comment)."""
    statements, begin, n = [], 0, 0
    while n < len(script):
        if script[n] in "'\"":
            n = script.index(script[n], n + 1)
        elif script.startswith("/*", n):
            n = script.index("*/", n) + 1
        elif script[n] == ";":
            statements.append(script[begin:n].strip())
            begin = n + 1
        n += 1
    statements.append(script[begin:].strip())
    return [statement for statement in statements if statement]


def _table(table: str, name: str, items: list[str], trailer: str) -> str:
    body = ",\n    ".join(items)
    return f'CREATE TABLE "{name}" (\n    {body}\n){" " + trailer if trailer else ""};'


def _direction(
    table: str, items: list[str], trailer: str, common: list[str], indexes: list[str]
) -> str:
    columns = ", ".join(f'"{name}"' for name in common)
    temporary = f"{table}__rebuilt"
    statements = [
        _table(table, temporary, items, trailer),
        f'INSERT INTO "{temporary}" ({columns}) SELECT {columns} FROM "{table}";',
        f'DROP TABLE "{table}";',
        f'ALTER TABLE "{temporary}" RENAME TO "{table}";',
        *(f"{index.rstrip(';')};" for index in indexes),
    ]
    return "\n".join(statements)


def rebuild_scripts(
    table: str,
    old_ddl: str,
    old_indexes: list[str],
    new_ddl: str,
    new_indexes: list[str],
) -> Rebuild:
    """The upgrade from ``old_ddl`` (SQLite's text of the table now) to the columns of
    ``new_ddl`` (the generator's), and the downgrade back to ``old_ddl``: its columns,
    constraints and comment item by item, laid out anew (SQLite keeps the text of an
    ``ALTER TABLE ... ADD`` as typed, so the text itself may differ in whitespace)."""
    old_items, old_trailer = _parts(old_ddl)
    new_items, _ = _parts(new_ddl)
    old_columns = {col[0]: (col, item) for item in old_items if (col := _column(item))}
    items: list[str] = []
    kept: list[str] = []
    for item in new_items:
        column = _column(item)
        if column is None:
            continue  # the generator's own constraints: the old text has ours
        before = old_columns.get(column[0])
        items.append(before[1] if before is not None and before[0] == column else item)
        kept.append(column[0])
    for item in old_items:
        if _column(item) is None:
            named = set(_IDENTIFIER.findall(_CONSTRAINT_NAME.sub("", _COMMENT.sub(" ", item))))
            if named <= set(kept):
                items.append(item)
    common = [name for name in kept if name in old_columns]
    return Rebuild(
        upgrade=_direction(table, items, old_trailer, common, new_indexes),
        downgrade=_direction(table, old_items, old_trailer, common, old_indexes),
    )


async def rebuild_for(db: BaseDBAsyncClient, table: str, model: type[Model]) -> Rebuild:
    """The rebuild of ``table`` on ``db`` (a SQLite database holding it as the previous
    migration left it) into what Tortoise's schema generator makes for ``model``."""
    from todo_app.compat import require

    require("tortoise.schema_generator_hooks")
    _, rows = await db.execute_query(
        "SELECT type, sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL "
        "ORDER BY type DESC, name",
        [table],
    )
    old = [str(row["sql"]) for row in rows if row["type"] == "table"]
    if len(old) != 1:
        raise ValueError(f'no table "{table}" to rebuild')
    indexes = [str(row["sql"]) for row in rows if row["type"] == "index"]
    generated = db.schema_generator(db)._get_table_sql(model, safe=False)
    new = split_statements(str(generated["table_creation_string"]))
    return rebuild_scripts(table, old[0], indexes, new[0], new[1:])
