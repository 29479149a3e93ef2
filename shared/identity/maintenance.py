"""Taking records out of profiles: incremental deletes (remove_record) and manual splits (split_record)."""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterable

from shared.normalize import NormalizedRecord
from shared.settings import Settings
from shared.store import ItemExistsError, ItemNotFoundError, PreconditionFailedError, Store

from .docs import (MAX_ALIAS_HOPS, NAMED_BEFORE, REKEYING, ConcurrencyConflict, Ctx, is_device_link, is_live,
                   now_iso, profile_id_for_record, record_identifiers, source_identifier, stable_hash, with_retries)
from .merge import (MAX_WRITE_ATTEMPTS, _close_pending, _leads_to_one_of, _merged_into, _repoint, _repoint_given,
                    _repoint_records, _set_profile_id, live_profile)
from .survivorship import survive

log = logging.getLogger(__name__)


def entry_identifiers(entry: dict[str, Any]) -> set[str]:
    """The identifiers one record entry of a profile contributes (its source key and strong identifiers)."""
    n = NormalizedRecord.from_dict(entry.get("match") or {"key": entry["key"], "source": entry["source"]})
    return {source_identifier(entry["key"]), *record_identifiers(n)}


def only_given_by(entry: dict[str, Any], remaining: list[dict[str, Any]]) -> tuple[set[str], set[str]]:
    """Identifiers and blocking keys only this entry gives its profile (none of the remaining entries does)."""
    others_ids = set().union(*(entry_identifiers(r) for r in remaining)) if remaining else set()
    others_keys = {k for r in remaining for k in r.get("blocking_keys", [])}
    return entry_identifiers(entry) - others_ids, set(entry.get("blocking_keys", [])) - others_keys


def _without(profile: dict[str, Any], key: str, own_ids: set[str], ctx: Ctx, **extra: Any) -> dict[str, Any]:
    remaining = [r for r in profile["records"] if r["key"] != key]
    attributes, conflicts = survive(remaining, ctx.config.survivorship)
    return {**profile, "records": remaining, "identifiers": sorted(set(profile.get("identifiers", [])) - own_ids),
            "attributes": attributes, "conflicts": conflicts, "updated_at": now_iso(), **extra}


# --- identifiers several profiles' records give --------------------------------------------------------------
# One profile holds an identifier; other profiles' records may give it too: a household's phone kept with the member
# who claimed it first, an email a review kept apart, a split record's shared phone. Those are remembered on the
# identifier's document (`holders`), so when its holder lets it go (its record deleted or changed, the person
# erased) it passes to one of them instead of leading nowhere, as if the first holder had never been there.

MAX_HOLDERS = 16  # profiles remembered per identifier: a value hundreds of records give (a store's phone) keeps 16


def note_holder(ctx: Ctx, iid: str, profile_id: str, doc: dict[str, Any] | None = None, *,
                seen: set[str] | None = None) -> bool:
    """Remember that a record of `profile_id` gives the identifier another profile holds (idempotent; `doc`: the
    identifier's document as read, if it was). Released meanwhile (its holder's record deleted since it was read),
    it is claimed for the profile, as it would have been had the record come after: True then. `seen` gets the other
    holders the document named when the note was written (or found there): notes are serialized by the document's
    ETag, so of two profiles noted at once the later sees the earlier."""
    for _ in range(MAX_WRITE_ATTEMPTS):
        doc = doc or ctx.identifiers.read_item_or_none(iid, iid)
        try:
            if doc is None:
                return _claim_released(ctx, iid, profile_id)
            holders = doc.get("holders", [])
            if seen is not None:
                seen.update(h for h in holders if h != profile_id)
            if doc.get("profile_id") == profile_id:
                # Handed on or claimed for it since the caller read it held elsewhere: it leads here, so the profile
                # lists it (the caller's write, from that read, may have left it off).
                list_while_given(ctx, profile_id, iid)
                return False
            if profile_id in holders or len(holders) >= MAX_HOLDERS:
                return False  # nothing to add
            ctx.identifiers.replace_item({**doc, "holders": [*holders, profile_id]}, etag=doc["_etag"])
            return False
        except (PreconditionFailedError, ItemNotFoundError, ItemExistsError):
            doc = None  # changed meanwhile: read it again
    raise ConcurrencyConflict("could not note an identifier's holder")


def _claim_released(ctx: Ctx, iid: str, profile_id: str) -> bool:
    # Listed first, as a hand-on does: a retry after a crash finds the document missing and claims it again.
    live = _heir(ctx, profile_id, iid, set())  # merged since, maybe
    if live is None:
        return False
    try:
        ctx.identifiers.create_item(_identifier_doc(iid, live["id"]))
    except ItemExistsError:
        # Claimed meanwhile: by another profile, this one is noted as one of its holders next; by another worker
        # for this very profile (two deliveries of its record), it stays listed.
        doc = ctx.identifiers.read_item_or_none(iid, iid)
        owner = live_profile(ctx, doc["profile_id"]) if doc is not None else None
        if owner is None or owner["id"] != live["id"]:
            _unlist(ctx, live["id"], iid)
        raise
    # Asked again once it points there: a link that decided while another profile held it may have written the
    # profile without it between the listing and the pointer (one read; a write only then).
    list_while_given(ctx, live["id"], iid)
    return True


def index_holders(store: Store, *, settings: Settings | None = None) -> dict[str, int]:
    """For a store written before identifiers remembered their holders: note every profile whose record gives an
    identifier it does not hold, claiming those nobody holds (released by a removal or an erase back then).
    Reads every profile (a cross-partition query): a one-off admin job. Idempotent; safe beside running workers."""
    ctx = Ctx(store, settings)
    counts = {"profiles": 0, "given_elsewhere": 0, "claimed": 0}
    for profile in ctx.profiles.query_items(("doc_type", "=", "profile")):
        counts["profiles"] += 1
        given_elsewhere, claimed = note_given_elsewhere(ctx, profile)
        counts["given_elsewhere"] += given_elsewhere
        counts["claimed"] += claimed
    return counts


def note_given_elsewhere(ctx: Ctx, profile: dict[str, Any]) -> tuple[int, int]:
    """Note the profile as a holder of each identifier its records give and it does not hold (another profile
    does), claiming those nobody holds. Returns (identifiers given and not held, claimed)."""
    given = {iid for entry in profile.get("records", []) for iid in entry_identifiers(entry)}
    not_held = sorted(given - set(profile.get("identifiers", [])) - {
        source_identifier(entry["key"]) for entry in profile.get("records", [])})
    claimed = sum(with_retries(ctx, lambda iid=iid: note_holder(ctx, iid, profile["id"])) for iid in not_held)
    return len(not_held), claimed


def release_identifier(ctx: Ctx, iid: str, leaving: set[str]) -> bool:
    """The identifier no longer leads to the profile(s) `leaving` (a profile and the ids merged into it): handed
    on to a profile whose record gives it, else deleted. False when it led elsewhere already. Written under the
    document's ETag, read again when another worker changed it (a holder noted meanwhile)."""
    released, listed_on = False, None
    for _ in range(MAX_WRITE_ATTEMPTS):
        doc = ctx.identifiers.read_item_or_none(iid, iid)
        if doc is None or doc.get("profile_id") not in leaving:
            if listed_on is not None and (doc or {}).get("profile_id") != listed_on:
                _unlist(ctx, listed_on, iid)  # listed by an attempt whose pointer write lost to another worker
            elif doc is not None and not released:
                _listed_where_it_leads(ctx, iid, doc)
            return released
        holders, heir = [h for h in doc.get("holders", []) if h not in leaving], None
        while holders and heir is None:
            heir = _heir(ctx, holders.pop(0), iid, leaving)
        try:
            if heir is None:
                ctx.identifiers.delete_item(iid, iid, etag=doc["_etag"])
                return True
            listed_on = heir["id"]
            ctx.identifiers.replace_item({**doc, "profile_id": heir["id"], "holders": holders}, etag=doc["_etag"])
        except (PreconditionFailedError, ItemNotFoundError):
            continue
        released, listed_on = True, None
        live = live_profile(ctx, heir["id"], finish=False)
        # Not listed, yet given: dropped for a moment by a worker that lost its claim to the profile let go (it lists
        # it again once it sees the pointer here): listed now, or the value would be released from under it.
        if live is not None and (iid in live.get("identifiers", []) or list_while_given(ctx, live["id"], iid)):
            if live["id"] != heir["id"]:  # merged into another since it listed the value: the pointer follows
                _repoint(ctx.identifiers, iid, heir["id"], live["id"], _set_profile_id)
            return True
        leaving = {heir["id"]}  # its record let the value go meanwhile, after reading the pointer as it was: on
    raise ConcurrencyConflict("could not release an identifier")


