"""What every connector shares: the catalog's Arrow schema, text parsing with quarantine,
incremental cursors with an overlap window, and the extraction contract.

A connector reads one department system. For a resource it yields bounded
``pyarrow.RecordBatch`` es in the catalog's schema plus an ``_op`` column
(``upsert`` or ``delete``); it never writes to the warehouse itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc

from hub.catalog.models import Resource, ResourceField

OP_COLUMN = "_op"
OP_UPSERT = "upsert"
OP_DELETE = "delete"
TIMESTAMP_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y/%m/%d %H:%M:%S")
DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d", "%Y/%m/%d")
_INTEGER = r"^[+-]?\d{1,18}$"
_DECIMAL = r"^[+-]?(\d+(\.\d*)?|\.\d+)$"
_TRUE = ("true", "1", "yes", "y", "t", "是")
_FALSE = ("false", "0", "no", "n", "f", "否")


class ConnectorError(RuntimeError):
    """The source cannot be read as the catalog describes; the message says where and why."""


def constant_strings(value: str, length: int) -> pa.Array:
    """A string array repeating ``value``, built from buffers.

    ``pa.array([value] * n)`` would import pandas on first use (0.4 s per process) and
    build n Python references; this costs one bytes multiplication.
    """
    encoded = value.encode()
    offsets = np.arange(length + 1, dtype=np.int32) * len(encoded)
    return pa.Array.from_buffers(
        pa.string(), length, [None, pa.py_buffer(offsets), pa.py_buffer(encoded * length)]
    )


def arrow_type(field_type: str) -> pa.DataType:
    """The Arrow type of a catalog field type."""
    if field_type.startswith("decimal("):
        precision, scale = (int(part) for part in field_type[8:-1].split(","))
        return pa.decimal128(precision, scale)
    return {
        "string": pa.string(),
        "integer": pa.int64(),
        "boolean": pa.bool_(),
        "date": pa.date32(),
        "timestamp": pa.timestamp("us"),
    }[field_type]


def arrow_schema(resource: Resource, *, with_op: bool = True) -> pa.Schema:
    """The schema connectors yield for ``resource``: its fields, then ``_op``."""
    fields = [pa.field(f.name, arrow_type(f.type), nullable=True) for f in resource.fields]
    if with_op:
        fields.append(pa.field(OP_COLUMN, pa.string(), nullable=False))
    return pa.schema(fields)


def schema_fingerprint(schema: pa.Schema) -> str:
    """A short stable hash of column names and types (changes when the schema drifts)."""
    described = [[f.name, str(f.type)] for f in schema]
    return hashlib.sha256(json.dumps(described).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class QuarantinedRow:
    """A source row that could not be parsed into the catalog's schema."""

    origin: str  # file name or page URL
    line: int  # 1-based line (CSV) or record index (JSON)
    reason: str
    raw: str

    def as_dict(self) -> dict[str, Any]:
        return {"origin": self.origin, "line": self.line, "reason": self.reason, "raw": self.raw}


@dataclass
class SyncState:
    """What a connector remembers between runs, committed with the load that used it.

    ``watermark``: the highest cursor value seen (ISO text). ``window``: the rows already
    landed inside the overlap window, so re-reading the window for late commits does not
    land the same row twice: their identities (key values and cursor) as an Arrow IPC
    stream (zstd, base64), for a timestamp cursor. ``boundary``: the same as text tuples,
    for other cursors and in states written before ``window``.
    ``files``: processed files (sftp). ``delete_log_mark``: the latest deletion time read
    from the source's delete log (ISO text; ``""``: the log was read and empty; None: never
    read, so the next reconcile compares every key).
    """

    watermark: str | None = None
    boundary: list[list[str]] = field(default_factory=list)
    window: str = ""
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: int = 0
    last_reconcile_run: int = 0
    delete_log_mark: str | None = None

    def to_json(self) -> str:
        stored = dict(self.__dict__)
        if stored["delete_log_mark"] is None:
            del stored["delete_log_mark"]  # so a hub from before delete logs still reads it
        return json.dumps(stored, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | None) -> SyncState:
        """The state a hub wrote, this version or a later one: a field this version does
        not know is left out (a rollback keeps syncing)."""
        if not text:
            return cls()
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in known})


