"""``hub audit ...`` and ``hub evidence ...``: check the audit chain and evidence documents.

The heavy modules are imported inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from hub.cli.common import console, errors, fail, settings_or_fail
from hub.settings import Settings, SettingsError

commands = typer.Typer()
audit_app = typer.Typer(no_args_is_help=True, help="The hash-chained audit log of API requests.")
evidence_app = typer.Typer(no_args_is_help=True, help="Signed evidence documents and their keys.")
commands.add_typer(audit_app, name="audit")
commands.add_typer(evidence_app, name="evidence")


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise fail(f"{what} {path}: no such file") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise fail(f"{what} {path}: not a JSON file ({exc})") from exc


def _local_key_set(settings: Settings) -> dict[str, Any] | None:
    """The hub's own public keys (current and recorded), or None when it has none here."""
    from hub.audit import load_anchor_signer
    from hub.evidence import load_evidence_signer
    from hub.keys_registry import known_keys

    try:
        current = [load_evidence_signer(settings), load_anchor_signer(settings)]
    except SettingsError:
        return None
    return known_keys(settings, *current)


# ------------------------------------------------------------------ audit


@audit_app.command("verify")
def audit_verify(
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    keys: Annotated[
        Path | None,
        typer.Option("--keys", help="Key set (JWKS) for the anchors' signatures (default: own)."),
    ] = None,
    anchor: Annotated[
        list[Path] | None,
        typer.Option("--anchor", help="An anchor kept outside the hub (`hub audit anchor`)."),
    ] = None,
    anchors_dir: Annotated[
        Path | None,
        typer.Option(
            "--anchors", help="A folder of exported anchors (default: HUB_AUDIT_ANCHOR_DIR)."
        ),
    ] = None,
) -> None:
    """Walk the audit chain; exit 1 and show the first altered, inserted or deleted entry,
    missing anchor, or a cut that an exported anchor shows."""
    from hub.audit import (
        Anchor,
        AuditError,
        anchor_dir,
        audit_url,
        exported_anchors,
        max_gap_s,
        verify_chain,
    )

    settings = settings_or_fail()
    key_set = _read_json(keys, "key set") if keys else _local_key_set(settings)
    extra = []
    for path in anchor or []:
        try:
            extra.append(Anchor.from_dict(_read_json(path, "anchor")))
        except ValueError as exc:
            raise fail(f"anchor {path}: {exc}") from exc
    folder = anchors_dir
    if folder is None:
        try:
            folder = anchor_dir(settings)
        except SettingsError:
            folder = None  # nothing exported yet to check against
    if folder is not None:
        try:
            extra.extend(exported_anchors(folder))
        except ValueError as exc:
            raise fail(str(exc)) from exc
    url = audit_url(settings)
    try:
        report = verify_chain(url, key_set, anchors=extra, max_gap_s=max_gap_s(settings))
    except AuditError as exc:
        raise fail(str(exc)) from exc
    except Exception as exc:  # a database that cannot be read is a failed verification
        raise fail(f"audit log {url.split('@')[-1]}: cannot be read ({exc})") from exc
    if json_out:
        console.print_json(json.dumps(report.as_dict(), ensure_ascii=False, default=str))
    elif report.ok:
        console.print(
            f"audit chain ok: {report.entries:,} entries, head seq {report.head_seq} "
            f"({report.head_hash[:16]}…), {report.anchors:,} anchors"
            + (f" ({report.exported_anchors:,} kept outside)" if report.exported_anchors else "")
            + ("" if report.signatures_checked else " [yellow](signatures NOT checked)[/]")
            + (
                f", {report.unanchored:,} entries after the newest anchor"
                if report.unanchored
                else ""
            )
            + (f", {report.restarts} restart(s) after a crash" if report.restarts else "")
        )
    else:
        assert report.problem is not None
        errors.print(
            f"[bold red]audit chain BROKEN[/] at seq {report.problem.seq} "
            f"({report.problem.kind}): {escape(report.problem.message)}",
            highlight=False,
        )
        if report.problem.entry is not None:
            errors.print_json(json.dumps(report.problem.entry, ensure_ascii=False))
    if not report.ok:
        raise typer.Exit(code=1)