def _listed_where_it_leads(ctx: Ctx, iid: str, doc: dict[str, Any]) -> None:
    """An identifier to release found leading to another profile already: handed on there by an attempt that may
    have died between its pointer write and its check that the heir lists it (a duplicate delivery of the heir's
    record may drop it meanwhile, having read it leading elsewhere). Listed there while given: one profile read, and
    no merge finished on the way (a merge's saga releases identifiers too: finishing one here could recurse)."""
    heir = ctx.read_profile(doc["profile_id"])
    if is_live(heir) and iid not in heir.get("identifiers", []):
        list_while_given(ctx, heir["id"], iid)


def _heir(ctx: Ctx, holder: str, iid: str, leaving: set[str]) -> dict[str, Any] | None:
    """The live profile a holder id leads to, once it lists the identifier (while its record gives it: a crash
    before the pointer's write leaves a retry to hand it on again); None when it does not give it. Merged into
    another while listing it, the holder id is followed again."""
    for _ in range(MAX_WRITE_ATTEMPTS):
        # Not finishing the merges folded into it: a merge's saga releases what only the absorbed profile lists, and
        # its survivor, a holder, would finish that very merge again, and again (without end).
        heir = live_profile(ctx, holder, finish=False)
        if heir is None or heir["id"] in leaving or not _gives(heir, iid):
            return None
        listed = list_while_given(ctx, heir["id"], iid)
        if listed is not None:
            return heir if listed else None
    raise ConcurrencyConflict("could not hand an identifier on")


def release_again(ctx: Ctx, profile: dict[str, Any], ids: set[str], keys: set[str]) -> None:
    """After the write of a profile that no longer gives `ids` and `keys` (a record taken out or changed): one handed
    on to it meanwhile (release_identifier, after its release before the write had read the pointer as it was then)
    is released again. So is a key that lists it again (a split still running puts its new profile under the keys of
    the record's version it read). One its records give again (a record linked meanwhile) is index_again's. One
    batched read each, only when there are any. An identifier naming an id merged into the profile counts as naming
    it while that id's alias leads here (a read of it, when one does): claimed for a profile a merge then folded
    into this one, the saga repointing only what that profile listed (races bench, seed 1008896:
    identifier_points_to_alias). Not an id founded again since (a record's profile id is derived from its key)."""
    listed = sorted(ids)
    id_docs = ctx.identifiers.read_items(list(zip(listed, listed))) if listed else []
    naming = {iid: doc["profile_id"] for iid, doc in zip(listed, id_docs)
              if doc is not None and not _gives(profile, iid)}
    merged = set(profile.get("merged_from", ())) & set(naming.values())
    leading_here = {pid for pid in merged if (live_profile(ctx, pid, finish=False) or {}).get("id") == profile["id"]}
    names = {profile["id"], *leading_here}
    stale_ids = {iid for iid, pid in naming.items() if pid in names}
    blocks = sorted(keys - keys_given(profile))
    block_docs = ctx.blocking.read_items(list(zip(blocks, blocks))) if blocks else []
    stale_keys = {block for block, doc in zip(blocks, block_docs)
                  if doc is not None and profile["id"] in doc.get("profile_ids", [])}
    if not (stale_ids or stale_keys):
        return
    # A record linked since the write may give them again (it found them leading here, so it claimed none): the live
    # profile decides, read again after the release for a record linking meanwhile, as index_again does.
    live = live_profile(ctx, profile["id"])
    if live is not None:
        stale_ids = {iid for iid in stale_ids if not _gives(live, iid)}
        stale_keys -= keys_given(live)
    for iid in sorted(stale_ids):
        release_identifier(ctx, iid, names)
    release(ctx, profile["id"], set(), stale_keys)
    live = live_profile(ctx, profile["id"])
    if live is not None:
        index_again(ctx, live, {iid for iid in stale_ids if _gives(live, iid)}, stale_keys & keys_given(live))


def hand_to_survivor(ctx: Ctx, absorbed_id: str, survivor: dict[str, Any], keys: set[str], ids: set[str]) -> None:
    """Blocking keys and identifiers written for a profile merged away meanwhile, after its saga repointed the
    profile's documents: the survivor takes those it gives or lists, as the saga's repoint does
    (merge._repoint_given); the others are released."""
    given, listed = keys_given(survivor), set(survivor.get("identifiers", []))
    for key in sorted(keys):
        update_block(ctx, key, absorbed_id, survivor["id"] if key in given else None)
    for iid in sorted(ids):
        if iid in listed:
            _repoint(ctx.identifiers, iid, absorbed_id, survivor["id"], _set_profile_id)
        else:
            release_identifier(ctx, iid, {absorbed_id})


def keys_given(profile: dict[str, Any]) -> set[str]:
    """The blocking keys the profile's records give."""
    return {k for r in profile["records"] for k in r.get("blocking_keys", [])}


def list_while_given(ctx: Ctx, profile_id: str, iid: str) -> bool | None:
    """List the identifier on the profile while one of its records gives it; False when none does, None when the
    profile is gone (erased, or merged into another meanwhile: that one may give it)."""
    given = {"now": False}

    def change(profile: dict[str, Any]) -> dict[str, Any] | None:
        given["now"] = _gives(profile, iid)  # on each read: a retry sees the profile again
        if not given["now"] or iid in profile.get("identifiers", []):
            return None
        return {**profile, "identifiers": sorted({*profile.get("identifiers", []), iid})}

    return given["now"] if _update_profile(ctx, profile_id, change) is not None else None


def _unlist(ctx: Ctx, profile_id: str, iid: str) -> None:
    def change(profile: dict[str, Any]) -> dict[str, Any] | None:
        ids = profile.get("identifiers", [])
        return {**profile, "identifiers": [i for i in ids if i != iid]} if iid in ids else None

    _update_profile(ctx, profile_id, change)


def forget_holders(ctx: Ctx, iid: str, gone: set[str]) -> None:
    """Profiles erased on request are no longer remembered as giving the identifier."""
    def change(doc: dict[str, Any], _old: Any, _new: Any) -> dict[str, Any] | None:
        holders = doc.get("holders", [])
        return {**doc, "holders": [h for h in holders if h not in gone]} if gone & set(holders) else None

    _repoint(ctx.identifiers, iid, None, None, change)


def _gives(profile: dict[str, Any], iid: str) -> bool:
    """True when one of the profile's records gives the identifier."""
    return any(iid in entry_identifiers(r) for r in profile["records"])


def _identifier_doc(iid: str, profile_id: str) -> dict[str, Any]:
    return {"id": iid, "type": iid.split(":", 1)[0], "profile_id": profile_id, "created_at": now_iso()}


def _point_identifier(ctx: Ctx, iid: str, old: str, new: str) -> None:
    doc = ctx.identifiers.read_item_or_none(iid, iid)
    if doc is None:
        # Released meanwhile? Only while the new profile still lists it (a new version of its record resolved
        # since the split read it may have let it go).
        if iid in (live_profile(ctx, new) or {}).get("identifiers", []):
            ctx.identifiers.create_item(_identifier_doc(iid, new))
    elif doc.get("profile_id") == old:
        ctx.identifiers.replace_item({**doc, "profile_id": new}, etag=doc["_etag"])


def update_block(ctx: Ctx, key: str, remove: str | None, add: str | None) -> None:
    for _ in range(20):
        doc = ctx.blocking.read_item_or_none(key, key)
        ids = list((doc or {}).get("profile_ids", []))
        new_ids = [i for i in ids if i != remove]
        if add and add not in new_ids:
            new_ids.append(add)
        if new_ids == ids and doc is not None:
            return
        try:
            if doc is None:
                if new_ids:
                    ctx.blocking.create_item({"id": key, "profile_ids": new_ids})
            elif not new_ids and not doc.get("capped"):
                # Deleted, not kept empty: a key is made of a person's data (birth date, postcode, email name).
                ctx.blocking.delete_item(key, key, etag=doc["_etag"])
            else:
                ctx.blocking.replace_item({**doc, "profile_ids": new_ids}, etag=doc["_etag"])
            return
        except (PreconditionFailedError, ItemExistsError):
            continue  # someone else changed the key; read it again
    raise ConcurrencyConflict("could not update blocking key")


def remove_record(store: Store, source: str, record_key: str, *, settings: Settings | None = None,
                  landed_at: str | None = None) -> str | None:
    """Take a deleted source record out of its profile; returns the profile id it was in (None if unknown).

    The profile keeps its other records; identifiers and blocking keys only this record gave are released.
    A profile left with no records is deleted (its aliases then resolve to nothing: the person is gone).
    The record's doc is kept as a tombstone (`removed_at`, `landed_at`): a version of the record that landed no
    later than the delete (a queued message resolved after it, a redelivery, a replay) is not resolved again.
    `landed_at`: when the delete landed (its file's utc_text time); now when not given. A delete that landed
    before the version the store holds changes nothing.
    """
    ctx = Ctx(store, settings)
    key = f"{source}|{record_key}"
    return with_retries(ctx, lambda: _remove_once(ctx, key, landed_at or now_iso()))


