"""Taking records out of profiles: incremental deletes (remove_record) and manual splits (split_record)."""
from __future__ import annotations

import logging
from typing import Any

from shared.normalize import NormalizedRecord
from shared.settings import Settings
from shared.store import ItemExistsError, ItemNotFoundError, PreconditionFailedError, Store

from .docs import (ConcurrencyConflict, Ctx, now_iso, random_profile_id, record_identifiers, source_identifier,
                   stable_hash, with_retries)
from .merge import live_profile
from .survivorship import survive

log = logging.getLogger(__name__)


def entry_identifiers(entry: dict[str, Any]) -> set[str]:
    """The identifiers one record entry of a profile contributes (its source key and strong identifiers)."""
    n = NormalizedRecord.from_dict(entry.get("match") or {"key": entry["key"], "source": entry["source"]})
    return {source_identifier(entry["key"]), *record_identifiers(n)}


def _own(entry: dict[str, Any], remaining: list[dict[str, Any]]) -> tuple[set[str], set[str]]:
    """Identifiers and blocking keys only this entry gives its profile."""
    others_ids = set().union(*(entry_identifiers(r) for r in remaining)) if remaining else set()
    others_keys = {k for r in remaining for k in r.get("blocking_keys", [])}
    return entry_identifiers(entry) - others_ids, set(entry.get("blocking_keys", [])) - others_keys


def _without(profile: dict[str, Any], key: str, own_ids: set[str], ctx: Ctx, **extra: Any) -> dict[str, Any]:
    remaining = [r for r in profile["records"] if r["key"] != key]
    attributes, conflicts = survive(remaining, ctx.config.survivorship)
    return {**profile, "records": remaining, "identifiers": sorted(set(profile.get("identifiers", [])) - own_ids),
            "attributes": attributes, "conflicts": conflicts, "updated_at": now_iso(), **extra}


def _delete_identifier(ctx: Ctx, iid: str, profile_id: str) -> None:
    doc = ctx.identifiers.read_item_or_none(iid, iid)
    if doc is not None and doc.get("profile_id") == profile_id:
        ctx.identifiers.delete_item(iid, iid, etag=doc["_etag"])


def _point_identifier(ctx: Ctx, iid: str, old: str, new: str) -> None:
    doc = ctx.identifiers.read_item_or_none(iid, iid)
    if doc is None:
        ctx.identifiers.create_item({"id": iid, "type": iid.split(":", 1)[0], "profile_id": new, "created_at": now_iso()})
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
                ctx.blocking.create_item({"id": key, "profile_ids": new_ids})
            else:
                ctx.blocking.replace_item({**doc, "profile_ids": new_ids}, etag=doc["_etag"])
            return
        except (PreconditionFailedError, ItemExistsError):
            continue  # someone else changed the key; read it again
    raise ConcurrencyConflict("could not update blocking key")


def remove_record(store: Store, source: str, record_key: str, *, settings: Settings | None = None) -> str | None:
    """Take a deleted source record out of its profile; returns the profile id it was in (None if unknown).

    The profile keeps its other records; identifiers and blocking keys only this record gave are released.
    A profile left with no records is deleted (its aliases then resolve to nothing: the person is gone).
    """
    ctx = Ctx(store, settings)
    key = f"{source}|{record_key}"
    return with_retries(ctx, lambda: _remove_once(ctx, key))


def _remove_once(ctx: Ctx, key: str) -> str | None:
    source_iid = source_identifier(key)
    pointer = ctx.records.read_item_or_none(key, key) or ctx.identifiers.read_item_or_none(source_iid, source_iid)
    if pointer is None:
        return None
    profile = live_profile(ctx, pointer["profile_id"])
    entry = next((r for r in profile["records"] if r["key"] == key), None) if profile else None
    if profile is not None and entry is not None:
        remaining = [r for r in profile["records"] if r["key"] != key]
        own_ids, own_keys = _own(entry, remaining)
        if remaining:
            ctx.profiles.replace_item(_without(profile, key, own_ids, ctx), etag=profile["_etag"])
        else:
            ctx.profiles.delete_item(profile["id"], profile["id"], etag=profile["_etag"])
        for iid in sorted(own_ids):
            _delete_identifier(ctx, iid, profile["id"])
        for block in sorted(own_keys):
            update_block(ctx, block, profile["id"], None)
    profile_id = profile["id"] if profile else pointer["profile_id"]
    _delete_identifier(ctx, source_iid, profile_id)
    ctx.records.delete_item(key, key)
    log.info("removed record from profile %s", profile_id)
    return profile_id


def split_record(store: Store, profile_id: str, record_key: str, *, settings: Settings | None = None) -> str:
    """Move one record out of a profile into a new profile of its own; the two never match again.

    `record_key` is the record's full key ("pos|123"), or its source key when that is unique in the profile.
    Returns the new profile's id. Raises ItemNotFoundError for an unknown profile or record, ValueError when
    the record is the profile's only one.
    """
    ctx = Ctx(store, settings)
    return with_retries(ctx, lambda: _split_once(ctx, profile_id, record_key))


def _split_once(ctx: Ctx, profile_id: str, record_key: str) -> str:
    profile = live_profile(ctx, profile_id)
    if profile is None:
        raise ItemNotFoundError(f"profile {profile_id} not found")
    matches = [r for r in profile["records"] if r["key"] == record_key or r["record_key"] == record_key]
    if len(matches) != 1:
        raise ItemNotFoundError(f"record {record_key!r} is not (uniquely) in profile {profile['id']}")
    entry = matches[0]
    key = entry["key"]
    remaining = [r for r in profile["records"] if r["key"] != key]
    if not remaining:
        raise ValueError("the record is the profile's only record; nothing to split")
    own_ids, own_keys = _own(entry, remaining)
    new_id = random_profile_id()
    now = now_iso()
    moved = {**entry, "link": {"reason": "split", "from": profile["id"]}}
    attributes, conflicts = survive([moved], ctx.config.survivorship)
    ctx.profiles.create_item({
        "id": new_id, "doc_type": "profile", "created_at": now, "updated_at": now, "records": [moved],
        "identifiers": sorted(own_ids | {source_identifier(key)}), "attributes": attributes, "conflicts": conflicts,
        "never_match": sorted({profile["id"], *profile.get("merged_from", []), *(r["key"] for r in remaining)}),
        "merged_from": [], "merge_count": 0})
    never = sorted(set(profile.get("never_match", [])) | {key, new_id})
    try:
        ctx.profiles.replace_item(_without(profile, key, own_ids | {source_identifier(key)}, ctx, never_match=never),
                                  etag=profile["_etag"])
    except PreconditionFailedError:
        ctx.profiles.delete_item(new_id, new_id)
        raise
    for iid in sorted(own_ids | {source_identifier(key)}):
        _point_identifier(ctx, iid, profile["id"], new_id)
    record_doc = ctx.records.read_item_or_none(key, key)
    if record_doc is not None:
        ctx.records.replace_item({**record_doc, "profile_id": new_id})
    for block in entry.get("blocking_keys", []):
        update_block(ctx, block, profile["id"] if block in own_keys else None, new_id)
    ctx.merges.upsert_item({
        "id": "s_" + stable_hash("split", profile["id"], key, new_id), "profile_id": profile["id"],
        "absorbed_id": None, "split_into": new_id, "at": now, "reason": "split", "rule": "manual split",
        "records": [key], "status": "done"})
    log.info("split a record of profile %s into %s", profile["id"], new_id)
    return new_id
