"""Privacy operations: export everything held about a person, and erase it with cascade.

Erase removes the profile, its aliases (every profile merged into it, however long ago), identifiers, the
person's part of device links (their segments of a shared device's history; a link left with no one is deleted),
source records, activity and its owner entries (activity id -> record key), blocking entries, merge log, review items
and scores, then leaves tombstones (ids and time only): the profile id and its aliases answer 410 Gone, and each
erased source record keeps an empty records doc (its key and the time), so the record arriving again (a
redelivered or replayed message, its file landed again) is not resolved into a new profile: the resolver answers
"erased". A merge in flight is finished first, so the whole person is erased; a record linked while the erase runs
is erased by another pass (the tombstone is written with the profile's ETag). The erasure log (state container,
`erasure:<profile id>`) holds ids and counts, never PII, and is written before the tombstone, so a retry after a
crash completes it.
"""
from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from .activity import OWNERS, forget_entries, forget_owner, list_activity, owner_entries
from .events.devices import erase_owners, export_view, links_holding
from .identity.docs import ConcurrencyConflict, Ctx
from .identity.lookup import list_merges
from .identity.maintenance import update_block
from .identity.merge import live_profile
from .store import PreconditionFailedError, Store

log = logging.getLogger(__name__)
MAX_PASSES = 10  # erase passes when records keep being linked while erasing
# What an erase counts (what this call deleted: after a retry, what the attempt that was cut off had left).
COUNTED = ("device_links", "identifiers", "source_records", "activity", "aliases", "merges", "review", "blocking")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _merged_ids(profile: dict[str, Any]) -> list[str]:
    """The profile's id and every id merged into it: the partitions of its merge log, its aliases."""
    return [profile["id"], *profile.get("merged_from", [])]


def _aliases(store: Store, profile: dict[str, Any]) -> list[str]:
    direct = [a["id"] for a in store.container("profiles").query_items(("merged_into", "=", profile["id"]))]
    return sorted(set(profile.get("merged_from", [])) | set(direct))


def _reviews(store: Store, profile: dict[str, Any]) -> list[dict[str, Any]]:
    """Review items about the person: their record is the subject or their profile the candidate."""
    ids = _merged_ids(profile)
    return list(store.container("review").query_items(
        ("or", [("profile_id", "in", ids), ("candidate_profile_id", "in", ids)])))


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
        "activity_owners": owner_entries(store, owners),  # where each activity id is stored (its owner)
        "merges": list_merges(store, pid),
        "aliases": _aliases(store, profile),
        "review": _reviews(store, profile),
        "device_links": [export_view(link, owners) for link in links_holding(store, owners)],  # own part only
    }


def erase_profile(store: Store, profile: dict[str, Any]) -> dict[str, int]:
    """Erase the person behind this live profile (any of its ids). Idempotent: running it again, also after a
    crash half-way, finds nothing more to delete and completes the log and the tombstone."""
    ctx = Ctx(store)
    counts: Counter = Counter({k: 0 for k in COUNTED})
    for _ in range(MAX_PASSES):
        current = live_profile(ctx, profile["id"])  # finishes a merge in flight: the whole person is one profile
        if current is None:
            break  # erased meanwhile by another request
        _erase_contents(store, ctx, current, counts)
        at = _now()
        store.container("state").upsert_item({
            "id": f"erasure:{current['id']}", "kind": "erasure", "profile_id": current["id"], "at": at,
            "aliases": _aliases(store, current), "counts": {k: counts[k] for k in COUNTED}})
        if _tombstone(store, current, at, counts):
            log.info("erased profile %s: %s", current["id"], dict(counts))
            break
    else:
        raise ConcurrencyConflict("records kept being linked to the profile while it was erased")
    return {k: counts[k] for k in COUNTED}


def _erase_contents(store: Store, ctx: Ctx, profile: dict[str, Any], counts: Counter) -> None:
    """Everything but the profile doc itself; each step is idempotent."""
    ids_of_person = set(_merged_ids(profile))
    owners = [r["key"] for r in profile.get("records", [])]
    identifiers = store.container("identifiers")
    # A shared device's link keeps the others: only this person's part of its history goes (shared/events/devices.py).
    counts["device_links"] += erase_owners(store, owners)
    for ident in profile.get("identifiers", []):
        doc = identifiers.read_item_or_none(ident, ident)
        if doc and doc.get("profile_id") in ids_of_person:
            identifiers.delete_item(ident, ident)
            counts["identifiers"] += 1
    records, activity = store.container("records"), store.container("activity")
    entries = store.container(OWNERS)
    for entry in owner_entries(store, owners):  # those naming the person's records, also where no doc is left
        forget_owner(entries, entry)
    for key in owners:
        items = list(activity.query_items(partition_key=key))
        forget_entries(store, key, [item["id"] for item in items])  # first: a retry finds the docs again
        for item in items:
            activity.delete_item(item["id"], key)
            counts["activity"] += 1
        doc = records.read_item_or_none(key, key)
        if doc is None or not doc.get("erased_at"):
            # Kept empty: the record's key and when, so its next arrival is not resolved again (see above).
            records.upsert_item({"id": key, "profile_id": None, "erased_at": _now()})
            counts["source_records"] += 1
    for key in sorted({k for r in profile.get("records", []) for k in r.get("blocking_keys", [])}):
        for pid in ids_of_person:  # ETag-guarded, like the resolver's own updates; an emptied key is deleted
            update_block(ctx, key, remove=pid, add=None)
        counts["blocking"] += 1
    merges = store.container("merges")
    for entry in list_merges(store, profile["id"]):
        merges.delete_item(entry["id"], entry["profile_id"])
        counts["merges"] += 1
    review = store.container("review")
    for item in _reviews(store, profile):
        review.delete_item(item["id"], item["id"])
        counts["review"] += 1


def _tombstone(store: Store, profile: dict[str, Any], at: str, counts: Counter) -> bool:
    """Replace the profile and its aliases by tombstones; False when the profile changed since it was read (a
    record linked meanwhile: another pass erases it)."""
    profiles = store.container("profiles")
    tombstone = {"doc_type": "erased", "erased_at": at}
    for alias in _aliases(store, profile):  # first: once the profile is a tombstone, no retry comes back here
        if (profiles.read_item_or_none(alias, alias) or {}).get("doc_type") != "erased":
            profiles.upsert_item({"id": alias, **tombstone})
            counts["aliases"] += 1
    try:
        profiles.replace_item({"id": profile["id"], **tombstone}, etag=profile["_etag"])
    except PreconditionFailedError:
        return False
    return True
