"""The dashboard's static files (HTML, JS, CSS; no external CDN, no chart library) and how they are served."""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
_ASSET = re.compile(r"^[a-z0-9][a-z0-9_-]*\.(js|css|svg)$")
# The page carries the function key in its URL: never send it on as a Referer; allow only our own origin.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


class AssetNotFound(LookupError):
    pass


@lru_cache(maxsize=32)
def _read(name: str) -> bytes:
    return (ROOT / name).read_bytes()


def page(key: str | None = None) -> tuple[bytes, str, dict[str, str]]:
    """The page; with the function key it was opened with, its asset URLs carry that key too (every route but
    health needs one, static files included)."""
    html = _read("index.html")
    if key:
        html = re.sub(rb'((?:src|href)="dashboard/assets/[a-z0-9_-]+\.(?:js|css|svg))"',
                      lambda m: m.group(1) + b"?code=" + quote(key, safe="").encode() + b'"', html)
    return html, TYPES[".html"], {**HEADERS, "Cache-Control": "no-store"}


def asset(name: str) -> tuple[bytes, str, dict[str, str]]:
    """A static asset by file name; only plain names of files in this folder (no paths, no Python)."""
    if not _ASSET.match(name or "") or not (ROOT / name).is_file():
        raise AssetNotFound(name)
    return _read(name), TYPES[Path(name).suffix], {**HEADERS, "Cache-Control": "private, max-age=300"}
