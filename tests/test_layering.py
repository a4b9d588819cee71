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
    {"errors", "rules", "pool", "schema", "consistency"},
    {"dsn", "schemas", "pagination", "schema_history", "engine", "sqlite_engine"},
    {"connection"},
    {"settings"},
    {"config", "models"},
    {"dialects.base"},
    {"dialects.postgres", "dialects.sqlite", "dialects"},
    {"transactions"},
    {"guard"},
    {"replicas"},
    {"repository", "migrator"},
    {"checks", "aerich_bridge", "makemigration"},
    {"testing", "cli", "startup", "__init__", "__main__"},
    {"contrib"},  # web-framework adapters: on top of everything, imported by nothing
]


def _rank(module: str) -> int:
    for rank, layer in enumerate(LAYERS):
        if module in layer or module.split(".")[0] in layer:
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
        relative = path.relative_to(PACKAGE).with_suffix("")
        parts = [p for p in relative.parts if p != "__init__"] or ["__init__"]
        module = ".".join(parts)
        if module.startswith("_migrations"):
            continue
        for imported in _imports(path):
            if imported in ("", module) or imported.startswith("_migrations"):
                continue
            if _rank(imported) > _rank(module):
                wrong.append(f"todo_app.{module} imports todo_app.{imported}")
    assert wrong == []


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
