"""A host's start-up and shut-down: :func:`lifespan` for any async framework, and
:func:`freeze_startup_objects`, what start-up calls once it is done.

**lifespan.** Tortoise keeps its state in a context (a ``contextvars`` variable).
A framework runs its start-up in one task and each request in another, so a plain
``Tortoise.init`` in a Litestar or Quart lifespan leaves request handlers with "No
TortoiseContext is currently active". Tortoise's own FastAPI, Starlette and Sanic
helpers pass ``_enable_global_fallback=True``, which makes the context the
process's fallback for every task; :func:`lifespan` does the same for any framework,
then checks or applies the schema, freezes what start-up made, and closes the
connections on the way out.

**Freezing.** Keep the collector off what start-up made.

CPython's cyclic collector runs a full (oldest-generation) pass every so often, and a
full pass walks every tracked object alive, however old. A web process allocates
most of those objects once, at import and start-up (Tortoise's models and
compiled SQL, pydantic's validators, the framework's routes: about 70,000 in the
FastAPI example) and keeps them for its whole life. Under load a full pass came
about every 1.4 s and took 32 ms (median), a pause every request in flight waits
out: the end-to-end p99 of a primary-key read was 30.8 ms, and 20.1 ms once those
objects were frozen (raw asyncpg's: 23.1 ms); see docs/performance.md, "Under load".

``gc.freeze()`` moves every object alive into a permanent generation the collector
never walks. Frozen objects are never freed: what start-up made and later drops
stays in memory (bounded by what start-up made, once). Hence: call this once, at
the end of start-up, never per request.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any, Literal

from tortoise.context import TortoiseContext

from todo_app.compat import global_fallback
from todo_app.settings import Settings, get_settings

__all__ = ["freeze_startup_objects", "lifespan"]

Schema = Literal["check", "migrate", "skip"]

logger = logging.getLogger("todo_app")


def freeze_startup_objects(settings: Settings | None = None) -> int:
    """Collect once, then freeze every object alive (``gc.collect(); gc.freeze()``),
    unless ``TODO_APP_GC_FREEZE`` is off. Returns how many objects are frozen.

    Call it last in the host's start-up (lifespan, ``on_startup``), after
    ``Tortoise.init`` and the migration check, so that what they built is frozen too.
    """
    settings = settings or get_settings()
    if not settings.gc_freeze:
        return gc.get_freeze_count()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    logger.debug("froze %d start-up objects out of the collector's full passes", frozen)
    return frozen


@contextlib.asynccontextmanager
async def lifespan(
    config: dict[str, Any] | None = None,
    *,
    schema: Schema = "check",
    settings: Settings | None = None,
) -> AsyncIterator[TortoiseContext]:
    """Tortoise for a whole process of any async framework: ``async with
    todo_app.lifespan(config): <serve>``.

    ``config``: the host's Tortoise config (with ``todo_app.app_config(...)`` among
    its apps), or None for todo_app alone from settings (``tortoise_config()``).
    ``schema``: ``"check"`` (default) refuses to start on a database that is not at
    this version's schema (:class:`~todo_app.SchemaOutOfDate` naming what to run),
    ``"migrate"`` applies pending migrations first (safe from several workers at
    once), ``"skip"`` does neither. Then :func:`freeze_startup_objects`. On exit
    the connections close, whatever ended the block.

    The context is the process's fallback for every task (request handlers run in
    tasks the start-up never saw): one ``lifespan`` per process at a time.
    """
    from todo_app.config import tortoise_config
    from todo_app.migrator import migrate
    from todo_app.startup_check import ensure_schema_current

    if schema not in ("check", "migrate", "skip"):
        raise ValueError(f"schema must be 'check', 'migrate' or 'skip', not {schema!r}")
    settings = settings or get_settings()
    async with TortoiseContext() as context:
        await context.init(
            config=config if config is not None else tortoise_config(settings=settings),
            _enable_global_fallback=global_fallback(),
        )
        if schema == "migrate":
            await migrate()
        if schema != "skip":
            await ensure_schema_current()
        freeze_startup_objects(settings)
        yield context
