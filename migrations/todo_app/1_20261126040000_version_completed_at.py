"""Optimistic concurrency and completion time: ``version`` and ``completed_at``.

* ``version`` INTEGER NOT NULL DEFAULT 1: every write increments it; a web layer hands
  it out as an ETag, and a write made against a stale version is refused.
* ``completed_at``: set exactly while the status is ``completed`` (a named CHECK keeps
  the two consistent). Rows completed before this migration get their ``updated_at``,
  the best record there is of when they were completed.

Frozen history, like every migration: fixed SQL, no import of todo_app. SQLite cannot
add a CHECK with ALTER TABLE, so on SQLite the table is rebuilt (rows, constraints and
indexes kept); on PostgreSQL it is altered in place.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

# Same whitespace set as migration 0 (the characters str.strip() removes).
_WHITESPACE = (
    9, 10, 11, 12, 13, 28, 29, 30, 31, 32, 133, 160, 5760,
    8192, 8193, 8194, 8195, 8196, 8197, 8198, 8199, 8200, 8201, 8202,
    8232, 8233, 8239, 8287, 12288,
)  # fmt: skip
_WS = "char(" + ", ".join(map(str, _WHITESPACE)) + ")"

_SQLITE_COLUMNS_0 = """
    "id" CHAR(36) NOT NULL PRIMARY KEY,
    "user_id" VARCHAR(255) NOT NULL,
    "title" VARCHAR(200) NOT NULL,
    "description" VARCHAR(1000),
    "status" VARCHAR(32) NOT NULL,
    "created_at" TIMESTAMP NOT NULL,
    "updated_at" TIMESTAMP NOT NULL"""

_SQLITE_CHECKS_0 = f"""
    CONSTRAINT "todo_app_task_user_id_not_blank" CHECK (length(trim("user_id", {_WS})) > 0),
    CONSTRAINT "todo_app_task_user_id_max_length" CHECK (length("user_id") <= 255),
    CONSTRAINT "todo_app_task_title_not_blank" CHECK (length(trim("title", {_WS})) > 0),
    CONSTRAINT "todo_app_task_title_stripped" CHECK ("title" = trim("title", {_WS})),
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
        CHECK ("description" IS NULL OR instr(CAST("description" AS BLOB), x'00') = 0)"""

_SQLITE_INDEXES = """
CREATE INDEX "todo_app_task_user_status_idx" ON "todo_app_task" ("user_id", "status");
CREATE INDEX "todo_app_task_user_created_idx" ON "todo_app_task" ("user_id", "created_at", "id");
"""

_COLUMNS_0 = '"id", "user_id", "title", "description", "status", "created_at", "updated_at"'

_SQLITE_UPGRADE = f"""
CREATE TABLE "todo_app_task__new" ({_SQLITE_COLUMNS_0},
    "version" INT NOT NULL DEFAULT 1,
    "completed_at" TIMESTAMP,{_SQLITE_CHECKS_0},
    CONSTRAINT "todo_app_task_version_positive" CHECK ("version" >= 1),
    CONSTRAINT "todo_app_task_completed_at_matches_status"
        CHECK (("status" = 'completed') = ("completed_at" IS NOT NULL))
) /* todo_app tasks */;
INSERT INTO "todo_app_task__new" ({_COLUMNS_0}, "version", "completed_at")
    SELECT {_COLUMNS_0}, 1, CASE WHEN "status" = 'completed' THEN "updated_at" END
    FROM "todo_app_task";
DROP TABLE "todo_app_task";
ALTER TABLE "todo_app_task__new" RENAME TO "todo_app_task";
{_SQLITE_INDEXES}"""

_SQLITE_DOWNGRADE = f"""
CREATE TABLE "todo_app_task__old" ({_SQLITE_COLUMNS_0},{_SQLITE_CHECKS_0}
) /* todo_app tasks */;
INSERT INTO "todo_app_task__old" ({_COLUMNS_0}) SELECT {_COLUMNS_0} FROM "todo_app_task";
DROP TABLE "todo_app_task";
ALTER TABLE "todo_app_task__old" RENAME TO "todo_app_task";
{_SQLITE_INDEXES}"""

_POSTGRES_UPGRADE = """
ALTER TABLE "todo_app_task" ADD "version" INT NOT NULL DEFAULT 1;
ALTER TABLE "todo_app_task" ADD "completed_at" TIMESTAMPTZ;
UPDATE "todo_app_task" SET "completed_at" = "updated_at" WHERE "status" = 'completed';
ALTER TABLE "todo_app_task"
    ADD CONSTRAINT "todo_app_task_version_positive" CHECK ("version" >= 1),
    ADD CONSTRAINT "todo_app_task_completed_at_matches_status"
        CHECK (("status" = 'completed') = ("completed_at" IS NOT NULL));
