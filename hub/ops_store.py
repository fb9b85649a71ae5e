"""Moved to :mod:`hub.storage` (:class:`hub.storage.interface.OpsStore`, the SQLite store in
:mod:`hub.storage.sqlite`); these names stay importable from here for the modules that still
use them."""

from hub.storage.interface import OpsStore, open_ops, open_ops_connection, ops_path
from hub.storage.sqlite import BUSY_TIMEOUT_MS, SqliteOpsStore

__all__ = [
    "BUSY_TIMEOUT_MS",
    "OpsStore",
    "SqliteOpsStore",
    "open_ops",
    "open_ops_connection",
    "ops_path",
]
