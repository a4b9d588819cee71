"""Every runner at once: ``todo-app migrate``, ``todo_app.migrate()`` and Aerich's
``upgrade``/``downgrade`` of the installed stubs, interleaved at random on one
database, on both dialects.

Whatever the interleaving, each round must end in one bookkeeping row per migration
the live table shows, in order (Aerich reverts the row with the highest id first),
with every runner either done or failed with a typed error; then ``migrate`` brings
the database to a head the start-up guard accepts. Each runner is a process of its
own (``tests/migration_worker.py``), kept across rounds so that a round costs the
migrations, not the imports. Any hang fails the round at its hard timeout.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import todo_app
from tests.helpers import DIALECTS, FreshURL, bookkeeping, plain_sql
from todo_app.aerich_bridge import install_migrations
from todo_app.migrator import connection_to
from todo_app.schema_state import inspect_schema

WORKER = Path(__file__).with_name("migration_worker.py")
ROUNDS = 50
ACTIONS = ["cli", "api", "aerich-upgrade", "aerich-upgrade", "aerich-downgrade"]
ROUND_TIMEOUT = 120.0
#: What a runner may end with when another one got there first: a typed refusal
#: that changed nothing (the round's check proves the "changed nothing").
TYPED = ("todo_app.errors.", "aerich.exceptions.DowngradeError")


class Runner:
    def __init__(self, root: Path, url: str) -> None:
        env = {**os.environ, "DATABASE_URL": url, "AERICH_NO_TORTOISE_V1_WARNING": "1"}
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER)],
            cwd=root,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def send(self, action: str, delay: float) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{action} {delay:.3f}\n")
        self.process.stdin.flush()

    def result(self) -> dict[str, object]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"a runner died (exit {self.process.poll()})"
        result: dict[str, object] = json.loads(line)
        return result

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def host(tmp_path: Path) -> Path:
    root = tmp_path / "host"
    install_migrations(root / "migrations" / "todo_app")
    return root


@pytest.fixture
def runners(host: Path) -> Iterator[list[Runner]]:
    made: list[Runner] = []
    yield made
    for runner in made:
        runner.close()


def _within(runners: list[Runner], count: int) -> list[dict[str, object]]:
    """The results of the first ``count`` runners, or a failure naming the hang."""
    import selectors

    results: list[dict[str, object] | None] = [None] * count
    with selectors.DefaultSelector() as selector:
        for index in range(count):
            stdout = runners[index].process.stdout
            assert stdout is not None
            selector.register(stdout, selectors.EVENT_READ, index)
        import time

        deadline = time.monotonic() + ROUND_TIMEOUT
        while any(result is None for result in results):
            ready = selector.select(timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                waiting = [i for i, result in enumerate(results) if result is None]
                pytest.fail(f"runner(s) {waiting} still running after {ROUND_TIMEOUT} s: a hang")
            for key, _ in ready:
                index = key.data
                results[index] = runners[index].result()
                selector.unregister(key.fileobj)
    return [result for result in results if result is not None]


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_any_interleaving_of_runners_ends_in_consistent_bookkeeping(
    dialect: str, host: Path, runners: list[Runner], fresh_database_url: FreshURL
) -> None:
    url = await fresh_database_url(dialect)
    runners.extend(Runner(host, url.reveal()) for _ in range(4))
    names = [migration.filename for migration in todo_app.migration_history()]
    seed = int(os.environ.get("TODO_APP_RACE_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    outcomes: Counter[str] = Counter()
    for round_ in range(ROUNDS):
        await plain_sql(url, 'DROP TABLE IF EXISTS "todo_app_task"; DROP TABLE IF EXISTS "aerich";')
        if rng.random() < 0.4:
            await todo_app.migrate(url)  # start at head: downgrades have work to do
        plan = [(rng.choice(ACTIONS), rng.uniform(0, 0.06)) for _ in range(rng.randint(2, 4))]
        for runner, (action, delay) in zip(runners, plan, strict=False):
            runner.send(action, delay)
        results = _within(runners, len(plan))
        where = f"seed {seed}, round {round_}, plan {plan}: {results}"
        for result in results:
            error = result["error"]
            if error is None:
                outcomes[f"{result['action']}: done"] += 1
                continue
            assert isinstance(error, dict)
            kind = str(error["type"])
            if result["action"] == "cli":
                assert "exit 7" in str(error["line"]) or "exit 8" in str(error["line"]), where
            elif kind.endswith("IntegrityError"):
                # SQLite: a revert planned on a state another runner changed before
                # Aerich's script could take the lock again, refused and rolled back.
                assert "the database changed while aerich" in str(error["line"]), where
            else:
                assert kind.startswith(TYPED), where
            outcomes[f"{result['action']}: {kind.rsplit('.', 1)[-1]}"] += 1
        async with connection_to(url) as db:
            state = await inspect_schema(db)
        assert state.level is not None, where
        rows = await bookkeeping(url)
        assert rows == names[: state.level], f"bookkeeping {rows} for level {state.level}; {where}"
        assert await todo_app.migrate(url) == names[state.level :], where
        await todo_app.ensure_schema_current(url)
    print(f"seed {seed}: {dict(sorted(outcomes.items()))}")
