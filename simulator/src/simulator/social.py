"""The social-insurance department: daily CSV drops on its SFTP server.

Layout under ``systems_dir/sftp/root`` (served as ``/``)::

    drops/20261101/enrollments_20261101.csv      snapshot of every enrollment (day 0)
    drops/20261101/contributions_20261101.csv    about three months of contributions
    drops/20261101/_SUCCESS                      written last: the drop is complete
    drops/20261102/...                           each later day: new and changed rows

Every file is written as ``.<name>.tmp`` and renamed, the marker last. Headers are the
catalog's ``source_column`` names; some files are GBK, the others UTF-8 (recorded in
the manifest). The drop of the next day is always left incomplete (no marker), as an
upload still running; a correct connector does not read it. The department's own
records (the ledger) are kept in ``social_ledger.parquet`` for the next day.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hub.catalog.models import Resource
from simulator.clock import (
    dates_text,
    day0_close,
    day_stamp,
    moments_between,
    office_hours,
    timestamps_text,
    yuan,
)
from simulator.faults import Injected, draw_count, inject_faults, inject_faults_apart
from simulator.identities import id_bodies, party_valid_check, pick, ric_valid_check
from simulator.lanes import in_blocks, lane
from simulator.manifest import DayCounts, Drop, ResourceManifest
from simulator.rows import Lazy, Lookup, Rows, is_null, lazy
from simulator.world import Context, read_columns

ENROLLMENTS = "social_insurance_enrollments"
CONTRIBUTIONS = "social_insurance_contributions"
LEDGER_FILE = "social_ledger.parquet"
MARKER = "_SUCCESS"
INSURANCE = ("企业职工基本养老保险", "职工基本医疗保险", "失业保险")
STATUSES = ("参保缴费", "暂停缴费", "终止参保")
# (personal, employer) contribution rates per insurance type
RATES = {INSURANCE[0]: (0.08, 0.16), INSURANCE[1]: (0.02, 0.07), INSURANCE[2]: (0.005, 0.005)}
ENROLLMENT_FAULT_COLUMNS = ("name", "employer_credit_code")
CONTRIBUTION_FAULT_COLUMNS = ("paid_date", "contribution_base")
RENAMED_HEADER = ("缴费基数", "缴费工资基数")  # the catalog lists the new name as an alias
ADDED_COLUMN = "备注"
DRIFT_DAY = 1
LEDGER_TEXT = (
    "citizen_id",
    "name",
    "insurance_type",
    "employer_credit_code",
    "start_date",
    "status",
    "updated_at",
)
SHAPE = "_shape"  # "" normal line, "extra": one field too many, "short": one too few


def drops_dir(ctx: Context) -> Path:
    return ctx.settings.systems_dir / "sftp" / "root" / "drops"


def manifests() -> dict[str, ResourceManifest]:
    return {
        ENROLLMENTS: ResourceManifest(
            system="social",
            location="enrollments_*.csv",
            key=["citizen_id", "insurance_type"],
            id_column="citizen_id",
            fault_columns=list(ENROLLMENT_FAULT_COLUMNS),
            drops=[],
        ),
        CONTRIBUTIONS: ResourceManifest(
            system="social",
            location="contributions_*.csv",
            key=["citizen_id", "insurance_type", "period"],
            id_column="citizen_id",
            fault_columns=list(CONTRIBUTION_FAULT_COLUMNS),
            drops=[],
        ),
    }


# ---------------------------------------------------------------- the department's ledger


class Ledger:
    """Enrollments as the department holds them, with what the next day needs."""

    def __init__(
        self,
        rows: Rows,
        base: npt.NDArray[np.int64],
        last_period: npt.NDArray[np.int64],
        clean: npt.NDArray[np.bool_],
    ) -> None:
        self.rows = rows.select(LEDGER_TEXT)
        self.base = base  # contribution base of the person, whole yuan
        self.last_period = last_period  # YYYYMM of the last contribution, 0 for none
        self.clean = clean  # may be re-sent as an update (valid ID, nothing missing or spoiled)

    def __len__(self) -> int:
        return len(self.rows)

    def append(self, other: Ledger) -> None:
        rows = other.rows
        if len(self.rows) and all(self.rows.is_lazy(name) for name in LEDGER_TEXT):
            # a ledger loaded packed stays packed (its columns join as lazy columns)
            rows = Rows({name: _pack(name, rows[name]) for name in LEDGER_TEXT})
        if not len(self.rows) or not len(rows):
            self.rows = Rows.concat([self.rows, rows])
        else:
            # a column at a time, each let go once joined: the ledger is held once and
            # one column twice, not the whole ledger twice
            joined = {}
            for name in LEDGER_TEXT:
                mine = Rows({name: self.rows.columns.pop(name)})
                joined[name] = Rows.concat([mine, rows.select([name])]).columns[name]
                del mine
            self.rows = Rows(joined)
        self.base = np.concatenate([self.base, other.base])
        self.last_period = np.concatenate([self.last_period, other.last_period])
        self.clean = np.concatenate([self.clean, other.clean])

    def save(self, path: Path) -> None:
        """Written a chunk of rows at a time, a row group each (the ledger's lazy columns
        stay compact; the text of one chunk is held)."""
        schema = pa.schema(
            [
                *((name, pa.string()) for name in LEDGER_TEXT),
                ("base", pa.int64()),
                ("last_period", pa.int64()),
                ("clean", pa.bool_()),
            ]
        )
        with pq.ParquetWriter(path, schema) as writer:
            start = 0
            for chunk in self.rows.chunks():
                part = slice(start, start + len(chunk))
                columns: list[pa.Array] = [
                    pa.array(chunk[name].tolist(), pa.string()) for name in LEDGER_TEXT
                ]
                columns += [
                    pa.array(self.base[part]),
                    pa.array(self.last_period[part]),
                    pa.array(self.clean[part]),
                ]
                writer.write_table(pa.Table.from_arrays(columns, schema=schema))
                start += len(chunk)

    @classmethod
    def load(cls, path: Path) -> Ledger:
        """Read a batch at a time (Arrow never holds the whole ledger)."""

        def text(name: str) -> Any:
            return lambda column: _pack_arrow(name, column)

        def numbers(dtype: Any) -> Any:
            return lambda column: np.asarray(column.to_numpy(zero_copy_only=False), dtype=dtype)

        convert = {
            **{name: text(name) for name in LEDGER_TEXT},
            "base": numbers(np.int64),
            "last_period": numbers(np.int64),
            "clean": numbers(bool),
        }

        columns = read_columns(path, convert)
        rows = Rows({name: columns.pop(name) for name in LEDGER_TEXT})
        return cls(rows, columns["base"], columns["last_period"], columns["clean"])


def packed_text(column: pa.ChunkedArray, rows: int = 1 << 16) -> Lazy:
    """A text column kept as UTF-8 bytes and a NULL mask (a 20-character value: 20 bytes
    and 1, not a Python str), rendered to str when written; read ``rows`` at a time."""
    values = []
    nulls = []
    for start in range(0, len(column), rows):
        part = column.slice(start, rows)
        nulls.append(np.asarray(part.is_null().to_numpy(zero_copy_only=False), dtype=bool))
        values.append(
            np.array([b"" if v is None else v.encode() for v in part.to_pylist()], dtype=bytes)
        )
    if not values:
        return lazy(_unpack, np.zeros(0, dtype="S1"), np.zeros(0, dtype=bool))
    return lazy(_unpack, np.concatenate(values), np.concatenate(nulls))


def packed(values: npt.NDArray[Any]) -> Lazy:
    """Text (object array of str / None) in the form of :func:`packed_text`."""
    nulls = is_null(values)
    encoded = [
        b"" if null else str(v).encode() for v, null in zip(values.tolist(), nulls, strict=True)
    ]
    return lazy(_unpack, np.array(encoded, dtype=bytes), nulls)


class Words:
    """Renders 1-byte codes as one of a few words (one shared str object each; the last
    code is NULL): a status or an insurance type kept in 1 byte a row, not 12 or 27."""

    def __init__(self, words: tuple[str, ...]) -> None:
        self.words: npt.NDArray[np.object_] = np.array([*words, None], dtype=object)
        self.code = {word: position for position, word in enumerate(words)}

    def __call__(self, codes: npt.NDArray[np.int8]) -> npt.NDArray[np.object_]:
        picked: npt.NDArray[np.object_] = self.words[codes]
        return picked

    def coded(self, dictionary: list[Any], indices: npt.NDArray[Any]) -> tuple[Any, Any, Any]:
        """Codes of the values ``dictionary[indices]`` (``-1``: NULL), and the positions
        and values of those not among the words (kept as values written over)."""
        known = np.array(
            [self.code.get(word, -1) if word is not None else -2 for word in dictionary] + [-2],
            dtype=np.int8,
        )
        codes = known[indices]
        other = np.flatnonzero(codes == -1)
        values = np.array([dictionary[i] for i in indices[other].tolist()], dtype=object)
        codes[codes < 0] = len(self.words) - 1
        return codes, other, values

    def of(self, values: npt.NDArray[Any]) -> Lazy:
        """Text (object array of str / None) as a coded column."""
        dictionary, indices = np.unique(values.astype(str), return_inverse=True)
        words = dictionary.tolist()
        nulls = is_null(values)
        codes, other, over = self.coded(words, indices.ravel())
        codes[nulls] = len(self.words) - 1
        keep = ~nulls[other]
        column = Lazy((codes,), self)
        column.put(other[keep].astype(np.int64), over[keep])
        return column

    def of_arrow(self, column: pa.ChunkedArray, rows: int = 1 << 16) -> Lazy:
        parts = []
        for start in range(0, len(column), rows):
            encoded = column.slice(start, rows).combine_chunks().dictionary_encode()
            dictionary = encoded.dictionary.to_pylist()
            index = pc.fill_null(encoded.indices, len(dictionary))
            codes, other, over = self.coded(
                dictionary, np.asarray(index.to_numpy(zero_copy_only=False))
            )
            parts.append(Lazy((codes,), self, other.astype(np.int64), over))
        if not parts:
            return Lazy((np.zeros(0, dtype=np.int8),), self)
        return Lazy.concat(parts)


STATUS_WORDS = Words(STATUSES)
INSURANCE_WORDS = Words(INSURANCE)
CODED = {"status": STATUS_WORDS, "insurance_type": INSURANCE_WORDS}


def _pack(name: str, values: npt.NDArray[Any]) -> Lazy:
    """A ledger column in its compact form (coded words or UTF-8 bytes)."""
    words = CODED.get(name)
    return words.of(values) if words is not None else packed(values)


def _pack_arrow(name: str, column: pa.ChunkedArray) -> Lazy:
    words = CODED.get(name)
    return words.of_arrow(column) if words is not None else packed_text(column)


def _unpack(values: npt.NDArray[np.bytes_], nulls: npt.NDArray[np.bool_]) -> npt.NDArray[Any]:
    text = np.char.decode(values, "utf-8")
    if not nulls.any():
        return text
    column = text.astype(object)
    column[nulls] = None
    return column


def shared_text(column: pa.ChunkedArray) -> npt.NDArray[np.object_]:
    """A text column as an object array holding one str object per distinct value (and
    None for NULL): statuses, dates, names and IDs repeat, a new str a row is 50-80 bytes."""
    encoded = column.combine_chunks().dictionary_encode()
    words = np.array([*encoded.dictionary.to_pylist(), None], dtype=object)
    index = pc.fill_null(encoded.indices, len(encoded.dictionary))
    values: npt.NDArray[np.object_] = words[np.asarray(index.to_numpy(zero_copy_only=False))]
    return values


def _period_int(month: npt.NDArray[np.datetime64]) -> npt.NDArray[np.int64]:
    months = month.astype("datetime64[M]").astype(np.int64)
    return (months // 12 + 1970) * 100 + months % 12 + 1


def _period_month(period: npt.NDArray[np.int64]) -> npt.NDArray[np.datetime64]:
    return ((period // 100 - 1970) * 12 + period % 100 - 1).astype("datetime64[M]")


def contributions_for(
    rng: np.random.Generator,
    ledger: Ledger,
    index: npt.NDArray[np.int64],
    period: npt.NDArray[np.int64],
    paid: npt.NDArray[np.datetime64],
    stamps: npt.NDArray[np.datetime64],
) -> Rows:
    """One contribution line per (enrollment ``index``, ``period``)."""
    kind = ledger.rows.text("insurance_type", index)
    base = ledger.base[index].astype(np.float64)
    personal = np.zeros(len(index))
    employer = np.zeros(len(index))
    for name, (own, firm) in RATES.items():
        here = kind == name
        personal[here] = base[here] * own
        employer[here] = base[here] * firm
    return Rows(
        {
            "citizen_id": ledger.rows.column_take("citizen_id", index),
            "insurance_type": kind,
            "period": lazy(_period_text, period),
            "contribution_base": lazy(yuan, base),
            "personal_amount": lazy(yuan, np.round(personal, 2)),
            "employer_amount": lazy(yuan, np.round(employer, 2)),
            "paid_date": lazy(dates_text, paid),
            "updated_at": lazy(timestamps_text, stamps),
            SHAPE: np.full(len(index), ""),
        }
    )


def _period_text(period: npt.NDArray[np.int64]) -> npt.NDArray[np.str_]:
    return period.astype("<U6")


# ---------------------------------------------------------------- faults in lines


def _spoil_shape(
    rng: np.random.Generator, rows: Rows, index: npt.NDArray[np.int64]
) -> npt.NDArray[np.bool_]:
    """A third of the spoiled lines get a wrong field count; returns which did."""
    shaped = rng.random(len(index)) < 1 / 3
    rows.put(SHAPE, index[shaped], pick(rng, ("extra", "short"), int(shaped.sum())))
    return shaped


def _spoil_enrollments(rng: np.random.Generator, rows: Rows, index: npt.NDArray[np.int64]) -> None:
    """Wrong field counts, or a start date the calendar does not have."""
    shaped = _spoil_shape(rng, rows, index)
    dated = index[~shaped]
    starts = rows.text("start_date", dated)
    years = np.array([str(value or "2020")[:4] for value in starts], dtype="<U4")
    rows.put(
        "start_date",
        dated,
        np.strings.add(years, pick(rng, ("-02-30", "-04-31", "-09-31"), len(dated))),
    )


def _spoil_contributions(
    rng: np.random.Generator, rows: Rows, index: npt.NDArray[np.int64]
) -> None:
    """Wrong field counts, impossible paid dates, or amounts that are not numbers."""
    shaped = _spoil_shape(rng, rows, index)
    rest = index[~shaped]
    dated = rest[rng.random(len(rest)) < 0.5]
    worded = np.setdiff1d(rest, dated)
    years = np.array([str(value)[:4] for value in rows.text("period", dated)], dtype="<U4")
    rows.put("paid_date", dated, np.strings.add(years, "-02-30"))
    column = pick(rng, ("personal_amount", "employer_amount", "contribution_base"), len(worded))
    for name in ("personal_amount", "employer_amount", "contribution_base"):
        target = worded[column == name]
        rows.put(name, target, pick(rng, ("待核定", "N/A", "壹佰元"), len(target)))


# ---------------------------------------------------------------- files


BLOCK_ROWS = 500_000  # day-0 contributions made and spoiled at a time


@dataclass
class CsvFile:
    """One file of a drop: its rows (in parts, written as they come) and how the
    department's export writes them."""

    name: str
    parts: Iterable[Rows]
    resource: Resource
    encoding: str  # "utf-8" or "gbk"
    renamed: bool = False  # header 缴费基数 exported as 缴费工资基数
    notes: npt.NDArray[np.str_] | None = None  # values of an added column 备注
    lines: int = 0  # data lines written so far

    @property
    def header(self) -> list[str]:
        header = [field.source_column or field.name for field in self.resource.fields]
        if self.renamed:
            header = [RENAMED_HEADER[1] if h == RENAMED_HEADER[0] else h for h in header]
        return [*header, ADDED_COLUMN] if self.notes is not None else header

    def chunks(self) -> Iterator[str]:
        """The text: header, then data lines in chunks, every line ending with CRLF.

        None is written as an empty field. Raises ValueError for a value holding a
        comma or a quote (the export does not quote).
        """
        yield ",".join(self.header) + "\r\n"
        for part in self.parts:
            done = 0
            for chunk in part.chunks():
                yield "\r\n".join(self._lines(chunk, self.lines + done)) + "\r\n"
                done += len(chunk)
            self.lines += len(part)

    def text(self) -> str:
        return "".join(self.chunks())

    def _lines(self, part: Rows, offset: int) -> list[str]:
        """The lines of one chunk of rows (``offset``: lines of the file before it)."""
        texts = []
        for field in self.resource.fields:
            column = part[field.name]
            texts.append(np.where(is_null(column), "", column).astype(str))
        if self.notes is not None:
            texts.append(self.notes[offset : offset + len(part)])
        for text in texts:
            if (np.strings.find(text, ",") >= 0).any() or (np.strings.find(text, '"') >= 0).any():
                raise ValueError(f"{self.name}: a value holds a comma or quote")
        lines = texts[0]
        for text in texts[1:]:
            lines = np.strings.add(np.strings.add(lines, ","), text)
        result: list[str] = lines.tolist()
        if SHAPE in part:
            shape = part[SHAPE]
            for position in np.flatnonzero(shape == "extra"):
                result[position] += ",1"
            for position in np.flatnonzero(shape == "short"):  # the last field went missing
                result[position] = result[position].rsplit(",", 1)[0]
        return result


