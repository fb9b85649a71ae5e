"""One simulated day of changes to a table with an ``updated_at`` cursor (sql, registry).

Per table and day: new rows (with faults), updates of existing rows (some of them
"late": committed with an ``updated_at`` 1-30 minutes before the table's previous
maximum, as a long transaction does), and deletions. Updates and deletions only touch
clean rows: keys that are not duplicated, with a valid ID, no missing and no
unparseable value. So the fault counts stay exact, and deleted rows == deleted keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from simulator.clock import office_hours, parse_timestamps, timestamps_text
from simulator.faults import (
    FaultRates,
    Injected,
    Spoiler,
    draw_count,
    inject_faults,
    inject_faults_apart,
)
from simulator.identities import party_valid_check
from simulator.manifest import DayCounts
from simulator.rows import Column, Rows

if TYPE_CHECKING:
    from simulator.sqlstore import SqlStore
    from simulator.world import Context

LATE_MIN_S = 60
LATE_MAX_S = 30 * 60


class CursorStore(Protocol):
    """What the day engine needs from a department's store."""

    def scan(self, table: str, names: list[str], order: list[str]) -> Iterator[Rows]:
        """Every (live) row of ``table`` in a repeatable order, a chunk at a time."""
        ...

    def insert(self, table: str, rows: Rows) -> None: ...

    def update(self, table: str, key: list[str], rows: Rows) -> None: ...

    def max_updated_at(self, table: str) -> str | None: ...

    def remove(self, table: str, key: list[str], keys: Rows, stamps: Column) -> None:
        """Delete the rows of ``keys`` (sql) or tombstone them at ``stamps`` (registry)."""
        ...


@dataclass(frozen=True)
class TableSpec:
    """What the simulator knows about one table beyond the catalog."""

    resource: str
    table: str
    key: tuple[str, ...]
    id_column: str | None  # citizen ID or credit code whose check character faults spoil
    fault_columns: tuple[str, ...]  # nullable columns a missing-value fault blanks
    lengths: dict[str, int]  # VARCHAR lengths (sql)
    duplicates: bool = True  # can the store hold a key twice?


@dataclass
class DayPlan:
    """The table-specific part of a day: how to make rows and how to change them."""

    spec: TableSpec
    new_rows: Callable[[np.random.Generator, int], Rows]  # n clean rows stamped today
    change: Callable[[np.random.Generator, Rows], Rows]  # new values for chosen rows
    read_columns: tuple[str, ...] = ()  # columns ``change`` needs besides the key
    spoil: Spoiler | None = None  # makes rows unparseable (registry only)
    parse_ok: Callable[[Rows], npt.NDArray[np.bool_]] | None = None


@dataclass
class DayResult:
    counts: DayCounts
    injected: Injected
    inserted: Rows
    deleted: Rows  # keys (and the tombstone stamps for the registry)


def key_text(rows: Rows, key: tuple[str, ...]) -> npt.NDArray[np.str_]:
    """One string per row identifying its key (fields joined by a unit separator)."""
    parts = [np.asarray(rows[name], dtype=str) for name in key]
    joined = parts[0]
    for part in parts[1:]:
        joined = np.strings.add(np.strings.add(joined, "\x1f"), part)
    return joined


def clean_mask(rows: Rows, plan: DayPlan) -> npt.NDArray[np.bool_]:
    """Rows an update or deletion may touch: unique key, valid ID, nothing missing."""
    spec = plan.spec
    if not len(rows):
        return np.zeros(0, dtype=bool)
    keys = key_text(rows, spec.key)
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    clean: npt.NDArray[np.bool_] = counts[inverse] == 1
    return clean & _clean_values(rows, plan)


def _clean_values(rows: Rows, plan: DayPlan) -> npt.NDArray[np.bool_]:
    """Valid ID, nothing missing, every value parses (row by row: works on any chunk)."""
    spec = plan.spec
    clean = np.ones(len(rows), dtype=bool)
    if spec.id_column:
        clean &= party_valid_check(rows[spec.id_column])
    clean &= ~rows.null_rows(spec.fault_columns)
    if plan.parse_ok is not None:
        clean &= plan.parse_ok(rows)
    return clean


