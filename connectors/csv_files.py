"""CSV files read in bounded Arrow batches with exact line numbers (the SFTP drops; any
connector that lands CSV files). pyarrow splits the rows, ``connectors.base``'s
``parse_text_columns`` types the values, and every rejected row is quarantined with the
physical line where it starts."""

from __future__ import annotations

import csv
import io
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from connectors.base import ConnectorError, QuarantinedRow, parse_text_columns
from hub.catalog.models import Resource, ResourceField

# pyarrow reads several blocks ahead: small blocks keep that read-ahead to a few MiB
CSV_BLOCK_BYTES = 1 << 20


@dataclass
class _InvalidRow:
    record: int  # CSV record number, header = 1 (pyarrow's numbering)
    text: str
    columns: int


class CsvDropFile:
    """One downloaded CSV file read in bounded batches with exact line numbers.

    pyarrow parses (all columns as text), ``parse_text_columns`` types the values. Rows
    with the wrong number of columns and values that do not parse go to ``quarantined``
    with the 1-based physical line where the row starts (header = line 1; a quoted value
    spanning lines is accounted for). Blank lines are skipped.
    """

    def __init__(
        self,
        local: Path,
        *,
        origin: str,
        encoding: str,
        resource: Resource,
        batch_rows: int,
    ) -> None:
        self.local = local
        self.origin = origin
        self.encoding = encoding
        self.resource = resource
        self.batch_rows = batch_rows
        self.quarantined: list[QuarantinedRow] = []
        self.notes: list[str] = []
        self.rows_read = 0
        self.blank_rows = 0
        self._invalid: deque[_InvalidRow] = deque()
        self._next_record = 2  # the header is record 1
        self._extra_lines = 0  # line breaks inside quoted values seen so far
        self._quoted = True  # whether values may span lines (decided when reading)

    # ------------------------------------------------------------ header

    def _header(self) -> list[str]:
        with self.local.open("rb") as raw:
            first = raw.readline(1 << 20)
        if not first.strip():
            raise ConnectorError(f"{self.origin}: line 1: expected a header row, found none")
        codec = "utf-8-sig" if self.encoding == "utf-8" else self.encoding
        try:
            text = first.decode(codec).rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise ConnectorError(
                f"{self.origin}: line 1: the header is not valid {self.encoding} ({exc.reason})"
            ) from exc
        return [name.strip() for name in next(csv.reader([text]))]

    def _map_columns(self, header: list[str]) -> dict[str, int]:
        """Field name -> column index. Raises ConnectorError for a missing required column."""
        first_at: dict[str, int] = {}
        for index, name in enumerate(header):
            if name in first_at:
                self.notes.append(
                    f"{self.origin}: column {name!r} appears twice; the first one is used"
                )
                continue
            first_at[name] = index
        mapping: dict[str, int] = {}
        missing: list[ResourceField] = []
        for spec in self.resource.fields:
            names = spec.source_names
            found = next((n for n in names if n in first_at), None)
            if found is None:
                if _required(self.resource, spec):
                    missing.append(spec)
                else:
                    self.notes.append(
                        f"{self.origin}: column {names[0]!r} ({spec.name}) is missing: left empty"
                    )
                continue
            mapping[spec.name] = first_at[found]
            if found != names[0]:
                self.notes.append(
                    f"{self.origin}: column {found!r} read as {names[0]!r} ({spec.name}); "
                    "renamed in the source"
                )
        if missing:
            wanted = ", ".join(f"{s.source_names[0]!r} ({s.name})" for s in missing)
            raise ConnectorError(
                f"{self.origin}: line 1: required column {wanted} missing; "
                f"the header has {', '.join(header)}"
            )
        used = set(mapping.values())
        extra = [name for i, name in enumerate(header) if i not in used and first_at[name] == i]
        if extra:
            self.notes.append(
                f"{self.origin}: unknown column(s) {', '.join(map(repr, extra))} ignored"
            )
        return mapping

    # ------------------------------------------------------------ rows

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Typed batches of at most ``batch_rows`` rows. Raises ConnectorError."""
        header = self._header()
        mapping = self._map_columns(header)
        self._quoted = self._has_quotes()
        names = [f"c{i}" for i in range(len(header))]

        def on_invalid(row: Any) -> str:
            self._invalid.append(_InvalidRow(int(row.number or 0), row.text, row.actual_columns))
            return "skip"

        try:
            reader = pacsv.open_csv(
                self.local,
                read_options=pacsv.ReadOptions(
                    # single-threaded parsing keeps row numbers in invalid-row reports
                    use_threads=False,
                    block_size=CSV_BLOCK_BYTES,
                    skip_rows=1,
                    column_names=names,
                    encoding="utf8" if self.encoding == "utf-8" else self.encoding,
                ),
                parse_options=pacsv.ParseOptions(
                    newlines_in_values=True,
                    # blank lines must stay rows, or line numbers after them would drift
                    ignore_empty_lines=False,
                    invalid_row_handler=on_invalid,
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types=dict.fromkeys(names, pa.string()),
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
            pending: list[pa.RecordBatch] = []
            pending_lines: list[npt.NDArray[np.int64]] = []
            pending_rows = 0
            for block in reader:
                rows, lines = self._numbered(block, len(header))
                if rows.num_rows == 0:
                    continue
                pending.append(rows)
                pending_lines.append(lines)
                pending_rows += rows.num_rows
                if pending_rows < self.batch_rows:
                    continue
                # small blocks keep pyarrow's read-ahead small; batches are built from them
                joined = pa.concat_batches(pending)
                joined_lines = np.concatenate(pending_lines)
                whole = pending_rows - pending_rows % self.batch_rows
                for start in range(0, whole, self.batch_rows):
                    yield from self._typed(
                        joined.slice(start, self.batch_rows),
                        joined_lines[start : start + self.batch_rows],
                        mapping,
                    )
                pending = [joined.slice(whole)] if whole < pending_rows else []
                pending_lines = [joined_lines[whole:]] if whole < pending_rows else []
                pending_rows -= whole
            if pending:
                yield from self._typed(
                    pa.concat_batches(pending), np.concatenate(pending_lines), mapping
                )
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            raise ConnectorError(
                f"{self.origin}: cannot be read as {self.encoding} CSV: {exc}"
            ) from exc
        self._flush_invalid(len(header))
        if self.blank_rows:
            self.notes.append(f"{self.origin}: {self.blank_rows} blank line(s) skipped")

    def _numbered(
        self, block: pa.RecordBatch, width: int
    ) -> tuple[pa.RecordBatch, npt.NDArray[np.int64]]:
        """The block without blank lines, and the line number of each of its rows."""
        lines = self._place(block, width)
        blank = _blank_rows(block)
        if blank is not None:
            self.blank_rows += int(pc.sum(blank).as_py() or 0)
            keep = pc.invert(blank)
            block = block.filter(keep)
            lines = lines[np.asarray(keep, dtype=bool)]
        self.rows_read += block.num_rows
        return block, lines

    def _typed(
        self, rows: pa.RecordBatch, lines: npt.NDArray[np.int64], mapping: dict[str, int]
    ) -> Iterator[pa.RecordBatch]:
        parsed = parse_text_columns(
            self.resource,
            {name: rows.column(index) for name, index in mapping.items()},
            origin=self.origin,
            num_rows=rows.num_rows,
            locate=lambda i: (int(lines[i]), _csv_text(rows, i)),
        )
        self.quarantined.extend(parsed.quarantined)
        if parsed.batch.num_rows:
            yield parsed.batch

    def _has_quotes(self) -> bool:
        """Whether the file has a quote at all: only a quoted value can span lines.

        A quote byte is never part of a multi-byte character in UTF-8 or GB18030.
        """
        with self.local.open("rb") as raw:
            while chunk := raw.read(1 << 20):
                if b'"' in chunk:
                    return True
        return False

    def _place(self, block: pa.RecordBatch, width: int) -> npt.NDArray[np.int64]:
        """The physical line of each row of ``block``; quarantines the invalid rows that
        fell between them (pyarrow skips those and reports them by record number)."""
        start = self._next_record
        end = start + block.num_rows
        skipped: list[_InvalidRow] = []
        while self._invalid and self._invalid[0].record < end:
            skipped.append(self._invalid.popleft())
            end += 1
        span = end - start
        is_invalid = np.zeros(span, dtype=bool)
        breaks = np.zeros(span, dtype=np.int64)
        valid_breaks = _line_breaks(block) if self._quoted else 0
        for row in skipped:
            is_invalid[row.record - start] = True
        breaks[~is_invalid] = valid_breaks
        for row in skipped:
            breaks[row.record - start] = row.text.count("\n")
        # a row starts after every line break of the rows before it
        before = self._extra_lines + np.cumsum(breaks) - breaks
        physical: npt.NDArray[np.int64] = np.arange(start, end, dtype=np.int64) + before
        for row in skipped:
            self._quarantine_width(row, int(physical[row.record - start]), width)
        self._extra_lines += int(breaks.sum())
        self._next_record = end
        return physical[~is_invalid]

    def _flush_invalid(self, width: int) -> None:
        """Invalid rows after the last valid one."""
        while self._invalid:
            row = self._invalid.popleft()
            self._quarantine_width(row, row.record + self._extra_lines, width)
            self._extra_lines += row.text.count("\n")
            self._next_record = row.record + 1

    def _quarantine_width(self, row: _InvalidRow, line: int, width: int) -> None:
        self.rows_read += 1
        self.quarantined.append(
            QuarantinedRow(
                self.origin, line, f"expected {width} columns, got {row.columns}", row.text
            )
        )


def _required(resource: Resource, spec: ResourceField) -> bool:
    """A column the file must have: a key, or a field the catalog says is never empty."""
    return not spec.nullable or spec.name in resource.primary_key


def _blank_rows(block: pa.RecordBatch) -> pa.Array | None:
    """Mask of rows whose every value is empty (blank lines), or None when there are none."""
    if block.num_rows == 0 or block.num_columns == 0:
        return None
    blank = pc.equal(pc.utf8_length(block.column(0)), 0)
    if not pc.any(blank).as_py():  # the usual case, decided by one column
        return None
    for column in block.columns[1:]:
        blank = pc.and_(blank, pc.equal(pc.utf8_length(column), 0))
    return blank if pc.any(blank).as_py() else None


def _line_breaks(block: pa.RecordBatch) -> npt.NDArray[np.int64]:
    """Line breaks inside each row's quoted values (0 for nearly every row)."""
    total = np.zeros(block.num_rows, dtype=np.int64)
    for column in block.columns:
        counts = pc.count_substring(column, "\n")
        if pc.max(counts).as_py():
            total += np.asarray(counts.fill_null(0), dtype=np.int64)
    return total


def _csv_text(block: pa.RecordBatch, index: int) -> str:
    """The source text of one row, rebuilt for the quarantine file."""
    text = io.StringIO()
    csv.writer(text, lineterminator="").writerow([c[index].as_py() for c in block.columns])
    return text.getvalue()


__all__ = ["CsvDropFile"]
