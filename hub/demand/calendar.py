"""Working days on the Chinese calendar, for approval deadlines (超时默许).

The national calendar — weekends, public holidays and the make-up working days (调休)
of the State Council's yearly notice — comes from the ``chinese-calendar`` package. A year
the package does not cover yet counts Monday to Friday, and says so (``provisional``),
until a newer package or ``catalogs/calendar.yml`` overrides fill it in. Local overrides
win over both.

Deadlines are instants in naive UTC, like every time the hub stores; days are counted in
the city's local time (Asia/Shanghai, UTC+8, no daylight saving).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar

from hub.catalog.models import WorkingCalendar

LOCAL_TZ = ZoneInfo("Asia/Shanghai")


@dataclass
class WorkingDays:
    """Answers "is this a working day" and "when is the deadline" for one calendar."""

    overrides: WorkingCalendar = field(default_factory=WorkingCalendar)
    provisional_years: set[int] = field(default_factory=set)

    def is_workday(self, day: date) -> bool:
        """Local overrides first, then the national calendar, then Monday to Friday."""
        if day in self.overrides.holidays:
            return False
        if day in self.overrides.workdays:
            return True
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:  # the package does not know this year yet
            self.provisional_years.add(day.year)
            return day.weekday() < 5

    def add_working_days(self, start: date, days: int) -> date:
        """The ``days``-th working day after ``start`` (``start`` itself does not count)."""
        if days < 1:
            raise ValueError(f"days must be at least 1, got {days}")
        day, counted = start, 0
        while counted < days:
            day += timedelta(days=1)
            if self.is_workday(day):
                counted += 1
        return day

    def deadline(self, submitted_at: datetime, days: int) -> datetime:
        """The end of the ``days``-th working day after the local day of ``submitted_at``:
        local midnight that follows it, as naive UTC. At that instant silence is consent."""
        local_day = to_local(submitted_at).date()
        last = self.add_working_days(local_day, days)
        end = datetime.combine(last + timedelta(days=1), time(0), tzinfo=LOCAL_TZ)
        return end.astimezone(UTC).replace(tzinfo=None)


def to_local(moment: datetime) -> datetime:
    """A naive-UTC (or aware) instant in the city's local time."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(LOCAL_TZ)


def utc_now() -> datetime:
    """Now, as the naive UTC the hub stores."""
    return datetime.now(UTC).replace(tzinfo=None)


def naive_utc(moment: datetime | None) -> datetime | None:
    """``moment`` as the naive UTC the hub stores: a zone-aware time is converted, a
    naive one is taken as UTC already."""
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)