def write_atomic(folder: Path, name: str, chunks: Iterable[bytes]) -> None:
    """Write ``.<name>.tmp`` and rename it: a reader never sees half a file."""
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{name}.tmp"
    with temporary.open("wb") as handle:
        for chunk in chunks:
            handle.write(chunk)
    os.replace(temporary, folder / name)


def _encoding(rng: np.random.Generator) -> str:
    return "gbk" if rng.random() < 1 / 3 else "utf-8"


def write_drop(ctx: Context, files: list[CsvFile]) -> Drop:
    """Write a complete drop for today: the files, then the marker.

    Raises UnicodeEncodeError when a value cannot be written in a GBK file.
    """
    stamp = day_stamp(ctx.day)
    folder = drops_dir(ctx) / stamp
    if folder.exists():
        shutil.rmtree(folder)  # the incomplete upload of yesterday is replaced
    encodings: dict[str, str] = {}
    for file in files:
        write_atomic(folder, file.name, (chunk.encode(file.encoding) for chunk in file.chunks()))
        encodings[file.name] = file.encoding
    write_atomic(folder, MARKER, [b""])
    return Drop(dir=stamp, complete=True, files=encodings)


def write_incomplete(ctx: Context, ledger: Ledger) -> Drop:
    """Tomorrow's drop, still being uploaded: no marker (a correct connector skips it).

    Even days leave a temporary contributions file, odd days a finished enrollments file
    without the marker.
    """
    rng = ctx.rng("social.incomplete")
    day = ctx.day + 1
    stamp = day_stamp(day)
    folder = drops_dir(ctx) / stamp
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    pick_rows = (
        rng.choice(len(ledger), size=min(len(ledger), 12), replace=False)
        if len(ledger)
        else np.zeros(0, dtype=np.int64)
    )
    pick_rows = pick_rows[ledger.clean[pick_rows]]
    stamps = office_hours(rng, day, len(pick_rows))
    if ctx.day % 2 == 0:
        month = np.full(len(pick_rows), (ctx.today + 1).astype("datetime64[M]"))
        rows = contributions_for(
            rng, ledger, pick_rows, _period_int(month), stamps.astype("datetime64[D]"), stamps
        )
        name = f".contributions_{stamp}.csv.tmp"
        text = CsvFile(name, [rows], ctx.catalog.resource(CONTRIBUTIONS), "utf-8").text()
        cut = len(text) * 2 // 3  # the upload stopped in the middle of a line
        (folder / name).write_bytes(text[:cut].encode("utf-8"))
    else:
        rows = ledger.rows.take(pick_rows)
        rows.set("updated_at", timestamps_text(stamps))
        name = f"enrollments_{stamp}.csv"
        text = CsvFile(name, [rows], ctx.catalog.resource(ENROLLMENTS), "utf-8").text()
        (folder / name).write_bytes(text.encode("utf-8"))
    return Drop(dir=stamp, complete=False, files={name: "utf-8"})


