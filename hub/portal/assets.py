"""Browser assets served by the hub itself, and the documentation sites made offline.

- ``/portal/vendor/<package>/<path>``: files of the npm packages in ``node_modules/``
  (``package.json`` at the root; ``make install`` runs ``npm ci``), only the packages of
  :data:`VENDOR_PACKAGES` and only files with a known asset suffix.
- **GX Data Docs** (``HUB_HOME/gate/docs``): GX 1.24 writes pages that load Bootstrap,
  jQuery, Popper, bootstrap-table, bootstrap-datepicker, Font Awesome and Vega from public
  CDNs and its logo from S3. :func:`offline_gx_page` rewrites each such link to the same
  file from ``/portal/vendor/`` (Subresource-Integrity attributes dropped: they name the
  CDN's exact build) and the logo to the copy beside the docs.
- **dbt docs** (``HUB_HOME/dbt/target``): one page with its scripts inline plus
  ``manifest.json`` and ``catalog.json``; its only outside load is the Snowplow tracker,
  which :func:`offline_dbt_page` removes (it loads only when usage statistics are on).

Every page goes out with a Content-Security-Policy that allows the hub's own origin only,
so a link that was missed fails in the browser instead of leaving the machine.
"""

from __future__ import annotations

import re
from pathlib import Path

from hub.settings import PROJECT_ROOT

NODE_MODULES = PROJECT_ROOT / "node_modules"
VENDOR_PACKAGES = frozenset(
    {
        "htmx.org",
        "bootstrap",
        "jquery",
        "popper.js",
        "bootstrap-table",
        "bootstrap-datepicker",
        "@fortawesome/fontawesome-free",
        "@forevolve/bootstrap-dark",
        "vega",
        "vega-lite",
        "vega-embed",
    }
)
ASSET_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".map": "application/json",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".ttf": "font/ttf",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".gif": "image/gif",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".html": "text/html; charset=utf-8",
}
# What the docs pages may load: this origin only (inline script and eval: GX's and dbt's
# pages are built that way); images may be data: URLs.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'self'; form-action 'self'; base-uri 'self'"
)
PORTAL_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'self'"
)
_VENDOR = "/portal/vendor"
# CDN address (up to the package's own path) -> the package's folder under /portal/vendor
GX_CDN_LINKS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"https://cdn\.jsdelivr\.net/npm/vega@5\b[^\"']*", f"{_VENDOR}/vega/build/vega.min.js"),
        (
            r"https://cdn\.jsdelivr\.net/npm/vega-lite@5\b[^\"']*",
            f"{_VENDOR}/vega-lite/build/vega-lite.min.js",
        ),
        (
            r"https://cdn\.jsdelivr\.net/npm/vega-embed@6\b[^\"']*",
            f"{_VENDOR}/vega-embed/build/vega-embed.min.js",
        ),
        (
            r"https://cdnjs\.cloudflare\.com/ajax/libs/font-awesome/[0-9.]+/",
            f"{_VENDOR}/@fortawesome/fontawesome-free/",
        ),
        (
            r"https://code\.jquery\.com/jquery-[0-9.]+\.min\.js",
            f"{_VENDOR}/jquery/dist/jquery.min.js",
        ),
        (
            r"https://cdnjs\.cloudflare\.com/ajax/libs/popper\.js/[0-9.]+/",
            f"{_VENDOR}/popper.js/dist/",
        ),
        (r"https://stackpath\.bootstrapcdn\.com/bootstrap/[0-9.]+/", f"{_VENDOR}/bootstrap/dist/"),
        (r"https://maxcdn\.bootstrapcdn\.com/bootstrap/[0-9.]+/", f"{_VENDOR}/bootstrap/dist/"),
        (r"https://unpkg\.com/bootstrap-table@[0-9.]+/", f"{_VENDOR}/bootstrap-table/"),
        (
            r"https://cdnjs\.cloudflare\.com/ajax/libs/bootstrap-datepicker/[0-9.]+/",
            f"{_VENDOR}/bootstrap-datepicker/dist/",
        ),
        (
            r"https://cdn\.jsdelivr\.net/npm/@forevolve/bootstrap-dark@[0-9.]+/",
            f"{_VENDOR}/@forevolve/bootstrap-dark/",
        ),
        (
            r"https://great-expectations-web-assets\.s3\.[a-z0-9-]+\.amazonaws\.com/"
            r"([A-Za-z0-9_.-]+)(\?[^\"']*)?",
            r"/portal/docs/gx/static/images/\1",
        ),
    )
)
_INTEGRITY = re.compile(r"\s(integrity|crossorigin)=\"[^\"]*\"")
_OUTSIDE = re.compile(r"(?:src|href)=\"(https?:)?//", re.IGNORECASE)
_SNOWPLOW = re.compile(r"\"//[a-z0-9]+\.cloudfront\.net/[0-9.]+/sp\.js\"")


def vendor_file(package_path: str) -> Path | None:
    """The file under node_modules for ``<package>/<path>``, or None when the package is
    not one the hub serves, the suffix is not an asset's, or it escapes the package."""
    parts = package_path.split("/")
    if parts and parts[0].startswith("@") and len(parts) > 1:
        package, rest = "/".join(parts[:2]), parts[2:]
    else:
        package, rest = parts[0], parts[1:]
    if package not in VENDOR_PACKAGES or not rest:
        return None
    root = (NODE_MODULES / package).resolve()
    path = (root / "/".join(rest)).resolve()
    if not path.is_relative_to(root) or path.suffix not in ASSET_TYPES or not path.is_file():
        return None
    return path


def offline_gx_page(html: str) -> str:
    """A GX Data Docs page with every CDN link pointing at the hub's own copy."""
    for pattern, replacement in GX_CDN_LINKS:
        html = pattern.sub(replacement, html)
    return _INTEGRITY.sub("", html)


def offline_dbt_page(html: str) -> str:
    """dbt's docs page without the tracker it would load from a CDN."""
    return _SNOWPLOW.sub('""', html)


def outside_links(html: str) -> list[str]:
    """``src``/``href`` attributes that still point off the machine (links a person
    clicks, such as GX's newsletter, are ``href`` on ``<a>`` and listed too)."""
    return [m.group(0) for m in _OUTSIDE.finditer(html)]


def docs_file(root: Path, relative: str) -> Path | None:
    """A file under ``root`` (no escaping it), or None."""
    base = root.resolve()
    path = (base / relative).resolve()
    if not path.is_relative_to(base) or not path.is_file() or path.suffix not in ASSET_TYPES:
        return None
    return path
