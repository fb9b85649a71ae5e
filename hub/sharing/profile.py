"""Delta Sharing profile files: what a data team points its stock client at.

``write_profile`` creates a new API key for the application (``hub.keys``; only its hash
is stored) and writes, with mode 0600::

    {"shareCredentialsVersion": 1, "endpoint": "<hub>/delta-sharing",
     "bearerToken": "hubk_...", "expirationTime": "..."}

``expirationTime`` is when the last of the application's bulk grants expires (after
it nothing is shared with this token); absent when one of them never expires or none
exists yet. Revoking the key (``hub revoke-key``) or a grant stops the share within
``HUB_API_CACHE_SECONDS``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hub.catalog.models import Catalog
from hub.demand import Grant
from hub.settings import Settings
from hub.sharing.layout import ENDPOINT_PATH
from hub.sharing.shapes import is_bulk_grant, table_name

PROFILE_VERSION = 1
LOCAL_ENDPOINT = "http://127.0.0.1:8000"


class ProfileError(ValueError):
    """The profile cannot be written; the message says why."""


@dataclass(frozen=True)
class Profile:
    path: Path
    application: str
    key_id: str
    endpoint: str
    expires_at: datetime | None
    tables: tuple[str, ...]  # share.schema.table of each bulk grant


def sharing_endpoint(settings: Settings, endpoint: str | None = None) -> str:
    """The protocol's endpoint: ``endpoint``, else ``HUB_PUBLIC_URL``, else the local
    ``hub serve`` default, with ``/delta-sharing``."""
    base = (endpoint or settings.public_url or LOCAL_ENDPOINT).rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ProfileError(f"--endpoint: expected http(s)://host[:port], got {base!r}")
    return base if base.endswith(ENDPOINT_PATH) else base + ENDPOINT_PATH


def write_profile(
    settings: Settings,
    catalog: Catalog,
    application: str,
    target: Path,
    *,
    by: str,
    endpoint: str | None = None,
    now: datetime | None = None,
) -> Profile:
    """A new key for ``application`` and its profile at ``target`` (mode 0600, replaced
    if it exists). Raises ProfileError for an unknown application or a bad endpoint."""
    from hub.demand.calendar import utc_now
    from hub.demand.workflow import list_grants
    from hub.keys import PrincipalKind, create_key
    from hub.storage.interface import open_ops

    known = {a.code for a in catalog.applications}
    if application not in known:
        raise ProfileError(
            f"no application {application!r} in the catalog (known: {', '.join(sorted(known))})"
        )
    url = sharing_endpoint(settings, endpoint)
    moment = now or utc_now()
    with open_ops(settings) as store:
        grants = [
            g
            for g in list_grants(store, application=application, active_at=moment)
            if is_bulk_grant(g) and catalog.has_resource(g.resource)
        ]
        issued = create_key(store, PrincipalKind.application, application, by=by)
    expires = _expiry(grants)
    document: dict[str, object] = {
        "shareCredentialsVersion": PROFILE_VERSION,
        "endpoint": url,
        "bearerToken": issued.key,
    }
    if expires is not None:
        document["expirationTime"] = expires.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)
        handle.write("\n")
    temporary.replace(target)
    return Profile(
        path=target,
        application=application,
        key_id=issued.key_id,
        endpoint=url,
        expires_at=expires,
        tables=tuple(f"{application}.{g.resource}.{table_name(g)}" for g in grants),
    )


def _expiry(grants: list[Grant]) -> datetime | None:
    if not grants or any(g.expires_at is None for g in grants):
        return None
    return max(g.expires_at for g in grants if g.expires_at is not None)