def _record_drop(ctx: Context, complete: Drop, incomplete: Drop) -> None:
    for code in (ENROLLMENTS, CONTRIBUTIONS):
        drops = ctx.resource(code).drops
        assert drops is not None
        drops[:] = [d for d in drops if d.complete]
        drops.append(complete)
        drops.append(incomplete)


def _record(
    ctx: Context, code: str, injected: Injected, *, bad: int, updated: int, lines: int
) -> None:
    manifest = ctx.resource(code)
    counts = DayCounts(
        day=ctx.day,
        inserted=lines - updated,
        updated=updated,
        lines=lines,
        unparseable=injected.unparseable,
    )
    manifest.record(
        counts, bad=bad, duplicates=injected.duplicate_key, missing=injected.missing_value
    )
    manifest.source_rows += lines


def _bad_ids(rows: Rows) -> int:
    return int((~rows.per_chunk("citizen_id", party_valid_check)).sum())


def _valid_bodies(ids: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """The bodies of the valid citizen IDs among ``ids``."""
    valid = ids[ric_valid_check(ids)].astype(str)
    return id_bodies(valid) if len(valid) else np.zeros(0, dtype=np.int64)


def _clean(rows: Rows, injected: Injected, fault_columns: tuple[str, ...]) -> npt.NDArray[np.bool_]:
    clean = rows.per_chunk("citizen_id", party_valid_check) & ~rows.null_rows(fault_columns)
    clean[injected.unparseable_rows] = False
    return clean


# ---------------------------------------------------------------- build and advance


def build(ctx: Context) -> None:
    """Day 0: the snapshot drop with every enrollment and recent contributions."""
    today = ctx.today
    root = drops_dir(ctx)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)

    enrollments, injected, ledger = _day0_enrollments(ctx)
    n = len(ledger)

    rng = ctx.rng("social.contributions")
    first_month = today.astype("datetime64[M]") - 4  # 2026-07
    status_now = ledger.rows["status"]
    active = status_now == "参保缴费"
    paused = status_now == "暂停缴费"
    early = active & in_blocks(rng, lambda r, k: r.random(k) < 0.4, n)
    # the lines are sorted by enrollment, then month: an active enrollment paid months
    # 1-3 (and month 0 when early), a paused one month 1
    lines_of = (early.astype(np.int8) + (active | paused) + 2 * active).astype(np.int8)
    ends = np.cumsum(lines_of, dtype=np.int64)
    total = int(ends[-1]) if n else 0
    first_offset = np.where(early, 0, 1).astype(np.int8)
    ledger.last_period[active] = _period_int(np.array([first_month + 3]))[0]
    ledger.last_period[paused] = _period_int(np.array([first_month + 1]))[0]
    del status_now, active, paused, early  # a row each: not held while the lines are written

    def paid_days(r: np.random.Generator, k: int) -> npt.NDArray[np.int64]:
        return r.integers(9, 25, k)

    def paid_seconds(r: np.random.Generator, k: int) -> npt.NDArray[np.int64]:
        return r.integers(9 * 3600, 17 * 3600, k)

    # each column is drawn whole from the stream, before the faults: a lane each
    day_lane = lane(rng, paid_days, total)
    second_lane = lane(rng, paid_seconds, total)
    contribution_faults = Injected()
    contribution_bad = [0]

    def contribution_lines(start: int, stop: int) -> Rows:
        """The contribution lines ``start`` to ``stop`` (in the file's order)."""
        first = int(np.searchsorted(ends, start, side="right"))
        last = int(np.searchsorted(ends, stop - 1, side="right")) + 1
        owners = np.arange(first, last)
        before = int(ends[first - 1]) if first else 0
        index = np.repeat(owners, lines_of[owners])
        rank = np.arange(len(index)) - np.repeat(
            ends[owners] - lines_of[owners] - before, lines_of[owners]
        )
        cut = slice(start - before, stop - before)
        index = index[cut]
        month = first_month + (first_offset[index] + rank[cut]).astype("timedelta64[M]")
        paid = month.astype("datetime64[D]") + paid_days(day_lane, len(index)).astype(
            "timedelta64[D]"
        )
        stamps = paid.astype("datetime64[s]") + paid_seconds(second_lane, len(index)).astype(
            "timedelta64[s]"
        )
        return contributions_for(rng, ledger, index, _period_int(month), paid, stamps)

    def contribution_blocks() -> Iterator[Rows]:
        """Contributions made, spoiled and written a block at a time (bounded memory)."""
        for start in range(0, total, BLOCK_ROWS):
            rows = contribution_lines(start, min(start + BLOCK_ROWS, total))
            rows, copies, injected = inject_faults_apart(
                rng,
                rows,
                ctx.rates,
                id_column=None,
                missing_columns=CONTRIBUTION_FAULT_COLUMNS,
                spoil=_spoil_contributions,
                duplicates=True,
                shift_duplicates=False,
            )
            contribution_faults.unparseable += injected.unparseable
            contribution_faults.duplicate_key += injected.duplicate_key
            contribution_faults.missing_value += injected.missing_value
            contribution_bad[0] += _bad_ids(rows) + (_bad_ids(copies) if len(copies) else 0)
            yield rows
            del rows
            yield copies  # the block's lines sent twice, after it (the block is not copied)

    stamp = day_stamp(0)
    # the snapshot shows both encodings: enrollments exported on the old GBK system
    files = [
        CsvFile(
            f"enrollments_{stamp}.csv", [enrollments], ctx.catalog.resource(ENROLLMENTS), "gbk"
        ),
        CsvFile(
            f"contributions_{stamp}.csv",
            contribution_blocks(),
            ctx.catalog.resource(CONTRIBUTIONS),
            "utf-8",
        ),
    ]
    drop = write_drop(ctx, files)
    _record(ctx, ENROLLMENTS, injected, bad=_bad_ids(enrollments), updated=0, lines=files[0].lines)
    _record(
        ctx,
        CONTRIBUTIONS,
        contribution_faults,
        bad=contribution_bad[0],
        updated=0,
        lines=files[1].lines,
    )
    _record_drop(ctx, drop, write_incomplete(ctx, ledger))
    ledger.save(ctx.settings.systems_dir / LEDGER_FILE)