class Extraction(Protocol):
    """One read of one resource. Iterate ``batches()`` once; then read the rest."""

    source: str  # where the rows came from, for the landing manifest (no secrets)
    quarantined: list[QuarantinedRow]
    notes: list[str]  # schema drift and other facts for the manifest

    def batches(self) -> Iterator[pa.RecordBatch]: ...

    def next_state(self) -> SyncState:
        """The state to commit once every batch is loaded."""
        ...

    def watermark_range(self) -> tuple[str | None, str | None]: ...


class Connector(Protocol):
    def extract(self, resource: Resource, state: SyncState, *, full: bool) -> Extraction:
        """Start reading ``resource``: everything when ``full``, else what changed since
        ``state``. Raises ConnectorError when the source does not match the catalog."""
        ...

    def keys(self, resource: Resource) -> Iterator[pa.RecordBatch]:
        """Every primary key currently in the source (for delete reconciliation)."""
        ...


# ---------------------------------------------------------------- incremental cursors


class IncrementalCursor:
    """Watermark with an overlap window for late commits.

    Reads start ``overlap`` before the watermark. Rows whose (key, cursor value) were
    already landed inside the window are dropped, so each version lands exactly once.
    """

    def __init__(self, resource: Resource, state: SyncState, overlap: timedelta, *, full: bool):
        if resource.source.cursor is None:
            raise ConnectorError(f"{resource.code}: incremental reads need source.cursor")
        self.resource = resource
        self.cursor = resource.source.cursor
        self.key_columns = list(resource.primary_key)
        self.overlap = overlap
        self.full = full
        self.old_watermark = None if full else _parse_ts(state.watermark)
        self.max_seen = self.old_watermark
        self.min_seen: datetime | None = None
        # a timestamp cursor keeps its window as hashed pairs; any other as text tuples
        self.hashed = resource.field(self.cursor).type == "timestamp"
        self.seen: set[tuple[str, ...]] = set()
        self.new_boundary: set[tuple[str, ...]] = set()
        self.window = _Window.empty()
        self.new_window: list[_Window] = []
        if not full and self.hashed:
            self.window = _Window.decode(state.window).union(_Window.of_text(state.boundary))
        elif not full:
            self.seen = {tuple(item) for item in state.boundary}

    @property
    def since(self) -> datetime | None:
        """Read rows whose cursor is at or after this (None: read everything)."""
        return None if self.old_watermark is None else self.old_watermark - self.overlap

    def filter(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Drop rows already landed; remember the window for the next run.

        Vectorised: only rows inside an overlap window are turned into Python values and
        hashed, so a full read of millions of rows costs a few comparisons per row. A
        timestamp cursor is compared as int64 microseconds in numpy: building Arrow
        scalars or arrays from Python values makes pyarrow import pandas (0.2 s a process).
        """
        if batch.num_rows == 0:
            return batch
        cursor_values = batch.column(self.cursor)
        if cursor_values.null_count:
            raise ConnectorError(
                f"{self.resource.code}: cursor column {self.cursor!r} has NULL values"
            )
        if not (self.hashed and pa.types.is_timestamp(cursor_values.type)):
            return self._filter_any_type(batch, cursor_values)
        micros = int64_values(cursor_values.cast(pa.timestamp("us")).cast(pa.int64()))
        low, high = _from_micros(int(micros.min())), _from_micros(int(micros.max()))
        self.min_seen = low if self.min_seen is None else min(self.min_seen, low)
        if self.max_seen is None or high > self.max_seen:
            self.max_seen = high
        keep: np.ndarray | None = None
        if len(self.window) and self.old_watermark is not None:
            # only rows at or below the old watermark can have been landed before
            indexes = np.flatnonzero(micros <= _micros(self.old_watermark))
            if len(indexes):
                candidates = batch.take(index_array(indexes))
                seen = pc.is_in(
                    self._identities_of(candidates, micros[indexes]),
                    value_set=self.window.identities,
                )
                keep = np.ones(batch.num_rows, dtype=bool)
                keep[indexes[int64_values(pc.indices_nonzero(seen).cast(pa.int64()))]] = False
        # rows near the top may fall inside the next run's window: remember them
        assert self.max_seen is not None
        near_top = micros >= _micros(self.max_seen - self.overlap)
        if keep is not None:
            near_top &= keep
        if near_top.any():
            rows = np.flatnonzero(near_top)
            cursors = micros[rows].copy()
            identities = self._identities_of(batch.take(index_array(rows)), cursors)
            self.new_window.append(_Window(cursors, identities))
        return batch if keep is None else batch.filter(boolean_array(keep))

    def _identities_of(self, rows: pa.RecordBatch, cursor_micros: np.ndarray) -> pa.Array:
        """Each row's identity as text, built in Arrow: its key values and cursor."""
        cursors = pa.Array.from_buffers(
            pa.int64(), len(cursor_micros), [None, pa.py_buffer(cursor_micros)]
        )
        return identities([rows.column(name) for name in self.key_columns], cursors)

    def _filter_any_type(self, batch: pa.RecordBatch, cursor_values: pa.Array) -> pa.RecordBatch:
        """``filter`` for a cursor that is not a timestamp (a date, a number, text)."""
        low = pc.min(cursor_values).as_py()
        high = pc.max(cursor_values).as_py()
        self.min_seen = low if self.min_seen is None else min(self.min_seen, low)
        if self.max_seen is None or high > self.max_seen:
            self.max_seen = high
        keep: pa.Array | None = None
        if self.seen and self.old_watermark is not None:
            maybe_seen = pc.less_equal(
                cursor_values, pa.scalar(self.old_watermark, cursor_values.type)
            )
            indexes = pc.indices_nonzero(maybe_seen).to_pylist()
            if indexes:
                identities = self._identities(batch.take(pa.array(indexes)))
                flags = [True] * batch.num_rows
                for index, identity in zip(indexes, identities, strict=True):
                    if identity in self.seen:
                        flags[index] = False
                keep = pa.array(flags, type=pa.bool_())
        assert self.max_seen is not None
        window_start = pa.scalar(self.max_seen - self.overlap, cursor_values.type)
        near_top = pc.greater_equal(cursor_values, window_start)
        if keep is not None:
            near_top = pc.and_(near_top, keep)
        top_rows = batch.filter(near_top)
        if top_rows.num_rows:
            self.new_boundary.update(self._identities(top_rows))
        return batch if keep is None else batch.filter(keep)

    def _identities(self, batch: pa.RecordBatch) -> list[tuple[str, ...]]:
        columns = [batch.column(name).to_pylist() for name in (*self.key_columns, self.cursor)]
        return [tuple(_text(v) for v in row) for row in zip(*columns, strict=True)]

    def next_state(self, previous: SyncState) -> SyncState:
        watermark = self.max_seen
        if watermark is None:
            return SyncState(
                watermark=previous.watermark,
                boundary=previous.boundary,
                window=previous.window,
                files=previous.files,
                runs=previous.runs + 1,
                last_reconcile_run=previous.last_reconcile_run,
                delete_log_mark=previous.delete_log_mark,
            )
        if self.hashed:
            kept = self.window.union(*self.new_window).since(_micros(watermark - self.overlap))
            return SyncState(
                watermark=_text(watermark),
                window=kept.encode(),
                files=previous.files,
                runs=previous.runs + 1,
                last_reconcile_run=previous.last_reconcile_run,
                delete_log_mark=previous.delete_log_mark,
            )
        window_start = _text(watermark - self.overlap)
        text_kept = {b for b in (self.seen | self.new_boundary) if b[-1] >= window_start}
        return SyncState(
            watermark=_text(watermark),
            boundary=sorted(list(b) for b in text_kept),
            files=previous.files,
            runs=previous.runs + 1,
            last_reconcile_run=previous.last_reconcile_run,
            delete_log_mark=previous.delete_log_mark,
        )

    def watermark_range(self) -> tuple[str | None, str | None]:
        low = _text(self.min_seen) if self.min_seen is not None else None
        high = _text(self.max_seen) if self.max_seen is not None else None
        return low, high


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="microseconds")
    return "" if value is None else str(value)


