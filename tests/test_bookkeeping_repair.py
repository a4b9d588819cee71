"""A state of the ``aerich`` table the package (or an older version of it) can leave
behind is a state ``migrate`` repairs: a lost table, duplicated rows, rows out of
order, a row left behind by Aerich reverting one of two copies. The live table
decides what is recorded; rows without any table are still refused."""

from __future__ import annotations

import pytest

import todo_app
from tests.helpers import DIALECTS, FreshURL, bookkeeping, cli, plain_sql


def names() -> list[str]:
    return [migration.filename for migration in todo_app.migration_history()]


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_lost_aerich_table_is_recorded_again(
    dialect: str, fresh_database_url: FreshURL, capsys: pytest.CaptureFixture[str]
) -> None:
    url = await fresh_database_url(dialect)
    assert (await cli(url, "migrate", capsys=capsys))[0] == 0
    assert (await cli(url, "add", "keep me", capsys=capsys))[0] == 0
    await plain_sql(url, 'DROP TABLE "aerich"')

    code, output = await cli(url, "list", capsys=capsys)
    assert code == 7
    assert "records them without running them again" in output  # the guard's advice

    code, output = await cli(url, "migrate", capsys=capsys)
    assert (code, output.count("recorded ")) == (0, len(names())), output
    assert await bookkeeping(url) == names()
    code, output = await cli(url, "list", capsys=capsys)
    assert (code, "keep me" in output) == (0, True), "the rows were never touched"
    await todo_app.ensure_schema_current(url)


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_duplicated_and_misordered_rows_are_rewritten(
    dialect: str, fresh_database_url: FreshURL
) -> None:
    url = await fresh_database_url(dialect)
    await todo_app.migrate(url)
    first, *later = names()
    # What two runners of an older todo_app racing left: 1:0, 2:1, ..., then 0 again.
    await plain_sql(
        url,
        'INSERT INTO "aerich" ("version", "app", "content") SELECT "version", "app", '
        f'"content" FROM "aerich" WHERE "version" = \'{first}\'',
    )
    assert await bookkeeping(url) == [first, *later, first]

    assert await todo_app.migrate(url) == []  # nothing applied, nothing new recorded
    assert await bookkeeping(url) == names()
    await todo_app.ensure_schema_current(url)


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_row_left_behind_by_a_revert_is_removed_and_the_migration_applied(
    dialect: str, fresh_database_url: FreshURL, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 17's dead end: Aerich reverted the newest migration but deleted only one
    of its two rows; every command then exited 7 until someone edited ``aerich``."""
    url = await fresh_database_url(dialect)
    await todo_app.migrate(url)
    *earlier, newest = names()
    await todo_app.downgrade(url)  # the table is at the migration before the newest
    await plain_sql(
        url,
        'INSERT INTO "aerich" ("version", "app", "content") SELECT '
        f'\'{newest}\', "app", "content" FROM "aerich" WHERE "version" = \'{earlier[0]}\'',
    )
    assert await bookkeeping(url) == [*earlier, newest]

    code, output = await cli(url, "migrate", capsys=capsys)
    assert code == 0, output
    assert "lacks its effect" in output
    assert f"applied {newest}" in output
    assert await bookkeeping(url) == names()
    await todo_app.ensure_schema_current(url)


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_rows_without_any_table_are_refused_not_papered_over(
    dialect: str, fresh_database_url: FreshURL
) -> None:
    url = await fresh_database_url(dialect)
    await todo_app.migrate(url)
    await plain_sql(url, 'DROP TABLE "todo_app_task"')
    with pytest.raises(todo_app.SchemaMismatch, match='table "todo_app_task" does not exist'):
        await todo_app.migrate(url)
    assert await bookkeeping(url) == names(), "nothing changed"