COMMENT ON COLUMN "todo_app_task"."version" IS 'Starts at 1, +1 on every write (optimistic concurrency)';
COMMENT ON COLUMN "todo_app_task"."completed_at" IS 'UTC; set exactly while the status is completed';
"""

_POSTGRES_DOWNGRADE = """
ALTER TABLE "todo_app_task"
    DROP CONSTRAINT "todo_app_task_completed_at_matches_status",
    DROP CONSTRAINT "todo_app_task_version_positive",
    DROP COLUMN "completed_at",
    DROP COLUMN "version";
"""


def _dialect(db: BaseDBAsyncClient) -> str:
    dialect = db.capabilities.dialect
    if dialect not in ("sqlite", "postgres"):
        raise NotImplementedError(f"todo_app migrations support sqlite and postgres, not {dialect}")
    return dialect


async def upgrade(db: BaseDBAsyncClient) -> str:
    return _SQLITE_UPGRADE if _dialect(db) == "sqlite" else _POSTGRES_UPGRADE


async def downgrade(db: BaseDBAsyncClient) -> str:
    return _SQLITE_DOWNGRADE if _dialect(db) == "sqlite" else _POSTGRES_DOWNGRADE


MODELS_STATE = (
    "eJzlWG1v2zYQ/iuEPjlYZsROmhbLMMB5GZohsYvE6YZug8JIZ5uwRKoiFdvI8t97R73YUi"
    "zX9pouXb8I4r1Qp+fhHY98cIzylcujqNnneuz8xB4cyUPAl4pmlzn4vignkeF3QcnYNbnx"
    "nTYx9wwqBzzQgCIftBeLyAglF10YuWjy8ZWHTkIOSd2xcqYmEnx2N2NKAks0xE12nIjAZ1"
    "z6zBtxOQQmDDOjWCXDEbu9pWivIFJaGBXPbm//ko3JSHgjpj0VgWZwD/GMfUzoaRT6avuN"
    "eOcIJwEWKh8CkkIwYGOAKPeIkwCaFGUiBXq7Rg0BHWKM9c+/USykD1PQNHxwBgIC3747FL"
    "MrfPLUhptEO2QN0ygGrREKnU9Qxd1C6Vr31BFnmVrQZ5E1dOw8iLIdPO6yuu96MXADvssN"
    "jVC2eQT5FKtDoEmisWujKK2lNA4rd3Pfm5vz01+tJVF/53oqSEI5t45mZqRkYZ4kwm+SD+"
    "mGgIxRQAvLSyZBkC3HXJRShQITJ1Bw5M8FPgx4EtAidX4eJNKjtcnsl+hx8EsW2oKZ63Z7"
    "fff6rO+6zpM1TSFU1nEm8hBmhElIQ2g/PKbzzgGxUoc+cPK2c9XYP9yxEChthrFVWricR+"
    "vIDXfnTM9RXqC8DPXJiMfLoV5wqeCN4W6DdC6YQz1P/xzEHKb1gXV6Ecf5mfCZGtg8tTl7"
    "VMpmodMct+VCmGpFWc6EE/KpG4AcmhEO269eraDmfefKsoNWlh6FBS4tf91M1U51jzYZi3"
    "QSBq02IKVweNGUXGN9RawJ34hAR2J0EmMZlj4CzrDoGtAR92ArIvb21iFib6+eCNKViVj8"
    "gQ3oqLhtRUpWb54/TeiNB0e4PTIIIzNjKew2OVLCuGbdm4uLbVhp7a1FC5nV8pIqy8RkG+"
    "MTTq6tfDkrc5+vlyVOBHZxb7gtONSTsDRg1uCMhumvsXseJLCzDRf77TWY2G/X8kCqMgtY"
    "SvXS1DiXZjkHCx4VEjDm5yKhtXGd4jE2edyQ5w8tbCSzXWMSY4ViDYWWodBGeAwB97CEgf"
    "Rm63IypLB/bLcOXh+82T88eIMm9tcKyesVNJ13+xUOyq1apWHqn5yiEqOF5XSUnSuM+Jlr"
    "M395QVsJ/tkR02CQGw+IICGxL1lzB1+Bb//88uy637l8RzOFWn8MSHra6Z+Rpm2ls4q0cV"
    "hJmWIS9vt5/y2jIfvQ655VG7TCrv+BmnGHJ0a5Uk1c7i8ClYtzUYn+JPK3p7/s/K3RH6p7"
    "PJ2Vk/P7WwCeCqMAtq8AFfcvsAi+UudSlACYcs8EM+ofA7CtfrZxYgdT/N73sTDoOD0YLx"
    "z1SHDHvfGEx777RKPaqs72qSpsh1UJl3xoCSU0Kc7iBqgDsfBGztLboUy3u/p+iM+tPncx"
    "VH+I/vzNy0YXELVtzdLz8JKOJkuNf3fxsHmurH3L8GWak/r7htqGsf4sVd8xvqjD7foQP/"
    "/1QZZK6yKcmf8P0W2te/hcdfasootfNCCX7LW/Xfe6dZts4VLdX4Vn2D8swNPEN4j2CnAJ"
    "jNJOmWPauOz8UYX75KJ3XN0CaYJjhP4/3dIePwFz3v+F"
)
