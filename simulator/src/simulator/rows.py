"""Rows of a simulated table as text columns: what the department system stores.

Every value is text (or None for NULL) in the form the system writes it: dates
``YYYY-MM-DD``, timestamps ``YYYY-MM-DD HH:MM:SS``, decimals with their scale. Typed
databases convert on load; the registry and the CSV drops keep the text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

Column = npt.NDArray[np.object_]
CHUNK_ROWS = 50_000  # rows rendered to text and written at a time, by every system
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


Render = Callable[..., npt.NDArray[Any]]


class FewWords:
    """Renders 1-byte codes as one of a few words, one shared str object each: a text
    column of few distinct values (a status, a type, a year) in 1 byte a row, not 8."""

    def __init__(self, words: Column) -> None:
        self.words = words

    def __call__(self, codes: npt.NDArray[np.uint8]) -> Column:
        picked: Column = self.words[codes]
        return picked


def few_words(values: npt.NDArray[Any]) -> Lazy | None:
    """A numpy text column of at most 256 distinct values as a coded :class:`Lazy`
    column (the same text), or None when it is short or has more distinct values."""
    if values.dtype.kind != "U" or len(values) < SHARE_MIN_ROWS:
        return None
    sample = values[:: len(values) // SHARE_SAMPLE]
    if len(np.unique(sample)) * 4 > len(sample):
        return None
    words, codes = np.unique(values, return_inverse=True)
    if len(words) > 256:
        return None
    return Lazy((codes.astype(np.uint8).ravel(),), FewWords(words.astype(object)))


def _join_few_words(columns: list[Lazy]) -> Lazy | None:
    """Coded columns one after the other, their words joined and their codes mapped to
    the joined words; None when the words joined are more than 256."""
    vocabularies = [c.render.words.astype(str) for c in columns if isinstance(c.render, FewWords)]
    if len(vocabularies) < len(columns):
        return None
    words = np.unique(np.concatenate(vocabularies))
    if len(words) > 256:
        return None
    parts = []
    for column, vocabulary in zip(columns, vocabularies, strict=True):
        mapped = np.searchsorted(words, vocabulary).astype(np.uint8)
        parts.append(Lazy((mapped[column.parts[0]],), column.render, column.at, column.over))
    joined = Lazy.concat(parts)
    return Lazy(joined.parts, FewWords(words.astype(object)), joined.at, joined.over)


class Lazy:
    """A text column kept as compact values (numbers, dates, indexes into the world) and
    rendered to text a slice at a time, so a table never holds all its strings at once.

    ``render(*parts)`` turns slices of the ``parts`` arrays into the text values; it must
    work element by element (a slice renders as the whole would). Values written over
    it (faults) are kept apart as ``at`` (sorted positions) and ``over`` (the values).
    """

    def __init__(
        self,
        parts: tuple[npt.NDArray[Any], ...],
        render: Render,
        at: npt.NDArray[np.int64] | None = None,
        over: Column | None = None,
    ) -> None:
        self.parts = parts
        self.render = render
        self.at = np.zeros(0, dtype=np.int64) if at is None else at
        self.over = np.zeros(0, dtype=object) if over is None else over

    def __len__(self) -> int:
        return len(self.parts[0])

    def _hits(self, index: npt.NDArray[Any]) -> tuple[npt.NDArray[np.bool_], npt.NDArray[Any]]:
        """Which of ``index`` carry a value written over, and its position in ``over``."""
        if not len(self.at):
            return np.zeros(len(index), dtype=bool), np.zeros(0, dtype=np.int64)
        position = np.minimum(np.searchsorted(self.at, index), len(self.at) - 1)
        hit = self.at[position] == index
        return hit, position[hit]

    def text(self, index: npt.NDArray[Any] | slice | None = None) -> Column:
        """The text values of ``index`` (default: all) as an object array."""
        if index is None:
            index = slice(0, len(self))
        if len(range(len(self))[index] if isinstance(index, slice) else index) == 0:
            return np.empty(0, dtype=object)  # numpy's text functions fail on empty arrays
        if isinstance(index, slice):
            start, stop, _ = index.indices(len(self))
            values = as_column(self.render(*(part[start:stop] for part in self.parts)))
            first, last = np.searchsorted(self.at, [start, stop])
            if last > first:
                values = np.array(values, dtype=object)
                values[self.at[first:last] - start] = self.over[first:last]
            return values
        index = np.asarray(index)
        values = as_column(self.render(*(part[index] for part in self.parts)))
        hit, position = self._hits(index)
        if hit.any():
            values = np.array(values, dtype=object)
            values[hit] = self.over[position]
        return values

    def take(self, index: npt.NDArray[Any]) -> Lazy:
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        hit, position = self._hits(index)
        return Lazy(
            tuple(part[index] for part in self.parts),
            self.render,
            np.flatnonzero(hit).astype(np.int64),
            self.over[position],
        )

    def put(self, index: npt.NDArray[np.int64], values: npt.ArrayLike) -> None:
        index = np.asarray(index, dtype=np.int64)
        if not len(index):
            return
        new = np.empty(len(index), dtype=object)
        new[:] = as_column(values) if np.ndim(values) else values
        # the last value written at a position wins (``unique`` keeps the first seen)
        positions = np.concatenate([index[::-1], self.at])
        merged = np.concatenate([new[::-1], self.over])
        at, first = np.unique(positions, return_index=True)
        self.at = at.astype(np.int64)
        self.over = merged[first]

    def copy(self) -> Lazy:
        """The same column, with its own values written over (faults) from now on."""
        return Lazy(self.parts, self.render, self.at.copy(), self.over.copy())

    def nulls(self) -> npt.NDArray[np.bool_]:
        found = np.zeros(len(self), dtype=bool)
        found[self.at[is_null(self.over)]] = True
        return found

    def joinable(self, other: Lazy) -> bool:
        return self.render is other.render and len(self.parts) == len(other.parts)

    @staticmethod
    def concat(parts: list[Lazy]) -> Lazy:
        offsets = np.cumsum([0, *(len(part) for part in parts)])
        return Lazy(
            tuple(
                np.concatenate([part.parts[i] for part in parts])
                for i in range(len(parts[0].parts))
            ),
            parts[0].render,
            np.concatenate(
                [part.at + offset for part, offset in zip(parts, offsets, strict=False)]
            ),
            np.concatenate([part.over for part in parts]),
        )


AnyColumn = Column | Lazy


class Indexed(Protocol):
    """A column that gives its values for an array of positions (the world's IDs)."""

    def __getitem__(self, index: Any) -> npt.NDArray[Any]: ...

    def __len__(self) -> int: ...


class Lookup:
    """Renders ``(table, index)`` pairs: the value ``tables[table][index]`` (IDs and names
    taken from the world or from another table, without copying the strings)."""

    def __init__(self, *tables: npt.NDArray[Any] | Indexed) -> None:
        self.tables = tables

    def __call__(self, table: npt.NDArray[Any], index: npt.NDArray[Any] | None = None) -> Column:
        if index is None:  # one table: the parts are the indexes only
            return as_column(self.tables[0][table])
        values = np.empty(len(index), dtype=object)
        for position, source in enumerate(self.tables):
            here = table == position
            if here.any():
                values[here] = as_column(source[index[here]])
        return values

    def of(self, index: npt.ArrayLike, table: npt.ArrayLike | None = None) -> Lazy:
        """A column of ``tables[table][index]`` (``table`` omitted: the first table); the
        indexes kept as int32 when every table is shorter than 2**31 (4 bytes a row)."""
        positions = np.asarray(index)
        if max((len(source) for source in self.tables), default=0) < 2**31:
            positions = positions.astype(np.int32)
        if table is None:
            return lazy(self, positions)
        return lazy(self, np.asarray(table, dtype=np.int8), positions)


def lazy(render: Render, *parts: npt.ArrayLike) -> Lazy:
    """A column rendered from ``parts`` when written (see :class:`Lazy`)."""
    return Lazy(tuple(np.asarray(part) for part in parts), render)


class TextPool:
    """Text values (no NULL) kept as UTF-8 bytes in one fixed-width numpy array: a
    28-character unit id takes 28 bytes, not a Python str and its pointer (about 85);
    indexing gives the str values back."""

    def __init__(self, parts: Iterable[npt.NDArray[Any]]) -> None:
        encoded = [
            np.array([value.encode() for value in part.tolist()], dtype=bytes)
            for part in parts
            if len(part)
        ]
        self.values = np.concatenate(encoded) if encoded else np.zeros(0, dtype="S1")

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, index: npt.NDArray[Any]) -> Column:
        picked = self.values[index]
        if len(picked) == 0:
            return np.empty(0, dtype=object)
        return as_column(np.char.decode(picked, "utf-8"))


