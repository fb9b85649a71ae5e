"""The audit log: every API request appended to a hash chain, anchored, append-only.

- :mod:`hub.audit.entries`: what an entry and an anchor are, and their exact encodings;
- the stores, in :mod:`hub.storage` (:class:`hub.storage.interface.AuditStore`):
  PostgreSQL (``ops.audit_log`` in the warehouse) and the SQLite file beside the embedded
  warehouse; triggers refuse UPDATE and DELETE, and on PostgreSQL the API appends as a
  role that may only insert (``hub audit writer-role``);
- :mod:`hub.audit.writer`: group commit, durable (``synchronous_commit = on``; SQLite
  ``synchronous=FULL``), several processes appending to one chain, numbered and chained
  anchors signed with the audit key;
- :mod:`hub.audit.verify`: the verifier and the anchors kept outside the hub.

The audit key (``HUB_SECRET_AUDIT_KEY``) signs anchors. It lives in the secrets, never in
the database and never in the state directory outside the demo profile.
"""

from __future__ import annotations

from pathlib import Path

from hub.audit.entries import (
    FORMAT_V1,
    FORMAT_V2,
    GENESIS_HASH,
    Anchor,
    AuditEntry,
    AuditReceipt,
    AuditRecord,
    canonical_entry,
    entry_format,
    entry_hash,
)
from hub.audit.verify import (
    ChainProblem,
    ChainReport,
    current_anchor,
    export_anchor,
    exported_anchors,
    verify_chain,
)
from hub.audit.writer import AuditError, AuditLog
from hub.settings import Settings, SettingsError
from hub.signing import Profile, SignatureError, Signer, generate_signer, signer_from_secret
from hub.storage.interface import default_audit_url

AUDIT_KEY = "audit_key"


def audit_url(settings: Settings) -> str:
    """Where the audit log lives: ``HUB_AUDIT_URL`` if set; else the PostgreSQL warehouse;
    else ``HUB_HOME/ops/audit.sqlite``."""
    if settings.audit_url:
        return settings.audit_url
    return default_audit_url(settings)


def writer_role_sql(role: str) -> list[str]:
    """Statements that let ``role`` read and append to the audit chain and nothing more
    (PostgreSQL; hub.storage.postgres). Raises ValueError for a role that is not a plain name."""
    from hub.storage.postgres import writer_role_sql as statements

    return statements(role)


def load_anchor_signer(settings: Settings) -> Signer:
    """The key that signs the chain's anchors (``HUB_SECRET_AUDIT_KEY``; generated under
    HUB_HOME only under the demo profile). Raises SettingsError."""
    from hub.keyring import secret_text

    profile = Profile(settings.crypto_profile)
    text = secret_text(settings, AUDIT_KEY, lambda: generate_signer(profile).to_secret())
    try:
        return signer_from_secret(profile, text, "HUB_SECRET_AUDIT_KEY")
    except SignatureError as exc:
        raise SettingsError(str(exc)) from exc


def open_log(settings: Settings) -> AuditLog:
    """The writer for ``settings`` (not started)."""
    return AuditLog(
        audit_url(settings),
        load_anchor_signer(settings),
        anchor_every_s=settings.audit_anchor_every_s,
        entry_format=entry_format(Profile(settings.crypto_profile)),
    )


def anchor_dir(settings: Settings) -> Path:
    """Where ``hub audit anchor --export`` and the maintenance DAG keep anchors:
    ``HUB_AUDIT_ANCHOR_DIR`` (outside the hub's state in production), else
    ``HUB_HOME/anchors`` under the demo profile."""
    if settings.audit_anchor_dir is not None:
        return settings.audit_anchor_dir
    if not settings.demo:
        raise SettingsError(
            "HUB_AUDIT_ANCHOR_DIR is not set: exported anchors must be kept outside the hub"
        )
    return settings.home / "anchors"


def max_gap_s(settings: Settings) -> float:
    """The longest an entry may stay unanchored: the writer's interval plus slack."""
    return 2 * settings.audit_anchor_every_s + settings.audit_anchor_slack_s


__all__ = [
    "AUDIT_KEY",
    "FORMAT_V1",
    "FORMAT_V2",
    "GENESIS_HASH",
    "Anchor",
    "AuditEntry",
    "AuditError",
    "AuditLog",
    "AuditReceipt",
    "AuditRecord",
    "ChainProblem",
    "ChainReport",
    "anchor_dir",
    "audit_url",
    "canonical_entry",
    "current_anchor",
    "entry_hash",
    "export_anchor",
    "exported_anchors",
    "load_anchor_signer",
    "max_gap_s",
    "open_log",
    "verify_chain",
    "writer_role_sql",
]
