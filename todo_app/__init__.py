"""todo_app: a pluggable, owner-scoped async Task store for Tortoise ORM.

Register it in a host's Tortoise config with :func:`app_config` (or build a whole
config with :func:`tortoise_config`), apply its migrations with :func:`upgrade`
(or ``aerich upgrade``), then work with tasks.
"""

import ast
import importlib
from typing import TYPE_CHECKING, Any, Final

# The public API, listed once: each name with the module that defines it. Type
# checkers read these imports; at run time each module is imported on first use of a
# name (``__getattr__``), so ``import todo_app.cli`` (and ``todo-app --help``) does
# not pay for Tortoise, pydantic and Aerich before a command needs them.
if TYPE_CHECKING:
    from todo_app.config import APP_LABEL as APP_LABEL
    from todo_app.config import app_config as app_config
    from todo_app.config import connection_entry as connection_entry
    from todo_app.config import tortoise_config as tortoise_config
    from todo_app.dsn import DatabaseURL as DatabaseURL
    from todo_app.dsn import SSLMode as SSLMode
    from todo_app.errors import DatabaseURLError as DatabaseURLError
    from todo_app.errors import ForeignAerichTable as ForeignAerichTable
    from todo_app.errors import MigrationDataError as MigrationDataError
    from todo_app.errors import MigrationError as MigrationError
    from todo_app.errors import MigrationFailed as MigrationFailed
    from todo_app.errors import MigrationLockTimeout as MigrationLockTimeout
    from todo_app.errors import MigrationPlanError as MigrationPlanError
    from todo_app.errors import ReadOnlyModel as ReadOnlyModel
    from todo_app.errors import SchemaAhead as SchemaAhead
    from todo_app.errors import SchemaMismatch as SchemaMismatch
    from todo_app.errors import SchemaOutOfDate as SchemaOutOfDate
    from todo_app.errors import TaskConflict as TaskConflict
    from todo_app.errors import TaskDataError as TaskDataError
    from todo_app.errors import TaskError as TaskError
    from todo_app.errors import TaskNotFound as TaskNotFound
    from todo_app.errors import TaskStoreError as TaskStoreError
    from todo_app.errors import TaskStoreTimeout as TaskStoreTimeout
    from todo_app.errors import TaskStoreUnavailable as TaskStoreUnavailable
    from todo_app.errors import TaskValidationError as TaskValidationError
    from todo_app.errors import TodoAppError as TodoAppError
    from todo_app.migrator import DowngradePlan as DowngradePlan
    from todo_app.migrator import applied_migrations as applied_migrations
    from todo_app.migrator import check_drift as check_drift
    from todo_app.migrator import downgrade as downgrade
    from todo_app.migrator import migrate as migrate
    from todo_app.migrator import pending_migrations as pending_migrations
    from todo_app.migrator import plan_downgrade as plan_downgrade
    from todo_app.migrator import upgrade as upgrade
    from todo_app.models import Task as Task
    from todo_app.replicas import ReplicaStatus as ReplicaStatus
    from todo_app.replicas import on_replica_state as on_replica_state
    from todo_app.replicas import replica_status as replica_status
    from todo_app.repository import MAX_PAGE_SIZE as MAX_PAGE_SIZE
    from todo_app.repository import TaskRepository as TaskRepository
    from todo_app.rules import TaskStatus as TaskStatus
    from todo_app.schema_state import migration_history as migration_history
    from todo_app.schemas import TaskCreate as TaskCreate
    from todo_app.schemas import TaskPage as TaskPage
    from todo_app.schemas import TaskRead as TaskRead
    from todo_app.schemas import TaskUpdate as TaskUpdate
    from todo_app.settings import Settings as Settings
    from todo_app.settings import get_settings as get_settings
    from todo_app.startup import freeze_startup_objects as freeze_startup_objects
    from todo_app.startup import lifespan as lifespan
    from todo_app.startup_check import ensure_schema_current as ensure_schema_current
    from todo_app.tokens import newest_token as newest_token


def _exports() -> dict[str, str]:
    """Each public name -> its defining module, read from the ``TYPE_CHECKING`` imports
    above: the one list of the API, for type checkers and the run time alike.

    The source comes through the module's loader, so a zipped install reads it too."""
    get_source = getattr(__spec__.loader if __spec__ else None, "get_source", None)
    source = get_source(__name__) if get_source is not None else None
    if source is None:  # pragma: no cover - a sourceless (.pyc-only) install
        raise ImportError("todo_app needs its source files: install it from the wheel")
    tree = ast.parse(source)
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name)
        if node.test.id == "TYPE_CHECKING"
    )
    return {
        alias.asname or alias.name: str(node.module)
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }


_EXPORTS: Final = _exports()
__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
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
