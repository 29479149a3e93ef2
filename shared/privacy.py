"""Privacy operations: export everything held about a person, and erase it with cascade.

Erase removes the profile, its aliases (every profile merged into it, however long ago), identifiers, the
person's part of device links (their segments of a shared device's history; a link left with no one is deleted),
source records, activity and its owner entries (activity id -> record key), blocking entries, merge log, review items
(those naming the person's profile ids or record keys, also a review about a record that moved to another profile
since) and the person's keys and ids in other people's profiles and merge logs (_clear_from_others), then leaves
tombstones (ids and time only): the profile id and its aliases answer 410 Gone, and each erased source record keeps
an empty records doc (its key and the time), so the record arriving again (a redelivered or replayed message, its
file landed again) is not resolved into a new profile: the resolver answers "erased". A merge in flight is
finished first, so the whole person is erased; a record linked while the erase runs is erased by another pass (the
tombstone is written with the profile's ETag). The erasure log (state container, `erasure:<profile id>`) holds ids
and counts, never PII, and is written before the tombstone, so a retry after a crash completes it. An export holds
the person's own data only: record keys and profile ids of other people (a never-match, a record split out or
compared with, a review about another person's record) are left out.
"""
from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timezone
from typing import Any, Callable

from .activity import OWNERS, forget_entries, forget_owner, list_activity, owner_entries
from .events.devices import erase_owners, export_view, links_holding
from .identity.docs import NOTED_HOLDERS, ConcurrencyConflict, Ctx, now_iso, source_identifier, with_retries
from .identity.lookup import list_merges
from .identity.maintenance import (RECORD_REMOVED, finish_split_in_flight, finish_splits_into, forget_holders,
                                   leave_named_before, release_identifier, update_block)
from .identity.merge import MAX_WRITE_ATTEMPTS, live_profile
from .store import ItemExistsError, ItemNotFoundError, PreconditionFailedError, Store

log = logging.getLogger(__name__)
MAX_PASSES = 10  # erase passes when records keep being linked while erasing
# What an erase counts (what this call deleted: after a retry, what the attempt that was cut off had left).
COUNTED = ("device_links", "identifiers", "source_records", "activity", "aliases", "merges", "review", "blocking",
           "others_redacted")  # other people's docs (profiles, merge-log entries) that named the person, redacted
# Where merge-log entries, review items and record links (profile.records[].link) name records and profiles. A
# record key redacted (here or in a `records` list) takes the score with it: the score and levels compare records.
KEY_FIELDS = ("record_key", "via_record", "compared_record")
ID_FIELDS = ("profile_id", "candidate_profile_id", "absorbed_id", "split_into", "split_from", "from")
SCORE_FIELDS = ("score", "match_weight", "contributions", "levels", "review_id")
ERASED, WITHHELD = "erased", "withheld"  # what a redacted key or id reads: erased (in others' docs), or in an export


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _merged_ids(profile: dict[str, Any]) -> list[str]:
    """The profile's id and every id merged into it: the partitions of its merge log, its aliases."""
    return [profile["id"], *profile.get("merged_from", [])]


def _aliases(store: Store, profile: dict[str, Any]) -> list[str]:
    direct = [a["id"] for a in store.container("profiles").query_items(("merged_into", "=", profile["id"]))]
    return sorted(set(profile.get("merged_from", [])) | set(direct))


def _owners(store: Store, profile: dict[str, Any]) -> list[str]:
    """The person's record keys: those the profile holds, then those deleted at their source while it held them
    (its merge log says so), whose activity, device history and mentions in other people's logs are still the
    person's; not a key that came back since as a record held by a profile (then another person's, maybe)."""
    keys = [r["key"] for r in profile.get("records", [])]
    removed = sorted({key for entry in list_merges(store, profile["id"]) if entry.get("reason") == RECORD_REMOVED
                      for key in entry.get("records", [])} - set(keys))
    records = store.container("records")
    docs = records.read_items([(key, key) for key in removed]) if removed else []
    return keys + [key for key, doc in zip(removed, docs) if doc is None or not doc.get("profile_id")]


