"""todo_app: a pluggable, owner-scoped async Task store for Tortoise ORM.

Register it in a host's Tortoise config with :func:`app_config` (or build a whole
config with :func:`tortoise_config`), apply its migrations with :func:`upgrade`
(or ``aerich upgrade``), then work with tasks.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from todo_app.config import APP_LABEL, app_config, connection_entry, tortoise_config
    from todo_app.errors import (
        ForeignAerichTable,
        MigrationDataError,
        MigrationError,
        MigrationFailed,
        MigrationLockTimeout,
        MigrationPlanError,
        ReadOnlyModel,
        SchemaAhead,
        SchemaMismatch,
        SchemaOutOfDate,
        TaskConflict,
        TaskDataError,
        TaskError,
        TaskNotFound,
        TaskStoreError,
        TaskStoreTimeout,
        TaskStoreUnavailable,
        TaskValidationError,
        TodoAppError,
    )
    from todo_app.migrator import (
        DowngradePlan,
        applied_migrations,
        check_drift,
        downgrade,
        migrate,
        migration_history,
        pending_migrations,
        plan_downgrade,
        upgrade,
    )
    from todo_app.models import Task, TaskStatus
    from todo_app.replicas import ReplicaStatus, on_replica_state, replica_status
    from todo_app.repository import MAX_PAGE_SIZE, TaskRepository
    from todo_app.schemas import TaskCreate, TaskPage, TaskRead, TaskUpdate
    from todo_app.settings import DatabaseURL, DatabaseURLError, Settings, SSLMode, get_settings
    from todo_app.startup import freeze_startup_objects, lifespan
    from todo_app.startup_check import ensure_schema_current
    from todo_app.tokens import newest_token

_EXPORTS: dict[str, str] = {
    "APP_LABEL": "todo_app.config",
    "DatabaseURL": "todo_app.settings",
    "DatabaseURLError": "todo_app.errors",
    "ReadOnlyModel": "todo_app.errors",
    "ReplicaStatus": "todo_app.replicas",
    "newest_token": "todo_app.tokens",
    "on_replica_state": "todo_app.replicas",
    "replica_status": "todo_app.replicas",
    "TodoAppError": "todo_app.errors",
    "MAX_PAGE_SIZE": "todo_app.repository",
    "DowngradePlan": "todo_app.migrator",
    "ForeignAerichTable": "todo_app.errors",
    "MigrationDataError": "todo_app.errors",
    "MigrationError": "todo_app.errors",
    "MigrationFailed": "todo_app.errors",
    "MigrationLockTimeout": "todo_app.errors",
    "MigrationPlanError": "todo_app.errors",
    "SchemaAhead": "todo_app.errors",
    "SchemaMismatch": "todo_app.errors",
    "SSLMode": "todo_app.settings",
    "SchemaOutOfDate": "todo_app.errors",
    "Settings": "todo_app.settings",
    "Task": "todo_app.models",
    "TaskConflict": "todo_app.errors",
    "TaskCreate": "todo_app.schemas",
    "TaskDataError": "todo_app.errors",
    "TaskError": "todo_app.errors",
    "TaskNotFound": "todo_app.errors",
    "TaskPage": "todo_app.schemas",
    "TaskRead": "todo_app.schemas",
    "TaskRepository": "todo_app.repository",
    "TaskStoreError": "todo_app.errors",
    "TaskStoreTimeout": "todo_app.errors",
    "TaskStoreUnavailable": "todo_app.errors",
    "TaskStatus": "todo_app.models",
    "TaskUpdate": "todo_app.schemas",
    "TaskValidationError": "todo_app.errors",
    "app_config": "todo_app.config",
    "connection_entry": "todo_app.config",
    "applied_migrations": "todo_app.migrator",
    "check_drift": "todo_app.migrator",
    "downgrade": "todo_app.migrator",
    "ensure_schema_current": "todo_app.startup_check",
    "freeze_startup_objects": "todo_app.startup",
    "lifespan": "todo_app.startup",
    "get_settings": "todo_app.settings",
    "migrate": "todo_app.migrator",
    "migration_history": "todo_app.migrator",
    "pending_migrations": "todo_app.migrator",
    "plan_downgrade": "todo_app.migrator",
    "tortoise_config": "todo_app.config",
    "upgrade": "todo_app.migrator",
}

__all__ = [
    "APP_LABEL",
    "MAX_PAGE_SIZE",
    "DatabaseURL",
    "DatabaseURLError",
    "DowngradePlan",
    "ForeignAerichTable",
    "MigrationDataError",
    "MigrationError",
    "MigrationFailed",
    "MigrationLockTimeout",
    "MigrationPlanError",
    "ReadOnlyModel",
    "ReplicaStatus",
    "SSLMode",
    "SchemaAhead",
    "SchemaMismatch",
    "SchemaOutOfDate",
    "Settings",
    "Task",
    "TaskConflict",
    "TaskCreate",
    "TaskDataError",
    "TaskError",
    "TaskNotFound",
    "TaskPage",
    "TaskRead",
    "TaskRepository",
    "TaskStatus",
    "TaskStoreError",
    "TaskStoreTimeout",
    "TaskStoreUnavailable",
    "TaskUpdate",
    "TaskValidationError",
    "TodoAppError",
    "__version__",
    "app_config",
    "applied_migrations",
    "check_drift",
    "connection_entry",
    "downgrade",
    "ensure_schema_current",
    "freeze_startup_objects",
    "get_settings",
    "lifespan",
    "migrate",
    "migration_history",
    "newest_token",
    "on_replica_state",
    "pending_migrations",
    "plan_downgrade",
    "replica_status",
    "tortoise_config",
    "upgrade",
]


def __getattr__(name: str) -> Any:
    # Deferred imports: `import todo_app.cli` (and so `todo-app --help`) must not pay
    # for Tortoise, pydantic and Aerich before a command needs them.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("todo-app")
        except PackageNotFoundError:  # pragma: no cover - a copy of the folder, not installed
            found = "0+unknown"
        globals()[name] = found
        return found
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'todo_app' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
