"""Merging two profiles with stable ids, as a saga of idempotent steps.

A merge crosses partitions (two profile docs, their identifiers, records and blocking entries), so it cannot be
one transaction. It is recorded first (a `pending_merge` mark on the absorbed profile, which freezes it: every
writer that meets the mark finishes the merge before doing anything else; then a pending merge doc), then:
fold the absorbed profile into the survivor, repoint identifiers, records and blocking entries, turn the
absorbed profile into an alias, and close the merge doc. Every step checks whether it is already done, so a
worker dying anywhere leaves a state the next attempt, or any later resolve touching the profile, completes.
"""
from __future__ import annotations

import logging
from typing import Any, Collection, NoReturn

from shared.store import ItemExistsError, ItemNotFoundError, PreconditionFailedError

from .docs import (MAX_ALIAS_HOPS, MAX_NOTED_HOLDERS, NOTED_HOLDERS, UNREAD, ConcurrencyConflict, Ctx, follow_aliases,
                   now_iso, stable_hash)
from .protection import Side, id_type_of, join_conflict
from .survivorship import survive

log = logging.getLogger(__name__)
MAX_WRITE_ATTEMPTS = 20
# Merges a survivor refused at the fold (_refusal), the newest kept: a worker finishing one later lets it go too.
MAX_REFUSED = 8
AUTOMATIC = ("rule", "score")  # the reasons of merges a resolver decided; a person's approval is never refused


def survivor_order(profile: dict[str, Any]) -> tuple[str, str]:
    """The older profile survives a merge (ties: the smaller id), so ids stay stable and choices deterministic."""
    return (profile.get("created_at", ""), profile["id"])


def live_profile(ctx: Ctx, profile_id: str, *, finish: bool = True, doc: Any = UNREAD) -> dict[str, Any] | None:
    """The live profile this id resolves to, finishing pending merges on the way; None if it is gone.

    With finish, merges folded into the profile but not yet completed (its "merging" list: the worker
    died after the fold) are completed too, so a crashed saga is finished by whoever reads the survivor next.
    `doc`: the document of `profile_id` as the caller just read it (a batched read of several), if it did.
    """
    if doc is UNREAD:
        doc = ctx.read_profile(profile_id)
    if doc is not None and doc.get("doc_type") == "profile" and not doc.get("pending_merge") and not (
            finish and doc.get("merging")):
        return doc  # the common case: a live profile with no merge in flight
    current = profile_id
    for _ in range(MAX_ALIAS_HOPS):
        if doc is not None and doc.get("doc_type") == "alias":
            doc, _ = follow_aliases(ctx, doc["merged_into"])
        if doc is None or doc.get("doc_type") != "profile":
            return None
        pending = doc.get("pending_merge")
        if pending:
            complete_merge(ctx, doc)
            current = pending["into"]
            doc = ctx.read_profile(current)
            continue
        if finish and doc.get("merging"):
            for absorbed_id in doc["merging"]:
                absorbed = ctx.read_profile(absorbed_id)
                if absorbed is not None and absorbed.get("pending_merge"):
                    complete_merge(ctx, absorbed)
                else:
                    _clear_merging(ctx, doc["id"], absorbed_id)
            doc = ctx.read_profile(current)
            continue
        return doc
    raise ConcurrencyConflict(f"profile {profile_id} did not settle")


def _clear_merging(ctx: Ctx, profile_id: str, absorbed_id: str, doc: Any = UNREAD) -> dict[str, Any] | None:
    """The absorbed id off the survivor's list of merges in flight; the survivor as written (or read, when nothing
    was left to do). `doc`: a version of the survivor the fold wrote or read, tried first: no version after the fold
    lists the id once it is cleared, and a stale one loses its ETag."""
    for _ in range(MAX_WRITE_ATTEMPTS):
        if doc is UNREAD:
            doc = ctx.read_profile(profile_id)
        if doc is None or absorbed_id not in doc.get("merging", []):
            return doc
        body = {**doc, "merging": [m for m in doc["merging"] if m != absorbed_id]}
        if not body["merging"]:
            del body["merging"]
        try:
            return ctx.profiles.replace_item(body, etag=doc["_etag"])
        except PreconditionFailedError:
            doc = UNREAD
    raise ConcurrencyConflict("could not close a merge on its survivor")