def removed_after(record_doc: dict[str, Any], landed_at: str | None) -> bool:
    """True when the records doc is the tombstone of a delete that landed no earlier than a version of the record
    that landed at `landed_at` (a tie goes to the delete). A version that says nothing of when it landed (a real-time
    event, `ucp resolve`) came after the delete."""
    removed = record_doc.get("removed_at") and record_doc.get("landed_at")
    return bool(removed and landed_at and removed >= landed_at)


def _remove_once(ctx: Ctx, key: str, landed_at: str) -> str | None:
    source_iid = source_identifier(key)
    record_doc = ctx.records.read_item_or_none(key, key)
    source_doc = ctx.identifiers.read_item_or_none(source_iid, source_iid)
    if record_doc is not None and record_doc.get("erased_at"):
        return None  # erased on request (its empty records doc stays: see shared/privacy.py)
    if record_doc is not None and record_doc.get("removed_at"):  # removed already
        if record_doc["landed_at"] < landed_at:  # a later delete: versions that landed before it do not count
            ctx.records.replace_item({**record_doc, "landed_at": landed_at}, etag=record_doc["_etag"])
        _delete_source_doc(ctx, source_doc)  # left by a removal that died after its tombstone
        leave_named_before(ctx, record_doc, key, keep=None)  # founded since by a delivery that then died
        return None
    if record_doc is not None and (record_doc.get("landed_at") or "") > landed_at:
        log.info("a delete that landed before the record's stored version changes nothing")
        return None
    if (record_doc or {}).get("content_hash") and (source_doc or {}).get("content_hash") != record_doc["content_hash"]:
        # A version of the record is being resolved (its doc is written before its commit): the removal waits for
        # it, so it takes the record out of where that version puts it. A worker that died leaves it to the retry
        # of its message (with_retries, then the delete's own retries).
        raise ConcurrencyConflict("a version of the record is being resolved")
    if (source_doc or {}).get(REKEYING):
        # Being resolved again for a change of normalization (rekey.py): same content, so the hash cannot tell. The
        # removal waits for it as well; a rekey run that died leaves it to the next run.
        raise ConcurrencyConflict("the record is being re-keyed")
    pointer = record_doc or source_doc
    if pointer is None:
        _write_tombstone(ctx, key, None, landed_at)  # deleted before its queued upsert was resolved
        return None
    profile = live_profile(ctx, pointer["profile_id"])
    marked = split_to_finish_first(profile, key)
    if marked and finish_split_in_flight(ctx, profile, marked, give_up=marked == key):
        raise ConcurrencyConflict("a split out of the profile its pointers name was in flight")
    if profile is not None:
        if not _holds(profile, key):  # an earlier attempt took it out, or deleted it and it was founded again
            settle_after_earlier_attempt(ctx, profile, key)
            drop_aliases_not_merged(ctx, profile["id"])
        take_out_removed(ctx, profile, key)
    else:  # a removal that died after deleting it
        let_go_of_deleted(ctx, pointer["profile_id"])
    profile_id = profile["id"] if profile else pointer["profile_id"]
    not_found: list[str] = []
    leave_named_before(ctx, record_doc, key, keep=profile_id, not_found=not_found)  # before the tombstone
    own = profile_id_for_record(key)  # the profile a delivery of the record founds
    unfounded = [own] if own in not_found and own != profile_id else []
    # Under the ETags read: a new version of the record resolved meanwhile put it back in a profile, so the removal
    # starts again and takes it out there. The tombstone first: a records doc without its source identifier would
    # be a version being resolved, which a retry of the removal waits for.
    _write_tombstone(ctx, key, record_doc, landed_at, named=unfounded)
    _delete_source_doc(ctx, source_doc)
    log.info("removed record from profile %s", profile_id)
    return profile_id


def leave_named_before(ctx: Ctx, record_doc: dict[str, Any] | None, key: str, *, keep: str | None,
                       logged: bool = True, not_found: list[str] | None = None) -> int:
    """Take a record deleted at its source, or erased, out of the profiles its records doc named before (besides
    `keep`): an attempt of another version that died before its commit may have placed it in one, and no delivery
    comes back for it once the record is gone (engine._leave_named_before). `logged`: in the profile's merge log, as
    a removal is. `not_found` gets those with no document. Returns how many profiles it left."""
    left = 0
    for named in (record_doc or {}).get(NAMED_BEFORE, ()):
        doc = ctx.read_profile(named)
        if doc is None and not_found is not None:
            not_found.append(named)
        other = live_profile(ctx, named, doc=doc)
        if other is not None and other["id"] != keep and _holds(other, key):
            take_out_removed(ctx, other, key, logged=logged)
            left += 1
    return left


def take_out_removed(ctx: Ctx, profile: dict[str, Any], key: str, *, logged: bool = True) -> None:
    """Take a record deleted at its source, or erased, out of the profile, the ids only it brought there gone with it;
    `logged`: in the profile's merge log (a removal; the log of someone else's profile keeps no erased key)."""
    # Read before the record leaves: once it is out, its profile may be gone with it (its last record), and then
    # every id merged into it names no one.
    last = all(r["key"] == key for r in profile["records"])
    # With its last record, every id merged into it: those it lists, and any alias naming it that it does not (one a
    # removal of an earlier profile of this id left, dying before it deleted the aliases: an index-served query).
    stranded = (list(dict.fromkeys([*profile.get("merged_from", []), *_alias_ids_into(ctx, profile["id"])])) if last
                else stranded_aliases(ctx, profile, key))
    if logged and not last:  # first (idempotent): the person's erase and export still find its activity by it
        ctx.merges.upsert_item({
            "id": "r_" + stable_hash("removed", key, profile["id"]), "profile_id": profile["id"],
            "absorbed_id": None, "at": now_iso(), "reason": RECORD_REMOVED, "rule": "deleted at its source",
            "records": [key], "status": "done"})
    take_out(ctx, profile, key)
    if last:
        _forget_deleted_profile(ctx, profile["id"], stranded)
        # A profile still listing it as merged into it: a removal that died after deleting the id's alias, before
        # that profile forgot it, and a new version of the record founded a profile under the id meanwhile. Listed,
        # the id would be dropped from the keys that profile's records write. (Not where a resolution finds the
        # profile its records doc names gone: that may be one a worker is about to found, then merged.)
        forget_where_listed(ctx, profile["id"])
    else:
        _drop_stranded_aliases(ctx, profile["id"], stranded)


def _delete_source_doc(ctx: Ctx, source_doc: dict[str, Any] | None) -> None:
    """Delete the removed record's source identifier as read (only that record gives it: no holder to hand it to).
    412: repointed by a merge meanwhile, so the removal starts again and finds it beside its tombstone."""
    if source_doc is not None:
        try:
            ctx.identifiers.delete_item(source_doc["id"], source_doc["id"], etag=source_doc["_etag"])
        except ItemNotFoundError:
            pass  # deleted by a concurrent removal


def _write_tombstone(ctx: Ctx, key: str, record_doc: dict[str, Any] | None, landed_at: str, *,
                     named: list[str] = ()) -> None:
    """The records doc of a record deleted at its source: its key and when, nothing of its content; and `named`: the
    record's own profile id, when its doc named it before and the removal found no document of it. A delivery that
    wrote the doc naming the profile it was about to found may found it after that, and die (races bench, seed
    3111232: record_doc_missing); whatever meets the tombstone then takes the record out there (leave_named_before:
    one read)."""
    body = {"id": key, "profile_id": None, "removed_at": now_iso(), "landed_at": landed_at,
            **({NAMED_BEFORE: list(named)} if named else {})}
    if record_doc is None:
        ctx.records.create_item(body)  # 409 when a version was written meanwhile: the removal starts again
    else:
        ctx.records.replace_item(body, etag=record_doc["_etag"])


def take_out(ctx: Ctx, profile: dict[str, Any], key: str) -> None:
    """Take a record's entry out of its profile (deleted when it was the last), releasing the identifiers and
    blocking keys only that record gave it; the record's own source identifier and records doc are left to the
    caller. Raises PreconditionFailedError when the profile changed since it was read."""
    entry = next((r for r in profile["records"] if r["key"] == key), None)
    if entry is None:
        return
    remaining = [r for r in profile["records"] if r["key"] != key]
    own_ids, own_keys = only_given_by(entry, remaining)
    released = own_ids - {source_identifier(key)}
    release(ctx, profile["id"], released, own_keys)
    try:
        if remaining:
            kept = ctx.profiles.replace_item(_without(profile, key, own_ids, ctx), etag=profile["_etag"])
        else:
            ctx.profiles.delete_item(profile["id"], profile["id"], etag=profile["_etag"])
            kept = {"id": profile["id"], "records": []}
    except PreconditionFailedError:
        if released or own_keys:
            index_given_again(ctx, live_profile(ctx, profile["id"]), key, released, own_keys)
        raise
    if remaining:
        index_again(ctx, kept, entry_identifiers(entry) - own_ids, set(entry.get("blocking_keys", [])) - own_keys)
    release_again(ctx, kept, released, own_keys)