def _reviews(store: Store, profile: dict[str, Any], keys: list[str]) -> list[dict[str, Any]]:
    """Review items naming the person: their record (`keys`) is the subject or the record compared, or their
    profile the one named at the time. A review keeps the profile ids of when it opened: a record split out since is
    found by its key. The review container is partitioned by review id, so this is one cross-partition query
    (reviews are few, and indexed by these fields)."""
    ids = _merged_ids(profile)
    return list(store.container("review").query_items(("or", [
        ("profile_id", "in", ids), ("candidate_profile_id", "in", ids),
        ("record_key", "in", keys), ("compared_record", "in", keys)])))


def _redacted(doc: dict[str, Any], named: Callable[[str], bool], mark: str) -> dict[str, Any]:
    """The doc (a merge-log entry, a review, a record's link) with each record key and profile id `named` holds
    replaced by `mark` (left out of its `records` list); a record key left out drops the score too."""
    out = dict(doc)
    if isinstance(out.get("records"), list):
        out["records"] = [k for k in out["records"] if not (isinstance(k, str) and named(k))]
    compared = out.get("records") != doc.get("records")  # a record linked or merged by the score
    for field in KEY_FIELDS + ID_FIELDS:
        value = out.get(field)
        if isinstance(value, str) and value != mark and named(value):
            out[field] = mark
            compared = compared or field in KEY_FIELDS
    if compared:
        for field in SCORE_FIELDS:
            out.pop(field, None)
    return out


def _with_links_redacted(profile: dict[str, Any], named: Callable[[str], bool], mark: str) -> list[dict[str, Any]]:
    """The profile's record entries, each link (why the record joined) redacted."""
    return [{**r, "link": _redacted(r["link"], named, mark)} if isinstance(r.get("link"), dict) else r
            for r in profile.get("records", [])]


