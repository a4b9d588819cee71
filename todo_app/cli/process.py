"""The process around a command, when ``todo-app`` is the whole process.

``main()`` without arguments (the ``todo-app`` script, ``python -m todo_app``) runs
here; ``main(argv)``, as tests and hosts call it, does not: it leaves the process,
its streams and its collector as it found them.

* **Output closed early** (``todo-app list --all | head -1``): the next write fails
  with ``BrokenPipeError``. Python's advice is followed (docs, "Note on SIGPIPE"):
  stdout is pointed at ``os.devnull`` so that the interpreter's own final flush
  cannot fail again, and the process ends quietly with 141, the code a shell shows for
  a process killed by SIGPIPE. SIGPIPE itself stays ignored: restoring its default
  would also kill the process when the database closes a socket it is writing to.
* **Text the terminal's encoding cannot show** is escaped (``\\xe9``), not a crash.
* **Start-up**: ``todo-app list`` imports some 410 modules (Tortoise, pydantic) and
  creates next to no garbage doing it, yet the cyclic collector would run some 120
  times over them. It is paused until the database is open, then the start-up objects
  are frozen out of its view (``gc.freeze``) and it runs as usual.
* **Exit**: once the atexit handlers ran and the streams are flushed, the process
  ends with ``os._exit``, skipping the teardown of every module object (~0.1 s here,
  a fifth of ``todo-app list``), as mypy's CLI does. With another thread still
  running it exits normally instead, so that the thread is joined.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from todo_app.cli.exits import EXIT_ERROR, EXIT_OK, output_error
from todo_app.compat import exit_handlers_run

__all__ = ["resume_gc", "run"]

_gc_paused = False


def run(body: Callable[[Sequence[str] | None], int]) -> NoReturn:
    """Run ``body`` (the CLI on ``sys.argv``) as the whole process, and end it."""
    _pause_gc()
    _prepare_streams()
    try:
        code = body(None)
    except SystemExit as exc:  # argparse's --help and usage errors, CliError
        code = _code(exc.code)
    _exit(code)


def resume_gc() -> None:
    """Start-up is over (the database is open): collect as usual from here on, with
    the start-up objects frozen out of the collector's view."""
    global _gc_paused
    if _gc_paused:
        _gc_paused = False
        gc.freeze()
        gc.enable()


def _pause_gc() -> None:
    global _gc_paused
    if gc.isenabled():
        gc.disable()
        _gc_paused = True


def _prepare_streams() -> None:
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None:  # started with the descriptor closed (`todo-app list >&-`)
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115
        elif hasattr(stream, "reconfigure"):
            with contextlib.suppress(ValueError, OSError):
                stream.reconfigure(errors="backslashreplace")


def _code(code: object) -> int:
    if code is None:
        return EXIT_OK
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # sys.exit("message"), as the interpreter would
    return EXIT_ERROR


def _exit(code: int) -> NoReturn:
    code = _flush_stdout(code)
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        raise SystemExit(code)  # a normal exit joins the other threads
    if not exit_handlers_run():  # logging's flush, coverage's data file...
        raise SystemExit(code)
    code = _flush_stdout(code)
    os._exit(code)


def _flush_stdout(code: int) -> int:
    """Flush stdout; if that fails, point it at devnull and say why, at most once."""
    try:
        sys.stdout.flush()
    except OSError as exc:
        _discard_stdout()
        error = output_error(exc)
        if str(error):
            with contextlib.suppress(OSError, ValueError):
                print(f"todo-app: error: {error}", file=sys.stderr, flush=True)
        return error.code if code == EXIT_OK else code
    except ValueError:  # closed by someone: nothing left to flush
        pass
    return code


def _discard_stdout() -> None:
    """What Python's docs advise after EPIPE: later writes and the interpreter's own
    last flush go to devnull instead of failing again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file descriptor
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
    finally:
        os.close(devnull)