def _day0_enrollments(ctx: Context) -> tuple[Rows, Injected, Ledger]:
    """Day 0's enrollments with their faults, their counts and the department's ledger
    (a function of its own: its working arrays, a few a row, are gone before the drop
    is written)."""
    world = ctx.world
    today = ctx.today
    rng = ctx.rng("social.enrollments")
    working = world.adults(today, 18, 60)
    people = np.sort(
        rng.choice(working, size=min(len(working), ctx.size(12000 / 2.5)), replace=False)
    )
    unemployment = rng.random(len(people)) < 0.5
    per_person = 2 + unemployment.astype(np.int64)
    person = np.repeat(people, per_person)
    # 0, 1 (and 2) for each person's enrollments, without a Python list a person
    slot = np.arange(int(per_person.sum()), dtype=np.int64) - np.repeat(
        np.cumsum(per_person) - per_person, per_person
    )
    employers = np.flatnonzero(np.isin(world.firm_kind, ("1", "2")))
    employer = employers[rng.integers(0, len(employers), len(people))]
    since = np.maximum(
        world.person_birth[people] + np.timedelta64(18 * 365 + 5, "D"), np.datetime64("1995-01-01")
    )
    span = np.maximum((today - 30 - since).astype(np.int64), 1)
    start = since + (rng.random(len(people)) * span).astype("timedelta64[D]")
    status = pick(rng, ("参保缴费", "暂停缴费", "终止参保"), len(people), (0.85, 0.1, 0.05))
    base = np.clip(
        np.round(np.exp(rng.normal(np.log(5600), 0.45, len(people)))), 3500, 25000
    ).astype(np.int64)
    owner = np.repeat(np.arange(len(people)), per_person)
    n = len(person)
    enrollments = Rows(
        {
            "citizen_id": Lookup(world.person_id).of(person),
            "name": Lookup(world.person_name).of(person),
            "insurance_type": np.array(INSURANCE)[slot],
            "employer_credit_code": Lookup(world.firm_code).of(employer[owner]),
            "start_date": lazy(dates_text, start[owner]),
            "status": status[owner],
            "updated_at": lazy(timestamps_text, moments_between(rng, start[owner], day0_close())),
            SHAPE: np.full(n, ""),
        }
    )
    enrollments, injected = inject_faults(
        rng,
        enrollments,
        ctx.rates,
        id_column="citizen_id",
        missing_columns=ENROLLMENT_FAULT_COLUMNS,
        spoil=_spoil_enrollments,
    )
    ledger = Ledger(
        enrollments,
        base[owner],
        np.zeros(n, dtype=np.int64),
        _clean(enrollments, injected, ENROLLMENT_FAULT_COLUMNS),
    )
    return enrollments, injected, ledger


