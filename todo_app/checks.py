"""Start-up guard: is the database's schema the one this code expects?

A host calls :func:`ensure_schema_current` once at start-up (after ``Tortoise.init``)
to fail fast with a message that says what to do, instead of a confusing SQL error
("no such column: version") on the first request.
"""

from __future__ import annotations

from todo_app.migrator import Target, applied_migrations, migration_history

__all__ = ["SchemaOutOfDate", "ensure_schema_current"]


class SchemaOutOfDate(RuntimeError):
    """The database is behind (or ahead of) this version's migrations."""

    def __init__(self, message: str, *, pending: list[str], unknown: list[str]) -> None:
        super().__init__(message)
        self.pending = pending
        self.unknown = unknown


async def ensure_schema_current(target: Target = None) -> None:
    """Raise :class:`SchemaOutOfDate` unless every migration of this version, and
    no other, is applied on ``target`` (default: the connection ``Task`` is bound
    to; also a connection, a URL or a Tortoise config, as for ``migrate``)."""
    known = [migration.filename for migration in migration_history()]
    applied = await applied_migrations(target)
    pending = [name for name in known if name not in applied]
    unknown = [name for name in applied if name not in known]
    if pending:
        raise SchemaOutOfDate(
            f"the database schema is behind this version of todo_app: {len(pending)} "
            f"migration(s) not applied ({', '.join(pending)}). Run `todo-app migrate` "
            "(or `await todo_app.upgrade()`, or `aerich upgrade`).",
            pending=pending,
            unknown=unknown,
        )
    if unknown:
        raise SchemaOutOfDate(
            f"the database was migrated by a newer version of todo_app "
            f"({', '.join(unknown)} unknown here): upgrade the package.",
            pending=pending,
            unknown=unknown,
        )