def index_given_again(ctx: Ctx, live: dict[str, Any] | None, key: str, ids: set[str], keys: set[str]) -> None:
    """After a profile write that lost to another worker (a record taken out, or a new version's entry replaced):
    index the profile, `live` as read again, under what the release before the write let go that its records other
    than `key` give now (one linked meanwhile, which read them leading here, so claimed none). At once: the retry
    may find the record's entry changed (another version) and giving them no more, or die after its write."""
    others = [r for r in (live or {}).get("records", []) if r["key"] != key]
    given_ids = set().union(*map(entry_identifiers, others)) if others else set()
    given_keys = {k for r in others for k in r.get("blocking_keys", [])}
    if ids & given_ids or keys & given_keys:
        index_again(ctx, live, ids & given_ids, keys & given_keys)


def settle_after_earlier_attempt(ctx: Ctx, profile: dict[str, Any], key: str, *,
                                 claimed: Iterable[str] = ()) -> None:
    """For a retry finding that an earlier attempt wrote the profile (the record's new entry, or the record taken
    out) and may have died before settling the index with that write: what the old entry alone gave is let go
    (release_again: a late duplicate of the old version may have written it again after the first release), and
    what it shared with the records other than `key` is indexed again (index_given_again). That entry is gone, and
    with it what it gave: the documents naming the profile are found by two index-served queries, what the other
    records give by two batched reads; on a retry's path only. Not `claimed`: the attempt's own claims."""
    naming_keys = _keys_naming(ctx, profile["id"])
    release_again(ctx, profile, _identifiers_naming(ctx, profile["id"]) - set(claimed), naming_keys)
    others = [r for r in profile["records"] if r["key"] != key]
    if others:
        sources = {source_identifier(r["key"]) for r in profile["records"]} | {source_identifier(key)}
        ids = set(profile.get("identifiers", ())) - sources - set(claimed)
        index_given_again(ctx, profile, key, ids, {k for r in others for k in r.get("blocking_keys", ())})


def release(ctx: Ctx, profile_id: str, ids: set[str], keys: set[str]) -> None:
    """Release identifiers and blocking keys no record of the profile gives any more (a record taken out, or its old
    version replaced) where they still lead to the profile. Done before the profile write that drops the record's
    entry: a retry after a crash works them out again from the entry, which is gone once the profile is written."""
    for iid in sorted(ids):
        release_identifier(ctx, iid, {profile_id})
    for block in sorted(keys):
        update_block(ctx, block, profile_id, None)


def index_again(ctx: Ctx, profile: dict[str, Any], ids: set[str], keys: set[str]) -> None:
    """Index the profile under the identifiers and blocking keys a record taken out (or its replaced version) shared
    with the records it keeps. An earlier attempt released those only that record gave then, and lost its profile
    write to another worker, which linked a record giving them too: the profile keeps them, so they must still find
    it."""
    listed = sorted(ids & set(profile.get("identifiers", [])))
    created, added, noted = [], [], []
    for iid, doc in zip(listed, ctx.identifiers.read_items(list(zip(listed, listed)))):
        if doc is None:
            try:
                ctx.identifiers.create_item(_identifier_doc(iid, profile["id"]))
                created.append(iid)
            except ItemExistsError:
                pass  # claimed meanwhile, as any claim may be
        elif doc.get("profile_id") != profile["id"]:
            holder = live_profile(ctx, doc["profile_id"])
            if holder is not None and holder["id"] != profile["id"]:
                # Handed on meanwhile to another profile whose record gives it (release_identifier): it stays
                # there, and this profile is one of its holders. Listed there while given: the worker handing it on
                # lists it again after its pointer write (a duplicate delivery may drop it meanwhile, having read it
                # leading here), and may have died before (races bench, seed 1509358: identifier_not_held).
                _unlist(ctx, profile["id"], iid)
                note_holder(ctx, iid, profile["id"], doc)
                noted.append(iid)
                if iid not in holder.get("identifiers", ()):
                    list_while_given(ctx, holder["id"], iid)
    blocks = sorted(keys)
    for block, doc in zip(blocks, ctx.blocking.read_items(list(zip(blocks, blocks)))):
        if doc is None or not (doc.get("capped") or profile["id"] in doc.get("profile_ids", [])):
            update_block(ctx, block, None, profile["id"])
            added.append(block)
    if not (created or added or noted):
        return
    live = live_profile(ctx, profile["id"])
    if live is None:
        # The person was erased meanwhile, after the erase swept their identifiers and keys: checked after the
        # writes, as a resolving worker does (engine._undo_after_erasure), so a later tombstone's sweep finds them.
        release(ctx, profile["id"], set(created), set(added))
        for iid in noted:
            forget_holders(ctx, iid, {profile["id"]})
        return
    if live["id"] != profile["id"]:  # merged into another meanwhile, after its saga repointed the profile's keys
        hand_to_survivor(ctx, profile["id"], live, set(added), set(created))
        return
    # The record that shared them left meanwhile (deleted, or changed), and its leaving let them go before they were
    # indexed again: those the profile no longer lists, or its records no longer give, go again.
    release(ctx, live["id"], set(created) - set(live.get("identifiers", [])), set(added) - keys_given(live))


def split_record(store: Store, profile_id: str, record_key: str, *, settings: Settings | None = None) -> str:
    """Move one record out of a profile into a new profile of its own; the two never match again.

    `record_key` is the record's full key ("pos|123"), or its source's record key when only one record of the
    profile has it. Returns the new profile's id. Raises ItemNotFoundError for an unknown profile or record,
    ValueError when the record is the profile's only one or a record key names several records.
    """
    ctx = Ctx(store, settings)
    return with_retries(ctx, lambda: _split_once(ctx, profile_id, record_key))


def _split_once(ctx: Ctx, profile_id: str, record_key: str) -> str:
    profile = live_profile(ctx, profile_id)
    if profile is None:
        raise ItemNotFoundError(f"profile {profile_id} not found")
    entry = _entry_named(profile, record_key)
    if entry is None:  # an attempt that died after taking the record out: finish it
        resumed = _split_in_flight(ctx, profile, record_key)
        if resumed is not None:
            return _finish_split(ctx, profile, *resumed)
        _clear_spent_mark(ctx, profile, record_key)
        finished = _split_finished_by_another(ctx, profile, record_key)
        if finished is not None:
            return finished
        raise ItemNotFoundError(f"record {record_key!r} is not in profile {profile['id']}")
    if profile.get("erasing_at"):
        raise ValueError(BEING_ERASED)
    key = entry["key"]
    remaining = [r for r in profile["records"] if r["key"] != key]
    if not remaining:
        if (profile.get("splitting") or {}).get("key") == key:  # its other records left since it was marked
            abandon_split(ctx, profile["id"])
        raise ValueError("the record is the profile's only record; nothing to split")
    own_ids, _ = only_given_by(entry, remaining)
    # Only those the profile lists: an identifier the record gives that another profile holds (a family email
    # that stayed with the household member it names) is not the record's to take along.
    own_ids &= set(profile.get("identifiers", []))
    new_id, new = _split_target(ctx, profile["id"], key)
    marker = {"key": key, "into": new_id}
    if profile.get("splitting") not in (None, marker):
        if profile["splitting"]["key"] == key:  # an earlier attempt chose another new profile: given up, copy and all
            abandon_split(ctx, profile["id"])
        else:  # another record's split, cut off: carried out first
            finish_split_in_flight(ctx, profile, profile["splitting"]["key"])
        raise ConcurrencyConflict("another split of the profile was in flight")
    if profile.get("splitting") is None:
        # Marked first (one write): a split cut off before its profile writes are both done is found by whoever
        # reads the profile next (finish_split_in_flight), instead of leaving its new profile holding a copy.
        profile = ctx.profiles.replace_item({**profile, "splitting": marker}, etag=profile["_etag"])
    body = _split_profile(ctx, new_id, profile, entry, own_ids)
    if new is None:
        created = ctx.profiles.create_item(body)
    else:  # an earlier attempt, or a concurrent split of the same record, created it
        created = None
        _adopt(ctx, new, body)
    never = sorted(set(profile.get("never_match", [])) | {key, new_id})
    # The mark stays until the pointers are moved (_finish_split clears it last): whoever reads the profile, or the
    # sweep of unfinished splits, finds a split cut off while moving them.
    body = _without(profile, key, own_ids | {source_identifier(key)}, ctx, never_match=never)
    try:
        profile = ctx.profiles.replace_item(body, etag=profile["_etag"])
    except PreconditionFailedError:
        return _after_lost_split(ctx, profile["id"], entry, new_id, created)
    return _finish_split(ctx, profile, entry, new_id)


