"""Data flows one way: every import in the package (deferred ones included) goes from
a module to one of a lower layer, and ``schemas``/``rules`` load no Tortoise."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "todo_app"

#: Lowest first. A module may import modules of its own layer or below, never above.
LAYERS: list[set[str]] = [
    {"errors", "rules", "table_shape", "tokens", "replica_policy"},
    {"dsn", "schemas", "pagination", "schema_history"},
    {"connection"},
    # Each database's connection layer: URL -> credentials, pool hooks, Tortoise engine.
    {"dialects.postgres.pool", "dialects.postgres.connect", "dialects.postgres.engine"},
    {"dialects.sqlite.connect", "dialects.sqlite.engine"},
    {"settings"},
    {"config", "models"},
    {"dialects.base"},
    {"dialects.postgres.replication"},
    {"dialects.postgres", "dialects.sqlite", "dialects"},
    {"transactions"},
    {"schema_state"},
    {"replicas"},
    {"repository", "migrator"},
    {"startup_check", "aerich_bridge"},
    {"testing", "cli", "startup", "__init__", "__main__"},
    {"contrib"},  # web-framework adapters: on top of everything, imported by nothing
]
#: Database drivers: imported only inside their database's package.
DRIVERS = {
    "asyncpg": "dialects.postgres",
    "sqlite3": "dialects.sqlite",
    "aiosqlite": "dialects.sqlite",
}


def _rank(module: str) -> int:
    """The layer of ``module``: its own entry, else its package's nearest one."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        for rank, layer in enumerate(LAYERS):
            if ".".join(parts[:end]) in layer:
                return rank
    raise AssertionError(f"todo_app.{module} is in no layer of {__file__}: place it")


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("todo_app"):
            names = [node.module] if node.module != "todo_app" else []
            names += [f"todo_app.{alias.name}" for alias in node.names if node.module == "todo_app"]
            found.update(name.removeprefix("todo_app.") for name in names)
        elif isinstance(node, ast.Import):
            found.update(
                alias.name.removeprefix("todo_app.")
                for alias in node.names
                if alias.name.startswith("todo_app.")
            )
    return found


def test_no_import_runs_against_the_flow() -> None:
    wrong = []
    modules = sorted(PACKAGE.rglob("*.py"))
    assert modules
    for path in modules:
        module = _module_name(path)
        if module.startswith("_migrations"):
            continue
        for imported in _imports(path):
            if imported in ("", module) or imported.startswith("_migrations"):
                continue
            if _rank(imported) > _rank(module):
                wrong.append(f"todo_app.{module} imports todo_app.{imported}")
    assert wrong == []


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE).with_suffix("")
    return ".".join(p for p in relative.parts if p != "__init__") or "__init__"


def test_only_a_databases_own_package_imports_its_driver() -> None:
    """asyncpg, sqlite3 and aiosqlite are imported (deferred imports included) only in
    ``todo_app/dialects/<database>/``: each database lives in one place."""
    found: dict[str, set[str]] = {driver: set() for driver in DRIVERS}
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                driver = name.split(".")[0]
                if driver in DRIVERS:
                    found[driver].add(module)
                    if not module.startswith(DRIVERS[driver] + "."):
                        wrong.append(f"todo_app.{module} imports {name}")
    assert wrong == []
    # The check sees the imports it polices: each driver is imported somewhere.
    assert all(found.values()), found


def test_no_module_reaches_into_another_ones_private_names() -> None:
    """What a module shares it names without an underscore, so a rename inside one
    module cannot break another silently."""
    reached = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("todo_app"):
                reached += [
                    f"{path.relative_to(PACKAGE)}: {node.module}.{alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_") and not alias.name.startswith("__")
                ]
    assert reached == []


def test_the_schemas_and_rules_load_no_orm() -> None:
    code = (
        "import sys, todo_app.schemas, todo_app.rules; "
        "print(sorted(m for m in ('tortoise', 'todo_app.models', 'asyncpg') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_the_public_api_is_one_table_and_every_name_resolves() -> None:
    import todo_app

    assert sorted(set(todo_app.__all__) - {"__version__"}) == sorted(todo_app._EXPORTS)
    for name in todo_app.__all__:
        assert getattr(todo_app, name) is not None, name


def test_the_version_is_the_installed_distributions() -> None:
    from importlib.metadata import version

    import todo_app

    assert todo_app.__version__ == version("todo-app")
    result = subprocess.run(
        [sys.executable, "-m", "todo_app", "--version"], capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout) == (0, f"todo-app {todo_app.__version__}\n")
