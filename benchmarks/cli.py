"""What ``todo-app list`` costs from a shell: a new process on a 10,000-task SQLite file.

    uv run python -m benchmarks.cli [--runs 30] [--tasks 10000]

A CLI pays its imports on every start, so this times whole processes, interleaved
run by run so that machine drift hits all alike, beside two floors measured the same
way: Python itself, and importing what any Tortoise-based command must (Tortoise,
pydantic, aiosqlite, asyncio). Whether the imports come from bytecode matters most: each
line is measured as installed (``.pyc`` files of the environment) and with every
module compiled again at each start, which is what happens where no bytecode was
installed and none can be written (``PYTHONDONTWRITEBYTECODE=1``, a read-only image).
Means, medians and the fastest run in seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import site
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOORS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "import tortoise, pydantic, aiosqlite, asyncio": [
        sys.executable,
        "-c",
        "import tortoise, pydantic, aiosqlite, asyncio",
    ],
}


async def make_database(path: Path, tasks: int) -> str:
    from tortoise.context import TortoiseContext

    import todo_app
    from todo_app import TaskCreate, TaskRepository

    url = f"sqlite://{path}"
    await todo_app.migrate(url)
    async with TortoiseContext() as ctx:
        await ctx.init(config=todo_app.tortoise_config(url, connection_name="bench_cli"))
        await TaskRepository("bench").bulk_create(
            TaskCreate(title=f"task {n}", description="details" if n % 2 else None)
            for n in range(tasks)
        )
    return url


def run(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=True)  # noqa: S603 - fixed commands
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--tasks", type=int, default=10_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="todo_bench_cli_") as tmp:
        url = asyncio.run(make_database(Path(tmp) / "tasks.sqlite3", args.tasks))
        todo = str(Path(sys.executable).with_name("todo-app"))
        commands = {**FLOORS, "todo-app list": [todo, "--db", url, "list"]}
        base = dict(os.environ, TODO_USER="bench")
        cold = dict(base, PYTHONDONTWRITEBYTECODE="1")
        # Bytecode as installed: compiled once here (what pip and `uv sync` with
        # compile-bytecode do at install time), read, never written, by the runs.
        import todo_app

        installed = [*site.getsitepackages(), str(Path(todo_app.__file__).parent)]
        subprocess.run(  # noqa: S603 - our interpreter, our paths
            [sys.executable, "-m", "compileall", "-q", *installed],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        variants = {"bytecode": dict(cold), "no bytecode": dict(cold, PYTHONPYCACHEPREFIX=tmp)}
        samples: dict[tuple[str, str], list[float]] = {}
        for n in range(3 + args.runs):
            for label, command in commands.items():
                for variant, env in variants.items():
                    elapsed = run(command, env)
                    if n >= 3:  # warm-up: the page cache, the first compile
                        samples.setdefault((label, variant), []).append(elapsed)
    print(f"`todo-app list` on {args.tasks:,} tasks (SQLite), {args.runs} interleaved runs, "
          "seconds (mean / median / fastest):\n")  # fmt: skip
    print("| command | with bytecode | compiling at every start |")
    print("|---|---|---|")
    for label in commands:
        cells = []
        for variant in variants:
            values = samples[(label, variant)]
            cells.append(
                f"{statistics.mean(values):.3f} / {statistics.median(values):.3f} / "
                f"{min(values):.3f}"
            )
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
