"""Headless Chromium for the report tests: the page as the browser drew it,
with no network (every host name fails to resolve), so a page that needed
anything from elsewhere would show it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

# anything a browser would fetch: <script>, <img> or <iframe> src, <link href>,
# CSS url() or @import (links to click are not fetched)
FETCHES = re.compile(r"""<(?:script|img|iframe|source)\b[^>]*?\bsrc\s*=\s*["']?(?:https?:)?//"""
                     r"""|<link\b[^>]*?\bhref\s*=\s*["']?(?:https?:)?//"""
                     r"""|url\(\s*["']?(?:https?:)?//|@import\s+(?:url\()?["']?(?:https?:)?//""",
                     re.IGNORECASE)


def fetched_resources(page: str) -> list[str]:
    return [m.group(0) for m in FETCHES.finditer(page)]


def drawn_dom(page: Path, profile: Path) -> str:
    """The DOM once the page's scripts have run (virtual time lets them finish)."""
    chromium = shutil.which("chromium")
    assert chromium, "make test installs Debian's chromium (make chromium)"
    return subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=30000",
         f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=180).stdout
