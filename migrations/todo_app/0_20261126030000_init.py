"""Initial schema: the todo_app_task table with its named CHECK constraints and indexes.

Frozen history. The SQL below was fixed when this migration was written (Tortoise's
schema generator, then the CHECK constraints added by hand); it must never import
todo_app, whose limits may change later. One file serves both dialects: Aerich hands
``upgrade``/``downgrade`` the connection, and each returns that dialect's SQL.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

# The characters Python's str.strip() removes, as code points. SQL's trim() strips
# spaces only, so the CHECKs trim this set explicitly: "blank" means the same in
# Python and in the database.
_WHITESPACE = (
    9,
    10,
    11,
    12,
    13,
    28,
    29,
    30,
    31,
    32,
    133,
    160,
    5760,
    8192,
    8193,
    8194,
    8195,
    8196,
    8197,
    8198,
    8199,
    8200,
    8201,
    8202,
    8232,
    8233,
    8239,
    8287,
    12288,
)
_WS_SQLITE = "char(" + ", ".join(map(str, _WHITESPACE)) + ")"
_WS_POSTGRES = "E'" + "".join(f"\\u{code:04x}" for code in _WHITESPACE) + "'"

# SQLite ignores VARCHAR lengths (hence the length CHECKs) and would store NUL, which
# PostgreSQL text cannot hold and which makes SQLite's length() stop counting early
# (hence the *_no_nul CHECKs, on SQLite only: PostgreSQL refuses NUL by itself).
_SQLITE_UPGRADE = f"""
CREATE TABLE IF NOT EXISTS "aerich" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "version" VARCHAR(255) NOT NULL,
    "app" VARCHAR(100) NOT NULL,
    "content" JSON NOT NULL
);
CREATE TABLE "todo_app_task" (
    "id" CHAR(36) NOT NULL PRIMARY KEY,
    "user_id" VARCHAR(255) NOT NULL,
    "title" VARCHAR(200) NOT NULL,
    "description" VARCHAR(1000),
    "status" VARCHAR(32) NOT NULL,
    "created_at" TIMESTAMP NOT NULL,
    "updated_at" TIMESTAMP NOT NULL,
    CONSTRAINT "todo_app_task_user_id_not_blank"
        CHECK (length(trim("user_id", {_WS_SQLITE})) > 0),
    CONSTRAINT "todo_app_task_user_id_max_length" CHECK (length("user_id") <= 255),
    CONSTRAINT "todo_app_task_title_not_blank"
        CHECK (length(trim("title", {_WS_SQLITE})) > 0),
    CONSTRAINT "todo_app_task_title_stripped" CHECK ("title" = trim("title", {_WS_SQLITE})),
    CONSTRAINT "todo_app_task_title_max_length" CHECK (length("title") <= 200),
    CONSTRAINT "todo_app_task_description_not_empty"
        CHECK ("description" IS NULL OR length("description") > 0),
    CONSTRAINT "todo_app_task_description_max_length"
        CHECK ("description" IS NULL OR length("description") <= 1000),
    CONSTRAINT "todo_app_task_status_not_empty" CHECK (length("status") > 0),
    CONSTRAINT "todo_app_task_status_max_length" CHECK (length("status") <= 32),
    CONSTRAINT "todo_app_task_user_id_no_nul" CHECK (instr(CAST("user_id" AS BLOB), x'00') = 0),
    CONSTRAINT "todo_app_task_title_no_nul" CHECK (instr(CAST("title" AS BLOB), x'00') = 0),
    CONSTRAINT "todo_app_task_description_no_nul"
        CHECK ("description" IS NULL OR instr(CAST("description" AS BLOB), x'00') = 0)
) /* todo_app tasks */;
CREATE INDEX "todo_app_task_user_status_idx" ON "todo_app_task" ("user_id", "status");
CREATE INDEX "todo_app_task_user_created_idx" ON "todo_app_task" ("user_id", "created_at", "id");
"""

_POSTGRES_UPGRADE = f"""
CREATE TABLE IF NOT EXISTS "aerich" (
    "id" SERIAL NOT NULL PRIMARY KEY,
    "version" VARCHAR(255) NOT NULL,
    "app" VARCHAR(100) NOT NULL,
    "content" JSONB NOT NULL
);
CREATE TABLE "todo_app_task" (
    "id" UUID NOT NULL PRIMARY KEY,
    "user_id" VARCHAR(255) NOT NULL,
    "title" VARCHAR(200) NOT NULL,
    "description" VARCHAR(1000),
    "status" VARCHAR(32) NOT NULL,
    "created_at" TIMESTAMPTZ NOT NULL,
    "updated_at" TIMESTAMPTZ NOT NULL,
    CONSTRAINT "todo_app_task_user_id_not_blank"
        CHECK (char_length(btrim("user_id", {_WS_POSTGRES})) > 0),
    CONSTRAINT "todo_app_task_user_id_max_length" CHECK (char_length("user_id") <= 255),
    CONSTRAINT "todo_app_task_title_not_blank"
        CHECK (char_length(btrim("title", {_WS_POSTGRES})) > 0),
    CONSTRAINT "todo_app_task_title_stripped" CHECK ("title" = btrim("title", {_WS_POSTGRES})),
    CONSTRAINT "todo_app_task_title_max_length" CHECK (char_length("title") <= 200),
    CONSTRAINT "todo_app_task_description_not_empty"
        CHECK ("description" IS NULL OR char_length("description") > 0),
    CONSTRAINT "todo_app_task_description_max_length"
        CHECK ("description" IS NULL OR char_length("description") <= 1000),
    CONSTRAINT "todo_app_task_status_not_empty" CHECK (char_length("status") > 0),
    CONSTRAINT "todo_app_task_status_max_length" CHECK (char_length("status") <= 32)
);
CREATE INDEX "todo_app_task_user_status_idx" ON "todo_app_task" ("user_id", "status");
CREATE INDEX "todo_app_task_user_created_idx" ON "todo_app_task" ("user_id", "created_at", "id");
COMMENT ON TABLE "todo_app_task" IS 'todo_app tasks';
COMMENT ON COLUMN "todo_app_task"."user_id" IS 'Opaque id of the owner; every query is scoped by it';
COMMENT ON COLUMN "todo_app_task"."title" IS 'Stored stripped of surrounding whitespace';
COMMENT ON COLUMN "todo_app_task"."description" IS 'Optional; an empty string is stored as NULL';
COMMENT ON COLUMN "todo_app_task"."status" IS 'Task status (a TaskStatus value)';
COMMENT ON COLUMN "todo_app_task"."created_at" IS 'UTC; set once on insert';
COMMENT ON COLUMN "todo_app_task"."updated_at" IS 'UTC; moves on every write';
"""

# The "aerich" bookkeeping table stays: it records this very downgrade, and other
# apps on the same connection may keep their history in it.
_DOWNGRADE = """DROP TABLE IF EXISTS "todo_app_task";"""


def _dialect(db: BaseDBAsyncClient) -> str:
    dialect = db.capabilities.dialect
    if dialect not in ("sqlite", "postgres"):
        raise NotImplementedError(f"todo_app migrations support sqlite and postgres, not {dialect}")
    return dialect


async def upgrade(db: BaseDBAsyncClient) -> str:
    return _SQLITE_UPGRADE if _dialect(db) == "sqlite" else _POSTGRES_UPGRADE


async def downgrade(db: BaseDBAsyncClient) -> str:
    _dialect(db)
    return _DOWNGRADE


MODELS_STATE = (
    "eJzlV9tu4zYQ/RVCTw6QGo6TzS6aooBzKdZFYhex0hbbFgot0jZhidSKVBwj9b93hpKsiy"
    "+xXWybbV9scS7U6BwOZ+bFMYopj0ZR06V66nxLXhxJQw4PNc0xceC5LEeRocOgYuyZ3Hio"
    "TUx9A8oRDTQHEePaj0VkhJJlF4IuGn2Y8sFJyDGqO1ZO1ExyRoZzoiQnieZxk1wmImCESk"
    "b8CZVjToQhZhKrZDwhj48Y7T2PlBZGxfPHx99lYzYR/oRoX0VcE/7E4zn5nOCvUeCr7Tvi"
    "owvYhJNQMR6glAcjMuU8yj3iJOBNjDKRArw9o8YcHGKI9bc/QCwk489c4/LFGQkeMPvsYM"
    "yeYOipDTWJdtCaP0cx1xqg0PkGddwtlJ51Tx1hl2cL+jyyho7dB1C2i8Ux2fReP+bUcOZR"
    "gyuQ7R9BvsX2EHCTaOrZKCpnKY3Dyr3c9+Ghe/2DtUTqh56vgiSUhXU0NxMll+ZJIlgTfV"
    "A35sAYBlQ6XjIJguw45qKUKhCYOOFLjlghYHxEkwAPqfPdKJE+nk1i34Q/Z99noZXMPK/X"
    "d73Bjet5zsqZxhBq5zgT+QAzwCSkQbRfFum+BSBW6uALrj527hun50cWAqXNOLZKC5ezsI"
    "7UUK9gukC5RHkV6qsJjddDXXKp4Q3hHoJ0LiigLtI/BzGHaXdgnX5EYX8iGFEjm6c2Zy8q"
    "2Sx0muP2uhCmfqOsZ8IJ6bMXcDk2E1i2373bQs3PnXvLDlhZehRccOn118tU7VS3sMm4TC"
    "dhwGoPUpYOb5qSAdyvgDXiGyHoQIxOYriGJQPACVy6huuI+vwgIlqtXYhotTYTgboqEeUP"
    "2IOOmttBpGT3zZdPE3yiwQWUR8LDyMxJCrtNjpQwqknv4fb2EFZOWjvRgmYbeUmVVWKywr"
    "jCycDK17NS+PxzWeJE3B7uPcuCgz0JSQMmDUpwmX4aeaJBwo8O4eK0vQMTp+2NPKCqykK1"
    "TagVa/fqGpRGhHw9HVXnGiUsc23mD2/oGoMvuyCaG2gwfSgrkggJNXHH6rGFArd7dzNwO3"
    "c/4U6h1p8DlF533BvUtK10XpM2zmt0LTchv3TdjwSX5FO/d1NvDpZ27idsBB2aGOVJNfMo"
    "KwOVi3NRhf4kYofTX3X+2ugP1RNMBsB92k7MYihd/48DgB37aFrqJlEwpP50RmPmrWhUW2"
    "2yXVWF7bAuoZKOLXeIJsa5HDI7PIYhzVk7gGa64+0jKC2sXps9N/fprw93e804XWn2GHHg"
    "UNUzI+sb/t5ss39a7DzIQLDw90375Oz92YfT87MPYGLDXEreb0mRbs99ZaSBfNR7tmsll7"
    "fcP+8O8ZefULJU2hXhzPw/iO7Jrv3ttvZ2pa9S0nC5pqr+OOj3NnRThUu9lgrfkD9JIPTK"
    "XfEVoL0FXASjUilzTBt3nV/rcF/d9i/rJRA3uATo/9WStvgL7gTX5g=="
)
