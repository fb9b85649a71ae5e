"""The assets the hub serves itself: only the npm packages it names, nothing outside
them, and GX's CDN links rewritten to those copies."""

from __future__ import annotations

import re
from pathlib import Path

import great_expectations

from hub.portal.assets import offline_dbt_page, offline_gx_page, outside_links, vendor_file

GX_TEMPLATES = Path(great_expectations.__file__).parent / "render" / "view" / "templates"


def test_every_cdn_link_of_the_gx_templates_is_rewritten_to_an_existing_file() -> None:
    page = "".join(
        (GX_TEMPLATES / name).read_text()
        for name in ("page.j2", "index_page.j2", "js_script_imports.j2", "top_navbar.j2")
    )
    page = page.replace(
        "{{ static_images_dir }}",
        "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/",
    )
    rewritten = offline_gx_page(page)
    loads = re.findall(r"<(?:script|link|img)[^>]*(?:src|href)=\"([^\"]+)\"", rewritten)
    assert not [u for u in loads if u.startswith(("http:", "https:", "//"))]
    vendored = [u for u in loads if u.startswith("/portal/vendor/")]
    assert len(vendored) >= 12
    for url in vendored:
        assert vendor_file(url.removeprefix("/portal/vendor/").split("?")[0]) is not None, url
    assert "integrity=" not in rewritten


def test_vendor_files_stay_inside_the_named_packages() -> None:
    assert vendor_file("htmx.org/dist/htmx.min.js") is not None
    assert vendor_file("@fortawesome/fontawesome-free/webfonts/fa-solid-900.woff2") is not None
    for path in (
        "htmx.org/../../pyproject.toml",
        "htmx.org/package.json/../../../uv.lock",
        "left-pad/index.js",
        "htmx.org",
        "htmx.org/dist/../../../.venv/pyvenv.cfg",
        "htmx.org/README.md",  # not an asset type
    ):
        assert vendor_file(path) is None, path


def test_dbt_docs_lose_their_tracker() -> None:
    html = 'i.src="//d1fc8wv8zag5ca.cloudfront.net/2.9.0/sp.js",a.parentNode'
    assert "cloudfront" not in offline_dbt_page(html)
    assert outside_links('<script src="https://cdn.example/x.js"></script>') == ['src="https://']