def _split_profile(ctx: Ctx, new_id: str, profile: dict[str, Any], entry: dict[str, Any], own_ids: set[str]
                   ) -> dict[str, Any]:
    """The profile a split creates: the record's entry alone, never to match the profile it leaves, nor what that
    profile was kept apart from (earlier splits between its records and others: the record was one of them, and
    the never-match would be lost once the other records left too)."""
    now = now_iso()
    moved = {**entry, "link": {"reason": "split", "from": profile["id"]}}
    remaining = [r["key"] for r in profile["records"] if r["key"] != entry["key"]]
    attributes, conflicts = survive([moved], ctx.config.survivorship)
    never = {profile["id"], *profile.get("merged_from", []), *remaining, *profile.get("never_match", [])}
    return {"id": new_id, "doc_type": "profile", "created_at": now, "updated_at": now, "records": [moved],
            "identifiers": sorted(own_ids | {source_identifier(entry["key"])}), "attributes": attributes,
            "conflicts": conflicts, "merged_from": [], "merge_count": 0,
            "never_match": sorted(never - {new_id, entry["key"]})}


def _adopt(ctx: Ctx, new: dict[str, Any], body: dict[str, Any]) -> None:
    """Take over a split profile another attempt created, with a write under its ETag: that attempt deletes its
    creation only under the ETag of its create (_after_lost_split), so it can no longer delete it from under
    this split, which may be about to take the record out of the old profile. It is written as this split makes
    it (`body`): the old profile may have changed since, and with it the identifiers that go with the record (one
    another record no longer gives)."""
    ctx.profiles.replace_item({**body, "created_at": new["created_at"]}, etag=new["_etag"])


def _after_lost_split(ctx: Ctx, profile_id: str, entry: dict[str, Any], new_id: str,
                      created: dict[str, Any] | None) -> str:
    """The old profile changed before this split took the record out of it. A concurrent split of the same record
    may have done so into the same new profile: then this one finishes it. Otherwise the profile this attempt
    created is deleted (only as created: a concurrent split may have adopted it since) and the split is retried."""
    current = live_profile(ctx, profile_id)
    if current is not None and _split_done_into(ctx, current, entry["key"], new_id):
        return _finish_split(ctx, current, entry, new_id)
    if _erased_with_its_person(ctx, current, entry["key"]):
        # The profile this split created holds a copy of an erased record, and nothing leads to it yet: it goes,
        # whoever wrote it last (the erase itself redacts profiles that name the person).
        ctx.profiles.delete_item(new_id, new_id)
        if current is None:
            raise ItemNotFoundError(f"profile {profile_id} was erased")
        raise ValueError(BEING_ERASED)
    if created is not None:
        try:
            ctx.profiles.delete_item(new_id, new_id, etag=created["_etag"])
        except PreconditionFailedError:
            raise ConcurrencyConflict("a concurrent split of the record took over its new profile") from None
    raise ConcurrencyConflict(f"profile {profile_id} changed during the split")


def _erased_with_its_person(ctx: Ctx, current: dict[str, Any] | None, key: str) -> bool:
    """True when the split's record is being erased with the person of the profile it was split from (marked
    erasing when the split read it, the profile still holds the record), or was (its records doc says so)."""
    if current is not None:
        return bool(current.get("erasing_at")) and any(r["key"] == key for r in current["records"])
    return bool((ctx.records.read_item_or_none(key, key) or {}).get("erased_at"))


def _split_done_into(ctx: Ctx, profile: dict[str, Any], key: str, new_id: str) -> bool:
    """True when the record left the profile by a split into new_id, which holds it (once its pointers moved,
    records of the same person may have joined it there)."""
    if new_id not in profile.get("never_match", []) or any(r["key"] == key for r in profile["records"]):
        return False
    new = ctx.read_profile(new_id)
    return new is not None and new.get("doc_type") == "profile" and any(r["key"] == key for r in new["records"])


def _entry_named(profile: dict[str, Any], record_key: str) -> dict[str, Any] | None:
    """The profile's record a split names: by its full key, else by its source's record key if only one record has
    it. "web|2" is the full key of web record 2 and the record key of pos record "web|2": the full key wins."""
    for entry in profile["records"]:
        if entry["key"] == record_key:
            return entry
    named = [entry for entry in profile["records"] if entry["record_key"] == record_key]
    if len(named) > 1:
        raise ValueError(f"{len(named)} records of the profile have this record key (from sources "
                         f"{', '.join(sorted(r['source'] for r in named))}): name one by its full key, "
                         "<source>|<record key>")
    return named[0] if named else None


def _split_id(profile_id: str, key: str, attempt: int) -> str:
    # Derived, so a retried split finds the profile an earlier attempt created; `attempt` counts earlier splits
    # of the same record from the same profile (split, approved back in a review, split again).
    return "p_" + stable_hash("split", profile_id, key, str(attempt))


def _split_target(ctx: Ctx, profile_id: str, key: str) -> tuple[str, dict[str, Any] | None]:
    """The id of the profile this split creates, and that profile if an earlier attempt created it already."""
    for attempt in range(MAX_SPLITS_OF_ONE_RECORD):
        new_id = _split_id(profile_id, key, attempt)
        doc = ctx.read_profile(new_id)
        if doc is None:
            return new_id, None
        if doc.get("doc_type") == "profile" and [r["key"] for r in doc.get("records", [])] == [key]:
            return new_id, doc
    raise ConcurrencyConflict(f"record split from profile {profile_id} too often")


def _split_names(key: str, record_key: str) -> bool:
    """True when a split naming `record_key` (a full key, or a source's record key) is the split of record `key`."""
    return key == record_key or key.split("|", 1)[-1] == record_key


def _split_in_flight(ctx: Ctx, profile: dict[str, Any], record_key: str):
    """(entry, new profile id) of the split the profile is marked for when it took its record out but did not finish
    moving the pointers (identifiers, records doc, blocking keys, aliases, log); None otherwise."""
    marker = profile.get("splitting")
    if not marker or not _split_names(marker["key"], record_key) or _holds(profile, marker["key"]):
        return None
    # Live: records of the person may have joined the new profile through the pointers moved already, and merged it.
    new = live_profile(ctx, marker["into"])
    entry = next((r for r in (new or {}).get("records", []) if r["key"] == marker["key"]), None)
    if entry is None:
        return None  # nothing left to point at it: the record was removed from there, or its person erased
    return entry, new["id"]


def split_to_finish_first(profile: dict[str, Any] | None, key: str) -> str | None:
    """The record of the split the profile is marked for, when whoever handles the record `key` there (a new version,
    a removal) must finish it first: the record's own split, or another's that took its record out (the record may
    be the profile's last, which goes with it, and so would the mark). Another's split that has not taken its record
    out is left to run: it keeps the profile alive."""
    marker = (profile or {}).get("splitting")
    if marker and (marker["key"] == key or not _holds(profile, marker["key"])):
        return marker["key"]
    return None


def finish_split_in_flight(ctx: Ctx, profile: dict[str, Any], key: str, *, give_up: bool = False) -> bool:
    """Whoever meets a split of the record `key` that the profile is marked for (`splitting`) finishes it first, as
    a reader finishes a merge in flight (merge.live_profile): one cut off before it took the record out of the
    profile is carried out, one cut off while moving the pointers is finished. True if there was one: the caller
    starts again from fresh reads. `give_up`: the record is being deleted, or its person erased, so a split that has
    not taken it out yet is given up rather than carried out (carried out, its new profile would have to go too,
    and a split still running would create it again)."""
    marker = profile.get("splitting")
    if not marker or marker["key"] != key:
        return False
    if _holds(profile, key):
        if give_up:
            abandon_split(ctx, profile["id"])
            return True
        try:
            _split_once(ctx, profile["id"], key)  # asked for, and cut off: carried out
        except ValueError:  # no longer possible: the profile's only record now, or its person is being erased
            abandon_split(ctx, profile["id"])
        return True
    resumed = _split_in_flight(ctx, profile, key)
    if resumed is None:
        _clear_spent_mark(ctx, profile, key)
    else:
        _finish_split(ctx, profile, *resumed)
    return True


def finish_splits_into(ctx: Ctx, profile: dict[str, Any]) -> bool:
    """Finish the splits that brought records into the profile and are still moving their pointers (before an erase
    of its person, which would leave the pointers not moved yet naming the old profile). True if there was one."""
    finished = False
    for entry in profile["records"]:
        link = entry.get("link") or {}
        if link.get("reason") == "split":
            old = live_profile(ctx, link["from"])
            finished = bool(old and finish_split_in_flight(ctx, old, entry["key"])) or finished
    return finished


