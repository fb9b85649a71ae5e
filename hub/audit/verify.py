"""Verification of the audit chain: every entry, every anchor, and anchors kept elsewhere.

:func:`verify_chain` streams both tables in seq order in chunks (one read-only snapshot),
so memory stays flat, and stops at the first problem:

- ``deleted``: a gap in seq, or an entry whose link and hash are both wrong (entries
  removed and the rest renumbered);
- ``inserted``: an entry that does not link to its predecessor;
- ``altered``: an entry whose content does not hash to its stored hash, or a chain that no
  longer passes through an anchor's hash (rewritten from some entry on);
- ``truncated``: the chain ends before an anchor (stored, or kept outside the hub);
- ``forged_anchor``: an anchor not signed by a key of the key set;
- ``missing_anchor``: a gap in the anchors' numbers, an anchor whose ``prev_anchor`` is not
  the digest of the one before it, or (with ``max_gap_s``) entries left unanchored longer
  than the writer ever leaves them: anchors were deleted.

What no check inside the database can see: the tail cut *together with* the newest
anchors. An anchor exported outside the hub (``hub audit anchor --export``, which the
``maintenance`` DAG does daily) closes that gap: ``anchors`` are checked too.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hub.audit.entries import (
    ANCHOR_EXPORTED,
    ANCHOR_V1,
    GENESIS_HASH,
    Anchor,
    AuditRecord,
    entry_hash,
    iso,
)
from hub.audit.writer import AuditError
from hub.signing import Signer, Verifier, verifiers_by_id
from hub.storage.interface import open_audit_store


@dataclass(frozen=True)
class ChainProblem:
    """The first thing wrong with the log."""

    kind: str  # deleted | inserted | altered | truncated | forged_anchor | missing_anchor
    seq: int
    message: str
    entry: dict[str, Any] | None = None


@dataclass(frozen=True)
class ChainReport:
    """What :func:`verify_chain` found."""

    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    anchors: int
    last_anchor_seq: int | None
    unanchored: int  # entries after the newest anchor: a cut there would not be seen
    signatures_checked: bool
    problem: ChainProblem | None = None
    restarts: int = 0  # late anchors made by a writer starting (after a crash): not proof
    exported_anchors: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def verify_chain(
    url: str | Path,
    public_keys: Mapping[str, Any] | Iterable[Any] | None = None,
    *,
    anchors: Sequence[Anchor] = (),
    chunk_rows: int = 10_000,
    max_gap_s: float | None = None,
    now: datetime | None = None,
) -> ChainReport:
    """Walk the whole log in seq order and report the first problem (see the module
    docstring). ``public_keys``: a JWKS dict or keys (None: signatures not checked).
    ``anchors``: anchors kept outside the database. ``max_gap_s``: the longest an entry
    may stay unanchored (the writer's ``anchor_every_s`` plus slack; None: not checked).
    """
    keys = None if public_keys is None else verifiers_by_id(public_keys)
    try:
        store = open_audit_store(url, create=False)
    except FileNotFoundError as exc:
        raise AuditError(f"no audit log at {exc.filename}") from exc
    records: Iterator[AuditRecord] | None = None
    stored: Iterator[Anchor] | None = None
    try:
        store.snapshot()
        records = store.iter_records(chunk_rows)
        stored = store.iter_anchors(chunk_rows)
        extra = sorted(anchors, key=lambda a: a.seq)
        walk = _Walk(keys, max_gap_s, now or datetime.now(UTC))
        return walk.run(records, heapq.merge(stored, extra, key=lambda a: a.seq))
    finally:
        try:
            for stream in (records, stored):
                if isinstance(stream, Generator):
                    stream.close()  # server-side cursors first, then the transaction
            store.rollback()
        finally:
            store.close()


class _Walk:
    def __init__(
        self, keys: Mapping[str, Verifier] | None, max_gap_s: float | None, now: datetime
    ) -> None:
        self.keys, self.now = keys, now
        self.max_gap = timedelta(seconds=max_gap_s) if max_gap_s is not None else None
        self.count = self.anchor_count = self.exported = self.restarts = 0
        self.last_anchor: int | None = None
        self.prev_seq, self.prev_hash = 0, GENESIS_HASH
        self.last_numbered: Anchor | None = None
        # the oldest entry not yet covered by an anchor: (seq, at)
        self.uncovered: tuple[int, datetime] | None = None

    def report(self, problem: ChainProblem | None) -> ChainReport:
        return ChainReport(
            ok=problem is None,
            entries=self.count,
            head_seq=self.prev_seq,
            head_hash=self.prev_hash,
            anchors=self.anchor_count,
            last_anchor_seq=self.last_anchor,
            unanchored=self.prev_seq - (self.last_anchor or 0),
            signatures_checked=self.keys is not None,
            problem=problem,
            restarts=self.restarts,
            exported_anchors=self.exported,
        )

    def check_anchor(self, anchor: Anchor) -> ChainProblem | None:
        """Signature, numbering and chaining of one anchor."""
        if self.keys is not None and not anchor.signature_valid(self.keys):
            return ChainProblem(
                "forged_anchor",
                anchor.seq,
                f"anchor at seq {anchor.seq} ({iso(anchor.anchored_at)}) is not signed by a "
                f"known key (key_id {anchor.key_id})",
            )
        if anchor.format in {ANCHOR_V1, ANCHOR_EXPORTED}:
            if anchor.format == ANCHOR_EXPORTED:
                self.exported += 1
            else:
                self.last_numbered = anchor
            return None
        expected = (self.last_numbered.anchor_no or 0) + 1 if self.last_numbered else 1
        previous = self.last_numbered.digest() if self.last_numbered else None
        if anchor.anchor_no != expected or anchor.prev_anchor != previous:
            what = (
                f"anchor {expected} is missing (the next is {anchor.anchor_no})"
                if anchor.anchor_no != expected
                else f"anchor {anchor.anchor_no} does not chain to the anchor before it"
            )
            return ChainProblem(
                "missing_anchor",
                anchor.seq,
                f"{what}: anchors were deleted or replaced (at seq {anchor.seq}, "
                f"{iso(anchor.anchored_at)})",
            )
        self.last_numbered = anchor
        return None

    def covered(self, anchor: Anchor) -> ChainProblem | None:
        """Entries waiting for an anchor are covered by ``anchor``: was it late?"""
        if self.uncovered is None or anchor.format == ANCHOR_EXPORTED:
            return None
        first_seq, first_at = self.uncovered
        self.uncovered = None
        if self.max_gap is None or anchor.anchored_at <= first_at + self.max_gap:
            return None
        if anchor.reason == "start":
            self.restarts += 1  # a writer that stopped without anchoring (a crash)
            return None
        return ChainProblem(
            "missing_anchor",
            first_seq,
            f"entries from seq {first_seq} ({iso(first_at)}) were first anchored at "
            f"{iso(anchor.anchored_at)}, more than {self.max_gap.total_seconds():.0f} s "
            "later: the anchors between were deleted",
        )

    def run(self, records: Iterator[AuditRecord], anchors: Iterator[Anchor]) -> ChainReport:
        before_prev_hash: str | None = None
        pending = next(anchors, None)
        deferred: ChainProblem | None = None
        for record in records:
            self.count += 1
            expected = self.prev_seq + 1
            own_ok = (
                entry_hash(record.seq, record.entry, record.prev_hash, record.format)
                == record.entry_hash
            )
            problem = _entry_problem(record, expected, self.prev_seq, self.prev_hash,
                                     before_prev_hash, own_ok)  # fmt: skip
            if deferred is not None:
                # an anchor mismatch at the previous entry: if this entry shows it was
                # spliced in (or its predecessors deleted), say that; else: rewritten
                return self.report(
                    problem if problem is not None and problem.kind != "altered" else deferred
                )
            if problem is not None:
                return self.report(problem)
            before_prev_hash, self.prev_seq, self.prev_hash = (
                self.prev_hash, record.seq, record.entry_hash,
            )  # fmt: skip
            if self.uncovered is None:
                self.uncovered = (record.seq, record.entry.at)
            while pending is not None and pending.seq <= record.seq:
                self.anchor_count += 1
                problem = self.check_anchor(pending)
                if problem is None and pending.entry_hash != record.entry_hash:
                    deferred = ChainProblem(
                        "altered",
                        record.seq,
                        f"the chain was rewritten: the anchor of {iso(pending.anchored_at)} "
                        f"signed hash {pending.entry_hash[:16]}… for entry {pending.seq}, the "
                        f"log now has {record.entry_hash[:16]}…",
                        record.as_dict(),
                    )
                if problem is None and deferred is None:
                    problem = self.covered(pending)
                if problem is not None:
                    return self.report(problem)
                if deferred is not None:
                    break
                if pending.format != ANCHOR_EXPORTED:
                    self.last_anchor = pending.seq
                pending = next(anchors, None)
        if deferred is not None:
            return self.report(deferred)
        if pending is not None:
            self.anchor_count += 1
            problem = self.check_anchor(pending)
            if problem is None:
                problem = ChainProblem(
                    "truncated",
                    self.prev_seq + 1,
                    f"the log ends at seq {self.prev_seq} but an anchor of "
                    f"{iso(pending.anchored_at)} shows it reached seq {pending.seq}: entries "
                    f"{self.prev_seq + 1}..{pending.seq} (at least) were cut off",
                )
            return self.report(problem)
        if self.uncovered is not None and self.max_gap is not None:
            first_seq, first_at = self.uncovered
            if first_at + self.max_gap < self.now:
                return self.report(
                    ChainProblem(
                        "missing_anchor",
                        first_seq,
                        f"entries from seq {first_seq} ({iso(first_at)}) on were never "
                        "anchored: the newest anchors were deleted, or the writer stopped "
                        "without anchoring (restart the API: it anchors the head it finds)",
                    )
                )
        return self.report(None)


def _entry_problem(
    record: AuditRecord,
    expected: int,
    prev_seq: int,
    prev_hash: str,
    before_prev_hash: str | None,
    own_ok: bool,
) -> ChainProblem | None:
    if record.seq != expected:
        missing = f"{expected}" if record.seq == expected + 1 else f"{expected}..{record.seq - 1}"
        return ChainProblem(
            "deleted",
            expected,
            f"entries {missing} are missing (seq jumps from {prev_seq} to {record.seq})",
            record.as_dict(),
        )
    if record.prev_hash != prev_hash:
        if before_prev_hash is not None and record.prev_hash == before_prev_hash:
            return ChainProblem(
                "inserted",
                prev_seq,
                f"entry {prev_seq} was inserted: entry {record.seq} links to entry "
                f"{prev_seq - 1}, not to it",
                record.as_dict(),
            )
        if own_ok:
            return ChainProblem(
                "inserted",
                record.seq,
                f"entry {record.seq} does not link to entry {prev_seq} (prev_hash "
                f"{record.prev_hash[:16]}…, entry {prev_seq} has {prev_hash[:16]}…): a forged "
                f"entry, or entry {prev_seq} rewritten with a recomputed hash",
                record.as_dict(),
            )
        return ChainProblem(
            "deleted",
            record.seq,
            f"entry {record.seq} neither links to entry {prev_seq} nor matches its own "
            "hash: entries before it were deleted and the rest renumbered",
            record.as_dict(),
        )
    if not own_ok:
        return ChainProblem(
            "altered",
            record.seq,
            f"entry {record.seq} was altered: its content does not hash to its entry_hash",
            record.as_dict(),
        )
    return None


def current_anchor(url: str | Path, key: Signer) -> Anchor | None:
    """A fresh signed (unnumbered) anchor of the log's head, to keep outside the hub."""
    store = open_audit_store(url)
    try:
        store.ensure_schema()
        seq, head_hash = store.lock_head()
        store.rollback()
    finally:
        store.close()
    if seq == 0:
        return None
    return Anchor.sign(seq, head_hash, key, datetime.now(UTC), reason="export")


def export_anchor(url: str | Path, key: Signer, folder: Path) -> Path | None:
    """Write a fresh anchor to ``folder`` (one file per export, never overwritten)."""
    anchor = current_anchor(url, key)
    if anchor is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    stamp = anchor.anchored_at.strftime("%Y%m%dT%H%M%S%fZ")
    path = folder / f"anchor-{stamp}-seq{anchor.seq}.json"
    scratch = path.with_suffix(".partial")
    scratch.write_text(json.dumps(anchor.as_dict(), ensure_ascii=False, indent=2) + "\n")
    scratch.replace(path)
    return path


def exported_anchors(folder: Path) -> list[Anchor]:
    """Every anchor exported to ``folder``; raises ValueError naming a bad file."""
    found = []
    for path in sorted(folder.glob("anchor-*.json")) if folder.is_dir() else []:
        try:
            found.append(Anchor.from_dict(json.loads(path.read_text(encoding="utf-8"))))
        except (ValueError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not an anchor ({exc})") from exc
    return found