@dataclass
class Survey:
    """What a day needs to know about a whole table, learnt a chunk at a time."""

    rows: int
    clean: npt.NDArray[np.bool_]  # as :func:`clean_mask` of the whole table


def survey(scan: Callable[[], Iterator[Rows]], plan: DayPlan) -> Survey:
    """:func:`clean_mask` of a table read in chunks, holding 9 bytes a row.

    Keys are told apart by a 64-bit hash; the few rows whose hash repeats (duplicated
    keys, and hash collisions) are read once more and compared by their text, so the
    result is exact.
    """
    key = plan.spec.key
    hashes: list[npt.NDArray[np.uint64]] = []
    values: list[npt.NDArray[np.bool_]] = []
    for chunk in scan():
        hashes.append(pd.util.hash_array(key_text(chunk, key).astype(object)))
        values.append(_clean_values(chunk, plan))
    if not hashes:
        return Survey(0, np.zeros(0, dtype=bool))
    hashed = np.concatenate(hashes)
    del hashes
    clean = np.concatenate(values)
    shared = _repeated(hashed)
    del hashed
    if len(shared):
        texts = key_text(fetch(scan, shared, [*key]), key)
        _, inverse, counts = np.unique(texts, return_inverse=True, return_counts=True)
        clean[shared[counts[inverse] > 1]] = False
    return Survey(len(clean), clean)


def _repeated(hashed: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
    """Positions of the hashes that occur more than once (``np.unique``'s counts > 1),
    holding one sorted copy and then a slice at a time (not ``unique``'s inverse)."""
    ordered = np.sort(hashed)
    again = ordered[1:] == ordered[:-1]
    repeated = np.unique(ordered[1:][again])
    del ordered, again
    if not len(repeated):
        return np.zeros(0, dtype=np.int64)
    found = []
    step = 1 << 20
    for start in range(0, len(hashed), step):
        part = hashed[start : start + step]
        position = np.minimum(np.searchsorted(repeated, part), len(repeated) - 1)
        found.append(np.flatnonzero(repeated[position] == part) + start)
    return np.concatenate(found)


def fetch(
    scan: Callable[[], Iterator[Rows]], positions: npt.NDArray[np.int64], names: list[str]
) -> Rows:
    """The rows at ``positions`` (sorted, in scan order) of a table read in chunks."""
    parts: list[Rows] = []
    offset = 0
    for chunk in scan():
        low, high = np.searchsorted(positions, [offset, offset + len(chunk)])
        if high > low:
            parts.append(chunk.take(positions[low:high] - offset).select(names))
        offset += len(chunk)
    return Rows.concat(parts) if parts else Rows.empty(names)


def late_stamps(
    rng: np.random.Generator, previous_max: str, current: Column, n_late: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.datetime64]]:
    """Pick up to ``n_late`` of the rows (``current``: their updated_at) for late updates.

    A late update lands 1-30 minutes before the previous maximum, and only on rows last
    changed before that moment (an update never moves a row back in time).
    """
    ceiling = np.datetime64(previous_max.replace(" ", "T"), "s")
    stamps = ceiling - rng.integers(LATE_MIN_S, LATE_MAX_S + 1, len(current)).astype(
        "timedelta64[s]"
    )
    eligible = np.flatnonzero(parse_timestamps(current) < stamps)
    chosen = np.sort(rng.choice(eligible, size=min(n_late, len(eligible)), replace=False))
    return chosen, stamps[chosen]


