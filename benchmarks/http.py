"""End to end over HTTP: the packaged router (``todo_app.contrib.fastapi``, mounted by
the shipped FastAPI example) against the same routes on raw asyncpg and on the seed
plan's stack (SQLModel + SQLAlchemy async), under uvicorn, loaded by wrk; requests/s
and tails per endpoint, side by side in one run, interleaved.

    uv run python -m benchmarks.http                      # 100k rows, 10 s per run
    uv run python -m benchmarks.http --todo-app-src DIR   # another checkout's todo_app
    uv run python -m benchmarks.http --compare DIR        # this one and DIR's, side by side

Needs ``wrk``: installed with apt-get when missing and run as root (else it says the
command to run). Servers, each its own process with one uvicorn worker and a pool of
at most 10 connections (todo_app's default):

* ``todo_app``: ``examples/fastapi_app.py`` as shipped, that is ``tasks_router``
  (``--todo-app-src`` runs the example and the package of another checkout: the
  "before" of a change);
* ``todo_app, no gc freeze``: the same with ``TODO_APP_GC_FREEZE=0`` (``--gc-variant``);
* ``todo_app @ DIR`` for each ``--compare DIR``: another checkout (a change's "before"),
  in the same run, so that machine drift hits both alike;
* ``raw asyncpg``: ``benchmarks/http_raw.py``, the same routes by hand;
* ``sqlmodel``: ``benchmarks/http_sqlmodel.py``, the same routes on SQLModel +
  SQLAlchemy's async ORM, as its tutorials write them;
* ``no database`` (``--floor``): ``benchmarks/http_null.py``, the same routes in
  FastAPI answering a fixed task: the ceiling of any FastAPI server on this machine.

Endpoints: ``GET /tasks/{id}`` (random ids of 1,000 owners' tasks), ``GET /tasks``
(first page of 50), ``POST /tasks``, ``PATCH /tasks/{id}`` (a rename, unconditional).
Each endpoint runs ``wrk -t2 -c32`` (32 connections: more callers than the pool has
connections, the normal state of a busy app) against each server in turn, in an order
reversed every round. The table gives requests/s and wrk's p50 / p99 / max latency,
then each server's requests/s and p99 against raw asyncpg's and SQLModel's.
The benchmark creates and drops its own database on ``--pg-url`` (default
``TEST_DATABASE_URL``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import todo_app
from benchmarks.bench import (
    RESULTS,
    load_postgres,
    make_rows,
    scratch_database,
    write_results,
)
from todo_app.dsn import DatabaseURL
from todo_app.settings import get_settings

REPO = Path(__file__).resolve().parent.parent
PROBE = Path(__file__).resolve().with_name("gc_probe.py")
ENDPOINTS = ("GET id", "list", "POST", "PATCH")
SQLMODEL = "sqlmodel"
OWNERS = 1000


@dataclass
class Server:
    name: str
    target: str
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    #: What benchmarks/gc_probe.py reported at exit: passes, median and longest pause
    #: (s), objects the collector still walks.
    collector: tuple[int, float, float, int] | None = None

    def start(self, url: str, logs: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(self.cwd), **self.env}
        env.pop("TODO_APP_READ_URLS", None)
        self.log = logs / f"server-{self.port}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(PROBE), self.target, "--port", str(self.port)],
                cwd=self.cwd, env=env, stderr=log,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                request = urllib.request.Request(
                    self.url("/tasks?limit=1"), headers={"X-User": "u0"}
                )
                with urllib.request.urlopen(request, timeout=5) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.2)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()  # uvicorn shuts down cleanly: the probe reports
            self.process.wait(30)
        if self.log is not None and self.log.exists():
            found = re.search(r"^GCPROBE (\d+) (\S+) (\S+) (\d+)$", self.log.read_text(), re.M)
            if found:
                passes, median, longest, tracked = found.groups()
                self.collector = (int(passes), float(median), float(longest), int(tracked))


LUA = """
local ids = {%(ids)s}
local owners = {%(owners)s}
local kind = "%(kind)s"
math.randomseed(%(seed)d)
request = function()
  local n = math.random(#ids)
  local headers = {["X-User"] = owners[n], ["Content-Type"] = "application/json"}
  if kind == "GET id" then
    return wrk.format("GET", "/tasks/" .. ids[n], headers)
  elseif kind == "list" then
    return wrk.format("GET", "/tasks?limit=50", headers)
  elseif kind == "POST" then
    return wrk.format("POST", "/tasks", headers, '{"title": "created over HTTP"}')
  else
    return wrk.format("PATCH", "/tasks/" .. ids[n], headers, '{"title": "renamed"}')
  end
end
"""


@dataclass
class Sample:
    rate: float
    p50: float
    p99: float
    top: float
    errors: int


def seconds(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def wrk(script: Path, url: str, duration: float, connections: int) -> Sample:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration:g}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True, timeout=duration + 60,
    ).stdout  # fmt: skip
    # "    Latency   <avg>  <stdev>  <max>  <+/- stdev>" (not "Latency Distribution")
    latency = re.search(r"^\s*Latency\s+(?!Distribution)\S+\s+\S+\s+(\d\S*)", out, re.M)
    # The distribution's own lines; "83.50%" ends a Thread Stats line too.
    p50 = re.search(r"^\s*50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s*99%\s+(\S+)", out, re.M)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not (latency and p50 and p99 and rate):
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    failed = int(bad.group(1)) if bad else 0
    if errors:
        failed += sum(int(n) for n in re.findall(r"\d+", errors.group(0)))
    return Sample(float(rate.group(1)), seconds(p50.group(1)), seconds(p99.group(1)),
                  seconds(latency.group(1)), failed)  # fmt: skip


async def prepare(
    pg: DatabaseURL, rows: int
) -> tuple[str, Callable[[], Awaitable[None]], list[tuple[uuid.UUID, str]]]:
    """A migrated scratch database of ``rows`` tasks: its URL, the call that drops it,
    and 2,000 (id, owner) pairs for the requests."""
    url, drop = await scratch_database(pg, "todo_http")
    await todo_app.migrate(url)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    data = make_rows(rows, lambda n: f"u{n % OWNERS}", start)
    await load_postgres(url, data)
    picks = random.Random(5).sample(data, min(len(data), 2000))
    return url, drop, [(row[0], row[1]) for row in picks]


def report(results: dict[str, dict[str, list[Sample]]], args: argparse.Namespace) -> list[str]:
    names = list(next(iter(results.values())))
    lines = [
        f"### End to end over HTTP, {args.rows:,} rows (wrk -t2 -c{args.connections}, "
        f"{args.seconds:g} s a run, {args.rounds} rounds; ms p50 / p99 / max)",
        "",
        "| endpoint | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for endpoint, by_name in results.items():
        cells = []
        for samples in by_name.values():
            rate = statistics.mean(s.rate for s in samples)
            p50 = statistics.mean(s.p50 for s in samples) * 1e3
            p99 = statistics.mean(s.p99 for s in samples) * 1e3
            top = max(s.top for s in samples) * 1e3
            errors = sum(s.errors for s in samples)
            cells.append(f"{rate:,.0f}/s, {p50:.1f} / {p99:.1f} / {top:.0f}"
                         + (f", **{errors} errors**" if errors else ""))  # fmt: skip
        lines.append(f"| {endpoint} | " + " | ".join(cells) + " |")
    raw = "raw asyncpg"
    for base in (raw, SQLMODEL):
        if base not in names:
            continue
        lines += ["", f"Against {base} (requests/s ratio; p99 ratio):", ""]
        for name in names:
            if name == base:
                continue
            parts = []
            for endpoint, by_name in results.items():
                rate = statistics.mean(s.rate for s in by_name[name])
                base_rate = statistics.mean(s.rate for s in by_name[base])
                p99 = statistics.mean(s.p99 for s in by_name[name])
                base_p99 = statistics.mean(s.p99 for s in by_name[base])
                parts.append(f"{endpoint} {rate / base_rate:.2f}x / p99 {p99 / base_p99:.2f}x")
            lines.append(f"- {name}: " + "; ".join(parts))
    lines.append("")
    return lines


def collector_report(servers: list[Server]) -> list[str]:
    lines = [
        "The cyclic collector's full (generation-2) passes in each server, from its start "
        "(imports included) to its end (benchmarks/gc_probe.py):",
        "",
        "| server | full passes | median / longest pause, ms | objects it still walks at exit |",
        "|---|---|---|---|",
    ]
    for server in servers:
        if server.collector is None:
            lines.append(f"| {server.name} | (no report) | | |")
            continue
        passes, median, longest, tracked = server.collector
        lines.append(
            f"| {server.name} | {passes} | {median * 1e3:.1f} / {longest * 1e3:.1f} | {tracked:,} |"
        )
    return [*lines, ""]


def install_wrk() -> None:
    """wrk, installed from Debian's packages when missing (as root, with apt-get)."""
    if shutil.which("wrk") is not None:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SystemExit("benchmarks.http needs wrk: sudo apt-get install wrk")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"]):  # fmt: skip
        subprocess.run(command, env=env, check=True, capture_output=True, timeout=900)


async def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--todo-app-src", type=Path, default=REPO,
                        help="checkout whose examples/fastapi_app.py and todo_app to run")  # fmt: skip
    parser.add_argument("--compare", type=Path, action="append", default=[],
                        help="also run this checkout's example and todo_app (repeatable)")  # fmt: skip
    parser.add_argument("--gc-variant", action="store_true",
                        help="also run the example with TODO_APP_GC_FREEZE=0")  # fmt: skip
    parser.add_argument("--floor", action="store_true",
                        help="also run the routes without a database (the ceiling)")  # fmt: skip
    parser.add_argument("--no-sqlmodel", action="store_true",
                        help="leave out the SQLModel + SQLAlchemy server")  # fmt: skip
    parser.add_argument("--pg-url", default=None, help="server (default TEST_DATABASE_URL)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    install_wrk()
    pg = DatabaseURL(args.pg_url) if args.pg_url else get_settings().test_database_url
    source = args.todo_app_src.resolve()
    servers = [Server("todo_app", "examples.fastapi_app:app", source)]
    if args.gc_variant:
        servers.append(Server("todo_app, no gc freeze", "examples.fastapi_app:app", source,
                              {"TODO_APP_GC_FREEZE": "0"}))  # fmt: skip
    for other in args.compare:
        servers.append(Server(f"todo_app @ {other}", "examples.fastapi_app:app", other.resolve()))
    servers.append(Server("raw asyncpg", "benchmarks.http_raw:app", REPO))
    if not args.no_sqlmodel:
        servers.append(Server(SQLMODEL, "benchmarks.http_sqlmodel:app", REPO))
    if args.floor:
        servers.append(Server("no database", "benchmarks.http_null:app", REPO))
    url, drop, picks = await prepare(pg, args.rows)
    results: dict[str, dict[str, list[Sample]]] = {
        e: {s.name: [] for s in servers} for e in ENDPOINTS
    }
    try:
        with tempfile.TemporaryDirectory(prefix="todo_http_") as scratch:
            try:
                for server in servers:
                    server.start(url, Path(scratch))
                for round_ in range(args.rounds):
                    for endpoint in ENDPOINTS:
                        script = Path(scratch) / f"{ENDPOINTS.index(endpoint)}.lua"
                        script.write_text(LUA % {
                            "ids": ",".join(json.dumps(str(i)) for i, _ in picks),
                            "owners": ",".join(json.dumps(o) for _, o in picks),
                            "kind": endpoint, "seed": round_,
                        })  # fmt: skip
                        order = servers if round_ % 2 == 0 else servers[::-1]
                        for server in order:
                            sample = wrk(script, server.url("/"), args.seconds, args.connections)
                            results[endpoint][server.name].append(sample)
                            print(f"  round {round_ + 1} {endpoint:6} {server.name}: "
                                  f"{sample.rate:,.0f}/s p99 {sample.p99 * 1e3:.1f} ms", flush=True)  # fmt: skip
            finally:
                for server in servers:
                    server.stop()
    finally:
        await drop()
    lines = [
        f"# todo_app end-to-end benchmark, {dt.date.today()} on {socket.gethostname()}",
        "",
        f"Python {sys.version.split()[0]}, todo_app from {source}, "
        f"`python -m benchmarks.http {' '.join(argv if argv is not None else sys.argv[1:])}`.",
        "",
        *report(results, args),
        *collector_report(servers),
    ]
    print("\n".join(lines), flush=True)
    return write_results(args.out, lines, "-http")


if __name__ == "__main__":
    asyncio.run(main())