def finish_unfinished_splits(store: Store, *, settings: Settings | None = None, idle_seconds: int | None = None,
                             limit: int = 100) -> list[str]:
    """Finish the splits whose worker died (and whose caller did not ask again): every profile marked by a split
    and not written for `idle_seconds` (default: the split_idle_seconds setting), so a split still running is left
    to its worker. Returns the profiles settled. One failing never stops the others (it would be first again on
    every run)."""
    ctx = Ctx(store, settings)
    idle = ctx.settings.split_idle_seconds if idle_seconds is None else idle_seconds
    return _settle_idle(ctx, ("splitting", "defined", None), idle, limit, "split", lambda profile: (
        finish_split_in_flight(ctx, live_profile(ctx, profile["id"]) or {"records": []}, profile["splitting"]["key"])))


def finish_unfinished_merges(store: Store, *, settings: Settings | None = None, idle_seconds: int | None = None,
                             limit: int = 100) -> list[str]:
    """Finish the merges whose worker died when no later attempt touched either profile (its delivery's retry found
    the record done, another delivery having committed it): every profile marked for a merge (`pending_merge`) or
    holding one folded in but not completed (`merging`), not written for `idle_seconds` (default: the
    merge_idle_seconds setting), is read as a resolve would read it, which completes the saga. Until then the
    records are in both profiles. Then the pending merge log entries of merges let go (_close_abandoned_merge_docs).
    Returns the profiles settled and the entries closed; one failing never stops the others."""
    ctx = Ctx(store, settings)
    idle = ctx.settings.merge_idle_seconds if idle_seconds is None else idle_seconds
    marked = ("or", [("pending_merge", "defined", None), ("merging", "defined", None)])
    settled = _settle_idle(ctx, marked, idle, limit, "merge", lambda profile: live_profile(ctx, profile["id"]))
    return settled + _close_abandoned_merge_docs(ctx, idle, limit)


def _close_abandoned_merge_docs(ctx: Ctx, idle_seconds: int, limit: int) -> list[str]:
    """The pending merge log entries whose profile to absorb no longer carries that merge's mark, idle for
    `idle_seconds`: the merge was let go (refused at its fold, its survivor gone) by a worker that died before
    taking the entry out, or was completed under another survivor by one that died before taking the first entry
    out. A merge still marked is settled with the marked profiles. Returns the entries' ids."""
    idle_since = int(time.time()) - idle_seconds
    closed = []
    pending = ("and", [("status", "=", "pending"), ("_ts", "<=", idle_since)])
    for doc in list(ctx.merges.query_items(pending, limit=limit)):
        absorbed = ctx.read_profile(doc["absorbed_id"]) or {}
        if (absorbed.get("pending_merge") or {}).get("merge_id") != doc["id"]:
            _close_pending(ctx, doc["id"], doc["profile_id"])
            closed.append(doc["id"])
    return closed


def _settle_idle(ctx: Ctx, marked: tuple, idle_seconds: int, limit: int, what: str, settle) -> list[str]:
    """Run `settle(profile)` on each profile matching `marked` and not written for `idle_seconds` (a saga still
    running is left to its worker); the ids settled. One failing never stops the others (it would be first again
    on every run)."""
    idle_since = int(time.time()) - idle_seconds
    settled = []
    for profile in list(ctx.profiles.query_items(("and", [marked, ("_ts", "<=", idle_since)]), limit=limit)):
        try:
            with_retries(ctx, lambda profile=profile: settle(profile))
        except Exception:
            log.exception("finishing the %s marked on profile %s failed; retried on the next run", what, profile["id"])
            continue
        settled.append(profile["id"])
    return settled


def abandon_split(ctx: Ctx, profile_id: str) -> None:
    """Give up a split cut off before it took its record out of the profile: the profile it created (a copy of the
    record nothing leads to yet) is deleted, then the profile's mark. Nothing is given up once the record is out."""
    profile = live_profile(ctx, profile_id)
    marker = (profile or {}).get("splitting")
    if not marker or not _holds(profile, marker["key"]):
        return
    new = ctx.read_profile(marker["into"])
    if new is not None and new.get("doc_type") == "profile" and [r["key"] for r in new["records"]] == [marker["key"]]:
        ctx.profiles.delete_item(new["id"], new["id"], etag=new["_etag"])
    _clear_mark(ctx, profile["id"], marker["key"])


def _clear_spent_mark(ctx: Ctx, profile: dict[str, Any], record_key: str) -> None:
    """Clear the mark of a split of this record that took it out of the profile and has nothing left to finish."""
    marker = profile.get("splitting")
    if marker and _split_names(marker["key"], record_key) and not _holds(profile, marker["key"]):
        _clear_mark(ctx, profile["id"], marker["key"])


def _clear_mark(ctx: Ctx, profile_id: str, key: str) -> None:
    _update_profile(ctx, profile_id, lambda doc: {k: v for k, v in doc.items() if k != "splitting"} if (
        (doc.get("splitting") or {}).get("key") == key) else None)


def _holds(profile: dict[str, Any], key: str) -> bool:
    return any(r["key"] == key for r in profile["records"])


def _split_finished_by_another(ctx: Ctx, profile: dict[str, Any], record_key: str) -> str | None:
    """The profile a split of this record out of `profile` created, when another worker finished it
    (finish_split_in_flight): the record's doc points there."""
    for key in profile.get("never_match", []):
        if _split_names(key, record_key):
            doc = ctx.records.read_item_or_none(key, key)
            if doc is not None and doc.get("profile_id") and _split_done_into(ctx, profile, key, doc["profile_id"]):
                return doc["profile_id"]
    return None


def _finish_split(ctx: Ctx, profile: dict[str, Any], entry: dict[str, Any], new_id: str) -> str:
    """Point what named the record's old profile at the new one, and log the split (idempotent)."""
    key = entry["key"]
    new = ctx.read_profile(new_id) or {}
    for iid in new.get("identifiers", []):
        _point_identifier(ctx, iid, profile["id"], new_id)
    old_now = live_profile(ctx, profile["id"]) or {}
    for iid in sorted(set(new.get("identifiers", [])) & set(old_now.get("identifiers", [])) - {source_identifier(key)}):
        # A record linked to the old profile meanwhile gives it too, and listed it while it still led there: it
        # stays with the new profile, and the old one is one of its holders.
        _unlist(ctx, old_now["id"], iid)
        note_holder(ctx, iid, old_now["id"])
    for iid in sorted(entry_identifiers(entry) - set(new.get("identifiers", []))):  # shared: they stay where they are
        note_holder(ctx, iid, new_id)
    # The old profile leaves the keys none of its records gives, as read now: a new version of one of them resolved
    # since the split began may give one the split record gave alone then.
    others = {k for r in old_now.get("records", []) for k in r.get("blocking_keys", [])}
    for block in entry.get("blocking_keys", []):
        update_block(ctx, block, None if block in others else profile["id"], new_id)
    left = set(entry.get("blocking_keys", [])) - others
    if left:  # a record linked to the old profile since it was read may give one: it lists the profile again
        again = live_profile(ctx, profile["id"]) or {"records": []}
        for block in sorted(left & {k for r in again["records"] for k in r.get("blocking_keys", [])}):
            update_block(ctx, block, None, again["id"])
    move_stranded_aliases(ctx, profile["id"], key, new_id)
    record_doc = ctx.records.read_item_or_none(key, key)
    # Only while it names the old profile: not the tombstone of a removal that finished the split, nor the doc of a
    # new version of the record that moved it on meanwhile. Under its ETag: either may come while it is written.
    if record_doc is not None and record_doc.get("profile_id") == profile["id"]:
        ctx.records.replace_item({**record_doc, "profile_id": new_id}, etag=record_doc["_etag"])
    # Logged in both profiles' histories: the old one says where the record went, the new one where it came from.
    logged = {"absorbed_id": None, "at": new.get("created_at") or now_iso(), "reason": "split", "rule": "manual split",
              "records": [key], "status": "done"}
    ctx.merges.upsert_item({"id": "s_" + stable_hash("split", profile["id"], key, new_id), "profile_id": profile["id"],
                            "split_into": new_id, **logged})
    ctx.merges.upsert_item({"id": "s_" + stable_hash("split_from", profile["id"], key, new_id), "profile_id": new_id,
                            "split_from": profile["id"], **logged})
    live = live_profile(ctx, new_id)
    if live is None:
        # Its record was removed (or its person erased) by a worker that finished this split meanwhile
        # (finish_split_in_flight): what this one pointed at it after that is released.
        release(ctx, new_id, set(new.get("identifiers", [])), set(entry.get("blocking_keys", [])))
    elif live["id"] == new_id:
        # A new version of the record, linked to the new profile meanwhile, may have released keys only the version
        # this split read gave before the loop above put the profile under them again: they are released again.
        release_again(ctx, live, set(), set(entry.get("blocking_keys", [])))
    else:
        # Merged into another while this split moved its pointers (records of the person joined it through those
        # moved first): what it pointed at the new profile after the merge saga repointed them names an alias.
        # Only what the survivor lists or its records give: a new version of the record that joined it has replaced
        # the entry this split read, and released what only the old version gave.
        moved = {"id": new_id, "identifiers": new.get("identifiers", []), "records": [entry]}
        _repoint_given(ctx, moved, live)
        _repoint_records(ctx, moved, live["id"])
    _clear_mark(ctx, profile["id"], key)  # last: until then, whoever reads the profile finishes the split
    log.info("split a record of profile %s into %s", profile["id"], new_id)
    return new_id