class Rows:
    """Parallel text columns, one entry per row, in a fixed column order.

    A column is an object array of str / None, or a :class:`Lazy` one rendered when
    written: ``records`` and ``chunks`` render ``CHUNK_ROWS`` rows at a time.
    """

    def __init__(self, columns: Mapping[str, npt.ArrayLike | Lazy]) -> None:
        self.columns: dict[str, AnyColumn] = {name: _compact(v) for name, v in columns.items()}
        lengths = {len(v) for v in self.columns.values()}
        if len(lengths) > 1:
            sizes = {name: len(v) for name, v in self.columns.items()}
            raise ValueError(f"columns of different lengths: {sizes}")

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def __getitem__(self, name: str) -> Column:
        """The whole column as text (a lazy one rendered: meant for small tables)."""
        column = self.columns[name]
        return column.text() if isinstance(column, Lazy) else column

    def text(self, name: str, index: npt.NDArray[Any]) -> Column:
        """The text of some rows of one column (renders only those of a lazy one)."""
        column = self.columns[name]
        return column.text(index) if isinstance(column, Lazy) else column[index]

    def column_take(self, name: str, index: npt.NDArray[Any]) -> AnyColumn:
        """Some rows of one column, a lazy one kept lazy (for another table's column)."""
        column = self.columns[name]
        return column.take(index) if isinstance(column, Lazy) else column[index]

    def is_lazy(self, name: str) -> bool:
        return isinstance(self.columns[name], Lazy)

    def per_chunk(self, name: str, check: Callable[[Column], npt.NDArray[Any]]) -> npt.NDArray[Any]:
        """``check`` of the column's text, computed a chunk at a time (bounded memory)."""
        column = self.columns[name]
        if not isinstance(column, Lazy) or len(column) <= CHUNK_ROWS:
            return check(self[name])
        return np.concatenate(
            [
                check(column.text(slice(start, start + CHUNK_ROWS)))
                for start in range(0, len(column), CHUNK_ROWS)
            ]
        )

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    def set(self, name: str, values: npt.ArrayLike | Lazy) -> None:
        """Replace (or add) a whole column."""
        column = _compact(values)
        if self.columns and len(column) != len(self):
            raise ValueError(f"column {name}: {len(column)} values for {len(self)} rows")
        self.columns[name] = column

    def put(self, name: str, index: npt.NDArray[np.int64], values: npt.ArrayLike) -> None:
        """Overwrite some values of one column."""
        column = self.columns[name]
        if isinstance(column, Lazy):
            column.put(index, values)
        else:
            column[index] = as_column(values)

    def take(self, index: npt.NDArray[Any]) -> Rows:
        return Rows(
            {
                name: values.take(index) if isinstance(values, Lazy) else values[index]
                for name, values in self.columns.items()
            }
        )

    def select(self, names: Iterable[str]) -> Rows:
        return Rows({name: self.columns[name] for name in names})

    def null_rows(self, names: Iterable[str]) -> npt.NDArray[np.bool_]:
        """True for rows with NULL in any of ``names``."""
        found = np.zeros(len(self), dtype=bool)
        for name in names:
            column = self.columns[name]
            found |= column.nulls() if isinstance(column, Lazy) else is_null(column)
        return found

    def chunks(self, size: int | None = None) -> Iterator[Rows]:
        """The rows ``size`` (default ``CHUNK_ROWS``) at a time, every column as text."""
        size = size or CHUNK_ROWS
        for start in range(0, len(self), size):
            part = slice(start, start + size)
            yield Rows(
                {
                    name: column.text(part) if isinstance(column, Lazy) else column[part]
                    for name, column in self.columns.items()
                }
            )

    def records(self, names: Iterable[str] | None = None) -> Iterator[tuple[Any, ...]]:
        """Row tuples in the order of ``names`` (default: every column), rendered a chunk
        at a time: the one writer of every system (SQL tables, the registry, CSV drops)."""
        chosen = list(self.columns) if names is None else list(names)
        for chunk in self.chunks():
            yield from zip(*(chunk[name].tolist() for name in chosen), strict=True)

    @staticmethod
    def concat(parts: list[Rows]) -> Rows:
        """Rows of ``parts`` one after the other (same columns, the first part's order)."""
        parts = [part for part in parts if part.columns]
        if not parts:
            return Rows({})
        names = parts[0].names
        joined: dict[str, AnyColumn] = {}
        for name in names:
            columns = [part.columns[name] for part in parts]
            first = columns[0]
            lazies = [c for c in columns if isinstance(c, Lazy)]
            coded = _join_few_words(lazies) if len(lazies) == len(columns) else None
            if coded is not None:
                joined[name] = coded
            elif isinstance(first, Lazy) and all(
                isinstance(c, Lazy) and first.joinable(c) for c in columns
            ):
                joined[name] = Lazy.concat(lazies)
            else:
                joined[name] = np.concatenate([part[name] for part in parts])
        return Rows(joined)

    @staticmethod
    def empty(names: Iterable[str]) -> Rows:
        return Rows({name: np.empty(0, dtype=object) for name in names})


def _compact(values: npt.ArrayLike | Lazy) -> AnyColumn:
    """A column in its compact form: lazy as it is, coded when it is numpy text of few
    distinct values, else an object array (see :func:`as_column`)."""
    if isinstance(values, Lazy):
        return values
    array = np.asarray(values)
    coded = few_words(array)
    return coded if coded is not None else as_column(array)


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