def _parse_ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


_EPOCH = datetime(1970, 1, 1)


def _micros(value: datetime) -> int:
    """Microseconds since 1970 of a naive timestamp (Arrow's timestamp("us") storage)."""
    return (value - _EPOCH) // timedelta(microseconds=1)


def _from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def int64_values(array: pa.Array) -> np.ndarray:
    """The values of an int64 array without nulls as a numpy view (``to_numpy`` would
    import pandas)."""
    data = array.buffers()[1]
    assert data is not None
    return np.frombuffer(data, dtype=np.int64, count=len(array), offset=array.offset * 8)


def boolean_array(mask: np.ndarray) -> pa.Array:
    """A numpy bool mask as an Arrow boolean array, built from buffers (no pandas import)."""
    bits = np.packbits(mask.astype(bool, copy=False), bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(mask), [None, pa.py_buffer(bits)])


_COLON = constant_strings(":", 1)[0]
_NULL_LENGTH = constant_strings("N", 1)[0]
_EMPTY = constant_strings("", 1)[0]


def identities(parts: Sequence[pa.Array], cursor_micros: pa.Array) -> pa.Array:
    """``length:value:`` for each key part (``N:`` for NULL), then the cursor in
    microseconds: unambiguous whatever the values hold, and built without a Python object
    per row."""
    pieces = []
    for part in parts:
        text = part.cast(pa.string())
        pieces.append(pc.fill_null(pc.utf8_length(text).cast(pa.string()), _NULL_LENGTH))
        pieces.append(pc.fill_null(text, _EMPTY))
    pieces.append(cursor_micros.cast(pa.string()))
    return pc.binary_join_element_wise(*pieces, _COLON)


