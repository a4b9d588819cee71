"""SQLite through sqlite3/aiosqlite: everything that knows them lives in this package.

* ``connect``: URL parameters -> Tortoise's SQLite credentials.
* ``engine``: the Tortoise engine whose failed open leaves nothing locked.
* ``dialect``: :class:`~todo_app.dialects.sqlite.dialect.SQLiteDialect`, the package's
  statements, errors (extended result codes), migrations and catalog (its DDL parser
  included) on SQLite.
* ``rebuild``: the table rebuild as SQL, for a change ``ALTER TABLE`` cannot make
  (written by ``todo-app makemigration``).
"""
