"""Serve an ASGI app under uvicorn and report the cyclic collector's full passes.

    python benchmarks/gc_probe.py examples.fastapi_app:app --port 8000

Run by path, not as a module, so that the app and ``todo_app`` come from the working
directory and ``PYTHONPATH`` (``benchmarks.http --compare`` runs another checkout's).
At exit it prints one line to stderr: ``GCPROBE <passes> <median s> <max s> <tracked>``,
the generation-2 passes seen since the start of the process (imports included), their
median and longest pause, and how many objects the collector still walks at exit.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import signal
import statistics
import sys
import time
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    pauses: list[float] = []
    began = [0.0]

    def probe(phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            pauses.append(time.perf_counter() - began[0])

    @atexit.register
    def report() -> None:
        median = statistics.median(pauses) if pauses else 0.0
        longest = max(pauses, default=0.0)
        tracked = len(gc.get_objects())
        print(f"GCPROBE {len(pauses)} {median:.6f} {longest:.6f} {tracked}", file=sys.stderr)

    gc.callbacks.append(probe)
    # uvicorn shuts down on SIGTERM, then raises it again for the handler it found: make
    # that a normal exit, so that the report above runs.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    # Run by path, Python put this file's folder first on sys.path, where
    # benchmarks/http.py would shadow the standard library's http (none of the modules
    # imported above loads it): the working directory instead, as `python -m uvicorn`.
    sys.path[0] = ""
    import uvicorn

    uvicorn.run(args.target, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