def _identity_text(parts: Sequence[str], cursor_micros: int) -> str:
    """``identities`` for one row of text (a state written before windows)."""
    return "".join(f"{len(p)}:{p}:" for p in parts) + str(cursor_micros)


@dataclass(frozen=True)
class _Window:
    """Rows landed inside an overlap window: their cursors and identities."""

    cursors: np.ndarray  # int64 microseconds
    identities: pa.Array  # string, see ``identities``

    @classmethod
    def empty(cls) -> _Window:
        return cls(np.empty(0, np.int64), constant_strings("", 0))

    @classmethod
    def decode(cls, text: str) -> _Window:
        """From ``SyncState.window``: base64 of an Arrow IPC stream (zstd)."""
        if not text:
            return cls.empty()
        table = pa.ipc.open_stream(pa.py_buffer(base64.b64decode(text))).read_all()
        cursors = int64_values(table.column("cursor").combine_chunks()).copy()
        return cls(cursors, table.column("identity").combine_chunks())

    @classmethod
    def of_text(cls, boundary: list[list[str]]) -> _Window:
        """Text tuples (key values..., cursor ISO text) of a state written before windows."""
        if not boundary:
            return cls.empty()
        cursors = [_micros(datetime.fromisoformat(item[-1])) for item in boundary]
        texts = [_identity_text(item[:-1], c) for item, c in zip(boundary, cursors, strict=True)]
        return cls(np.array(cursors, np.int64), pa.array(texts, pa.string()))

    def union(self, *others: _Window) -> _Window:
        windows = [self, *others]
        return _Window(
            np.concatenate([w.cursors for w in windows]),
            pa.concat_arrays([w.identities.cast(pa.string()) for w in windows]),
        )

    def since(self, start: int) -> _Window:
        """The rows with a cursor at or after ``start``."""
        keep = self.cursors >= start
        return _Window(self.cursors[keep], self.identities.filter(boolean_array(keep)))

    def encode(self) -> str:
        if not len(self):
            return ""
        cursors = pa.Array.from_buffers(
            pa.int64(), len(self.cursors), [None, pa.py_buffer(self.cursors)]
        )
        table = pa.Table.from_arrays([self.identities, cursors], names=["identity", "cursor"])
        sink = pa.BufferOutputStream()
        options = pa.ipc.IpcWriteOptions(compression="zstd")
        with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
            writer.write_table(table)
        return base64.b64encode(sink.getvalue().to_pybytes()).decode("ascii")

    def __len__(self) -> int:
        return len(self.cursors)


def window_size(state: SyncState) -> int:
    """How many rows a state remembers inside its overlap window."""
    return len(_Window.decode(state.window)) + len(state.boundary)


def index_array(indexes: np.ndarray) -> pa.Array:
    """Row numbers as an Arrow int64 array, built from buffers (no pandas import)."""
    values = np.ascontiguousarray(indexes, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])


# ---------------------------------------------------------------- text parsing


