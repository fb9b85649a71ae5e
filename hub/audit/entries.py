"""What the audit chain stores and how each entry and anchor is hashed and signed.

**Entries.** One :class:`AuditEntry` per API request. Stored with ``seq`` (1, 2, 3 ... with
no gaps), ``prev_hash`` (the previous entry's hash; 64 zeros for seq 1), ``entry_hash``
and ``format``, the tag of the canonical encoding it was hashed in.

**The hash.** ``entry_hash = H(canonical_entry(seq, entry, prev_hash, format))`` where H is
SHA-256 (SM3 for the ``+sm3`` formats of the ``gm`` profile) and the canonical encoding is
the UTF-8 of a compact JSON *array* in a fixed order. Format ``exchange-hub/audit/v2``::

    [format, seq, request_id, at, caller_kind, application, end_user, purpose, scenario,
     resource, grant_id, version, action, fields, row_count, result_sha256, status,
     prev_hash]

(``exchange-hub/audit/v1``, written before grants were named, lacks ``caller_kind`` and
``grant_id``; entries of that format still verify.) ``json.dumps(..., ensure_ascii=False,
separators=(",", ":"))``; ``at`` is ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC); ``fields`` a JSON
array of strings; absent values ``null``. JSON quoting makes it unambiguous, the fixed
order and the leading tag make the byte string unique, and any language can recompute it.

**Anchors.** A signed statement "the log reached ``seq`` with hash ``entry_hash`` at
``anchored_at``". Anchors are numbered (``anchor_no`` 1, 2, 3 ... with no gaps) and
chained: each signs the digest of the anchor before it (``prev_anchor``), so deleting an
anchor leaves a gap that cannot be closed without the signing key, which lives in the
secrets (``HUB_SECRET_AUDIT_KEY``), never in the database. Anchors kept outside the hub
(``hub audit anchor --export``) carry no number: they are checked against the chain.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from hub.signing import Profile, Signer, Verifier, canonical_json, digest

FORMAT_V1 = "exchange-hub/audit/v1"
FORMAT_V2 = "exchange-hub/audit/v2"
FORMAT_V2_SM3 = "exchange-hub/audit/v2+sm3"
ANCHOR_V1 = "exchange-hub/audit-anchor/v1"
ANCHOR_V2 = "exchange-hub/audit-anchor/v2"
ANCHOR_EXPORTED = "exchange-hub/audit-anchor/exported"
GENESIS_HASH = "0" * 64


def entry_format(profile: Profile) -> str:
    return FORMAT_V2_SM3 if profile is Profile.gm else FORMAT_V2


def _hash_profile(fmt: str) -> Profile:
    return Profile.gm if fmt.endswith("+sm3") else Profile.standard


def utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"AuditEntry.at: naive datetime {moment!r}; pass a UTC-aware time")
    return moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    """One API request as the auditor sees it.

    ``at`` must be timezone-aware (kept in UTC, microseconds); ``application`` is the
    caller's code (an application, or a department for ``caller_kind`` department);
    ``grant_id`` the one grant the request was served under; ``fields`` the fields
    returned; ``result_sha256`` the hex SHA-256 of the response body (None when none);
    ``status`` the HTTP status; ``action`` names the call (``lookup``, ``verify:...``,
    ``export:...``, ``demand:approve`` ...) and ``version`` the published version read.
    """

    request_id: str
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    caller_kind: str | None = None
    application: str | None = None
    end_user: str | None = None
    purpose: str | None = None
    scenario: str | None = None
    resource: str | None = None
    grant_id: str | None = None
    version: int | None = None
    action: str | None = None
    fields: Sequence[str] = ()  # kept as a tuple
    row_count: int = 0
    result_sha256: str | None = None
    status: int = 200

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", utc(self.at))
        object.__setattr__(self, "fields", tuple(_text(str(f)) for f in self.fields))
        for name in ("request_id", "caller_kind", "application", "end_user", "purpose",
                     "scenario", "resource", "grant_id", "action"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, str) and "\x00" in value:
                object.__setattr__(self, name, _text(value))


def _text(value: str) -> str:
    """What a caller sent, storable: a NUL (which PostgreSQL text refuses) becomes U+FFFD."""
    return value.replace("\x00", "\ufffd")


def canonical_entry(seq: int, entry: AuditEntry, prev_hash: str, fmt: str = FORMAT_V2) -> bytes:
    """The bytes ``entry_hash`` is the digest of (see the module docstring)."""
    head: list[Any] = [fmt, seq, entry.request_id, iso(entry.at)]
    if fmt == FORMAT_V1:
        body: list[Any] = [
            entry.application, entry.end_user, entry.purpose, entry.scenario, entry.resource,
            entry.version, entry.action,
        ]  # fmt: skip
    elif fmt in {FORMAT_V2, FORMAT_V2_SM3}:
        body = [
            entry.caller_kind, entry.application, entry.end_user, entry.purpose,
            entry.scenario, entry.resource, entry.grant_id, entry.version, entry.action,
        ]  # fmt: skip
    else:
        raise ValueError(f"unknown audit entry format {fmt!r}")
    tail = [list(entry.fields), entry.row_count, entry.result_sha256, entry.status, prev_hash]
    return json.dumps(head + body + tail, ensure_ascii=False, separators=(",", ":")).encode()


def entry_hash(seq: int, entry: AuditEntry, prev_hash: str, fmt: str = FORMAT_V2) -> str:
    """Hex digest of :func:`canonical_entry` (SHA-256, or SM3 for ``+sm3`` formats)."""
    return digest(_hash_profile(fmt), canonical_entry(seq, entry, prev_hash, fmt))


@dataclass(frozen=True)
class AuditReceipt:
    """What :meth:`AuditLog.append` returns once the entry is committed."""

    seq: int
    entry_hash: str


@dataclass(frozen=True)
class AuditRecord:
    """A stored entry with its place in the chain."""

    seq: int
    entry: AuditEntry
    prev_hash: str
    entry_hash: str
    format: str = FORMAT_V2

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self.entry)
        data["at"] = iso(self.entry.at)
        data["fields"] = list(self.entry.fields)
        return {"seq": self.seq, **data, "prev_hash": self.prev_hash,
                "entry_hash": self.entry_hash, "format": self.format}  # fmt: skip


@dataclass(frozen=True)
class Anchor:
    """A signed statement "the log reached ``seq`` with hash ``entry_hash`` at
    ``anchored_at``". Numbered anchors (``anchor_no``) are chained by ``prev_anchor``;
    an exported anchor (``anchor_no`` None, format exported) stands alone."""

    seq: int
    entry_hash: str
    anchored_at: datetime
    key_id: str
    signature: str  # standard base64 of the signature of :meth:`message`
    anchor_no: int | None = None
    prev_anchor: str | None = None
    reason: str = "batch"  # batch | idle | start | close | export
    format: str = ANCHOR_V2
    algorithm: str = "EdDSA"

    def message(self) -> bytes:
        if self.format == ANCHOR_V1:
            return canonical_json(
                {"format": ANCHOR_V1, "seq": self.seq, "entry_hash": self.entry_hash,
                 "anchored_at": iso(self.anchored_at), "key_id": self.key_id,
                 "algorithm": "Ed25519"}
            )  # fmt: skip
        return canonical_json(
            {"format": self.format, "anchor_no": self.anchor_no, "prev_anchor": self.prev_anchor,
             "seq": self.seq, "entry_hash": self.entry_hash,
             "anchored_at": iso(self.anchored_at), "key_id": self.key_id,
             "algorithm": self.algorithm, "reason": self.reason}
        )  # fmt: skip

    def digest(self) -> str:
        """What the next anchor's ``prev_anchor`` holds: the hash of this one, signed."""
        profile = Profile.gm if self.algorithm == "SM2SM3" else Profile.standard
        return digest(profile, self.message() + b"." + self.signature.encode("ascii"))

    @classmethod
    def sign(
        cls,
        seq: int,
        head_hash: str,
        key: Signer,
        at: datetime,
        *,
        anchor_no: int | None = None,
        prev_anchor: str | None = None,
        reason: str = "batch",
    ) -> Anchor:
        fmt = ANCHOR_EXPORTED if anchor_no is None else ANCHOR_V2
        unsigned = cls(seq, head_hash, utc(at), key.key_id, "", anchor_no, prev_anchor,
                       reason, fmt, key.alg)  # fmt: skip
        signature = base64.b64encode(key.sign(unsigned.message())).decode("ascii")
        return cls(seq, head_hash, unsigned.anchored_at, key.key_id, signature, anchor_no,
                   prev_anchor, reason, fmt, key.alg)  # fmt: skip

    def signature_valid(self, public_keys: Mapping[str, Verifier]) -> bool:
        import binascii

        public = public_keys.get(self.key_id)
        if public is None:
            return False
        if self.format != ANCHOR_V1 and public.alg != self.algorithm:
            return False
        try:
            raw = base64.b64decode(self.signature, validate=True)
        except (binascii.Error, ValueError):
            return False
        return public.verify(raw, self.message())

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "anchor_no": self.anchor_no,
            "prev_anchor": self.prev_anchor,
            "seq": self.seq,
            "entry_hash": self.entry_hash,
            "anchored_at": iso(self.anchored_at),
            "key_id": self.key_id,
            "algorithm": self.algorithm,
            "reason": self.reason,
            "signature": self.signature,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Anchor:
        """Read :meth:`as_dict`'s form (``hub audit anchor`` output). Raises ValueError."""
        try:
            number = data.get("anchor_no")
            return cls(
                int(data["seq"]),
                str(data["entry_hash"]),
                parse_iso(str(data["anchored_at"])),
                str(data["key_id"]),
                str(data["signature"]),
                int(number) if number is not None else None,
                data.get("prev_anchor"),
                str(data.get("reason", "export")),
                str(data.get("format", ANCHOR_V1)),
                str(data.get("algorithm", "EdDSA")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"anchor: expected seq, entry_hash, anchored_at, key_id, signature ({exc})"
            ) from exc


# ------------------------------------------------------------------ stored rows
# The columns of ops.audit_log and ops.audit_anchor, and an entry or anchor as a row of them:
# the same for every audit store (hub.storage.postgres, hub.storage.sqlite).

COLUMNS = (
    "seq", "request_id", "at", "caller_kind", "application", "end_user", "purpose",
    "scenario", "resource", "grant_id", "version", "action", "fields", "row_count",
    "result_sha256", "status", "prev_hash", "entry_hash", "format",
)  # fmt: skip
ANCHOR_COLUMNS = (
    "seq", "entry_hash", "anchored_at", "key_id", "signature", "anchor_no", "prev_anchor",
    "reason", "format", "algorithm",
)  # fmt: skip


def stored_record(values: dict[str, Any], at: datetime, fields: Sequence[str]) -> AuditRecord:
    """The record of a row of ``COLUMNS`` (``values`` by name), its time and fields read."""
    entry = AuditEntry(
        request_id=values["request_id"],
        at=at,
        caller_kind=values["caller_kind"],
        application=values["application"],
        end_user=values["end_user"],
        purpose=values["purpose"],
        scenario=values["scenario"],
        resource=values["resource"],
        grant_id=values["grant_id"],
        version=values["version"],
        action=values["action"],
        fields=tuple(fields),
        row_count=values["row_count"],
        result_sha256=values["result_sha256"],
        status=values["status"],
    )
    return AuditRecord(
        seq=values["seq"],
        entry=entry,
        prev_hash=values["prev_hash"],
        entry_hash=values["entry_hash"],
        format=values["format"] or FORMAT_V1,
    )


def record_row(record: AuditRecord) -> list[Any]:
    """``record`` as the values of ``COLUMNS``."""
    e = record.entry
    return [
        record.seq, e.request_id, e.at, e.caller_kind, e.application, e.end_user, e.purpose,
        e.scenario, e.resource, e.grant_id, e.version, e.action, list(e.fields), e.row_count,
        e.result_sha256, e.status, record.prev_hash, record.entry_hash, record.format,
    ]  # fmt: skip


def stored_anchor(values: Sequence[Any], at: datetime) -> Anchor:
    """The anchor of a row of ``ANCHOR_COLUMNS``, its time read."""
    seq, entry_hash_, _at, key_id, signature, number, prev, reason, fmt, algorithm = values
    return Anchor(
        int(seq), entry_hash_, at, key_id, signature,
        int(number) if number is not None else None, prev, reason or "batch", fmt, algorithm,
    )  # fmt: skip


def anchor_row(anchor: Anchor) -> list[Any]:
    """``anchor`` as the values of ``ANCHOR_COLUMNS``."""
    return [
        anchor.seq, anchor.entry_hash, anchor.anchored_at, anchor.key_id, anchor.signature,
        anchor.anchor_no, anchor.prev_anchor, anchor.reason, anchor.format, anchor.algorithm,
    ]  # fmt: skip
