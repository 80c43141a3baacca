"""GX Data Docs that render offline (issue 20).

GX's page templates load Bootstrap, jQuery, Popper, bootstrap-table, the
datepicker, Font Awesome and Vega from CDNs, and the navbar's logo from GX's
S3 bucket. Offline (or behind a
firewall, or opened from disk) the pages show unstyled text and no tables.

``make_offline`` points every page at copies in the site's own
``static/vendor`` folder instead: the files of ``data_docs_vendor/`` (the
exact npm releases GX's templates name; SOURCES.md says where each came
from), Vega, Vega-Lite and Vega-Embed from vl-convert's bundle (the Vega-Lite
5 that GX's specs are written for), and GX's own logo from ``static/images``.
It is run after every build: each checkpoint's (``run_check``) and
``orderhub docs``'s.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

VENDOR = Path(__file__).parent / "data_docs_vendor"

# What GX 1.x's templates fetch -> the copy under static/vendor (None: the tag
# goes; the Vega bundle carries Vega-Lite and Vega-Embed too).
CDN = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap@4.3.1/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap@4.3.1/bootstrap.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery@3.7.1/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.js@1.12.9/popper.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "bootstrap-table@1.19.1/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "bootstrap-table@1.19.1/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        "bootstrap-table@1.19.1/bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        "bootstrap-table@1.19.1/bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        "bootstrap-table@1.19.1/bootstrap-table-filter-control.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        "bootstrap-datepicker@1.9.0/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        "bootstrap-datepicker@1.9.0/bootstrap-datepicker.min.js",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
        "bootstrap-dark@1.1.0/bootstrap-prefers-dark.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": "fontawesome-free@6.6.0/css/all.min.css",
    "https://cdn.jsdelivr.net/npm/vega@5": "vega-bundle.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": None,
    "https://cdn.jsdelivr.net/npm/vega-embed@6": None,
}
# a <script> or <link> tag naming one of them (integrity and crossorigin go
# with the tag: a page opened from disk cannot make a CORS request)
TAG = re.compile(r'<(script|link)\b[^>]*?(?:src|href)="(https://[^"]+)"[^>]*>(?:</script>)?')
# GX's logo from its S3 bucket (the navbar's, with the data context's id in the
# query, and the dark theme's stylesheet's): its own copy in static/images
LOGO = re.compile(r"https://great-expectations-web-assets\.s3\.[a-z0-9.-]+/[\w-]+\.png(?:\?[^\"')\s]*)?")


def _publish(path: Path, write) -> None:
    """Write a file through a temporary one: a reader never sees half of it
    (checkpoints in parallel tasks write the same site)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(partial)
    partial.replace(path)


def _install(static: Path) -> None:
    """The vendored files (and the Vega bundle) in the site's static folder."""
    vendor = static / "vendor"
    for source in VENDOR.rglob("*"):
        target = vendor / source.relative_to(VENDOR)
        if source.is_file() and source.suffix != ".md" and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            _publish(target, lambda partial, source=source: shutil.copyfile(source, partial))
    bundle = vendor / "vega-bundle.js"
    if not bundle.exists():
        import vl_convert

        script = vl_convert.javascript_bundle(vl_version="5.21")
        _publish(bundle, lambda partial: partial.write_text(script, encoding="utf-8"))


def offline_page(text: str, up: str) -> str:
    """A page's HTML with its CDN tags and the S3 logo pointed at the site's
    own copies; ``up`` is the way from the page's folder to the site's root."""
    def local(tag: re.Match) -> str:
        url = tag.group(2)
        if url not in CDN:
            return tag.group(0)
        if CDN[url] is None:
            return ""
        path = f"{up}/static/vendor/{CDN[url]}"
        return (f'<script src="{path}"></script>' if tag.group(1) == "script"
                else f'<link rel="stylesheet" href="{path}">')

    return LOGO.sub(f"{up}/static/images/logo-long.png", TAG.sub(local, text))


def make_offline(site: Path, since: float | None = None) -> int:
    """Point the site's pages (those written at or after ``since``, a
    timestamp; all without it) at static/vendor. Returns the pages rewritten."""
    if not (site / "static").is_dir():
        return 0
    _install(site / "static")
    rewritten = 0
    for page in site.rglob("*.html"):
        if since is not None and page.stat().st_mtime < since:
            continue
        text = page.read_text(encoding="utf-8")
        if not text.rstrip().endswith("</html>"):
            continue  # another checkpoint's build is still writing it: that one finishes it
        offline = offline_page(text, Path(os.path.relpath(site, page.parent)).as_posix())
        if offline != text:
            _publish(page, lambda partial, offline=offline: partial.write_text(offline, encoding="utf-8"))
            rewritten += 1
    return rewritten