def merge_profiles(ctx: Ctx, survivor_id: str, absorbed_id: str, why: dict[str, Any], *,
                   absorbed: Any = UNREAD, leads: Collection[str] = ()) -> dict[str, Any]:
    """Merge absorbed into survivor (both ids as currently live); returns the live surviving profile. `absorbed`: the
    caller's recent read of that profile, live then, tried first (stale, its mark loses the ETag and it is read).
    `leads`: the identifiers the caller found indexed to the absorbed profile, which it leaves to the saga to point
    at the survivor; one the profile no longer holds when marked (a new version of its record let it go) would be
    pointed nowhere, so the caller decides again (ConcurrencyConflict)."""
    merge_id = "m_" + stable_hash("merge", absorbed_id, survivor_id)
    at = now_iso()
    last: Any = UNREAD  # the survivor as this worker's saga left it: read again when another worker finished it
    for _ in range(MAX_WRITE_ATTEMPTS):
        if absorbed is UNREAD:
            absorbed = ctx.read_profile(absorbed_id)
        if absorbed is None or absorbed.get("doc_type") != "profile":
            _check_joined(ctx, survivor_id, absorbed_id)  # already merged (alias) or removed
            break
        if survivor_id in absorbed.get("merged_from", ()):
            break  # the survivor was merged into it meanwhile: one profile already (marked, it would never settle)
        if absorbed.get("pending_merge"):
            if absorbed["pending_merge"]["merge_id"] != merge_id:  # someone else is merging it; help them instead
                complete_merge(ctx, absorbed)
                _check_joined(ctx, survivor_id, absorbed_id)
            else:
                complete_merge(ctx, absorbed)
            break
        if absorbed.get("splitting"):
            # A split of one of its records is in flight: its mark would go with the absorbed profile, and its
            # pointers not moved yet would name an alias. It is finished first, then the caller decides again.
            from .maintenance import finish_split_in_flight  # (maintenance builds on this module)

            finish_split_in_flight(ctx, absorbed, absorbed["splitting"]["key"])
            raise ConcurrencyConflict(f"a split out of {absorbed_id} was in flight")
        if leads and not _still_holds(absorbed, leads):
            raise ConcurrencyConflict(f"an identifier that led to {absorbed_id} left it before its merge")
        marking = {**absorbed, "pending_merge": {"into": survivor_id, "merge_id": merge_id, "at": at, **why}}
        try:
            marked = ctx.profiles.replace_item(marking, etag=absorbed["_etag"])
        except (PreconditionFailedError, ItemNotFoundError):  # changed, or deleted (its last record removed)
            absorbed = UNREAD
            continue
        # Logged as pending once marked: a worker dying before the mark leaves no pending entry that no saga would
        # ever close; one dying after leaves the mark, and whoever completes the merge logs it done. Created, not
        # upserted: another worker may have completed the merge since the mark, and logged it done.
        try:
            ctx.merges.create_item({"id": merge_id, "profile_id": survivor_id, "absorbed_id": absorbed_id,
                                    "status": "pending", "at": at, **_logged(why)})
        except ItemExistsError:
            pass
        last = complete_merge(ctx, marked)
        break
    else:
        raise ConcurrencyConflict(f"could not mark {absorbed_id} for merging")
    mine = isinstance(last, dict) and last["id"] == survivor_id
    survivor = live_profile(ctx, survivor_id, doc=last if mine else UNREAD)
    if survivor is None:
        raise ConcurrencyConflict(f"merge survivor {survivor_id} is gone")
    return survivor


def _still_holds(profile: dict[str, Any], ids: Collection[str]) -> bool:
    """Whether the profile lists each identifier or a record of it gives it (as the resolver found its holder). Marked,
    the profile is frozen: what it holds then is what the fold brings to the survivor."""
    from .maintenance import _gives  # (maintenance builds on this module)

    listed = profile.get("identifiers", ())
    return all(iid in listed or _gives(profile, iid) for iid in ids)


def _logged(why: dict[str, Any]) -> dict[str, Any]:
    """A merge's reason as its log keeps it: the version of the record it was for only serves the fold's check."""
    return {k: v for k, v in why.items() if k != "via_hash"}


