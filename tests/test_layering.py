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
    {"compat"},
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
    {"startup_check", "aerich_bridge", "makemigration"},
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


def _defined(tree: ast.Module) -> set[str]:
    """Names a module's own top-level statements bind (not its imports)."""
    names: set[str] = set()
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:  # a name, or names unpacked; not ``Task.x = ...``
                elements = target.elts if isinstance(target, ast.Tuple | ast.List) else [target]
                names.update(e.id for e in elements if isinstance(e, ast.Name))
        elif isinstance(node, ast.If | ast.Try):
            pending += [*node.body, *node.orelse, *getattr(node, "finalbody", [])]
    return names


def _all_of(tree: ast.Module) -> list[str] | None:
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            value = node.value
            assert value is not None
            return [str(ast.literal_eval(e)) for e in getattr(value, "elts", [])]
    return None


def _modules() -> dict[str, ast.Module]:
    return {
        _module_name(path): ast.parse(path.read_text())
        for path in sorted(PACKAGE.rglob("*.py"))
        if "_migrations" not in path.parts
    }


def test_every_public_name_is_defined_in_exactly_one_module() -> None:
    """``todo_app.X`` has one home: the module the export table names, and no other
    module of the package defines a name of the same spelling."""
    import todo_app

    modules = _modules()
    homes = {
        name: sorted(f"todo_app.{m}" for m, tree in modules.items() if name in _defined(tree))
        for name in todo_app.__all__
        if name != "__version__"
    }
    assert homes == {name: [todo_app._EXPORTS[name]] for name in homes}


def test_no_inner_module_exports_what_it_only_imports() -> None:
    """A module's ``__all__`` lists what it defines: callers import a name from the
    module that defines it, so each name has one import path."""
    listed = 0
    wrong = []
    for module, tree in _modules().items():
        if module == "__init__":
            continue  # the public table: every name there is imported, by design
        exported = _all_of(tree)
        if exported is None:
            continue
        listed += len(exported)
        defined = _defined(tree)
        wrong += [f"todo_app.{module}.{name}" for name in exported if name not in defined]
    assert listed > 100  # the check reads the lists it polices
    assert wrong == []
