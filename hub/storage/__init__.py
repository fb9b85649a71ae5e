"""Storage: the hub's own tables and how each store is brought to what the code needs.

- :mod:`hub.storage.schema`: the tables of the warehouse's ops schema, the access store and
  the audit store, defined once (SQLAlchemy Core MetaData); the dbt macro generated from it.
- :mod:`hub.storage.migrate`: the check on open, ``hub db upgrade`` (Alembic revisions in
  ``migrations/versions``, one branch per store).
"""
