"""The simulated city behind the department systems, and what a simulated day needs.

The world is the truth: the persons and enterprises that exist, with valid identifiers.
Every department records them its own way (and sometimes wrongly: a spoiled check
digit is a typing error in that department's record, not in the world). The world and
the counters of issued numbers are kept under ``settings.systems_dir`` so that
``advance_day`` can go on from where the last run stopped.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hub.catalog.models import Catalog
from simulator.clock import day_date
from simulator.faults import FaultRates
from simulator.identities import id_bodies, id_text
from simulator.manifest import Manifest, ResourceManifest, write_json
from simulator.rows import Lazy
from simulator.settings import SimulatorSettings

STATE_FILE = "sim_state.json"
PERSONS_FILE = "world_persons.parquet"
FIRMS_FILE = "world_enterprises.parquet"

Strings = npt.NDArray[np.str_]


class CitizenIds:
    """The world's citizen IDs kept as their 17-digit bodies (8 bytes a person instead of
    72 as text); indexing gives the text, check digit included, as ``<U18``."""

    def __init__(self, bodies: npt.NDArray[np.int64]) -> None:
        self.bodies = np.asarray(bodies, dtype=np.int64)

    @classmethod
    def of(cls, ids: Strings) -> CitizenIds:
        return cls(id_bodies(ids))

    def __len__(self) -> int:
        return len(self.bodies)

    def __getitem__(self, index: Any) -> Strings:
        return id_text(np.atleast_1d(self.bodies[index]))

    def text(self) -> Strings:
        """Every ID as text (a whole column: for small worlds and tests)."""
        return id_text(self.bodies)

    def extended(self, ids: Strings) -> CitizenIds:
        """These IDs and ``ids`` after them."""
        return CitizenIds(np.concatenate([self.bodies, id_bodies(ids)]))


class Coded:
    """A text column of few distinct values (a sex, a district code) kept as 1-byte codes
    into its words; indexing gives the text, of the dtype the text had."""

    def __init__(self, codes: npt.NDArray[np.int8], words: Strings) -> None:
        self.codes = codes
        self.words = words

    @classmethod
    def of(cls, text: Strings) -> Coded:
        words, codes = np.unique(np.asarray(text), return_inverse=True)
        return cls(np.asarray(codes, dtype=np.int8).ravel(), words)

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, index: Any) -> Strings:
        picked: Strings = self.words[self.codes[index]]
        return picked

    def text(self) -> Strings:
        """Every value as text (a whole column)."""
        return self[slice(None)]

    def extended(self, text: Strings) -> Coded:
        """These values and ``text`` after them."""
        words = np.union1d(self.words, np.asarray(text)) if len(text) else self.words
        if len(words) > 127:
            raise ValueError(f"Coded: {len(words)} distinct values, at most 127")
        old = np.searchsorted(words, self.words).astype(np.int8)[self.codes]
        new = np.searchsorted(words, np.asarray(text)).astype(np.int8)
        return Coded(np.concatenate([old, new]), words.astype(np.result_type(self.words, text)))


@dataclass
class World:
    """Persons and enterprises of the city (true identifiers)."""

    person_id: CitizenIds
    person_name: Strings
    person_sex: Coded
    person_birth: npt.NDArray[np.datetime64]
    person_district: Coded
    firm_code: Strings
    firm_name: Strings
    firm_kind: Strings
    firm_established: npt.NDArray[np.datetime64]

    def adults(self, on: np.datetime64, low: int = 18, high: int = 120) -> npt.NDArray[np.int64]:
        """Indexes of persons aged ``low`` to ``high`` years on date ``on``."""
        age_days = (on - self.person_birth).astype(np.int64)
        return np.flatnonzero((age_days >= low * 365.25) & (age_days < high * 365.25))

    def save(self, folder: Path) -> None:
        """Written from the numpy text straight to Arrow (no Python str a person)."""
        persons = pa.table(
            {
                "citizen_id_body": pa.array(self.person_id.bodies),
                "name": pa.array(self.person_name, pa.string()),
                "sex": pa.array(self.person_sex.text(), pa.string()),
                "birth_date": pa.array(self.person_birth.astype("datetime64[D]")),
                "district_code": pa.array(self.person_district.text(), pa.string()),
            }
        )
        firms = pa.table(
            {
                "credit_code": pa.array(self.firm_code, pa.string()),
                "name": pa.array(self.firm_name, pa.string()),
                "kind": pa.array(self.firm_kind, pa.string()),
                "established_date": pa.array(self.firm_established.astype("datetime64[D]")),
            }
        )
        pq.write_table(persons, folder / PERSONS_FILE)
        del persons
        pq.write_table(firms, folder / FIRMS_FILE)

    @classmethod
    def load(cls, folder: Path) -> World:
        def text(column: pa.ChunkedArray) -> Strings:
            return numpy_text(column)

        def dates(column: pa.ChunkedArray) -> npt.NDArray[np.datetime64]:
            return np.asarray(column.to_numpy(), dtype="datetime64[D]")

        def bodies(column: pa.ChunkedArray) -> npt.NDArray[np.int64]:
            return np.asarray(column.to_numpy(), dtype=np.int64)

        persons = read_columns(
            folder / PERSONS_FILE,
            {
                "citizen_id_body": bodies,
                "name": text,
                "sex": text,
                "birth_date": dates,
                "district_code": text,
            },
        )
        firms = read_columns(
            folder / FIRMS_FILE,
            {"credit_code": text, "name": text, "kind": text, "established_date": dates},
        )
        return cls(
            person_id=CitizenIds(persons["citizen_id_body"]),
            person_name=persons["name"],
            person_sex=Coded.of(persons["sex"]),
            person_birth=persons["birth_date"],
            person_district=Coded.of(persons["district_code"]),
            firm_code=firms["credit_code"],
            firm_name=firms["name"],
            firm_kind=firms["kind"],
            firm_established=firms["established_date"],
        )


def read_columns(
    path: Path,
    convert: dict[str, Callable[[pa.ChunkedArray], Any]],
    rows: int = 1 << 16,
) -> dict[str, Any]:
    """The columns of a Parquet file, each batch of ``rows`` converted by ``convert`` (to
    a numpy array or a :class:`Lazy` column) and put in place in the whole column, made
    once (the values of ``np.concatenate`` / ``Lazy.concat`` of the pieces, without
    holding the pieces and their join at once): Arrow holds one batch, not the whole
    file, and gives its unused memory back after."""
    columns: dict[str, _Placed] = {}
    with pq.ParquetFile(path) as file:
        total = file.metadata.num_rows
        schema = file.schema_arrow
        start = 0
        # a row group at a time (``iter_batches`` reads ahead), on one thread (Arrow's
        # reader threads each keep memory of their own)
        for group in range(file.num_row_groups):
            table = file.read_row_group(group, columns=list(convert), use_threads=False)
            for batch in table.to_batches(max_chunksize=rows):
                for name, make in convert.items():
                    piece = make(pa.chunked_array([batch.column(name)]))
                    columns.setdefault(name, _Placed(total)).put(piece, start)
                start += batch.num_rows
            del table
    pa.default_memory_pool().release_unused()
    if not columns:  # an empty file: the conversion of an empty column
        return {
            name: make(pa.chunked_array([], schema.field(name).type))
            for name, make in convert.items()
        }
    return {name: columns[name].value() for name in convert}


class _Placed:
    """A column made once, ``total`` long, filled a piece at a time (numpy arrays, or the
    parts of :class:`Lazy` pieces with their values written over); text widens when a
    later piece is wider, as ``np.concatenate`` would."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.arrays: list[npt.NDArray[Any]] = []
        self.render: Any = None
        self.at: list[npt.NDArray[np.int64]] = []
        self.over: list[npt.NDArray[Any]] = []

    def put(self, piece: Any, start: int) -> None:
        parts = piece.parts if isinstance(piece, Lazy) else (piece,)
        if isinstance(piece, Lazy):
            self.render = piece.render
            self.at.append(piece.at + start)
            self.over.append(piece.over)
        if not self.arrays:
            self.arrays = [np.empty(self.total, dtype=part.dtype) for part in parts]
        for position, part in enumerate(parts):
            target = self.arrays[position]
            wider = np.result_type(target, part)
            if wider != target.dtype:
                target = self.arrays[position] = target.astype(wider)
            target[start : start + len(part)] = part

    def value(self) -> Any:
        if self.render is None:
            return self.arrays[0]
        return Lazy(
            tuple(self.arrays), self.render, np.concatenate(self.at), np.concatenate(self.over)
        )


