"""The normalized records of a profile (its record entries' "match" snapshots), built once per profile version.

A profile is a candidate for every record that shares a blocking key with it, so its records are scored again
and again; rebuilding the frozen dataclasses from the stored JSON for every comparison was a large part of
in-process resolution. A cache belongs to one resolver, hence one store, where every write gives a document a
new ETag: a profile whose ETag is unchanged has the same records, and a changed one is never scored from stale
snapshots.
"""
from __future__ import annotations

from typing import Any

from shared.normalize import NormalizedRecord

Snapshots = tuple[tuple[str, NormalizedRecord], ...]


class ProfileSnapshots:
    def __init__(self, max_profiles: int = 200_000):
        self._max = max_profiles  # bounded memory for long-lived resolvers (cleared when full); 0: no cache
        self._cache: dict[str, tuple[str, Snapshots]] = {}

    def of(self, profile: dict[str, Any]) -> Snapshots:
        """(record key, normalized record) for each record entry of the profile that has a snapshot."""
        etag = profile.get("_etag")
        found = self._cache.get(profile["id"])
        if found is not None and etag is not None and found[0] == etag:
            return found[1]
        snapshots = tuple((entry["key"], NormalizedRecord.from_dict(entry["match"]))
                          for entry in profile.get("records", []) if entry.get("match"))
        self._put(profile, snapshots)
        return snapshots

    def written(self, before: dict[str, Any] | None, after: dict[str, Any], key: str, record: NormalizedRecord) -> None:
        """The resolver wrote `after`: `before` (None for a new profile) with the entry of record `key` (re)placed
        last, its snapshot being `record`. The new version's snapshots follow from the cached old ones, so the
        next record scoring this profile does not rebuild them all from JSON."""
        if before is None:
            self._put(after, ((key, record),))
            return
        found = self._cache.get(before["id"])
        if found is not None and before.get("_etag") is not None and found[0] == before["_etag"]:
            self._put(after, tuple(s for s in found[1] if s[0] != key) + ((key, record),))

    def _put(self, profile: dict[str, Any], snapshots: Snapshots) -> None:
        etag = profile.get("_etag")
        if etag is not None and self._max > 0:
            if len(self._cache) >= self._max:
                self._cache.clear()
            self._cache[profile["id"]] = (etag, snapshots)
