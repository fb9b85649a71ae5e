"""The one reading of a store's URL (the warehouse's ``HUB_WAREHOUSE_URL``, the audit log's
``HUB_AUDIT_URL``): which engine, which file or which PostgreSQL URL for each driver."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

Engine = Literal["duckdb", "postgres", "sqlite"]
POSTGRES_SCHEMES = frozenset({"postgres", "postgresql", "postgresql+psycopg"})


@dataclass(frozen=True)
class StoreURL:
    """``duckdb:///<file>``, ``sqlite:///<file>`` or ``postgresql://...`` taken apart."""

    engine: Engine
    url: str
    path: Path | None = None  # the file of a DuckDB or SQLite store

    @property
    def file(self) -> Path:
        """The store's file; raises ValueError for a PostgreSQL URL."""
        if self.path is None:
            raise ValueError(f"not a file store: {self.url!r}")
        return self.path

    @property
    def libpq(self) -> str:
        """The URL psycopg and libpq take (``postgresql://``, no driver suffix)."""
        return "postgresql://" + self.url.split("://", 1)[1]

    @property
    def sqlalchemy(self) -> str:
        """The URL SQLAlchemy takes, with psycopg 3 (the hub's driver)."""
        return "postgresql+psycopg://" + self.url.split("://", 1)[1]


def parse_store_url(url: str | Path) -> StoreURL:
    """Take ``url`` apart (a Path is a SQLite file). Raises ValueError for another scheme."""
    if isinstance(url, Path):
        return StoreURL("sqlite", f"sqlite:///{url}", url)
    scheme = urlsplit(url).scheme
    if scheme in POSTGRES_SCHEMES:
        return StoreURL("postgres", url)
    if scheme == "sqlite":  # SQLAlchemy's spelling: sqlite:///relative, sqlite:////absolute
        return StoreURL("sqlite", url, Path(url[len("sqlite:///") :]))
    if scheme == "duckdb":
        parts = urlsplit(url)
        path = parts.path if not parts.netloc else "/" + parts.netloc + parts.path
        # duckdb:///{absolute path} has four slashes: keep one
        return StoreURL(
            "duckdb", url, Path("/" + path.lstrip("/")) if path.startswith("//") else Path(path)
        )
    raise ValueError(
        f"expected duckdb:///<file>, sqlite:///<file> or postgresql://..., got {url!r}"
    )
