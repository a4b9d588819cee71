"""The baseline of the end-to-end HTTP benchmark: ``examples/fastapi_app.py``'s routes
written by hand on a raw asyncpg pool, with the same response models.

    DATABASE_URL=postgresql://... uvicorn benchmarks.http_raw:app

The pool has todo_app's default bounds (1 to 10 connections; ``TODO_APP_POOL_MAX_SIZE``
changes both). Each connection is taken and given back as asyncpg documents
(``async with pool.acquire()``). Only what the benchmark calls is here: get by id, the
first page of a listing, create and an unconditional rename.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import asyncpg
from fastapi import FastAPI, Header, HTTPException, Response

from benchmarks.bench import COLUMNS
from todo_app import TaskCreate, TaskPage, TaskRead, TaskUpdate
from todo_app.pagination import Cursor

pool: Any = None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    global pool
    size = int(os.environ.get("TODO_APP_POOL_MAX_SIZE", "10"))
    pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=1, max_size=size)
    try:
        yield
    finally:
        await pool.close()


app = FastAPI(lifespan=lifespan)
Owner = Annotated[str, Header(alias="X-User")]


def read(row: Any) -> TaskRead:
    return TaskRead.model_validate(dict(row))


@app.get("/tasks/{task_id}")
async def get(task_id: uuid.UUID, x_user: Owner, response: Response) -> TaskRead:
    async with pool.acquire() as connection:
        row = await connection.fetchrow(
            f"SELECT {COLUMNS} FROM todo_app_task WHERE id = $1 AND user_id = $2",
            task_id,
            x_user,
        )
    if row is None:
        raise HTTPException(404)
    response.headers["ETag"] = f'"{row["version"]}"'
    return read(row)


@app.get("/tasks")
async def list_tasks(x_user: Owner, limit: int = 50) -> TaskPage:
    async with pool.acquire() as connection:
        rows = await connection.fetch(
            f"SELECT {COLUMNS} FROM todo_app_task WHERE user_id = $1 "
            "ORDER BY created_at DESC, id DESC LIMIT $2",
            x_user,
            limit + 1,
        )
    items = [read(row) for row in rows[:limit]]
    cursor = None
    if len(rows) > limit:
        cursor = Cursor(items[-1].created_at, items[-1].id, "newest", None).encode()
    return TaskPage(items=items, next_cursor=cursor)


@app.post("/tasks", status_code=201)
async def create(data: TaskCreate, x_user: Owner, response: Response) -> TaskRead:
    moment = dt.datetime.now(dt.UTC)
    async with pool.acquire() as connection:
        row = await connection.fetchrow(
            f"INSERT INTO todo_app_task ({COLUMNS}) "
            "VALUES ($1, $2, $3, $4, $5, 1, $6, $6, NULL) "
            f"RETURNING {COLUMNS}",
            data.id or uuid.uuid4(),
            x_user,
            data.title,
            data.description,
            data.status.value,
            moment,
        )
    response.headers["ETag"] = '"1"'
    return read(row)


@app.patch("/tasks/{task_id}")
async def update(
    task_id: uuid.UUID, data: TaskUpdate, x_user: Owner, response: Response
) -> TaskRead:
    async with pool.acquire() as connection:
        row = await connection.fetchrow(
            "UPDATE todo_app_task SET title = coalesce($3, title), version = version + 1, "
            f"updated_at = $4 WHERE id = $1 AND user_id = $2 RETURNING {COLUMNS}",
            task_id,
            x_user,
            data.title,
            dt.datetime.now(dt.UTC),
        )
    if row is None:
        raise HTTPException(404)
    response.headers["ETag"] = f'"{row["version"]}"'
    return read(row)
