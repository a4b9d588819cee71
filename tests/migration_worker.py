"""One migration runner process for tests/test_migration_races.py.

Run in a host folder (Aerich config, todo_app's installed stubs) with
``DATABASE_URL`` set. Reads one action per line on stdin, waits the given delay, runs
it, and prints one JSON line: the action and the error it ended with (type and first
line), or none. Actions: ``cli`` (``todo-app migrate``), ``api``
(``todo_app.migrate()``), ``aerich-upgrade`` and ``aerich-downgrade`` (what
``aerich --app todo_app upgrade|downgrade`` runs, through Aerich's own ``Command``).
A process per runner, kept across rounds: a round costs the actions, not the imports.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import sys
import time
from typing import Any

import todo_app
from todo_app.cli import main as cli_main

URL = os.environ["DATABASE_URL"]
CONFIG: dict[str, Any] = {
    "connections": {"main": URL},
    "apps": {"todo_app": todo_app.app_config("main", with_aerich=True)},
    "use_tz": True,
    "timezone": "UTC",
}


async def _aerich(action: str) -> None:
    from aerich import Command

    async with Command(CONFIG, app="todo_app", location="./migrations") as command:
        await command.init()
        if action == "upgrade":
            await command.upgrade(run_in_transaction=True)
        else:
            await command.downgrade(version=-1, delete=False)


def _cli() -> None:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            code = cli_main(["--db", URL, "migrate", "--lock-timeout", "60"])
        except SystemExit as exc:
            code = int(exc.code or 0)
    if code:
        raise RuntimeError(f"todo-app migrate exit {code}: {err.getvalue().strip()}")


def run(action: str) -> None:
    if action == "cli":
        _cli()
    elif action == "api":
        asyncio.run(todo_app.migrate(URL, lock_timeout=60))
    else:
        asyncio.run(_aerich(action.removeprefix("aerich-")))


def main() -> None:
    for line in sys.stdin:
        action, delay = line.split()
        time.sleep(float(delay))
        try:
            run(action)
            error = None
        except BaseException as exc:  # reported, judged by the test
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            error = {"type": f"{type(exc).__module__}.{type(exc).__qualname__}", "line": first}
        print(json.dumps({"action": action, "error": error}), flush=True)


if __name__ == "__main__":
    main()
