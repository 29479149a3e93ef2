"""Privacy operations: export everything held about a person, and erase it with cascade.

Erase removes the profile, its aliases, identifiers, source records, activity, blocking entries, merge log,
review items and scores, then leaves a tombstone (id and time only) so the id answers 410 Gone and a
replayed message cannot silently recreate the profile from stale state. The erasure log holds ids and counts,
never PII.
"""
from __future__ import annotations

import logging
import uuid
from datetime import datetime, timezone
from typing import Any

from .activity import list_activity
from .identity.docs import Ctx
from .identity.maintenance import update_block
from .store import Store

log = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def export_profile(store: Store, profile: dict[str, Any]) -> dict[str, Any]:
    """Everything held about the person behind this (live) profile, as JSON."""
    pid = profile["id"]
    owners = [r["key"] for r in profile.get("records", [])]
    records = [store.container("records").read_item_or_none(k, k) for k in owners]
    identifiers = [store.container("identifiers").read_item_or_none(i, i) for i in profile.get("identifiers", [])]
    return {
        "exported_at": _now(),
        "profile": profile,
        "source_records": [r for r in records if r],
        "identifiers": [i for i in identifiers if i and i.get("profile_id") == pid],
        "activity": list(list_activity(store, owners)),
        "merges": list(store.container("merges").query_items(partition_key=pid)),
        "aliases": [a["id"] for a in store.container("profiles").query_items(("merged_into", "=", pid))],
        "review": list(store.container("review").query_items(("candidate_profile_id", "=", pid))),
        "device_links": _device_links(store, owners),
    }


def _device_links(store: Store, owners: list[str]) -> list[dict[str, Any]]:
    """Anonymous (device) ids linked to this person's records by identify events."""
    if not owners:
        return []
    return list(store.container("identifiers").query_items(
        ("and", [("type", "=", "anonymous_id"), ("owner", "in", owners)])))


def _blocking_keys(profile: dict[str, Any]) -> set[str]:
    """The blocking keys the resolver stored for the profile's records."""
    return {key for r in profile.get("records", []) for key in r.get("blocking_keys", [])}


def erase_profile(store: Store, profile: dict[str, Any]) -> dict[str, int]:
    """Erase the person behind this live profile. Idempotent: running it again finds nothing more to delete."""
    pid = profile["id"]
    counts = {"device_links": 0, "identifiers": 0, "source_records": 0, "activity": 0, "aliases": 0, "merges": 0, "review": 0, "blocking": 0}
    owners = [r["key"] for r in profile.get("records", [])]

    ids = store.container("identifiers")
    for link in _device_links(store, owners):
        ids.delete_item(link["id"], link["id"])
        counts["device_links"] += 1
    for ident in profile.get("identifiers", []):
        doc = ids.read_item_or_none(ident, ident)
        if doc and doc.get("profile_id") == pid:
            ids.delete_item(ident, ident)
            counts["identifiers"] += 1
    for key in owners:
        if store.container("records").read_item_or_none(key, key):
            store.container("records").delete_item(key, key)
            counts["source_records"] += 1
        activity = store.container("activity")
        for item in list(activity.query_items(partition_key=key)):
            activity.delete_item(item["id"], key)
            counts["activity"] += 1
    ctx = Ctx(store)
    for key in _blocking_keys(profile):
        update_block(ctx, key, remove=pid, add=None)  # ETag-guarded, like the resolver's own updates
        counts["blocking"] += 1
    merges = store.container("merges")
    for entry in list(merges.query_items(partition_key=pid)):
        merges.delete_item(entry["id"], pid)
        counts["merges"] += 1
    review = store.container("review")
    for item in list(review.query_items(("candidate_profile_id", "=", pid))):
        review.delete_item(item["id"], item["id"])
        counts["review"] += 1
    profiles = store.container("profiles")
    tombstone = {"doc_type": "erased", "erased_at": _now()}
    for alias in list(profiles.query_items(("merged_into", "=", pid))):
        profiles.upsert_item({"id": alias["id"], **tombstone})
        counts["aliases"] += 1
    profiles.upsert_item({"id": pid, **tombstone})
    store.container("state").create_item({"id": f"erasure:{uuid.uuid4().hex}", "kind": "erasure",
                                          "profile_id": pid, "at": tombstone["erased_at"], "counts": counts})
    log.info("erased profile %s: %s", pid, counts)
    return counts