def apply_day(
    store: CursorStore,
    plan: DayPlan,
    rng: np.random.Generator,
    day: int,
    rates: FaultRates,
    *,
    count_lines: bool,
) -> DayResult:
    """Insert, update and delete one day's rows of one table; return the exact counts.

    ``count_lines``: the registry reports the records changed as ``lines``.
    """
    spec = plan.spec
    key = list(spec.key)
    wanted = [*key, "updated_at"]
    for name in (spec.id_column, *spec.fault_columns, *plan.read_columns):
        if name and name not in wanted:
            wanted.append(name)

    # the table is read in chunks (three times at most), never held whole
    def scan() -> Iterator[Rows]:
        return store.scan(spec.table, wanted, [*key, "updated_at"])

    table = survey(scan, plan)
    n = table.rows
    n_insert = draw_count(rng, n, rates.daily_insert)
    n_update = draw_count(rng, n, rates.daily_update)
    n_delete = draw_count(rng, n, rates.daily_delete)

    # ``rng.permutation`` of the clean rows, shuffled in place (the same values and
    # stream, without the copy)
    candidates = np.flatnonzero(table.clean)
    del table
    rng.shuffle(candidates)
    updates = np.sort(candidates[:n_update])
    deletions = np.sort(candidates[len(updates) : len(updates) + n_delete])
    del candidates
    touched = np.union1d(updates, deletions)
    picked = fetch(scan, touched, wanted)
    live_updates = picked.take(np.searchsorted(touched, updates))
    live_deletions = picked.take(np.searchsorted(touched, deletions))

    changed = plan.change(rng, live_updates) if len(updates) else Rows({})
    stamps = office_hours(rng, day, len(updates))
    previous_max = store.max_updated_at(spec.table)
    n_late = draw_count(rng, len(updates), rates.late_update)
    late_count = 0
    if n_late and previous_max is not None:
        late_rows, late_at = late_stamps(rng, previous_max, live_updates["updated_at"], n_late)
        stamps[late_rows] = late_at
        late_count = len(late_rows)
    update_rows = live_updates.select(key)
    for name in changed.names:
        update_rows.set(name, changed[name])
    update_rows.set("updated_at", timestamps_text(stamps))

    fresh = plan.new_rows(rng, n_insert) if n_insert else Rows({})
    injected = Injected()
    if len(fresh):
        fresh, injected = inject_faults(
            rng,
            fresh,
            rates,
            id_column=spec.id_column,
            missing_columns=spec.fault_columns,
            spoil=plan.spoil,
            duplicates=spec.duplicates,
        )
    removed = live_deletions.select(key)
    removed_at = timestamps_text(office_hours(rng, day, len(deletions)))

    store.update(spec.table, key, update_rows)
    store.remove(spec.table, key, removed, removed_at.astype(object))
    store.insert(spec.table, fresh)

    counts = DayCounts(
        day=day,
        inserted=len(fresh),
        updated=len(updates),
        late_updates=late_count,
        deleted=len(deletions),
        unparseable=injected.unparseable,
    )
    if count_lines:
        counts.lines = counts.inserted + counts.updated + counts.deleted
    return DayResult(counts, injected, fresh, removed)


def write_day0(ctx: Context, store: SqlStore, spec: TableSpec, rows: Rows, system: str) -> None:
    """Day 0 of ``spec``'s table in ``store``: faults injected into ``rows`` (random stream
    ``<system>.faults.<resource>``), the table created, the rows inserted and then their
    duplicates (as one table would be written: not copied to join), the counts recorded."""
    rows, copies, injected = inject_faults_apart(
        ctx.rng(f"{system}.faults.{spec.resource}"),
        rows,
        ctx.rates,
        id_column=spec.id_column,
        missing_columns=spec.fault_columns,
        duplicates=True,
    )
    store.create_table(spec.table, ctx.catalog.resource(spec.resource), spec.lengths)
    store.insert(spec.table, rows)
    store.insert(spec.table, copies)
    inserted = len(rows) + len(copies)
    del rows, copies  # let go before the count (memory: the table is written)
    record_day(ctx, spec, DayCounts(day=0, inserted=inserted), injected, store)


def record_day(
    ctx: Context, spec: TableSpec, counts: DayCounts, injected: Injected, store: SqlStore
) -> None:
    """A day's counts and injected faults of ``spec``'s table into the manifest, and the
    rows the table holds after it."""
    manifest = ctx.resource(spec.resource)
    manifest.record(
        counts,
        bad=injected.bad_check_digit,
        duplicates=injected.duplicate_key,
        missing=injected.missing_value,
    )
    manifest.source_rows = store.count(spec.table)
