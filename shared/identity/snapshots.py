"""The normalized records of a profile (its record entries' "match" snapshots), built once per profile version.

A profile is a candidate for every record that shares a blocking key with it, so its records are scored again
and again; rebuilding the frozen dataclasses from the stored JSON for every comparison was a large part of
in-process resolution. The cache is keyed by profile id and holds the snapshots of one version, recognised by
its ETag and the (key, content hash) of its records, so a changed profile is never scored from stale snapshots.
"""
from __future__ import annotations

from typing import Any

from shared.normalize import NormalizedRecord

MAX_CACHED_PROFILES = 200_000  # bounded memory for long-running processes; cleared when full

Snapshots = tuple[tuple[str, NormalizedRecord], ...]
_cache: dict[str, tuple[tuple, Snapshots]] = {}


def profile_snapshots(profile: dict[str, Any]) -> Snapshots:
    """(record key, normalized record) for each record entry of the profile that has a snapshot."""
    records = profile.get("records", [])
    version = (profile.get("_etag"), tuple((entry["key"], entry.get("hash")) for entry in records))
    found = _cache.get(profile["id"])
    if found is not None and found[0] == version:
        return found[1]
    snapshots = tuple((entry["key"], NormalizedRecord.from_dict(entry["match"])) for entry in records if entry.get("match"))
    if len(_cache) >= MAX_CACHED_PROFILES:
        _cache.clear()
    _cache[profile["id"]] = (version, snapshots)
    return snapshots