def advance(ctx: Context) -> None:
    """One day: new enrollments, changed ones re-sent in full, new contributions."""
    world = ctx.world
    today = ctx.today
    ledger = Ledger.load(ctx.settings.systems_dir / LEDGER_FILE)
    rates = ctx.rates
    # --- enrollments: changes of clean records, then newly insured persons
    rng = ctx.rng("social.enrollments")
    n = len(ledger)
    n_insert = draw_count(rng, n, rates.daily_insert)
    n_update = draw_count(rng, n, rates.daily_update)
    updates = np.sort(rng.permutation(np.flatnonzero(ledger.clean))[:n_update])
    employers = np.flatnonzero(np.isin(world.firm_kind, ("1", "2")))
    status = ledger.rows.text("status", updates).astype(str)
    moved = rng.random(len(updates)) < 0.2
    new_status = np.where(
        moved | (status != "参保缴费"),
        "参保缴费",
        pick(rng, ("暂停缴费", "终止参保"), len(updates), (0.7, 0.3)),
    )
    ledger.rows.put("status", updates, new_status)
    new_employer = world.firm_code[employers[rng.integers(0, len(employers), len(updates))]]
    ledger.rows.put(
        "employer_credit_code",
        updates,
        np.where(
            moved, new_employer, ledger.rows.text("employer_credit_code", updates).astype(str)
        ),
    )
    ledger.rows.put(
        "updated_at", updates, timestamps_text(office_hours(rng, ctx.day, len(updates)))
    )
    changed = ledger.rows.take(updates)
    changed.set(SHAPE, np.full(len(updates), ""))

    # a ledger ID names a person of the world when it is a valid citizen ID (a spoiled
    # one names nobody); compared by body, as the text would compare
    insured = np.isin(
        world.person_id.bodies,
        ledger.rows.per_chunk("citizen_id", _valid_bodies),
    )
    working = world.adults(today, 18, 60)
    candidates = rng.permutation(working[~insured[working]])[: (n_insert + 1) // 2]
    person = np.repeat(candidates, 2)[:n_insert]
    slot = np.tile([0, 1], len(candidates))[:n_insert]
    base = np.clip(
        np.round(np.exp(rng.normal(np.log(5600), 0.45, len(person)))), 3500, 25000
    ).astype(np.int64)
    fresh = Rows(
        {
            "citizen_id": world.person_id[person],
            "name": world.person_name[person],
            "insurance_type": np.array(INSURANCE)[slot],
            "employer_credit_code": world.firm_code[
                employers[rng.integers(0, len(employers), len(person))]
            ],
            "start_date": np.full(len(person), str(today)),
            "status": np.full(len(person), "参保缴费"),
            "updated_at": timestamps_text(office_hours(rng, ctx.day, len(person))),
            SHAPE: np.full(len(person), ""),
        }
    )
    injected = Injected()
    if len(fresh):
        fresh, injected = inject_faults(
            rng,
            fresh,
            rates,
            id_column="citizen_id",
            missing_columns=ENROLLMENT_FAULT_COLUMNS,
            spoil=_spoil_enrollments,
        )
    ledger.append(
        Ledger(
            fresh,
            base,
            np.zeros(len(fresh), dtype=np.int64),
            _clean(fresh, injected, ENROLLMENT_FAULT_COLUMNS),
        )
    )
    enrollments = Rows.concat([changed, fresh])

    # --- contributions: the next month paid for some active enrollments
    rng = ctx.rng("social.contributions")
    n_paid = draw_count(rng, ctx.resource(CONTRIBUTIONS).source_rows, rates.daily_insert)
    this_month = _period_int(np.array([today.astype("datetime64[M]")]))[0]
    paying = ledger.rows.per_chunk("status", lambda status: status == "参保缴费")
    due = np.flatnonzero(paying & (ledger.last_period < this_month))
    index = np.sort(rng.permutation(due)[:n_paid])
    next_period = np.where(
        ledger.last_period[index] == 0,
        this_month,
        _period_int(_period_month(np.maximum(ledger.last_period[index], 190001)) + 1),
    )
    stamps = office_hours(rng, ctx.day, len(index))
    contributions = contributions_for(
        rng, ledger, index, next_period, np.full(len(index), today), stamps
    )
    ledger.last_period[index] = next_period
    contribution_faults = Injected()
    if len(contributions):
        contributions, contribution_faults = inject_faults(
            rng,
            contributions,
            rates,
            id_column=None,
            missing_columns=CONTRIBUTION_FAULT_COLUMNS,
            spoil=_spoil_contributions,
            duplicates=True,
            shift_duplicates=False,
        )

    # --- the drop, with the schema drift of the first day
    rng = ctx.rng("social.files")
    stamp = day_stamp(ctx.day)
    drift = ctx.day == DRIFT_DAY
    enrollment_name = f"enrollments_{stamp}.csv"
    contribution_name = f"contributions_{stamp}.csv"
    notes = None
    if drift:
        n = len(enrollments)
        notes = np.where(rng.random(n) < 0.1, pick(rng, ("补缴", "基数调整", "转入"), n), "")
    drop = write_drop(
        ctx,
        [
            CsvFile(
                enrollment_name,
                [enrollments],
                ctx.catalog.resource(ENROLLMENTS),
                _encoding(rng),
                notes=notes,
            ),
            CsvFile(
                contribution_name,
                [contributions],
                ctx.catalog.resource(CONTRIBUTIONS),
                _encoding(rng),
                renamed=drift,
            ),
        ],
    )
    if drift:
        ctx.resource(ENROLLMENTS).drift.append(
            f"day {ctx.day}: {enrollment_name} column {ADDED_COLUMN} added"
        )
        ctx.resource(CONTRIBUTIONS).drift.append(
            f"day {ctx.day}: {contribution_name} header {RENAMED_HEADER[0]} "
            f"renamed {RENAMED_HEADER[1]}"
        )
    _record(
        ctx,
        ENROLLMENTS,
        injected,
        bad=_bad_ids(fresh),
        updated=len(changed),
        lines=len(enrollments),
    )
    _record(
        ctx,
        CONTRIBUTIONS,
        contribution_faults,
        bad=_bad_ids(contributions),
        updated=0,
        lines=len(contributions),
    )
    _record_drop(ctx, drop, write_incomplete(ctx, ledger))
    ledger.save(ctx.settings.systems_dir / LEDGER_FILE)
