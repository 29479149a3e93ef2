"""The NormalizedRecord of a profile's record entry, built once rather than for every comparison.

A profile is a candidate for every record that shares a blocking key with it, so the same record snapshots
are scored again and again; rebuilding the frozen dataclass from the stored JSON each time was a large part of
in-process resolution. The cache is keyed by record key and content hash, and a hit is only used when the
stored snapshot is equal to the cached one, so a snapshot written differently (another normalizer version,
another store) is never mistaken for a cached one.
"""
from __future__ import annotations

import threading
from typing import Any

from shared.normalize import NormalizedRecord

MAX_CACHED = 100_000  # about the records of one large `ucp resolve` run; cleared when full (bounded memory)

_cache: dict[tuple[str, str | None], tuple[dict[str, Any], NormalizedRecord]] = {}
_lock = threading.Lock()


def snapshot_record(entry: dict[str, Any]) -> NormalizedRecord:
    """The normalized form of a profile record entry (its "match" snapshot)."""
    match = entry["match"]
    cache_key = (entry["key"], entry.get("hash"))
    found = _cache.get(cache_key)
    if found is not None and found[0] == match:
        return found[1]
    record = NormalizedRecord.from_dict(match)
    with _lock:
        if len(_cache) >= MAX_CACHED:
            _cache.clear()
        _cache[cache_key] = (dict(match), record)  # a copy: the caller's document may change later
    return record