def _check_joined(ctx: Ctx, survivor_id: str, absorbed_id: str) -> None:
    """Raises ConcurrencyConflict unless the two ids lead to one live profile: the profile to absorb was merged into
    another (or removed) meanwhile, which the caller's decision never saw; it decides again from fresh reads."""
    absorbed = live_profile(ctx, absorbed_id)
    if absorbed is None or absorbed["id"] != (live_profile(ctx, survivor_id) or {}).get("id"):
        raise ConcurrencyConflict(f"profile {absorbed_id} was merged elsewhere or removed before it was absorbed")


def _close_pending(ctx: Ctx, merge_id: str, profile_id: str) -> None:
    doc = ctx.merges.read_item_or_none(merge_id, profile_id)
    if doc is not None and doc.get("status") == "pending":
        ctx.merges.delete_item(merge_id, profile_id)


def complete_merge(ctx: Ctx, absorbed: dict[str, Any]) -> dict[str, Any] | None:
    """Finish the merge an absorbed profile is marked for. Idempotent; safe to run by several workers at once.
    Returns the survivor as the saga's last step left it."""
    pending = absorbed["pending_merge"]
    into = ctx.read_profile(pending["into"])
    if into is not None and into.get("pending_merge"):  # rare: its survivor is being merged too
        _break_mark_cycle(ctx, absorbed)
    if into is not None and into.get("doc_type") == "alias" and _leads_to_one_of(ctx, into, {absorbed["id"]}):
        # Its survivor was merged into this very profile after the merge was decided (a mark written before
        # merge_profiles checked for this): finishing it would follow the two round and round. They are one already.
        _unmark(ctx, absorbed)
        _close_pending(ctx, pending["merge_id"], pending["into"])
        raise ConcurrencyConflict(f"the survivor of {absorbed['id']}'s merge was merged into it")
    survivor = live_profile(ctx, pending["into"], finish=False, doc=into) or _folded_into(ctx, absorbed["id"])
    if survivor is None:
        _unmark(ctx, absorbed)  # the survivor was removed meanwhile: the absorbed profile stays on its own
        _close_pending(ctx, pending["merge_id"], pending["into"])  # and no merge is left in its log
        raise ConcurrencyConflict(f"merge target of {absorbed['id']} is gone")
    survivor = _fold(ctx, survivor, absorbed)
    target = survivor["id"]
    _repoint_given(ctx, absorbed, survivor)
    _repoint_holder_notes(ctx, absorbed, target)
    _repoint_records(ctx, absorbed, target)
    _repoint_aliases(ctx, absorbed, target)
    _close_joined_reviews(ctx, survivor, absorbed, pending["merge_id"])
    # The merge log says "done" before the absorbed profile becomes an alias: once it is one, no retry comes
    # back here (the mark that leads a retry to finish the saga is gone with it).
    why = _logged({k: v for k, v in pending.items() if k not in ("into", "merge_id", "at")})
    ctx.merges.upsert_item({
        "id": pending["merge_id"], "profile_id": target, "absorbed_id": absorbed["id"], "at": pending["at"],
        **why, "records": [r["key"] for r in absorbed.get("records", [])], "status": "done"})
    alias = {"id": absorbed["id"], "doc_type": "alias", "merged_into": target, "merged_at": now_iso()}
    try:
        ctx.profiles.replace_item(alias, etag=absorbed["_etag"])
    except (PreconditionFailedError, ItemNotFoundError):
        current = ctx.read_profile(absorbed["id"])
        if current is not None and current.get("doc_type") != "alias":
            raise ConcurrencyConflict(f"absorbed profile {absorbed['id']} changed during its merge") from None
    if target != pending["into"]:
        _close_pending(ctx, pending["merge_id"], pending["into"])
    cleared = _clear_merging(ctx, target, absorbed["id"], survivor)
    if cleared is not None and cleared.get("doc_type") == "alias":
        _follow_merged_on(ctx, absorbed, survivor)
    log.info("merged profile %s into %s (%s)", absorbed["id"], target, why.get("reason"))
    return cleared


