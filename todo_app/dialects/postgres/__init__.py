"""PostgreSQL through asyncpg: everything that knows asyncpg lives in this package.

* ``connect``: URL parameters -> asyncpg credentials (libpq's rules), connection
  failures, databases made and dropped.
* ``pool``: the pool's hooks (libpq's connect order, keepalives, session reset, fair
  hand-off).
* ``engine``: the Tortoise engine (fair, bounded pool; connections that never wait on a
  frozen server).
* ``dialect``: :class:`~todo_app.dialects.postgres.dialect.PostgresDialect`, the
  package's statements, errors, migrations and catalog on PostgreSQL.
* ``replication``: what read replicas need (WAL positions, server identity).
"""
