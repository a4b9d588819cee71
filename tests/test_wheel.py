"""The built wheel works on its own: installed into a fresh virtual environment
outside the repository, it migrates fresh PostgreSQL and SQLite databases from its
packaged migrations and serves tasks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import FreshURL
from todo_app import migration_history

REPO_ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path

    from tortoise import Tortoise
    from tortoise.context import TortoiseContext

    import todo_app
    from todo_app import TaskCreate, TaskRepository
    from todo_app.schema_history import MIGRATIONS_DIR

    async def exercise(url: str, name: str) -> dict:
        applied = await todo_app.migrate(url)
        async with TortoiseContext():
            await Tortoise.init(config=todo_app.tortoise_config(url, connection_name=name))
            await todo_app.ensure_schema_current()
            repo = TaskRepository("wheel-user")
            task = await repo.create(TaskCreate(title="from the wheel"))
            done = await repo.complete(task.id)
            page = await repo.list()
            return {
                "applied": applied,
                "titles": [t.title for t in page.items],
                "status": done.status.value,
                "counts": {s.value: n for s, n in (await repo.counts()).items()},
            }

    async def main() -> None:
        result = {
            "package": todo_app.__file__,
            "migrations": str(MIGRATIONS_DIR),
            "sqlite": await exercise(sys.argv[1], "wheel_sqlite"),
            "postgres": await exercise(sys.argv[2], "wheel_postgres"),
        }
        print(json.dumps(result))

    asyncio.run(main())
    """
)


def _run(*args: str | Path, cwd: Path) -> str:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.postgres
async def test_wheel_in_a_fresh_virtualenv(fresh_database_url: FreshURL, tmp_path: Path) -> None:
    uv = shutil.which("uv")
    assert uv, "uv is needed to build the wheel (pip install uv)"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    _run(uv, "build", "--wheel", "--out-dir", tmp_path / "dist", "--quiet", cwd=REPO_ROOT)
    (wheel,) = (tmp_path / "dist").glob("todo_app-*.whl")
    venv = tmp_path / "venv"
    _run(uv, "venv", "--quiet", "--python", sys.executable, venv, cwd=outside)
    python = venv / "bin" / "python"
    _run(uv, "pip", "install", "--quiet", "--python", python, wheel, cwd=outside)
    (outside / "host.py").write_text(SCRIPT)
    sqlite_url = f"sqlite://{outside / 'tasks.sqlite3'}"
    postgres_url = (await fresh_database_url("postgres")).reveal()
    result = json.loads(_run(python, "host.py", sqlite_url, postgres_url, cwd=outside))

    assert result["package"].startswith(str(venv)), "imported the checkout, not the wheel"
    assert "/_migrations/" in result["migrations"]
    for dialect in ("sqlite", "postgres"):
        outcome = result[dialect]
        assert outcome["applied"] == [m.filename for m in migration_history()]
        assert outcome["titles"] == ["from the wheel"]
        assert outcome["status"] == "completed"
        assert outcome["counts"] == {"pending": 0, "completed": 1}

    demo = _run(venv / "bin" / "todo-app", "--db", f"sqlite://{outside / 'demo.sqlite3'}", "demo",
                cwd=outside)  # fmt: skip
    assert "demo-alice:" in demo