MAX_SPLITS_OF_ONE_RECORD = 20
BEING_ERASED = "the profile's person is being erased on request: nothing is split out of it"
ID_FOLLOWED = "id_followed_record"  # the merge-log reason of an id that came to a profile with its record
RECORD_REMOVED = "record_removed"  # the merge-log reason of a record deleted at its source


# --- the ids of merged profiles follow their records --------------------------------------------------------------
# A profile merged into another leaves its id behind as an alias of the survivor. Once every record it brought has
# left the survivor, the id no longer names anyone there: an app that kept it for that person (a merged-then-split
# customer) would be served, exported or erased as somebody else. So it follows the record that leaves last: into
# the profile a split creates, or nowhere when the record is deleted.

def stranded_aliases(ctx: Ctx, profile: dict[str, Any], key: str) -> list[str]:
    """The ids merged into the profile that brought the record `key` and none of whose records it holds now (the
    records each brought are in the merge log of the profile and of those merged into it; reads a split or a
    removal makes, never a record's resolution)."""
    merged = set(profile.get("merged_from", []))
    if not merged:
        return []
    brought: dict[str, set[str]] = {}
    for partition in [profile["id"], *profile["merged_from"]]:
        for entry in ctx.merges.query_items(partition_key=partition):
            if entry.get("absorbed_id") in merged and entry.get("status") == "done":
                brought.setdefault(entry["absorbed_id"], set()).update(entry.get("records", []))
    held = {r["key"] for r in profile["records"] if r["key"] != key}  # once the record has left
    return sorted(alias for alias, keys in brought.items() if key in keys and not keys & held)


def _keep_listed_identifiers(ctx: Ctx, profile: dict[str, Any], aliases: set[str]) -> None:
    """Before these ids redirect elsewhere: an identifier the profile lists whose document still names one of them
    (claimed for it by a worker that read it before its merge) is pointed at the profile, or it would follow the id
    away from the records that give it. One batched read of the profile's identifiers."""
    listed = sorted(profile.get("identifiers", []))
    for iid, doc in zip(listed, ctx.identifiers.read_items([(iid, iid) for iid in listed])):
        if doc is not None and doc.get("profile_id") in aliases:
            _repoint(ctx.identifiers, iid, doc["profile_id"], profile["id"], _set_profile_id)


def move_stranded_aliases(ctx: Ctx, profile_id: str, key: str, new_id: str) -> None:
    """A record gone to another profile (a split, or its change): the ids stranded by its leaving redirect to its
    new profile, which lists them as merged into it. The old profile forgets them last, so a retry finds them again
    (each step is idempotent)."""
    profile = live_profile(ctx, profile_id)
    # Not the new profile's own id: another version of the record may have merged that profile into this one, via
    # the record (it then came with the record too), and it would redirect to itself.
    moved = [alias for alias in stranded_aliases(ctx, profile, key) if alias != new_id] if profile is not None else []
    if not moved:
        return
    destination = live_profile(ctx, new_id)
    if destination is None or destination["id"] == profile["id"]:
        # Merged into this one meanwhile: the ids are where the record is. Gone (another delivery committed the
        # record elsewhere and took down the profile it had placed it in): nothing of the record leads there.
        return
    _keep_listed_identifiers(ctx, profile, set(moved))
    for alias in moved:
        # The new profile's own log says which record the id came with: the merge entry that said so stays in the
        # old profile's log, where a later move out of the new profile (and an erase of the old) would lose it.
        ctx.merges.upsert_item({
            "id": "f_" + stable_hash("followed", alias, key, new_id), "profile_id": new_id, "absorbed_id": alias,
            "from": profile_id, "at": now_iso(), "reason": ID_FOLLOWED, "rule": "the id came with its record",
            "records": [key], "status": "done"})
        _repoint(ctx.profiles, alias, profile_id, new_id, _merged_into)
    target = new_id
    for _ in range(MAX_ALIAS_HOPS):
        if _update_profile(ctx, target, lambda doc: {
                **doc, "merged_from": list(dict.fromkeys([*doc.get("merged_from", []), *moved])),
                "never_match": [i for i in doc.get("never_match", []) if i not in moved]}) is not None:
            break
        # Merged into another meanwhile (its saga did not know of these ids): they go to the survivor.
        survivor = live_profile(ctx, target)
        if survivor is None:  # taken down since the check above: the ids come back, as if never moved
            for alias in moved:
                _repoint(ctx.profiles, alias, target, profile_id, _merged_into)
            return
        target = survivor["id"]
        for alias in moved:
            _repoint(ctx.profiles, alias, new_id, target, _merged_into)
    _forget_where_carried(ctx, profile["id"], moved, new_id=new_id, target=target)


def _forget_where_carried(ctx: Ctx, profile_id: str, moved: list[str], *, new_id: str | None = None,
                          target: str | None = None) -> None:
    """The profile the ids were stranded in forgets them; merged into another since it was read, the survivor does
    (the fold carried them there, and an alias has nothing to forget). Not the profile they moved to, `target`
    (merged back into, or with, the one they left: they stay)."""
    for _ in range(MAX_ALIAS_HOPS):
        if profile_id == target or _forget_merged(ctx, profile_id, moved, unless_merged=new_id) is not None:
            return
        survivor = live_profile(ctx, profile_id)
        if survivor is None or survivor["id"] == profile_id:
            return
        profile_id = survivor["id"]


def forget_deleted_profile(ctx: Ctx, profile_id: str) -> None:
    """What a removal of the profile's last record that died after deleting it left: the ids merged into it are
    found by a query (a rare retry, or a new version of the record meeting it), which the profile's own list no
    longer can, and forgotten with its history."""
    _forget_deleted_profile(ctx, profile_id, _alias_ids_into(ctx, profile_id), carried_on=True)


def let_go_of_deleted(ctx: Ctx, profile_id: str) -> None:
    """Nothing names a profile deleted with its last record any more, when it has no document (one read): its
    history and the ids merged into it are forgotten, the profiles listing it as merged forget it, and what the
    index still names it by is let go (queries: on a retry's path, or after an identifier was found leading to it).
    A worker that died after deleting it, or after writing for it on a read taken before, leaves those. Founded again
    under its id since (a record's profile id is derived from its key; maybe by the very record that met it gone),
    what names it that its records do not give is let go: such a worker's claim made after the delete would name it
    still (races bench, seed 2009851: identifier_dangling)."""
    again = ctx.read_profile(profile_id)
    if again is not None:
        if is_live(again):
            naming_keys = _keys_naming(ctx, profile_id)
            release_again(ctx, again, _identifiers_naming(ctx, profile_id), naming_keys)
        return
    forget_deleted_profile(ctx, profile_id)
    forget_where_listed(ctx, profile_id)
    _release_all_naming(ctx, profile_id)


def drop_aliases_not_merged(ctx: Ctx, profile_id: str) -> None:
    """The aliases naming a profile that does not list them as merged into it are dropped, with their history: ids
    merged into a profile of the same id, which a removal deleted with its last record and died before it dropped
    them. Founded again since (a record's profile id is derived from its key), the profile would answer lookups by
    them (races bench, seed 2909205: alias_not_in_merged_from). An index-served query, on a retry's path only; when
    it finds any, the profile is read again after it (a merge lists an id before it writes its alias), and its log
    queried: an id following its record here is logged before its alias moves, and listed after it
    (move_stranded_aliases)."""
    aliases = _aliases_into(ctx, profile_id)
    profile = ctx.read_profile(profile_id) if aliases else None
    if not is_live(profile):
        return
    merged = {*profile.get("merged_from", ()), *profile.get("merging", ())}
    unlisted = {doc["id"]: doc for doc in aliases if doc["id"] not in merged}
    log_here = list(ctx.merges.query_items(partition_key=profile_id)) if unlisted else []
    for entry in log_here:
        if entry.get("reason") == ID_FOLLOWED:
            unlisted.pop(entry.get("absorbed_id"), None)
    # The history first, as a retry finds it through the aliases: the deleted profile's merges of them, and theirs.
    history = [(profile_id, entry) for entry in log_here if entry.get("absorbed_id") in unlisted]
    history += [(alias, entry) for alias in unlisted for entry in ctx.merges.query_items(partition_key=alias)]
    for partition, entry in history:
        ctx.merges.delete_item(entry["id"], partition)
    for alias, doc in unlisted.items():
        _unname_in_blocking(ctx, alias)
        try:
            ctx.profiles.delete_item(alias, alias, etag=doc["_etag"])
        except (PreconditionFailedError, ItemNotFoundError):
            pass  # repointed meanwhile, or dropped by another worker