def _follow_merged_on(ctx: Ctx, absorbed: dict[str, Any], survivor: dict[str, Any]) -> None:
    """The survivor was merged on into another profile after this saga folded into it, by a saga that pointed on
    what it found naming the survivor then: what this saga pointed at the survivor after that (the absorbed
    profile's identifiers, listed at the destination first as a hand-on is, and its records docs) is pointed on to
    where the survivor leads now (races bench, seed 3306169: identifier_points_to_alias). Reads only on this rare
    path, which the survivor's write closing the merge finds."""
    from .maintenance import list_while_given  # (maintenance builds on this module)

    destination = live_profile(ctx, survivor["id"], finish=False)
    if destination is None:
        return
    listed = set(survivor.get("identifiers", []))
    ids = [iid for iid in absorbed.get("identifiers", []) if iid in listed]
    for iid, doc in zip(ids, ctx.identifiers.read_items([(iid, iid) for iid in ids]) if ids else []):
        if (doc or {}).get("profile_id") == survivor["id"] and list_while_given(ctx, destination["id"], iid):
            _repoint(ctx.identifiers, iid, survivor["id"], destination["id"], _set_profile_id, doc)
    _repoint_records(ctx, {**absorbed, "id": survivor["id"]}, destination["id"])


def _folded_into(ctx: Ctx, absorbed_id: str) -> dict[str, Any] | None:
    """The live profile the absorbed one is folded into already, its saga under way (its `merging` lists it), when
    the profile the mark names is gone: a worker that read it as merged on into another folded there, then its
    alias was deleted (the records it brought removed). Unmarked, the absorbed profile would stay on its own with
    records the other holds too. A query, on this rare path only."""
    folded = ("and", [("doc_type", "=", "profile"), ("merging", "contains", absorbed_id)])
    return next((live_profile(ctx, doc["id"], finish=False, doc=doc) for doc in ctx.profiles.query_items(folded)), None)


def _leads_to_one_of(ctx: Ctx, alias: dict[str, Any], ids: set[str]) -> bool:
    """Whether the alias names one of the ids, directly or through other aliases (reads only then: a rare path). A
    merge's saga points the absorbed profile at the survivor it folded into; when that survivor was merged on
    meanwhile (its own saga found the absorbed one not yet an alias), the alias is two hops away until a later merge
    compresses it."""
    current = alias["merged_into"]
    for _ in range(MAX_ALIAS_HOPS):
        if current in ids:
            return True
        doc = ctx.read_profile(current)
        if doc is None or doc.get("doc_type") != "alias":
            return False
        current = doc["merged_into"]
    return False


def _break_mark_cycle(ctx: Ctx, absorbed: dict[str, Any]) -> None:
    """Marks that lead back to the absorbed profile (A into B, B into A): two workers chose the survivor of one pair
    differently (one may have read a profile id since deleted and founded again, with another creation time).
    Completing either followed the marks round and round. The oldest profile of the cycle is the survivor
    (survivor_order, on the documents as they are now): its mark is taken off and its merge's pending entry
    closed, and the caller starts again (ConcurrencyConflict), now at the end of a chain. No cycle: nothing."""
    chain = [absorbed]
    into = absorbed["pending_merge"]["into"]
    for _ in range(MAX_ALIAS_HOPS):
        doc, _ = follow_aliases(ctx, into)
        if doc is None or doc.get("doc_type") != "profile" or not doc.get("pending_merge"):
            return
        if any(member["id"] == doc["id"] for member in chain):
            cycle = chain[next(i for i, member in enumerate(chain) if member["id"] == doc["id"]):]
            oldest = min(cycle, key=survivor_order)
            oldest = ctx.read_profile(oldest["id"]) or oldest  # the version to unmark (_unmark checks its ETag)
            if oldest.get("pending_merge"):
                _unmark(ctx, oldest)
                _close_pending(ctx, oldest["pending_merge"]["merge_id"], oldest["pending_merge"]["into"])
            raise ConcurrencyConflict(f"merge marks led back to {absorbed['id']}: the oldest of them keeps its place")
        chain.append(doc)
        into = doc["pending_merge"]["into"]


def review_id(record_key: str, candidate_id: str) -> str:
    """The id of the review a record opens against a candidate profile: one per pair, so a retry finds its own."""
    return "r_" + stable_hash("review", record_key, candidate_id)


# Beyond this many (record, profile id) pairs a merge looks its reviews up with one query instead of point reads.
MAX_REVIEW_PROBES = 200


