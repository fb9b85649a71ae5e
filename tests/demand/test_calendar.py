"""Working-day deadlines on the Chinese calendar (known answers from the State Council's
2026 holiday notice, as packaged by chinese-calendar)."""

from __future__ import annotations

from datetime import date, datetime

from hub.catalog.models import WorkingCalendar
from hub.demand.calendar import WorkingDays


def test_plain_weeks_skip_weekends() -> None:
    days = WorkingDays()
    # Friday 27 November 2026 + 10 working days = Friday 11 December; ends 24:00 local
    assert days.add_working_days(date(2026, 11, 27), 10) == date(2026, 12, 11)
    assert days.deadline(datetime(2026, 11, 27, 2, 0), 10) == datetime(2026, 12, 11, 16, 0)


def test_national_day_and_mid_autumn_with_make_up_saturday() -> None:
    days = WorkingDays()
    # 25 Sep (Mid-Autumn) and 1-7 Oct are off; Saturday 10 Oct is a make-up working day
    assert not days.is_workday(date(2026, 9, 25))
    assert not days.is_workday(date(2026, 10, 5))
    assert days.is_workday(date(2026, 10, 10))
    assert days.add_working_days(date(2026, 9, 23), 10) == date(2026, 10, 14)
    # counting Monday to Friday only would have said 7 October
    assert days.deadline(datetime(2026, 9, 23, 3, 0), 10) == datetime(2026, 10, 14, 16, 0)


def test_spring_festival_with_two_make_up_saturdays() -> None:
    days = WorkingDays()
    assert days.is_workday(date(2026, 2, 14)) and days.is_workday(date(2026, 2, 28))
    assert not days.is_workday(date(2026, 2, 23))
    assert days.add_working_days(date(2026, 2, 13), 10) == date(2026, 3, 5)


def test_days_are_counted_in_local_time() -> None:
    days = WorkingDays()
    # 17:00 UTC on Wednesday 23 Sep is 01:00 on Thursday 24 Sep in Jingdezhen
    assert days.deadline(datetime(2026, 9, 23, 17, 0), 10) == datetime(2026, 10, 15, 16, 0)


def test_local_overrides_win() -> None:
    overrides = WorkingCalendar(holidays=(date(2026, 12, 1),), workdays=(date(2026, 12, 5),))
    days = WorkingDays(overrides)
    assert not days.is_workday(date(2026, 12, 1))
    assert days.is_workday(date(2026, 12, 5))  # a Saturday made a working day
    # 30 Nov (1), 2-4 Dec (2-4), Saturday 5 Dec (5), 7-11 Dec (6-10)
    assert days.add_working_days(date(2026, 11, 27), 10) == date(2026, 12, 11)
    assert WorkingDays().add_working_days(date(2026, 11, 27), 9) == date(2026, 12, 10)


def test_a_year_the_package_does_not_know_counts_weekdays_and_says_so() -> None:
    days = WorkingDays()
    assert days.add_working_days(date(2027, 3, 5), 5) == date(2027, 3, 12)
    assert days.provisional_years == {2027}
