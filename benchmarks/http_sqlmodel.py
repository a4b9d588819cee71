"""The seed plan's stack in the end-to-end HTTP benchmark: the same routes on SQLModel
+ SQLAlchemy's async ORM (asyncpg underneath), written as its tutorials write them
(a session per request, ``session.get``/``select``, ``commit``, ``refresh``).

    DATABASE_URL=postgresql://... uvicorn benchmarks.http_sqlmodel:app

The pool has todo_app's default bound (10 connections, no overflow). Only what the
benchmark calls is here: get by id, the first page of a listing, create and an
unconditional rename.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Response
from sqlalchemy import Column, DateTime
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from todo_app import TaskCreate, TaskPage, TaskRead, TaskUpdate
from todo_app.pagination import Cursor


def _moment() -> Any:
    return Column(DateTime(timezone=True), nullable=False)


class TaskRow(SQLModel, table=True):
    __tablename__ = "todo_app_task"

    id: uuid.UUID = Field(primary_key=True)
    user_id: str
    title: str
    description: str | None = None
    status: str = "pending"
    version: int = 1
    created_at: dt.datetime = Field(sa_column=_moment())
    updated_at: dt.datetime = Field(sa_column=_moment())
    completed_at: dt.datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


sessions: Any = None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    global sessions
    size = int(os.environ.get("TODO_APP_POOL_MAX_SIZE", "10"))
    url = "postgresql+asyncpg://" + os.environ["DATABASE_URL"].split("://", 1)[1]
    engine = create_async_engine(url, pool_size=size, max_overflow=0)
    sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    try:
        yield
    finally:
        await engine.dispose()


async def session() -> AsyncIterator[AsyncSession]:
    async with sessions() as current:
        yield current


app = FastAPI(lifespan=lifespan)
Owner = Annotated[str, Header(alias="X-User")]
Session = Annotated[AsyncSession, Depends(session)]


def read(row: TaskRow) -> TaskRead:
    return TaskRead.model_validate(row, from_attributes=True)


async def owned(db: AsyncSession, task_id: uuid.UUID, owner: str) -> TaskRow:
    found = (
        await db.exec(select(TaskRow).where(TaskRow.id == task_id, TaskRow.user_id == owner))
    ).first()
    if found is None:
        raise HTTPException(404)
    return found


@app.get("/tasks/{task_id}")
async def get(task_id: uuid.UUID, x_user: Owner, db: Session, response: Response) -> TaskRead:
    row = await owned(db, task_id, x_user)
    response.headers["ETag"] = f'"{row.version}"'
    return read(row)


@app.get("/tasks")
async def list_tasks(x_user: Owner, db: Session, limit: int = 50) -> TaskPage:
    query = (
        select(TaskRow)
        .where(TaskRow.user_id == x_user)
        .order_by(col(TaskRow.created_at).desc(), col(TaskRow.id).desc())
        .limit(limit + 1)
    )
    rows = (await db.exec(query)).all()
    items = [read(row) for row in rows[:limit]]
    cursor = None
    if len(rows) > limit:
        cursor = Cursor(items[-1].created_at, items[-1].id, "newest", None).encode()
    return TaskPage(items=items, next_cursor=cursor)


@app.post("/tasks", status_code=201)
async def create(data: TaskCreate, x_user: Owner, db: Session, response: Response) -> TaskRead:
    moment = dt.datetime.now(dt.UTC)
    row = TaskRow(
        id=data.id or uuid.uuid4(),
        user_id=x_user,
        title=data.title,
        description=data.description,
        status=data.status.value,
        version=1,
        created_at=moment,
        updated_at=moment,
    )
    db.add(row)
    await db.commit()
    await db.refresh(row)
    response.headers["ETag"] = '"1"'
    return read(row)


@app.patch("/tasks/{task_id}")
async def update(
    task_id: uuid.UUID, data: TaskUpdate, x_user: Owner, db: Session, response: Response
) -> TaskRead:
    row = await owned(db, task_id, x_user)
    if data.title is not None:
        row.title = data.title
    row.version += 1
    row.updated_at = dt.datetime.now(dt.UTC)
    db.add(row)
    await db.commit()
    await db.refresh(row)
    response.headers["ETag"] = f'"{row.version}"'
    return read(row)