def _close_joined_reviews(ctx: Ctx, survivor: dict[str, Any], absorbed: dict[str, Any], merge_id: str) -> None:
    """Open reviews this merge answered: a record on one side against a profile on the other (live then, an alias
    of one since) are one profile now, and a person would only approve them. They are closed as obsolete, so the
    review list holds only open questions. `survivor` is the folded doc (it lists both sides); idempotent."""
    absorbed_ids = [absorbed["id"], *absorbed.get("merged_from", [])]
    absorbed_keys = [r["key"] for r in absorbed.get("records", [])]
    in_absorbed = set(absorbed_ids) | set(absorbed_keys)
    survivor_ids = [i for i in (survivor["id"], *survivor.get("merged_from", [])) if i not in in_absorbed]
    survivor_keys = [r["key"] for r in survivor["records"] if r["key"] not in in_absorbed]
    crossing = [(absorbed_keys, survivor_ids), (survivor_keys, absorbed_ids)]
    if sum(len(keys) * len(ids) for keys, ids in crossing) <= MAX_REVIEW_PROBES:
        wanted = sorted({review_id(key, pid) for keys, ids in crossing for key in keys for pid in ids})
    else:
        wanted = [doc["id"] for doc in ctx.review.query_items(("and", [("status", "=", "open"), ("or", [
            ("and", [("record_key", "in", keys), ("candidate_profile_id", "in", ids)]) for keys, ids in crossing])]))]
    for review in ctx.review.read_items([(rid, rid) for rid in wanted]):
        if review is None or review.get("status") != "open":
            continue  # decided, or being decided: the person's decision stands
        body = {**review, "status": "obsolete", "obsolete_reason": "merged", "merge_id": merge_id,
                "profile_id": survivor["id"], "decided_at": now_iso(), "decided_by": None}
        try:
            ctx.review.replace_item(body, etag=review["_etag"])
        except (PreconditionFailedError, ItemNotFoundError):
            pass  # taken by a person meanwhile, or gone


def _unmark(ctx: Ctx, absorbed: dict[str, Any]) -> None:
    body = {k: v for k, v in absorbed.items() if k != "pending_merge"}
    try:
        ctx.profiles.replace_item(body, etag=absorbed["_etag"])
    except (PreconditionFailedError, ItemNotFoundError):
        pass


def fold_into(survivor: dict[str, Any], absorbed: dict[str, Any], ctx: Ctx) -> dict[str, Any]:
    """The survivor doc with the absorbed profile's records, identifiers and history added (pure)."""
    keys = {r["key"] for r in survivor["records"]}
    records = survivor["records"] + [r for r in absorbed.get("records", []) if r["key"] not in keys]
    merged_from = list(dict.fromkeys(survivor.get("merged_from", []) + [absorbed["id"]] + absorbed.get("merged_from", [])))
    attributes, conflicts = survive(records, ctx.config.survivorship)
    identifiers = set(survivor.get("identifiers", [])) | set(absorbed.get("identifiers", []))
    # Holders noted on either (engine._note_on_kept_apart) stay noted, but for the two themselves.
    noted = [h for h in dict.fromkeys([*survivor.get(NOTED_HOLDERS, ()), *absorbed.get(NOTED_HOLDERS, ())])
             if h not in merged_from and h != survivor["id"]]
    return {
        **survivor,
        **({NOTED_HOLDERS: noted[-MAX_NOTED_HOLDERS:]} if noted or NOTED_HOLDERS in survivor else {}),
        "records": records,
        "identifiers": sorted(identifiers - _given_by_dropped_versions(absorbed, keys, records)),
        "never_match": sorted(set(survivor.get("never_match", [])) | set(absorbed.get("never_match", []))),
        "merged_from": merged_from,
        "merge_count": int(survivor.get("merge_count", 0)) + 1 + int(absorbed.get("merge_count", 0)),
        "merging": sorted(set(survivor.get("merging", [])) | {absorbed["id"]}),  # cleared when the saga ends
        "attributes": attributes,
        "conflicts": conflicts,
        "updated_at": now_iso(),
    }


