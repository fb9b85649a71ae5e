"""The simulated clock and the text forms of dates, timestamps and amounts.

Day 0 is 2026-11-01. Initial records were last changed at some time in the past up to
day 0 18:00; the changes of day ``k`` happen during office hours (08:00-18:00) of
2026-11-01 + k days. Timestamps are naive, with second precision.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

DAY0 = np.datetime64("2026-11-01", "D")
OPEN_HOUR = 8
CLOSE_HOUR = 18

Dates = npt.NDArray[np.datetime64]
Strings = npt.NDArray[np.str_]


def day_date(day: int) -> np.datetime64:
    """The calendar date of simulated day ``day``."""
    return DAY0 + np.timedelta64(day, "D")


def day_stamp(day: int) -> str:
    """``YYYYMMDD`` of simulated day ``day`` (the name of its social-insurance drop)."""
    return str(day_date(day)).replace("-", "")


def office_hours(rng: np.random.Generator, day: int, n: int) -> Dates:
    """``n`` sorted moments between 08:00 and 18:00 of day ``day`` (second precision)."""
    start = day_date(day).astype("datetime64[s]") + np.timedelta64(OPEN_HOUR, "h")
    seconds = np.sort(rng.integers(0, (CLOSE_HOUR - OPEN_HOUR) * 3600, n))
    moments: Dates = start + seconds.astype("timedelta64[s]")
    return moments


def day0_close() -> np.datetime64:
    """Day 0, 18:00: no initial record was changed later than this."""
    close: np.datetime64 = DAY0.astype("datetime64[s]") + np.timedelta64(CLOSE_HOUR, "h")
    return close


def moments_between(rng: np.random.Generator, start: Dates, end: np.datetime64) -> Dates:
    """One moment per ``start`` between that date's office hours and ``end``.

    Biased towards ``end``: recent records are changed more often than old ones.
    """
    first = start.astype("datetime64[D]").astype("datetime64[s]") + np.timedelta64(OPEN_HOUR, "h")
    first = np.minimum(first, end - np.timedelta64(1, "h"))
    span = (end - first).astype(np.int64)
    offset = (span * rng.power(1.6, len(start))).astype(np.int64)
    moments = first + offset.astype("timedelta64[s]")
    # keep changes inside office hours where the day allows it
    hour = (moments - moments.astype("datetime64[D]")).astype("timedelta64[h]").astype(np.int64)
    outside = (hour < OPEN_HOUR) | (hour >= CLOSE_HOUR)
    shifted = moments.astype("datetime64[D]").astype("datetime64[s]") + (
        np.timedelta64(OPEN_HOUR, "h")
        + rng.integers(0, 10 * 3600, len(start)).astype("timedelta64[s]")
    )
    moments = np.where(outside & (shifted <= end) & (shifted >= first), shifted, moments)
    capped: Dates = np.minimum(moments, end)
    return capped


def replace(text: Strings, old: str, new: str) -> Strings:
    """``np.strings.replace`` that also takes an empty array (numpy fails on those)."""
    return np.strings.replace(text, old, new) if len(text) else text


def dates_text(values: Dates) -> Strings:
    """``YYYY-MM-DD``."""
    return np.datetime_as_string(values.astype("datetime64[D]"), unit="D")


def timestamps_text(values: Dates) -> Strings:
    """``YYYY-MM-DD HH:MM:SS``."""
    text = np.datetime_as_string(values.astype("datetime64[s]"), unit="s")
    return replace(text, "T", " ")


def parse_timestamps(values: npt.NDArray[Any]) -> Dates:
    """``YYYY-MM-DD HH:MM:SS`` text back to ``datetime64[s]``."""
    text = np.asarray([str(value) for value in values], dtype="<U19")
    return replace(text, " ", "T").astype("datetime64[s]")


def money_text(cents: npt.NDArray[np.int64], scale: int = 2) -> Strings:
    """Fixed-point text with ``scale`` decimals from an integer count of the smallest unit."""
    unit = 10**scale
    width = len(str(int(cents.max(initial=0)) // unit))
    whole: Strings = (cents // unit).astype(f"<U{width}")
    if scale == 0:
        return whole
    fraction = np.strings.zfill((cents % unit).astype(f"<U{scale}"), scale)
    return np.strings.add(np.strings.add(whole, "."), fraction)


def yuan(amounts: npt.NDArray[np.float64]) -> Strings:
    """Amounts in yuan as text with two decimals (rounded to the fen)."""
    return money_text(np.rint(np.maximum(amounts, 0) * 100).astype(np.int64))
