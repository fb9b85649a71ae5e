"""``hub keys ...`` and ``hub idp ...``: the hub's own secret keys, and the demo's local
identity provider that vouches for applicants.
"""

from __future__ import annotations

import json
import secrets
from typing import Annotated

import typer

from hub.cli.common import console, fail, settings_or_fail
from hub.settings import SettingsError

commands = typer.Typer()
keys_app = typer.Typer(no_args_is_help=True, help="The hub's own secret keys.")
idp_app = typer.Typer(
    no_args_is_help=True, help="The demo's local identity provider (applicant assertions)."
)
commands.add_typer(keys_app, name="keys")
commands.add_typer(idp_app, name="idp")

SIGNING_KEYS = ("evidence_key", "audit_key")
SYMMETRIC_KEYS = ("subject_key", "cursor_key", "idp_key", "sharing_url_key")


@keys_app.command("generate")
def keys_generate(
    name: Annotated[
        str, typer.Argument(help=f"One of {', '.join(SIGNING_KEYS + SYMMETRIC_KEYS)}.")
    ],
) -> None:
    """Print a new value for HUB_SECRET_<NAME> (store it in the deployment's secrets)."""
    from hub.keyring import encode_key
    from hub.signing import Profile, generate_signer

    name = name.lower()
    if name in SIGNING_KEYS:
        print(generate_signer(Profile(settings_or_fail().crypto_profile)).to_secret())
    elif name in SYMMETRIC_KEYS:
        print(encode_key(secrets.token_bytes(32)))
    else:
        raise fail(f"no key {name!r}: expected one of {', '.join(SIGNING_KEYS + SYMMETRIC_KEYS)}")


@idp_app.command("issue")
def idp_issue(
    application: Annotated[str, typer.Option("--application", help="Issued to (azp).")],
    applicant: Annotated[str, typer.Option("--applicant", help="The applicant's ID (sub).")],
    ttl: Annotated[int, typer.Option("--ttl", help="Lifetime in seconds.")] = 300,
) -> None:
    """Print an applicant assertion from the local identity provider (demo only)."""
    from hub.identifiers import IdentifierError
    from hub.identity import LocalIdentityProvider

    try:
        print(LocalIdentityProvider(settings_or_fail()).issue(applicant, application, ttl_s=ttl))
    except (SettingsError, IdentifierError) as exc:
        raise fail(str(exc)) from exc


@idp_app.command("jwks")
def idp_jwks() -> None:
    """Print the local identity provider's public keys (what HUB_IDP_JWKS would name)."""
    from hub.identity import LocalIdentityProvider

    try:
        console.print_json(json.dumps(LocalIdentityProvider(settings_or_fail()).jwks()))
    except SettingsError as exc:
        raise fail(str(exc)) from exc