def _given_by_dropped_versions(absorbed: dict[str, Any], keys: set[str], records: list[dict[str, Any]]) -> set[str]:
    """The identifiers only the absorbed profile's version of a record the survivor holds too gave (two versions of
    one record resolved at once by two workers, each into its own profile): the survivor's version is kept."""
    from .maintenance import entry_identifiers  # (maintenance builds on this module)

    dropped = [r for r in absorbed.get("records", []) if r["key"] in keys]
    if not dropped:
        return set()
    return set().union(*map(entry_identifiers, dropped)) - set().union(*map(entry_identifiers, records))


def _fold(ctx: Ctx, survivor: dict[str, Any], absorbed: dict[str, Any]) -> dict[str, Any]:
    mark = _mark_id(absorbed["pending_merge"])
    for _ in range(MAX_WRITE_ATTEMPTS):
        if absorbed["id"] in survivor.get("merging", ()):
            return survivor  # folded, its saga under way
        if mark in survivor.get("refused_merges", ()):
            _refused(ctx, absorbed, "refused by its survivor")
        # Read after the survivor, whose ETag the fold is written under: the merge may have been completed by another
        # worker, and the survivor changed since (a record of the absorbed profile removed, or gone to another
        # profile with the absorbed id when it changed): folding the absorbed profile as this worker read it would
        # bring the record back.
        if (ctx.read_profile(absorbed["id"]) or {}).get("pending_merge") != absorbed["pending_merge"]:
            if absorbed["id"] in survivor.get("merged_from", []):
                return survivor  # folded, and its saga done
            raise ConcurrencyConflict("the merge was completed by another worker")
        # Still marked, yet listed as merged and not in flight: the id was merged here before, then its record was
        # removed by a delete that died before the survivor forgot it, and founded again. Folded again, or the
        # records of the profile founded again would be lost with it.
        reason = _refusal(ctx, survivor, absorbed)
        body = fold_into(survivor, absorbed, ctx) if reason is None else {
            **survivor, "refused_merges": [*survivor.get("refused_merges", ()), mark][-MAX_REFUSED:]}
        try:
            folded = ctx.profiles.replace_item(body, etag=survivor["_etag"])
            if reason is not None:
                _refused(ctx, absorbed, reason)
            return folded
        except PreconditionFailedError:
            survivor = live_profile(ctx, survivor["id"], finish=False)
            if survivor is None:
                raise ConcurrencyConflict("merge survivor vanished") from None
    raise ConcurrencyConflict(f"could not fold {absorbed['id']}")


def _mark_id(pending: dict[str, Any]) -> str:
    """One merge mark: the same two profiles may be merged again later, once what refused the first is gone."""
    return f"{pending['merge_id']}@{pending['at']}"


def _refusal(ctx: Ctx, survivor: dict[str, Any], absorbed: dict[str, Any]) -> str | None:
    """Why merge protection refuses the fold, for a merge a resolver decided, or None. The decision checked the
    profiles as it read them; another worker may have joined a record or a profile to either since (a second birth
    date, a second loyalty card), and a merge of what they are now is one the decision would have refused.
    Checked on the survivor's version the fold is written over: a record linked to it meanwhile makes that write
    lose its ETag, and the fold checks again. Costs no read."""
    pending = absorbed["pending_merge"]
    if pending.get("reason") not in AUTOMATIC:
        return None
    return join_conflict(ctx.config.protection, [_side_for_fold(survivor, pending), _side_for_fold(absorbed, pending)])


def _side_for_fold(profile: dict[str, Any], pending: dict[str, Any]) -> Side:
    """The profile as merge protection sees it at the fold: without another version of the record the merge was for
    (the decision checked the new one instead, which replaces it next), with that very version (a record that
    founded its profile, then merged it)."""
    via, version = pending.get("via_record"), pending.get("via_hash")
    if via is None or all(r["key"] != via or r.get("hash") == version for r in profile.get("records", ())):
        return Side.of_profile(profile)
    return Side.of_profile(profile, without_record=via)


