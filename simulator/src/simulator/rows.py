"""Rows of a simulated table as text columns: what the department system stores.

Every value is text (or None for NULL) in the form the system writes it: dates
``YYYY-MM-DD``, timestamps ``YYYY-MM-DD HH:MM:SS``, decimals with their scale. Typed
databases convert on load; the registry and the CSV drops keep the text.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

Column = npt.NDArray[np.object_]
SHARE_MIN_ROWS = 4096  # below, sharing str objects saves too little to look for repeats
SHARE_SAMPLE = 1024
_NONE = np.array(None, dtype=object)


def is_null(values: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """True where an object array holds None (vectorised ``value is None``)."""
    return np.asarray(np.equal(values, _NONE), dtype=bool)


def as_column(values: npt.ArrayLike) -> Column:
    """Any array of str (or None) as an object array of Python str / None.

    A column with few distinct values (a status, a type, a date) shares one str object
    per value: 8 bytes a row instead of a str each (about 75), the same values.
    """
    array = np.asarray(values)
    if array.dtype == object:
        return array
    if array.dtype.kind == "U" and len(array) >= SHARE_MIN_ROWS:
        sample = array[:: len(array) // SHARE_SAMPLE]
        if len(np.unique(sample)) * 4 <= len(sample):
            distinct, inverse = np.unique(array, return_inverse=True)
            shared: Column = distinct.astype(object)[inverse]
            return shared
    return array.astype(object)


class Rows:
    """Parallel text columns, one entry per row, in a fixed column order."""

    def __init__(self, columns: dict[str, npt.ArrayLike]) -> None:
        self.columns: dict[str, Column] = {name: as_column(v) for name, v in columns.items()}
        lengths = {len(v) for v in self.columns.values()}
        if len(lengths) > 1:
            sizes = {name: len(v) for name, v in self.columns.items()}
            raise ValueError(f"columns of different lengths: {sizes}")

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def __getitem__(self, name: str) -> Column:
        return self.columns[name]

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    def set(self, name: str, values: npt.ArrayLike) -> None:
        """Replace (or add) a whole column."""
        column = as_column(values)
        if self.columns and len(column) != len(self):
            raise ValueError(f"column {name}: {len(column)} values for {len(self)} rows")
        self.columns[name] = column

    def put(self, name: str, index: npt.NDArray[np.int64], values: npt.ArrayLike) -> None:
        """Overwrite some values of one column."""
        self.columns[name][index] = as_column(values)

    def take(self, index: npt.NDArray[Any]) -> Rows:
        return Rows({name: values[index] for name, values in self.columns.items()})

    def select(self, names: Iterable[str]) -> Rows:
        return Rows({name: self.columns[name] for name in names})

    def null_rows(self, names: Iterable[str]) -> npt.NDArray[np.bool_]:
        """True for rows with NULL in any of ``names``."""
        found = np.zeros(len(self), dtype=bool)
        for name in names:
            found |= is_null(self.columns[name])
        return found

    def records(self, names: Iterable[str] | None = None) -> Iterator[tuple[Any, ...]]:
        """Row tuples in the order of ``names`` (default: every column)."""
        chosen = list(self.columns) if names is None else list(names)
        return zip(*(self.columns[name].tolist() for name in chosen), strict=True)

    @staticmethod
    def concat(parts: list[Rows]) -> Rows:
        """Rows of ``parts`` one after the other (same columns, the first part's order)."""
        parts = [part for part in parts if part.columns]
        if not parts:
            return Rows({})
        names = parts[0].names
        return Rows({name: np.concatenate([part[name] for part in parts]) for name in names})

    @staticmethod
    def empty(names: Iterable[str]) -> Rows:
        return Rows({name: np.empty(0, dtype=object) for name in names})


def rank_within(groups: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """0-based position of each entry among the entries of the same group (in order)."""
    if len(groups) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(groups, kind="stable")
    ordered = groups[order]
    starts = np.concatenate([[True], ordered[1:] != ordered[:-1]])
    start_index = np.maximum.accumulate(np.where(starts, np.arange(len(ordered)), 0))
    rank = np.empty(len(groups), dtype=np.int64)
    rank[order] = np.arange(len(ordered)) - start_index
    return rank
