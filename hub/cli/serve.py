"""``hub serve``: the HTTP API."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from hub.cli.common import catalog_or_fail, fail, settings_or_fail
from hub.settings import Settings, SettingsError

commands = typer.Typer()


@commands.command("serve")
def serve_command(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """The HTTP API (OpenAPI docs at /docs): read, verify, export; demands and answers."""
    import uvicorn

    settings = settings_or_fail()
    catalog_or_fail(settings)  # a broken catalog stops here, with its problems listed
    _require_keys(settings)
    limits: dict[str, Any] = {
        "access_log": False,
        # header bytes beyond this never reach the app (the app refuses past its own cap)
        "h11_max_incomplete_event_size": settings.api_max_header_bytes + 1024,
    }
    if workers > 1:
        uvicorn.run("hub.serve.asgi:app", host=host, port=port, workers=workers, **limits)
        return
    from hub.serve.app import create_app, tune_for_serving

    served = create_app(settings, catalog_or_fail(settings))
    tune_for_serving(settings)
    uvicorn.run(served, host=host, port=port, **limits)


def _require_keys(settings: Settings) -> None:
    """Refuse to start without the keys the API signs, MACs and encrypts with."""
    from hub.audit import load_anchor_signer
    from hub.evidence import load_evidence_signer, load_subject_key
    from hub.keyring import secret_bytes

    try:
        load_evidence_signer(settings)
        load_anchor_signer(settings)
        load_subject_key(settings)
        secret_bytes(settings, "cursor_key")
    except SettingsError as exc:
        raise fail(f"hub serve cannot start: {exc}") from exc