def _refused(ctx: Ctx, absorbed: dict[str, Any], reason: str) -> NoReturn:
    """The survivor refused the merge (its refused_merges names the mark, written under its ETag, so no other
    worker folds it after): the absorbed profile stays live, unmarked, and the merge leaves the log. The resolver
    that merged decides again from fresh reads, which open the review a person decides."""
    pending = absorbed["pending_merge"]
    current = ctx.read_profile(absorbed["id"])  # (frozen by its mark: only this saga's workers write it)
    if current is not None and current.get("pending_merge") == pending:
        _unmark(ctx, current)  # one whose write loses leaves the mark to the next reader, who finds the refusal
    _close_pending(ctx, pending["merge_id"], pending["into"])
    log.info("merge of profile %s into %s refused (%s)", absorbed["id"], pending["into"], reason)
    raise ConcurrencyConflict(f"merge of {absorbed['id']} refused: {reason}")


def _repoint(container, item_id: str, old: str, new: str, update, doc: Any = UNREAD) -> dict[str, Any] | None:
    """Write update(doc) under the document's ETag, reading it again when another writer got there first. Returns
    the document as it is now: written, or read and needing no change (None: there is none). `doc`: the document
    as the caller just read it (a batched read of several), if it did."""
    for _ in range(MAX_WRITE_ATTEMPTS):
        if doc is UNREAD:
            doc = container.read_item_or_none(item_id, item_id)
        changed = update(doc, old, new) if doc is not None else None
        if changed is None:
            return doc
        try:
            return container.replace_item(changed, etag=doc["_etag"])
        except (PreconditionFailedError, ItemNotFoundError):
            doc = UNREAD
    raise ConcurrencyConflict(f"could not repoint {container.name} item")


def _read_all(container, item_ids: list[str]) -> list[Any]:
    """The documents of the ids (of a container partitioned by id), in one batched read when there are several
    (a merge repoints each of the absorbed profile's identifiers, keys and records docs): _repoint's `doc`s."""
    return container.read_items([(i, i) for i in item_ids]) if len(item_ids) > 1 else [UNREAD] * len(item_ids)


# Repointing steps return the changed document, or None when it needs no change (read documents stay as read).

def _set_profile_id(doc: dict[str, Any], old: str, new: str) -> dict[str, Any] | None:
    if doc.get("profile_id") != old:
        return None
    return {**doc, "profile_id": new}


def _swap_in_list(doc: dict[str, Any], old: str, new: str) -> dict[str, Any] | None:
    ids = doc.get("profile_ids", [])
    if old not in ids:
        return None
    return {**doc, "profile_ids": list(dict.fromkeys(new if i == old else i for i in ids))}


def _repoint_given(ctx: Ctx, absorbed: dict[str, Any], survivor: dict[str, Any]) -> None:
    """The absorbed profile's identifiers and blocking keys lead to the survivor, those its folded doc lists or its
    records give; the others (only a version of a record it dropped gave them: _given_by_dropped_versions) are
    released."""
    from .maintenance import release_identifier, update_block  # (maintenance builds on this module)

    listed = set(survivor.get("identifiers", []))
    given = {k for r in survivor["records"] for k in r.get("blocking_keys", [])}
    ids = absorbed.get("identifiers", [])
    keys = {k for r in absorbed.get("records", []) for k in r.get("blocking_keys", [])}
    _repoint_identifiers(ctx, {**absorbed, "identifiers": [i for i in ids if i in listed]}, survivor["id"])
    _repoint_blocking(ctx, {"id": absorbed["id"], "records": [{"blocking_keys": sorted(keys & given)}]}, survivor["id"])
    for iid in sorted(set(ids) - listed):
        release_identifier(ctx, iid, {absorbed["id"]})
    for key in sorted(keys - given):
        update_block(ctx, key, absorbed["id"], None)


def _repoint_identifiers(ctx: Ctx, absorbed: dict[str, Any], target: str) -> None:
    """The identifiers the absorbed profile lists (and the survivor, once folded) lead to the survivor. Not a source
    identifier found elsewhere or missing: that one is its record's commit, written by its own worker."""
    from .maintenance import _unlist, note_holder  # (maintenance builds on this module)

    ids = absorbed.get("identifiers", [])
    for iid, read in zip(ids, _read_all(ctx.identifiers, ids)):
        doc = _repoint(ctx.identifiers, iid, absorbed["id"], target, _set_profile_id, read)
        if id_type_of(iid) == "source":
            continue
        if doc is None:
            # Released meanwhile by a worker that read one record giving it (its old version's): the survivor claims
            # it while its records give it, or is noted a holder where another profile claimed it since.
            note_holder(ctx, iid, target)
        elif doc.get("profile_id") != target:
            owner = _destination_of(ctx, doc["profile_id"])
            if owner is None:  # naming a profile gone (deleted, erased): the survivor takes it over
                _repoint(ctx.identifiers, iid, doc["profile_id"], target, _set_profile_id)
            elif owner != target:
                # Listed by the absorbed profile while its claim was lost, or handed on since to another profile
                # whose record gives it: it stays there, and the survivor is one of its holders.
                _unlist(ctx, target, iid)
                note_holder(ctx, iid, target, doc)


