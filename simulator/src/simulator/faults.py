"""Fault rates, daily change rates, and the injection of faults into new rows.

Faults are drawn per batch of rows from a binomial distribution, but never zero when the
rate and the batch are not zero: every check of the hub has at least one case to catch,
even at the tiny scales of the tests. Each faulty row carries exactly one fault, so the
manifest's counts are counts of rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from simulator.clock import parse_timestamps, timestamps_text
from simulator.identities import party_valid_check, spoil_check_chars
from simulator.rows import Rows, lazy

__all__ = ["FaultRates", "Injected", "draw_count", "inject_faults", "inject_faults_apart"]

POOL_BLOCK = 1 << 16  # positions of the shuffled order searched at a time for clean rows


class SimulationError(RuntimeError):
    """The simulator cannot build or advance the systems; the message says why."""


@dataclass(frozen=True)
class FaultRates:
    """How often faults and daily changes happen.

    Fault rates are fractions of the rows written (``late_update``: of a day's updates);
    ``daily_*`` are fractions of a table's rows changed per simulated day.
    Raises ValueError for a rate outside [0, 1].
    """

    bad_check_digit: float = 0.005
    duplicate_key: float = 0.002
    missing_value: float = 0.01
    unparseable: float = 0.002
    late_update: float = 0.02
    daily_insert: float = 0.005
    daily_update: float = 0.01
    daily_delete: float = 0.002

    def __post_init__(self) -> None:
        for name, value in self.as_dict().items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"FaultRates.{name}: expected a fraction in [0, 1], got {value}")

    def as_dict(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, values: dict[str, float]) -> FaultRates:
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})


def draw_count(rng: np.random.Generator, n: int, rate: float) -> int:
    """How many of ``n`` rows are affected at ``rate``: binomial, at least 1 if possible."""
    if n <= 0 or rate <= 0:
        return 0
    return max(1, int(rng.binomial(n, rate)))


@dataclass
class Injected:
    """Faults put into one batch of rows (counts of rows)."""

    bad_check_digit: int = 0
    duplicate_key: int = 0
    missing_value: int = 0
    unparseable: int = 0
    unparseable_rows: list[int] = field(default_factory=list)


# marks the rows of a batch given as indexes unparseable (a bad value in some field)
Spoiler = Callable[[np.random.Generator, Rows, np.ndarray], None]


def inject_faults(
    rng: np.random.Generator,
    rows: Rows,
    rates: FaultRates,
    *,
    id_column: str | None,
    missing_columns: tuple[str, ...],
    spoil: Spoiler | None = None,
    duplicates: bool = False,
    shift_duplicates: bool = True,
) -> tuple[Rows, Injected]:
    """Put faults into new rows; return the rows (duplicates appended) and the counts
    (see :func:`inject_faults_apart`)."""
    rows, copies, result = inject_faults_apart(
        rng,
        rows,
        rates,
        id_column=id_column,
        missing_columns=missing_columns,
        spoil=spoil,
        duplicates=duplicates,
        shift_duplicates=shift_duplicates,
    )
    return (Rows.concat([rows, copies]) if len(copies) else rows), result


def first_clean(
    order: npt.NDArray[np.integer[Any]], clean: npt.NDArray[np.bool_], count: int
) -> npt.NDArray[np.integer[Any]]:
    """The first ``count`` of ``order`` that are ``clean`` (``order[clean[order]][:count]``,
    looked for a block at a time: not a copy of the whole order)."""
    found: list[npt.NDArray[np.integer[Any]]] = []
    wanted = count
    for start in range(0, len(order), POOL_BLOCK):
        if wanted <= 0:
            break
        block = order[start : start + POOL_BLOCK]
        found.append(block[clean[block]][:wanted])
        wanted -= len(found[-1])
    return np.concatenate(found) if found else order[:0]


def inject_faults_apart(
    rng: np.random.Generator,
    rows: Rows,
    rates: FaultRates,
    *,
    id_column: str | None,
    missing_columns: tuple[str, ...],
    spoil: Spoiler | None = None,
    duplicates: bool = False,
    shift_duplicates: bool = True,
) -> tuple[Rows, Rows, Injected]:
    """Put faults into new rows; return the rows, the duplicates (written after them:
    a big table is not copied to append a few rows) and the counts.

    Faults go to disjoint rows. A duplicate is a clean row entered again up to two hours
    earlier (a form submitted twice), so it repeats the key with another ``updated_at``;
    without ``shift_duplicates`` it is an exact copy (a line sent twice in a file).
    ``bad_check_digit`` and ``missing_value`` are counted from the data afterwards, so
    rows that arrived faulty (an ID copied from a faulty record) count too.
    """
    n = len(rows)
    # ``rng.permutation(n)``: the same values shuffled into 4-byte positions (8 bytes a
    # row less while the faults are planned)
    order: npt.NDArray[np.integer[Any]] = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)
    rng.shuffle(order)
    counts = {
        "bad": draw_count(rng, n, rates.bad_check_digit) if id_column else 0,
        "missing": draw_count(rng, n, rates.missing_value) if missing_columns else 0,
        "unparseable": draw_count(rng, n, rates.unparseable) if spoil else 0,
        "duplicate": draw_count(rng, n, rates.duplicate_key) if duplicates else 0,
    }
    clean_before = np.ones(n, dtype=bool)
    if id_column:
        clean_before = rows.per_chunk(id_column, party_valid_check)
    chosen: dict[str, np.ndarray] = {}
    start = 0
    # faults only go to rows that are still clean, and each to other rows
    pool = first_clean(order, clean_before, sum(counts.values()))
    del order
    for kind, count in counts.items():
        chosen[kind] = np.sort(pool[start : start + count]).astype(np.int64)
        start += count
    result = Injected()
    if id_column and len(chosen["bad"]):
        spoiled = spoil_check_chars(rows.text(id_column, chosen["bad"]).astype(str), rng)
        rows.put(id_column, chosen["bad"], spoiled)
    if missing_columns and len(chosen["missing"]):
        which = rng.integers(0, len(missing_columns), len(chosen["missing"]))
        for position, column in enumerate(missing_columns):
            target = chosen["missing"][which == position]
            rows.put(column, target, np.full(len(target), None, dtype=object))
    if spoil is not None and len(chosen["unparseable"]):
        spoil(rng, rows, chosen["unparseable"])
        result.unparseable = len(chosen["unparseable"])
        result.unparseable_rows = chosen["unparseable"].tolist()
    if id_column:
        result.bad_check_digit = int((~rows.per_chunk(id_column, party_valid_check)).sum())
    result.missing_value = int(rows.null_rows(missing_columns).sum())
    copies = Rows({})
    if len(chosen["duplicate"]):
        copies = rows.take(chosen["duplicate"])
        if shift_duplicates:
            earlier = parse_timestamps(copies["updated_at"]) - rng.integers(
                60, 7200, len(copies)
            ).astype("timedelta64[s]")
            # kept lazy, as the table's own stamps are: the two join without the
            # table's stamps rendered whole (their text is the same)
            copies.set("updated_at", lazy(timestamps_text, earlier))
        result.duplicate_key = len(copies)
    return rows, copies, result
