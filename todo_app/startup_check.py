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

from todo_app.migrator import Target, connection_to, translated
from todo_app.schema_state import inspect_schema, schema_verdict

__all__ = ["ensure_schema_current"]


async def ensure_schema_current(target: Target = None, *, allow_newer: bool = True) -> None:
    """Raise :class:`SchemaOutOfDate` unless this code can run on ``target``'s schema.

    ``target`` defaults to the connection ``Task`` is bound to; it may also be a
    connection, a URL or a Tortoise config, as for ``migrate``. The error's
    ``pending``, ``unknown`` and ``differences`` say what is wrong; its message says
    what to run. See :func:`schema_verdict` for ``allow_newer``.
    """
    async with connection_to(target) as db:
        state = await translated(inspect_schema(db))
    verdict = schema_verdict(state, allow_newer=allow_newer)
    if verdict is not None:
        raise verdict
