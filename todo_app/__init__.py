"""todo_app: a pluggable, owner-scoped async Task store for Tortoise ORM.

Register it in a host's Tortoise config with :func:`app_config` (or build a whole
config with :func:`tortoise_config`), apply its migrations with :func:`upgrade`
(or ``aerich upgrade``), then work with tasks.
"""

from todo_app.checks import SchemaOutOfDate, ensure_schema_current
from todo_app.config import APP_LABEL, app_config, tortoise_config
from todo_app.errors import TaskConflict, TaskError, TaskNotFound, TaskValidationError
from todo_app.migrate import (
    MigrationError,
    applied_migrations,
    check_drift,
    downgrade,
    migration_history,
    pending_migrations,
    upgrade,
)
from todo_app.models import Task, TaskStatus
from todo_app.repository import MAX_PAGE_SIZE, TaskRepository
from todo_app.schemas import TaskCreate, TaskPage, TaskRead, TaskUpdate
from todo_app.settings import DatabaseURL, DatabaseURLError, Settings, SSLMode, get_settings

__all__ = [
    "APP_LABEL",
    "MAX_PAGE_SIZE",
    "DatabaseURL",
    "DatabaseURLError",
    "MigrationError",
    "SSLMode",
    "SchemaOutOfDate",
    "Settings",
    "Task",
    "TaskConflict",
    "TaskCreate",
    "TaskError",
    "TaskNotFound",
    "TaskPage",
    "TaskRead",
    "TaskRepository",
    "TaskStatus",
    "TaskUpdate",
    "TaskValidationError",
    "app_config",
    "applied_migrations",
    "check_drift",
    "downgrade",
    "ensure_schema_current",
    "get_settings",
    "migration_history",
    "pending_migrations",
    "tortoise_config",
    "upgrade",
]
