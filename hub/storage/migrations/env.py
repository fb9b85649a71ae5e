"""Alembic's environment for the hub's stores (hub.storage.migrate drives it; there is no
alembic.ini). Online: the connection comes in ``config.attributes["connection"]``.
Offline (DuckDB, which has no SQLAlchemy dialect here): the SQL is written for PostgreSQL,
whose DDL DuckDB speaks, into ``config.attributes["buffer"]`` and run by the caller."""

from __future__ import annotations

from alembic import context

from hub.storage.schema import OPS, VERSION_TABLE

config = context.config

if context.is_offline_mode():
    context.configure(
        dialect_name="postgresql",
        output_buffer=config.attributes["buffer"],
        literal_binds=True,
        version_table=VERSION_TABLE,
        version_table_schema=OPS,
        transactional_ddl=False,  # the caller runs the script in one transaction
        as_sql=True,
    )
    context.run_migrations()
else:
    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        version_table=VERSION_TABLE,
        version_table_schema=OPS,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":  # one migrating process at a time
            from hub.storage.migrate import PG_LOCK_KEY

            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_LOCK_KEY})")
            connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {OPS}")  # its version table
        context.run_migrations()