@audit_app.command("anchor")
def audit_anchor(
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file.")] = None,
    export: Annotated[
        bool,
        typer.Option(
            "--export", help="Write a new file to HUB_AUDIT_ANCHOR_DIR (kept outside the hub)."
        ),
    ] = False,
) -> None:
    """Print a signed anchor of the log's head, for an auditor to keep outside the hub."""
    from hub.audit import anchor_dir, audit_url, current_anchor, export_anchor, load_anchor_signer

    settings = settings_or_fail()
    try:
        key = load_anchor_signer(settings)
        if export:
            path = export_anchor(audit_url(settings), key, anchor_dir(settings))
            if path is None:
                raise fail("the audit log is empty: nothing to anchor")
            console.print(f"anchor exported to {path}", highlight=False)
            return
    except SettingsError as exc:
        raise fail(str(exc)) from exc
    anchor = current_anchor(audit_url(settings), key)
    if anchor is None:
        raise fail("the audit log is empty: nothing to anchor")
    text = json.dumps(anchor.as_dict(), ensure_ascii=False, indent=2)
    if out is None:
        print(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        console.print(f"anchor of seq {anchor.seq} written to {out}")


@audit_app.command("writer-role")
def audit_writer_role(
    role: Annotated[str, typer.Argument(help="The PostgreSQL role the API appends as.")],
) -> None:
    """On a PostgreSQL warehouse: let ROLE read and append to the audit chain and nothing
    else (run as the warehouse owner; point HUB_AUDIT_URL at ROLE for the API)."""
    from hub.audit import audit_url, open_log, writer_role_sql
    from hub.storage.interface import open_warehouse, warehouse_class

    settings = settings_or_fail()
    if not warehouse_class(settings.warehouse_url).holds_ops_store:
        raise fail("writer-role needs a PostgreSQL warehouse (HUB_WAREHOUSE_URL)")
    log = open_log(settings)  # creates the tables and triggers if needed
    log.start()
    log.close()
    try:
        statements = writer_role_sql(role)
    except ValueError as exc:
        raise fail(f"role: {exc}") from exc
    with open_warehouse(settings.warehouse_url) as warehouse:
        for statement in statements:
            warehouse.execute(statement)
    console.print(
        f"{role} may now SELECT and INSERT on ops.audit_log and ops.audit_anchor, nothing "
        f"else (log: {audit_url(settings).split('@')[-1]})",
        highlight=False,
    )


# ------------------------------------------------------------------ evidence


@evidence_app.command("verify")
def evidence_verify(
    file: Annotated[Path, typer.Argument(help="An evidence document (the JWS, or JSON).")],
    keys: Annotated[
        Path | None,
        typer.Option("--keys", help="The published key set (GET /v1/keys; default: own keys)."),
    ] = None,
    subject: Annotated[
        str | None,
        typer.Option(
            "--subject",
            help="Check that the document is about this citizen ID "
            "or credit code (needs the hub's HUB_SECRET_SUBJECT_KEY).",
        ),
    ] = None,
) -> None:
    """Check an evidence document offline; exit 1 saying what failed."""
    from hub.evidence import (
        EvidenceError,
        check_subject,
        load_subject_key,
        profile_of,
        verify_evidence,
    )
    from hub.identifiers import IdentifierError, parse_subject

    try:
        text = file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"evidence document {file}: cannot be read ({exc})") from exc
    document: Any = text
    if text.startswith("{"):
        document = _read_json(file, "evidence document")
    settings = settings_or_fail()
    if keys is not None:
        key_set = _read_json(keys, "key set")
    else:
        key_set = _local_key_set(settings)
        if key_set is None:
            raise fail("the hub has no evidence key here: pass the published key set (--keys)")
    try:
        verified = verify_evidence(document, key_set)
        if subject is not None:
            try:
                canonical_subject = parse_subject(subject)
                key = load_subject_key(settings)
            except (IdentifierError, SettingsError) as exc:
                raise fail(f"--subject: {exc}") from exc
            check_subject(verified, canonical_subject, key, profile_of(settings))
    except EvidenceError as exc:
        raise fail(f"{file}: {exc} (reason: {exc.reason})") from exc
    console.print(
        f"evidence ok: {verified.claim!r} on {verified.resource} v{verified.version}, "
        f"answer {verified.evidence.get('answer')!r}, issued {verified.issued_at.isoformat()}, "
        f"request {verified.request_id}, key {verified.key_id}"
        + (", about the subject given" if subject is not None else ""),
        highlight=False,
        markup=False,
    )


@evidence_app.command("keys")
def evidence_keys() -> None:
    """Print the public key set (JWKS), as GET /v1/keys publishes it."""
    key_set = _local_key_set(settings_or_fail())
    if key_set is None:
        raise fail("HUB_SECRET_EVIDENCE_KEY / HUB_SECRET_AUDIT_KEY are not set here")
    print(json.dumps(key_set, indent=2))
