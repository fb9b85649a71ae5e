"""The resource catalog: departments and shared resources, validated from ``catalogs/``."""

from hub.catalog.loader import CatalogError, CatalogProblem, load_catalog
from hub.catalog.models import (
    Catalog,
    ConnectorKind,
    Department,
    Resource,
    ResourceField,
    Sensitivity,
    SharingType,
    Source,
    UpdateCycle,
)

__all__ = [
    "Catalog",
    "CatalogError",
    "CatalogProblem",
    "ConnectorKind",
    "Department",
    "Resource",
    "ResourceField",
    "Sensitivity",
    "SharingType",
    "Source",
    "UpdateCycle",
    "load_catalog",
]
