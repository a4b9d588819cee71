"""Start-up guard: is the database's schema the one this code expects?

A host calls :func:`ensure_schema_current` once at start-up (after ``Tortoise.init``)
to fail fast with a message that says what to do, instead of a confusing SQL error
("no such column: version") on the first request.

The verdict comes from the live table, not only from the ``aerich`` rows: columns,
types, nullability, primary key, indexes and named CHECK constraints are read from
the catalog and compared with what the newest applied migration made. It costs a
handful of catalog queries, once per process.
"""

from __future__ import annotations

import logging

from todo_app.errors import SchemaOutOfDate
from todo_app.migrator import (
    HOW_TO_MIGRATE,
    SchemaState,
    Target,
    _connection,
    _translated,
    inspect_schema,
)

__all__ = ["SchemaOutOfDate", "ensure_schema_current", "schema_verdict"]

logger = logging.getLogger("todo_app.migrations")


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
            "upgrade the package (this version may run on it: pass allow_newer=True)"
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


async def ensure_schema_current(target: Target = None, *, allow_newer: bool = True) -> None:
    """Raise :class:`SchemaOutOfDate` unless this code can run on ``target``'s schema.

    ``target`` defaults to the connection ``Task`` is bound to; it may also be a
    connection, a URL or a Tortoise config, as for ``migrate``. The error's
    ``pending``, ``unknown`` and ``differences`` say what is wrong; its message says
    what to run. See :func:`schema_verdict` for ``allow_newer``.
    """
    async with _connection(target) as db:
        state = await _translated(inspect_schema(db))
    verdict = schema_verdict(state, allow_newer=allow_newer)
    if verdict is not None:
        raise verdict
