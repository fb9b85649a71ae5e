"""Supply and demand: demands, grants, approval by timeout, and the completion report."""

from hub.demand.calendar import WorkingDays
from hub.demand.workflow import (
    Demand,
    DemandBook,
    DemandError,
    DemandEvent,
    DemandNotFoundError,
    DemandStatus,
    Grant,
    GrantBasis,
    GrantStatus,
    match_demand,
)

__all__ = [
    "Demand",
    "DemandBook",
    "DemandError",
    "DemandEvent",
    "DemandNotFoundError",
    "DemandStatus",
    "Grant",
    "GrantBasis",
    "GrantStatus",
    "WorkingDays",
    "match_demand",
]
