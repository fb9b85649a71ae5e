"""Bulk sharing: each grant on all rows of a resource as a table a stock Delta Sharing
client reads, at every kept version, with the changes between versions.

- :mod:`hub.sharing.changes`: the change set between two relations of a resource (SQL,
  both warehouses), reusable wherever two versions are compared;
- :mod:`hub.sharing.writer`: the files, written at publish, at approval and by
  ``hub share refresh`` (never at read time); :mod:`hub.sharing.layout` says where;
- :mod:`hub.sharing.shapes`: a grant's columns and masking; :mod:`hub.sharing.signing`:
  the signed file URLs; :mod:`hub.sharing.profile`: the client's profile file.

The protocol server is :mod:`hub.serve.sharing`.
"""