@dataclass
class ParsedText:
    batch: pa.RecordBatch
    quarantined: list[QuarantinedRow]


def parse_text_columns(
    resource: Resource,
    columns: dict[str, pa.Array],
    *,
    origin: str,
    num_rows: int,
    locate: Callable[[int], tuple[int, str]],
    ops: pa.Array | None = None,
) -> ParsedText:
    """Turn text columns (field name -> string array) into the catalog's types.

    Empty strings are NULL. A value that does not parse sends its whole row to
    quarantine with the field, the value and what was expected; the other rows go on.
    ``locate(i)`` gives row i's source line and text; it is called only for quarantined
    rows, so the caller never builds either for the rows that parse.
    """
    bad_reason: list[str | None] = [None] * num_rows
    typed: list[pa.Array] = []
    for spec in resource.fields:
        text = columns.get(spec.name)
        if text is None:
            typed.append(pa.nulls(num_rows, type=arrow_type(spec.type)))
            continue
        text = pc.utf8_trim_whitespace(text.cast(pa.string()))
        text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
        values, failed = _parse_field(spec, text)
        if failed is not None:
            for index in failed:
                if bad_reason[index] is None:
                    got = text[index].as_py()
                    bad_reason[index] = (
                        f"field {spec.name}: expected {_expected(spec)}, got {got!r}"
                    )

        typed.append(values)
    if ops is None:
        ops = constant_strings(OP_UPSERT, num_rows)
    typed.append(ops)
    batch = pa.RecordBatch.from_arrays(typed, schema=arrow_schema(resource))
    quarantined = []
    for index, reason in enumerate(bad_reason):
        if reason is not None:
            line, raw = locate(index)
            quarantined.append(QuarantinedRow(origin, line, reason, raw))
    if quarantined:
        batch = batch.filter(pa.array([r is None for r in bad_reason], type=pa.bool_()))
    return ParsedText(batch, quarantined)


def _expected(spec: ResourceField) -> str:
    if spec.type == "date":
        return f"a date ({spec.date_format or 'YYYY-MM-DD'})"
    if spec.type == "timestamp":
        return f"a timestamp ({spec.date_format or 'YYYY-MM-DD HH:MM:SS'})"
    return f"{'an' if spec.type == 'integer' else 'a'} {spec.type}"


def _parse_field(spec: ResourceField, text: pa.Array) -> tuple[pa.Array, list[int] | None]:
    """Parse one column; returns values and the indexes of values that did not parse."""
    target = arrow_type(spec.type)
    present = pc.is_valid(text)
    if spec.type == "string":
        return text, None
    if spec.type in ("date", "timestamp"):
        formats = (
            (spec.date_format,)
            if spec.date_format
            else (DATE_FORMATS if spec.type == "date" else TIMESTAMP_FORMATS)
        )
        parsed = pa.nulls(len(text), type=pa.timestamp("us"))
        for fmt in formats:
            attempt = pc.strptime(text, format=fmt, unit="us", error_is_null=True)
            parsed = pc.coalesce(parsed, _without_rollover(attempt, text, fmt))
        ok = pc.or_kleene(pc.invert(present), pc.is_valid(parsed))
        values = parsed.cast(target) if spec.type == "date" else parsed
        if spec.type == "date":
            # a date column must not carry a time of day
            ok = pc.and_kleene(
                ok,
                pc.or_kleene(
                    pc.invert(present),
                    pc.equal(parsed.cast(pa.date32()).cast(pa.timestamp("us")), parsed),
                ),
            )
    elif spec.type == "boolean":
        lowered = pc.utf8_lower(text)
        is_true = pc.is_in(lowered, value_set=pa.array(_TRUE))
        is_false = pc.is_in(lowered, value_set=pa.array(_FALSE))
        ok = pc.or_kleene(pc.invert(present), pc.or_(is_true, is_false))
        values = pc.if_else(present, is_true, pa.scalar(None, pa.bool_()))
    else:
        pattern = _INTEGER if spec.type == "integer" else _DECIMAL
        ok = pc.or_kleene(pc.invert(present), pc.match_substring_regex(text, pattern))
        cleaned = pc.if_else(ok, text, pa.scalar(None, pa.string()))
        try:
            values = cleaned.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values, ok = _cast_each(cleaned, target, ok)
    ok = pc.fill_null(ok, False)
    if pc.all(ok).as_py():
        return values, None
    failed = pc.indices_nonzero(pc.invert(ok)).to_pylist()  # no Python bool per row
    return pc.if_else(ok, values, pa.scalar(None, target)), failed