def numpy_text(column: pa.ChunkedArray, rows: int = 1 << 16) -> Strings:
    """A text column without NULLs as numpy text (as ``np.array(column.to_pylist(),
    dtype=str)``), made ``rows`` at a time: Python str objects for one slice only."""
    width = max(int(pc.max(pc.utf8_length(column)).as_py() or 0), 1) if len(column) else 1
    values: Strings = np.empty(len(column), dtype=f"<U{width}")
    for start in range(0, len(column), rows):
        part = column.slice(start, rows).to_numpy(zero_copy_only=False)
        values[start : start + len(part)] = part
    return values


@dataclass
class Context:
    """Everything one run (``simulate`` or one ``advance_day``) works with."""

    settings: SimulatorSettings
    catalog: Catalog
    rates: FaultRates
    seed: int
    scale: float
    day: int
    world: World
    manifest: Manifest
    counters: dict[str, int] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)  # facts passed between systems

    @property
    def today(self) -> np.datetime64:
        return day_date(self.day)

    def rng(self, stream: str) -> np.random.Generator:
        """A generator for one named stream of one day: independent of the run order."""
        return np.random.default_rng([self.seed, self.day, zlib.crc32(stream.encode())])

    def size(self, base: float, minimum: int = 1) -> int:
        """``base`` rows at scale 1, scaled linearly (never below ``minimum``)."""
        return max(minimum, round(base * self.scale))

    def next_numbers(self, counter: str, n: int, start: int = 1) -> npt.NDArray[np.int64]:
        """``n`` consecutive numbers of a named sequence (certificate numbers, ...)."""
        first = self.counters.get(counter, start)
        self.counters[counter] = first + n
        return np.arange(first, first + n, dtype=np.int64)

    def resource(self, code: str) -> ResourceManifest:
        return self.manifest.resources[code]

    def save_state(self) -> None:
        folder = self.settings.systems_dir
        self.world.save(folder)
        write_json(
            folder / STATE_FILE,
            {"seed": self.seed, "day": self.day, "counters": dict(sorted(self.counters.items()))},
        )


def read_state(folder: Path) -> dict[str, Any]:
    """Raises FileNotFoundError when the systems were never simulated."""
    path = folder / STATE_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no simulator state; run `hub simulate` first")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
