"""Storage: every difference between the engines (DuckDB, PostgreSQL, SQLite), the hub's own
tables, and how each store is brought to what the code needs.

- :mod:`hub.storage.interface`: one interface per concern (the warehouse, the ops store, the
  audit store, the gate's SQL dialect) and the factories that pick the engine from a URL
  (``open_warehouse``, ``open_ops``, ``open_audit_store``).
- :mod:`hub.storage.duckdb`, :mod:`hub.storage.postgres`, :mod:`hub.storage.sqlite`: the
  engines' classes.
- :mod:`hub.storage.urls`: the one reading of a store's URL; :mod:`hub.storage.sql`: the SQL
  text every engine shares (the literal and identifier quoters, ``?`` parameters).
- :mod:`hub.storage.schema`: the tables of the warehouse's ops schema, the access store and
  the audit store, defined once (SQLAlchemy Core MetaData); the dbt macro generated from it.
- :mod:`hub.storage.migrate`: the check on open, ``hub db upgrade`` (Alembic revisions in
  ``migrations/versions``, one branch per store).
- :mod:`hub.storage.files`: a file or a folder's entries fsync'd (landing, serving and
  sharing files are durable before anything names them).
"""