def _release_all_naming(ctx: Ctx, profile_id: str) -> None:
    """Release the identifiers still naming a profile deleted with its last record: one a late duplicate delivery of
    the record claimed again after its removal's release, or one a retry's settling indexed again on a read taken
    before the profile was deleted. A profile founded again under the id meanwhile (its record deleted, then sent
    again) is indexed again under those its records give (one read, after releases only)."""
    released = sorted(_identifiers_naming(ctx, profile_id))
    for iid in released:
        release_identifier(ctx, iid, {profile_id})
    again = live_profile(ctx, profile_id) if released else None
    if again is not None and again["id"] == profile_id:
        index_again(ctx, again, {iid for iid in released if _gives(again, iid)}, set())


def _identifiers_naming(ctx: Ctx, profile_id: str) -> set[str]:
    """The identifiers whose document names the profile (an index-served query, on a retry's path only), but source
    identifiers (each record's commit, written by its own worker) and device links (events.devices': not the index)."""
    return {doc["id"] for doc in ctx.identifiers.query_items(("profile_id", "=", profile_id))
            if doc.get("type") != "source" and not is_device_link(doc)}


def _keys_naming(ctx: Ctx, profile_id: str) -> set[str]:
    """The blocking keys that list the profile (an index-served query, on a retry's path only)."""
    return {doc["id"] for doc in ctx.blocking.query_items(("profile_ids", "contains", profile_id))}


def _aliases_into(ctx: Ctx, profile_id: str) -> list[dict[str, Any]]:
    """The alias documents naming the profile (an index-served query)."""
    return list(ctx.profiles.query_items(("and", [("doc_type", "=", "alias"), ("merged_into", "=", profile_id)])))


def _alias_ids_into(ctx: Ctx, profile_id: str) -> list[str]:
    return [doc["id"] for doc in _aliases_into(ctx, profile_id)]


def _forget_deleted_profile(ctx: Ctx, profile_id: str, merged: list[str], *, carried_on: bool = False) -> None:
    """A profile deleted with its last record: its history and the ids merged into it name no one now, and would be
    a profile's founded again under the same id. The history goes first: a retry finds the aliases again.
    `carried_on` (a retry's path, or a profile found gone): before the history, the ids it says were merged into the
    profile and that have no document now are forgotten where they are listed: a removal of the record that brought
    one deleted its alias and died before the profile forgot it, and a merge carried it on (races bench, seed 905353:
    merged_id_not_alias; a read per such id, and a query when it is gone). Not on a removal's own path: the
    removals that dropped those aliases made the profile forget them."""
    history = [(partition, entry) for partition in [profile_id, *merged]
               for entry in list(ctx.merges.query_items(partition_key=partition))]
    if carried_on:
        absorbed = {entry["absorbed_id"] for _, entry in history if entry.get("absorbed_id")} - {profile_id, *merged}
        for gone in sorted(absorbed):
            if ctx.read_profile(gone) is None:
                forget_where_listed(ctx, gone)
    for partition, entry in history:
        ctx.merges.delete_item(entry["id"], partition)
    _drop_stranded_aliases(ctx, profile_id, merged, deleted=True)
    # Keys naming it that its last record's entry did not give (written for another version of the record, which
    # the entry's was replaced by meanwhile): the removal released only the entry's (an index-served query).
    for doc in list(ctx.blocking.query_items(("profile_ids", "contains", profile_id))):
        drop_dead_key(ctx, doc["id"], profile_id)


def forget_where_listed(ctx: Ctx, merged_id: str, *, keep: str | None = None) -> None:
    """The profiles listing the id as merged into them forget it, but `keep` (an index-served query), and but one
    it was merged into again: founded again under the id meanwhile (a new version of its record), then merged."""
    listing = ("and", [("doc_type", "=", "profile"), ("merged_from", "contains", merged_id)])
    for doc in list(ctx.profiles.query_items(listing)):
        if doc["id"] != keep:
            _forget_merged(ctx, doc["id"], [merged_id], unless=lambda profile: _merged_here(ctx, profile, merged_id))


def _merged_here(ctx: Ctx, profile: dict[str, Any], merged_id: str) -> bool:
    """Whether the id is merged into the profile as it is now: folded, its saga under way, or an alias leading here
    (read after the profile: a saga writes the alias before it takes the id off the profile's `merging`)."""
    if merged_id in profile.get("merging", ()):
        return True
    doc = ctx.read_profile(merged_id)
    return doc is not None and doc.get("doc_type") == "alias" and _leads_to_one_of(ctx, doc, {profile["id"]})


def _drop_stranded_aliases(ctx: Ctx, profile_id: str, moved: list[str], *, deleted: bool = False) -> None:
    """A removal: the ids stranded by the deleted record name nobody any more (as the ids of a profile whose last
    record is deleted: `deleted`); their alias documents are deleted, then the profile forgets them (if it is still
    there)."""
    for alias in moved:
        doc = ctx.profiles.read_item_or_none(alias, alias)
        if doc is not None and doc.get("doc_type") == "alias" and _leads_to_one_of(ctx, doc, {profile_id, *moved}):
            _unname_in_blocking(ctx, alias)  # first: a retry finds the alias again, and the keys through it
            ctx.profiles.delete_item(alias, alias, etag=doc["_etag"])
    if moved and deleted:
        _forget_merged(ctx, profile_id, moved)
    elif moved:
        # Merged on meanwhile, its survivor forgets them: the fold carried them there (races bench, seed 3605331).
        _forget_where_carried(ctx, profile_id, moved)


def drop_dead_key(ctx: Ctx, key: str, pid: str) -> None:
    """The blocking key stops naming a profile that is gone."""
    if ctx.read_profile(pid) is not None:  # founded since it was found gone
        return
    update_block(ctx, key, pid, None)
    # Founded again meanwhile (a record deleted, then sent again: the same profile id), its worker finding itself
    # named under the key already: named again.
    again = live_profile(ctx, pid)
    if again is not None and key in keys_given(again):
        update_block(ctx, key, None, again["id"])


def _unname_in_blocking(ctx: Ctx, alias: str) -> None:
    """Blocking keys stop naming an alias about to be deleted (an index-served query): it would name nobody. A
    merge's saga repoints the keys the absorbed profile's records give; a key an attempt wrote for its profile while
    the entry there was another version's (two versions of a record at once) is found only this way, and would
    cost a read for nothing at each record giving it. (The alias's document, there until after this, keeps its id
    from being founded again meanwhile.)"""
    for doc in list(ctx.blocking.query_items(("profile_ids", "contains", alias))):
        update_block(ctx, doc["id"], alias, None)


def _forget_merged(ctx: Ctx, profile_id: str, ids: list[str], *, unless_merged: str | None = None,
                   unless: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any] | None:
    """The profile forgets the ids merged into it. Not once it lists `unless_merged` too: the profile the ids moved
    to was merged back into it since (the fold listed them again, and the saga repointed their aliases here). Nor
    when `unless(profile)` holds, asked of each version read. Returns the profile as it is now (None: gone, or
    being merged)."""
    def forget(doc: dict[str, Any]) -> dict[str, Any] | None:
        if unless_merged is not None and unless_merged in doc.get("merged_from", ()):
            return None
        if unless is not None and unless(doc):
            return None
        return {**doc, "merged_from": [i for i in doc.get("merged_from", []) if i not in ids], "updated_at": now_iso()}

    return _update_profile(ctx, profile_id, forget)


def _update_profile(ctx: Ctx, profile_id: str, change) -> dict[str, Any] | None:
    """Write change(profile) under the profile's ETag, reading it again when another writer got there first
    (merge._repoint); a profile gone (erased, merged) has nothing to change, nor one marked for a merge: its
    survivor may have folded it already, and would never see the change. Returns the profile as it is now, None
    when it is gone or being merged."""
    doc = _repoint(ctx.profiles, profile_id, None, None,
                   lambda doc, _old, _new: change(doc) if is_live(doc) else None)
    return doc if is_live(doc) else None