def _repoint_holder_notes(ctx: Ctx, absorbed: dict[str, Any], target: str) -> None:
    """Identifiers the absorbed profile's records give and another profile holds name the survivor as one of their
    holders in its place (a note left naming the alias would cost a read each time a record gives the value). No
    request when it held all it gave, as nearly every profile does."""
    from .maintenance import entry_identifiers  # (maintenance builds on this module)

    listed = set(absorbed.get("identifiers", []))
    noted = sorted({iid for entry in absorbed.get("records", []) for iid in entry_identifiers(entry)
                    if iid not in listed and id_type_of(iid) != "source"})
    for iid, read in zip(noted, _read_all(ctx.identifiers, noted)):
        _repoint(ctx.identifiers, iid, absorbed["id"], target, _swap_holder, read)


def _swap_holder(doc: dict[str, Any], old: str, new: str) -> dict[str, Any] | None:
    holders = doc.get("holders", [])
    if old not in holders:
        return None
    now = list(dict.fromkeys(new if h == old else h for h in holders))
    return {**doc, "holders": [h for h in now if h != doc.get("profile_id")]}


def _destination_of(ctx: Ctx, profile_id: str) -> str | None:
    """The profile the id leads to (itself, or the one an alias or a merge mark names); None when it is gone. Read,
    not found by completing merges: a saga that completed another merge into the same survivor from here could come
    back to its own."""
    doc, _ = follow_aliases(ctx, profile_id)
    if doc is None or doc.get("doc_type") != "profile":
        return None
    return (doc.get("pending_merge") or {}).get("into") or doc["id"]


def _repoint_records(ctx: Ctx, absorbed: dict[str, Any], target: str) -> None:
    keys = [entry["key"] for entry in absorbed.get("records", [])]
    for key, read in zip(keys, _read_all(ctx.records, keys)):
        _repoint(ctx.records, key, absorbed["id"], target, _set_profile_id, read)


def _merged_into(doc: dict[str, Any], old: str, new: str) -> dict[str, Any] | None:
    if doc.get("doc_type") != "alias" or doc.get("merged_into") == new:
        return None  # pointing at the survivor already (or erased and gone: _repoint reads None)
    return {**doc, "merged_into": new}


def _compressed(doc: dict[str, Any], old: str, new: str) -> dict[str, Any] | None:
    if doc.get("doc_type") != "alias" or doc.get("merged_into") != old:
        return None  # redirected already: here, or further on by a later merge of the survivor (never back)
    return {**doc, "merged_into": new}


def _repoint_aliases(ctx: Ctx, absorbed: dict[str, Any], target: str) -> None:
    """Path compression: the profiles merged into the absorbed one earlier (its aliases, at any depth) redirect to
    the survivor directly, so no alias is more than one hop from a live profile, two while a merge is in flight
    (follow_aliases gives up past MAX_ALIAS_HOPS). Done before the absorbed profile becomes an alias: a retry
    after a crash finds its merge mark and does it again. Only an alias still naming the absorbed profile moves: a
    worker late on this saga, its survivor merged on since, would otherwise take the aliases the later merge sent
    on back to an alias (two hops, and a removal of their record then forgot them without deleting them)."""
    for alias_id in absorbed.get("merged_from", []):
        _repoint(ctx.profiles, alias_id, absorbed["id"], target, _compressed)


def _repoint_blocking(ctx: Ctx, absorbed: dict[str, Any], target: str) -> None:
    keys = sorted({k for entry in absorbed.get("records", []) for k in entry.get("blocking_keys", [])})
    for key, read in zip(keys, _read_all(ctx.blocking, keys)):
        _repoint(ctx.blocking, key, absorbed["id"], target, _swap_in_list, read)
