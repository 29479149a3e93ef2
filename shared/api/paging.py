"""Pages of a list API: the page_size parameter and opaque continuation tokens (the store's, URL-safe)."""
from __future__ import annotations

import base64
import binascii

from .errors import ApiError

MAX_PAGE = 1000


def page_size(params: dict[str, str], *, default: int = 100) -> int:
    raw = params.get("page_size") or str(default)
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PAGE:  # "¹".isdigit(), but int fails
        raise ApiError(400, f"page_size must be an integer from 1 to {MAX_PAGE}")
    return int(raw)


def encode_token(token: str | None) -> str | None:
    return base64.urlsafe_b64encode(token.encode()).decode().rstrip("=") if token else None


def decode_token(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ApiError(400, "continuation is not a token this API returned") from None
