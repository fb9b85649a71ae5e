"""``hub audit ...`` and ``hub evidence ...``: check the audit chain and evidence documents.

Registered by :mod:`hub.cli`, whose console, settings and error helpers it shares. The
heavy modules are imported inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from hub.cli import _fail, _settings, app, console, errors
from hub.settings import Settings, SettingsError

audit_app = typer.Typer(no_args_is_help=True, help="The hash-chained audit log of API requests.")
evidence_app = typer.Typer(no_args_is_help=True, help="Signed evidence documents and their keys.")
app.add_typer(audit_app, name="audit")
app.add_typer(evidence_app, name="evidence")


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise _fail(f"{what} {path}: no such file") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(f"{what} {path}: not a JSON file ({exc})") from exc


def _local_key_set(settings: Settings) -> dict[str, Any] | None:
    """The public half of the hub's own key, or None when it has none."""
    from hub.evidence import load_evidence_key, public_key_set

    try:
        return public_key_set(load_evidence_key(settings, create=False))
    except SettingsError:
        return None


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
) -> None:
    """Walk the audit chain; exit 1 and show the first altered, inserted or deleted entry."""
    from hub.audit import Anchor, AuditError, audit_url, verify_chain

    settings = _settings()
    key_set = _read_json(keys, "key set") if keys else _local_key_set(settings)
    extra = []
    for path in anchor or []:
        try:
            extra.append(Anchor.from_dict(_read_json(path, "anchor")))
        except ValueError as exc:
            raise _fail(f"anchor {path}: {exc}") from exc
    url = audit_url(settings)
    try:
        report = verify_chain(url, key_set, anchors=extra)
    except AuditError as exc:
        raise _fail(str(exc)) from exc
    except Exception as exc:  # a database that cannot be read is a failed verification
        raise _fail(f"audit log {url.split('@')[-1]}: cannot be read ({exc})") from exc
    if json_out:
        console.print_json(json.dumps(report.as_dict(), ensure_ascii=False))
    elif report.ok:
        console.print(
            f"audit chain ok: {report.entries:,} entries, head seq {report.head_seq} "
            f"({report.head_hash[:16]}…), {report.anchors:,} anchors"
            + ("" if report.signatures_checked else " [yellow](signatures NOT checked)[/]")
            + (
                f", {report.unanchored:,} entries after the newest anchor"
                if report.unanchored
                else ""
            )
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
) -> None:
    """Print a signed anchor of the log's head, for an auditor to keep outside the hub."""
    from hub.audit import audit_url, current_anchor
    from hub.evidence import load_evidence_key

    settings = _settings()
    try:
        key = load_evidence_key(settings)
    except SettingsError as exc:
        raise _fail(str(exc)) from exc
    anchor = current_anchor(audit_url(settings), key)
    if anchor is None:
        raise _fail("the audit log is empty: nothing to anchor")
    text = json.dumps(anchor.as_dict(), ensure_ascii=False, indent=2)
    if out is None:
        print(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        console.print(f"anchor of seq {anchor.seq} written to {out}")


# ------------------------------------------------------------------ evidence


@evidence_app.command("verify")
def evidence_verify(
    file: Annotated[Path, typer.Argument(help="An evidence document (JSON).")],
    keys: Annotated[
        Path | None,
        typer.Option("--keys", help="The published key set (GET /v1/keys; default: own key)."),
    ] = None,
) -> None:
    """Check an evidence document offline; exit 1 saying what failed."""
    from hub.evidence import EvidenceError, verify_evidence

    document = _read_json(file, "evidence document")
    if keys is not None:
        key_set = _read_json(keys, "key set")
    else:
        key_set = _local_key_set(_settings())
        if key_set is None:
            raise _fail("the hub has no evidence key here: pass the published key set (--keys)")
    try:
        verified = verify_evidence(document, key_set)
    except EvidenceError as exc:
        raise _fail(f"{file}: {exc} (reason: {exc.reason})") from exc
    console.print(
        f"evidence ok: {verified.claim!r} on {verified.resource} v{verified.version}, "
        f"issued {verified.issued_at.isoformat()}, request {verified.request_id}, "
        f"key {verified.key_id}",
        highlight=False,
        markup=False,
    )


@evidence_app.command("keys")
def evidence_keys() -> None:
    """Print the public key set (JWKS), as GET /v1/keys publishes it."""
    from hub.evidence import load_evidence_key, public_key_set

    try:
        key = load_evidence_key(_settings())
    except SettingsError as exc:
        raise _fail(str(exc)) from exc
    print(json.dumps(public_key_set(key), indent=2))