def export_profile(store: Store, profile: dict[str, Any]) -> dict[str, Any]:
    """Everything held about the person behind this (live) profile, as JSON."""
    pid = profile["id"]
    owners = _owners(store, profile)
    records = [store.container("records").read_item_or_none(r["key"], r["key"]) for r in profile.get("records", [])]
    identifiers = [store.container("identifiers").read_item_or_none(i, i) for i in profile.get("identifiers", [])]
    # Only the person's own data: the record keys and profile ids of other people are left out (withheld), as is a
    # review about another person's record, even one opened while that record was in this profile.
    own = set(owners) | set(_merged_ids(profile))

    def other(name: str) -> bool:
        return name not in own

    # Without the profiles noted as holders of its values (engine._note_on_kept_apart): other people.
    view = {**{k: v for k, v in profile.items() if k != NOTED_HOLDERS},
            "never_match": [n for n in profile.get("never_match", []) if n in own],
            "records": _with_links_redacted(profile, other, WITHHELD)}
    return {
        "exported_at": _now(),
        "profile": view,
        "source_records": [r for r in records if r],
        # Without the other profiles whose records give the value too (maintenance.note_holder): other people.
        "identifiers": [{k: v for k, v in i.items() if k != "holders"} for i in identifiers
                        if i and i.get("profile_id") == pid],
        "activity": list(list_activity(store, owners)),
        "activity_owners": owner_entries(store, owners),  # where each activity id is stored (its owner)
        "merges": [_redacted(entry, other, WITHHELD) for entry in list_merges(store, pid)],
        "aliases": _aliases(store, profile),
        "review": [_redacted(r, other, WITHHELD) for r in _reviews(store, profile, owners)
                   if r.get("record_key") in own],
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
        if not current.get("erasing_at"):
            # Marked first: a split of one of the person's records out of the profile would take it beyond the
            # erase's reach; one that started before loses its profile write and undoes itself (split_record).
            try:
                current = store.container("profiles").replace_item({**current, "erasing_at": _now()},
                                                                   etag=current["_etag"])
            except PreconditionFailedError:
                continue
        marker = current.get("splitting")
        # A split cut off before it took its record out is given up (its copy goes); one cut off after is finished
        # (its record is another profile's now), as is one into this profile: else its pointers name the erased one.
        if marker and finish_split_in_flight(ctx, current, marker["key"], give_up=True) or finish_splits_into(
                ctx, current):
            continue
        _erase_contents(store, ctx, current, counts)
        at = _now()
        store.container("state").upsert_item({
            "id": f"erasure:{current['id']}", "kind": "erasure", "profile_id": current["id"], "at": at,
            "aliases": _aliases(store, current), "counts": {k: counts[k] for k in COUNTED}})
        if _tombstone(store, current, at, counts):
            # Once more: a worker linking a record to the profile checks for the tombstone after its last write
            # (engine._undo_after_erasure). One that checked before the tombstone was there wrote everything
            # before it, listed in this version of the profile: its identifiers and blocking keys go now.
            late: Counter = Counter()
            _erase_index(ctx, current, late)
            counts["identifiers"] += late["identifiers"]
            log.info("erased profile %s: %s", current["id"], dict(counts))
            break
    else:
        raise ConcurrencyConflict("records kept being linked to the profile while it was erased")
    return {k: counts[k] for k in COUNTED}


def _erase_contents(store: Store, ctx: Ctx, profile: dict[str, Any], counts: Counter) -> None:
    """Everything but the profile doc itself; each step is idempotent. The person's own merge log goes last: it
    names the records deleted at their source (_owners), which a retry after a crash must find again."""
    owners = _owners(store, profile)
    records, activity = store.container("records"), store.container("activity")
    held = {r["key"] for r in profile.get("records", [])}
    for key in [key for key in owners if key not in held]:  # deleted at their source: first, see _mark_record_erased
        marked = _mark_record_erased(records, key, held=False)
        if marked is None:  # its key came back meanwhile as a record a profile holds: not the person's any more
            owners.remove(key)
        else:
            counts["source_records"] += marked
    # A shared device's link keeps the others: only this person's part of its history goes (shared/events/devices.py).
    counts["device_links"] += erase_owners(store, owners)
    _erase_index(ctx, profile, counts)
    entries = store.container(OWNERS)
    for entry in owner_entries(store, owners):  # those naming the person's records, also where no doc is left
        forget_owner(entries, entry)
    for key in owners:
        items = list(activity.query_items(partition_key=key))
        forget_entries(store, key, [item["id"] for item in items])  # first: a retry finds the docs again
        for item in items:
            activity.delete_item(item["id"], key)
            counts["activity"] += 1
        counts["identifiers"] += _erase_stray_source_identifier(ctx, key)
        if key in held:
            # Not logged: the others' logs keep no key of the person's (_clear_from_others).
            counts["others_redacted"] += leave_named_before(ctx, records.read_item_or_none(key, key), key,
                                                            keep=profile["id"], logged=False)
            counts["source_records"] += _mark_record_erased(records, key, held=True)
    review = store.container("review")
    for item in _reviews(store, profile, owners):
        review.delete_item(item["id"], item["id"])
        counts["review"] += 1
    _clear_from_others(ctx, profile, owners, counts)
    merges = store.container("merges")
    for entry in list_merges(store, profile["id"]):
        merges.delete_item(entry["id"], entry["profile_id"])
        counts["merges"] += 1


def _mark_record_erased(records, key: str, *, held: bool) -> int | None:
    """The record's doc, kept empty: its key and when, so its next arrival is not resolved again (see above); 1 when
    written, 0 when it was already. A record the profile does not hold (deleted at its source) is marked first, and
    only while no profile holds its key, under the doc's ETag: None when the key came back since _owners read it
    (then it is another record, maybe another person's, as one that came back before)."""
    for _ in range(MAX_WRITE_ATTEMPTS):
        doc = records.read_item_or_none(key, key)
        if doc is not None and doc.get("erased_at"):
            return 0
        if not held and doc is not None and doc.get("profile_id"):
            return None
        body = {"id": key, "profile_id": None, "erased_at": _now()}
        try:
            if held:
                records.upsert_item(body)
            elif doc is None:
                records.create_item(body)
            else:
                records.replace_item(body, etag=doc["_etag"])
            return 1
        except (ItemExistsError, PreconditionFailedError, ItemNotFoundError):
            continue
    raise ConcurrencyConflict("a record kept being written while it was erased")


def _erase_stray_source_identifier(ctx: Ctx, key: str) -> int:
    """The record's own identifier when it names a profile that does not hold the record: a worker died after
    moving the record to the person's profile (its new content was another person's) and before pointing it there
    (its commit). The record is erased, so it goes (1), whoever it names."""
    iid = source_identifier(key)
    for _ in range(MAX_WRITE_ATTEMPTS):
        doc = ctx.identifiers.read_item_or_none(iid, iid)
        named = live_profile(ctx, doc["profile_id"]) if doc is not None and doc.get("profile_id") else None
        if doc is None or (named is not None and any(r["key"] == key for r in named["records"])):
            return 0
        try:
            ctx.identifiers.delete_item(iid, iid, etag=doc["_etag"])
            return 1
        except PreconditionFailedError:
            continue
    raise ConcurrencyConflict("could not erase a record's own identifier")


def _erase_index(ctx: Ctx, profile: dict[str, Any], counts: Counter) -> None:
    """The identifiers and blocking keys that lead to the person (the profile lists them: its records' entries)."""
    ids_of_person = set(_merged_ids(profile))
    for ident in profile.get("identifiers", []):
        # Handed on to another person whose record gives it too (a household's phone), else deleted.
        counts["identifiers"] += release_identifier(ctx, ident, ids_of_person)
    # Remembered as giving another person's (a household's phone): found by a cross-partition query, as the rest of
    # the person's ids are (_clear_from_others), since a record that stopped giving a value leaves its profile there.
    for chunk in _chunks(sorted(ids_of_person)):
        for doc in list(ctx.identifiers.query_items(("or", [("holders", "contains", pid) for pid in chunk]))):
            forget_holders(ctx, doc["id"], ids_of_person)
    # Every key naming the person, also one none of their records gives now (left by two versions of a record
    # resolved at once, by a worker that died): a key is made of their data (birth date, postcode, email name).
    keys = {k for r in profile.get("records", []) for k in r.get("blocking_keys", [])}
    for chunk in _chunks(sorted(ids_of_person)):
        keys.update(doc["id"] for doc in ctx.blocking.query_items(("or", [("profile_ids", "contains", pid)
                                                                          for pid in chunk])))
    for key in sorted(keys):
        for pid in ids_of_person:  # ETag-guarded, like the resolver's own updates; an emptied key is deleted
            update_block(ctx, key, remove=pid, add=None)
        counts["blocking"] += 1


def _clear_from_others(ctx: Ctx, profile: dict[str, Any], owners: list[str], counts: Counter) -> None:
    """The person's record keys and profile ids out of other people's profiles and merge logs, however they came there:
    a record split out of one into the other, a review rejected between them, a record of the person that was linked to
    another profile and left it (it changed; then maybe deleted at its source: `owners`), a profile split from the
    person's before its id was used again. Their never_match drops the person's keys and ids (an erased record never
    comes back, so it cannot be joined again); in their records' links (the record compared, the profile split from) and
    their merge log they read "erased", a record key leaves `records` lists, and the scores comparing an erased record
    go, so the history keeps that a record was linked, merged or split out. Erase is a rare admin operation:
    cross-partition queries find every merge-log entry naming the person (an entry in the partition of one of the
    person's ids is their own history: deleted) and every profile whose never_match names them; a record's link names
    another record or profile only with an entry in the same profile's log (a score link, a split), so the profile
    holding each entry found is cleared too. Each profile is cleared before its entries: a retry after a crash finds the
    entries again, and through them the profile. The profile keeps its records and ids until its tombstone, so a retry
    asks the same questions. Every write is idempotent, under the document's ETag."""
    keys = sorted(set(owners))
    ids = sorted(set(_merged_ids(profile)) | set(_aliases(ctx.store, profile)))
    erased = set(keys) | set(ids)
    entries: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in _entries_naming(ctx, keys, ids):
        entries[(entry["profile_id"], entry["id"])] = entry
    others = {name for name in profile.get("never_match", []) if "|" not in name}  # profile ids, not record keys
    others |= {entry["profile_id"] for entry in entries.values()}
    for chunk in _chunks(sorted(erased)):
        query = ("or", [(field, "contains", name) for name in chunk for field in ("never_match", NOTED_HOLDERS)])
        others |= {doc["id"] for doc in ctx.profiles.query_items(query)}
    live = set()  # the live profiles holding those ids (a merge-log partition may be an id merged since)
    for name in sorted(others - erased):
        other = live_profile(ctx, name)
        if other is not None and other["id"] not in erased:
            live.add(other["id"])
    for other_id in sorted(live):
        counts["others_redacted"] += with_retries(ctx, lambda: _redact_profile(ctx, other_id, erased))
    # Others' entries first, then the person's own (in an alias's partition list_merges does not reach): their log
    # names the person's deleted records (_owners), which a retry after a crash must find again.
    for (partition, _), entry in sorted(entries.items(), key=lambda item: (item[0][0] in erased, item[0])):
        if partition in erased:
            ctx.merges.delete_item(entry["id"], partition)
            counts["merges"] += 1
        else:
            counts["others_redacted"] += _redact_entry(ctx, entry, erased)


QUERY_NAMES = 50  # names per cross-partition query: a list field is asked for one name per condition


def _chunks(names: list[str]) -> list[list[str]]:
    return [names[i:i + QUERY_NAMES] for i in range(0, len(names), QUERY_NAMES)]


def _entries_naming(ctx: Ctx, keys: list[str], ids: list[str]) -> list[dict[str, Any]]:
    """Merge-log entries, in any partition, naming one of the record keys or profile ids."""
    found = list(ctx.merges.query_items(("or", [
        *((field, "in", keys) for field in ("via_record", "compared_record")),
        *((field, "in", ids) for field in ("profile_id", "absorbed_id", "split_into", "split_from", "from"))])))
    for chunk in _chunks(keys):
        found += ctx.merges.query_items(("or", [("records", "contains", key) for key in chunk]))
    return found


def _redact_entry(ctx: Ctx, entry: dict[str, Any], erased: set[str]) -> int:
    """A merge-log entry without the erased keys and ids; 1 when it named them."""
    for _ in range(MAX_PASSES):
        redacted = _redacted(entry, erased.__contains__, ERASED)
        if redacted == entry:
            return 0
        try:
            ctx.merges.replace_item(redacted, etag=entry["_etag"])
            return 1
        except ItemNotFoundError:  # deleted meanwhile (a pending merge closed)
            return 0
        except PreconditionFailedError:  # rewritten meanwhile (a merge completing): redact what it is now
            entry = ctx.merges.read_item_or_none(entry["id"], entry["profile_id"])
            if entry is None:
                return 0
    raise ConcurrencyConflict("a merge-log entry kept changing while it was redacted")


def _redact_profile(ctx: Ctx, profile_id: str, erased: set[str]) -> int:
    """Another person's profile without the erased keys and ids in its never_match, its noted holders and its
    records' links; 1 when it named them. Raises PreconditionFailedError when it changed since it was read
    (with_retries reads it again)."""
    doc = live_profile(ctx, profile_id)
    if doc is None:
        return 0
    never = [n for n in doc.get("never_match", []) if n not in erased]
    noted = [n for n in doc.get(NOTED_HOLDERS, []) if n not in erased]
    records = _with_links_redacted(doc, erased.__contains__, ERASED)
    if (never, noted, records) == (doc.get("never_match", []), doc.get(NOTED_HOLDERS, []), doc.get("records", [])):
        return 0
    kept = {NOTED_HOLDERS: noted} if NOTED_HOLDERS in doc else {}
    ctx.profiles.replace_item({**doc, "never_match": never, **kept, "records": records, "updated_at": now_iso()},
                              etag=doc["_etag"])
    return 1


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