def _without_rollover(parsed: pa.Array, text: pa.Array, fmt: str) -> pa.Array:
    """Null where strptime rolled an impossible day over (2025-02-30 -> 2025-03-02).

    A rolled-over value lands on day 1-3 of the next month with a day number unlike the
    text's, so only those values are checked: the text's day is read with a regex made
    from ``fmt`` (or, for a format we cannot translate, the value is formatted back).
    """
    if "%d" not in fmt:
        return parsed
    suspect = pc.fill_null(pc.less_equal(pc.day(parsed), 3), False)
    if not pc.any(suspect).as_py():
        return parsed
    where = pc.indices_nonzero(suspect)
    candidates = pc.take(parsed, where)
    original = pc.take(text, where)
    pattern = _day_pattern(fmt)
    if pattern is not None:
        day = pc.extract_regex(original, pattern).field("day").cast(pa.int64())
        # a text the regex does not read keeps its parsed value
        same = pc.fill_null(pc.equal(day, pc.day(candidates)), True)
    else:
        again = pc.strftime(candidates.cast(pa.timestamp("s"), safe=False), format=fmt)
        same = pc.fill_null(pc.equal(_unpadded(again), _unpadded(original)), True)
    if pc.all(same).as_py():
        return parsed
    rolled = pc.filter(where, pc.invert(same)).to_numpy()
    keep = np.ones(len(parsed), dtype=bool)
    keep[rolled] = False
    return pc.if_else(pa.array(keep), parsed, pa.scalar(None, parsed.type))


_DIRECTIVE_PATTERNS = {
    "Y": r"\d{4}",
    "y": r"\d{2}",
    "m": r"\d{1,2}",
    "d": r"(?P<day>\d{1,2})",
    "H": r"\d{1,2}",
    "M": r"\d{1,2}",
    "S": r"\d{1,2}",
    "%": "%",
}


def _day_pattern(fmt: str) -> str | None:
    """A regex reading the day of month from text in ``fmt``, or None when ``fmt`` uses a
    directive other than %Y %y %m %d %H %M %S, or names the day twice."""
    if fmt.count("%d") != 1:
        return None
    parts = []
    index = 0
    while index < len(fmt):
        if fmt[index] == "%" and index + 1 < len(fmt):
            directive = _DIRECTIVE_PATTERNS.get(fmt[index + 1])
            if directive is None:
                return None
            parts.append(directive)
            index += 2
        else:
            parts.append(re.escape(fmt[index]))
            index += 1
    return "^" + "".join(parts) + "$"


def _unpadded(text: pa.Array) -> pa.Array:
    return pc.replace_substring_regex(pc.utf8_lower(text), r"(^|\D)0+(\d)", r"\1\2")


def _cast_each(text: pa.Array, target: pa.DataType, ok: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Slow path: cast value by value (only when a value overflows the declared type)."""
    values: list[Any] = []
    good: list[bool] = []
    for value, fine in zip(text.to_pylist(), ok.to_pylist(), strict=True):
        if value is None:
            values.append(None)
            good.append(bool(fine))
            continue
        try:
            values.append(pa.array([value]).cast(target)[0].as_py())
            good.append(True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            values.append(None)
            good.append(False)
    return pa.array(values, type=target), pa.array(good, type=pa.bool_())


def conform(
    batch: pa.RecordBatch | pa.Table, resource: Resource, op: str = OP_UPSERT
) -> pa.RecordBatch:
    """Cast an already-typed batch (named by field) to the catalog's schema and add ``_op``.

    Raises ConnectorError naming the field when a value does not fit its declared type.
    """
    schema = arrow_schema(resource)
    arrays = []
    for spec in resource.fields:
        column = batch.column(spec.name)
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        target = arrow_type(spec.type)
        if column.type != target:
            try:
                column = column.cast(target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ConnectorError(
                    f"{resource.code}.{spec.name}: expected {spec.type}, got {column.type}: {exc}"
                ) from exc
        arrays.append(column)
    arrays.append(constant_strings(op, batch.num_rows))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
