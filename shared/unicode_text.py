"""Text folding shared by matching keys, enrichment and reports."""
from __future__ import annotations

import re

from unidecode import unidecode

_SPACES = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s]")


def fold(value: str | None) -> str:
    """Lower-case ASCII with punctuation dropped and whitespace collapsed: 'José  O'Neil' -> 'jose oneil'."""
    if not value:
        return ""
    return _SPACES.sub(" ", _PUNCT.sub("", unidecode(value).lower())).strip()
