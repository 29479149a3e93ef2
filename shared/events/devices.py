"""Device links: which person's record an anonymous (device) id stands for, over time.

One document per anonymous id in the identifiers container (`anonymous_id:<id>`), holding a short history of
segments ordered by event time: `{"at": identify time, "owner": "events|<record key>", "profile_id": ...}`. A
segment runs from its identify to the next segment's. An anonymous event belongs to the owner of the latest
segment at or before its own timestamp; an event older than every segment (browsing before the device's first
identify) to the first segment's. So a shared device that changes hands keeps each person's browsing with that
person, whatever order the identifies and events arrive in (a retry, a late batch), and a retried event is
stitched to the same owner as the first delivery: it overwrites itself, it is not stored twice.

A segment is added only for a hand-over: an identify of the same owner as the segment it falls in changes
nothing; one just before the next segment of its owner moves that segment's start back. An identify at exactly
the time of an existing segment leaves it (the first to arrive holds). At most MAX_DEVICE_HISTORY segments are
kept; past the bound the oldest are dropped and `forgotten_before` (the oldest kept segment's time) is set: an
anonymous event older than that is answered, not stored (the device changed hands more often since than the
link remembers, so whose it is is not known, and it is most likely a retry of an event already stored).

Privacy: the link holds several people's keys, so it is never exported whole: a person's export holds only
their own segments. `owners` lists every key the link holds, so an erase finds the link from the person's
records; erasing a person replaces their segments by ownerless ones (the time only), whose events are
answered "erased" and not stored again (without the gap, the person's retried events would fall to the
previous holder), and deletes the link when no one else is left in it (the device is then as if it never
identified).

Links written before the history existed (`owner`, `identified_at`, `previous_owners`) are read as one
segment whose `also` holds the earlier records of that person (where a retried event may be stored).
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable

from ..activity import OWNERS, anonymous_owner, follow_move, iso_utc
from ..store import ItemExistsError, PreconditionFailedError, Store

MAX_DEVICE_HISTORY = 20  # segments (hand-overs between people or records, and erased gaps) a device link keeps
LINK_ATTEMPTS = 5  # ETag-guarded link writes racing other identifies or erases of the same device
ERASED = "its person was erased on request: the event is not stored"
FORGOTTEN = ("older than the history its device's link keeps (the device changed hands more often since): "
             "the event is not stored")


def link_id(anonymous_id: str) -> str:
    return f"anonymous_id:{anonymous_id}"


def read_link(store: Store, anonymous_id: str) -> dict[str, Any] | None:
    return store.container("identifiers").read_item_or_none(link_id(anonymous_id), link_id(anonymous_id))


def segments(link: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The link's history, oldest first (a copy)."""
    if link is None:
        return []
    if "history" in link:
        return [dict(s) for s in link["history"]]
    at = link.get("identified_at") or iso_utc(datetime.fromisoformat(link["linked_at"]))  # before this was kept
    also = [o for o in link.get("previous_owners") or [] if o != link["owner"]]
    segment = {"at": at, "owner": link["owner"], "profile_id": link.get("profile_id")}
    return [{**segment, "also": also} if also else segment]


def held_owners(link: dict[str, Any] | None) -> list[str]:
    """Every record key the link holds: where the device's anonymous events may be stored."""
    keys = [k for s in segments(link) for k in (s.get("owner"), *s.get("also", ())) if k]
    return list(dict.fromkeys(keys))


def owner_at(link: dict[str, Any], at: str) -> tuple[str | None, str | None]:
    """(owner, None) of an anonymous event at `at` (an iso_utc string), or (None, why it is not stored)."""
    history = segments(link)
    if link.get("forgotten_before") and at < link["forgotten_before"]:
        return None, FORGOTTEN
    segment = history[0]
    for s in history:
        if s["at"] > at:
            break
        segment = s
    return (segment["owner"], None) if segment.get("owner") else (None, ERASED)


def _doc(anonymous_id: str, history: list[dict[str, Any]], forgotten_before: str | None) -> dict[str, Any]:
    current = history[-1]
    doc = {"id": link_id(anonymous_id), "type": "anonymous_id", "owner": current.get("owner"),
           "profile_id": current.get("profile_id"), "identified_at": current["at"],
           "linked_at": datetime.now(timezone.utc).isoformat(), "history": history,
           "owners": held_owners({"history": history})}
    return {**doc, "forgotten_before": forgotten_before} if forgotten_before else doc


def with_identify(anonymous_id: str, link: dict[str, Any] | None, owner: str, profile_id: str,
                  at: str) -> dict[str, Any] | None:
    """The link after an identify of `owner` at `at`, or None when it does not change it (a retry, the same
    owner already holds that time, an identify older than the link remembers or at the same time as another)."""
    history, forgotten = segments(link), (link or {}).get("forgotten_before")
    if forgotten and at < forgotten:
        return None
    before = [i for i, s in enumerate(history) if s["at"] <= at]
    i = before[-1] if before else -1
    if i >= 0 and history[i].get("owner") == owner:
        if history[i].get("profile_id") == profile_id:
            return None
        history[i]["profile_id"] = profile_id  # the record's profile changed (a merge): keep the link current
    elif i >= 0 and history[i]["at"] == at:
        return None
    elif i + 1 < len(history) and history[i + 1].get("owner") == owner:
        history[i + 1].update(at=at, profile_id=profile_id)  # the owner's next segment starts earlier
    else:
        history.insert(i + 1, {"at": at, "owner": owner, "profile_id": profile_id})
    if len(history) > MAX_DEVICE_HISTORY:
        history = history[-MAX_DEVICE_HISTORY:]
        forgotten = history[0]["at"]
    return _doc(anonymous_id, history, forgotten)


def without_owners(link: dict[str, Any], owners: Iterable[str]) -> dict[str, Any] | None:
    """The link once these records are erased: their segments keep only their time (an ownerless gap); None
    when no one else is left in it."""
    gone, history = set(owners), []
    for s in segments(link):
        if s.get("owner") in gone or not s.get("owner"):
            if not history or history[-1].get("owner"):  # one gap for a run of erased segments
                history.append({"at": s["at"], "owner": None})
            continue
        also = [o for o in s.get("also", ()) if o not in gone]
        history.append({k: v for k, v in s.items() if k != "also"} | ({"also": also} if also else {}))
    if not any(s.get("owner") for s in history):
        return None
    anonymous_id = link["id"].split(":", 1)[1]
    return _doc(anonymous_id, history, link.get("forgotten_before"))


def links_holding(store: Store, owners: Iterable[str]) -> list[dict[str, Any]]:
    """Device links that hold any of these records (events records only: no other source links a device)."""
    keys = sorted({o for o in owners if o.startswith("events|")})
    if not keys:
        return []
    return list(store.container("identifiers").query_items(("and", [("type", "=", "anonymous_id"), (
        "or", [("owner", "in", keys), *[("owners", "contains", k) for k in keys]])])))


def export_view(link: dict[str, Any], owners: Iterable[str]) -> dict[str, Any]:
    """What a person's export shows of a device link: only their own segments, never anyone else's keys."""
    mine = set(owners)
    own = [{k: v for k, v in s.items() if k != "also"} | (
        {"also": [o for o in s["also"] if o in mine]} if s.get("also") else {})
        for s in segments(link) if s.get("owner") in mine]
    return {"id": link["id"], "type": "anonymous_id", "history": own, "linked_now": link.get("owner") in mine}


def erase_owners(store: Store, owners: Iterable[str]) -> int:
    """Take these records out of every device link (ETag-guarded: identifies of the device may race the erase);
    returns how many links changed or were deleted."""
    owners = list(owners)
    identifiers, changed = store.container("identifiers"), 0
    for found in links_holding(store, owners):
        for attempt in range(LINK_ATTEMPTS):
            link = identifiers.read_item_or_none(found["id"], found["id"])
            if link is None or not set(held_owners(link)) & set(owners):
                break
            doc = without_owners(link, owners)
            try:
                if doc is None:
                    identifiers.delete_item(link["id"], link["id"], etag=link["_etag"])
                else:
                    identifiers.replace_item(doc, etag=link["_etag"])
                changed += 1
                break
            except PreconditionFailedError:
                if attempt == LINK_ATTEMPTS - 1:
                    raise
    return changed


def link_identify(store: Store, anonymous_id: str, owner: str, profile_id: str,
                  at: str) -> tuple[dict[str, Any] | None, bool]:
    """Add an identify to the device's link, ETag-guarded against concurrent identifies and erases. Returns
    the link as it is now and whether this identify changed it."""
    identifiers, key = store.container("identifiers"), link_id(anonymous_id)
    for attempt in range(LINK_ATTEMPTS):
        link = identifiers.read_item_or_none(key, key)
        doc = with_identify(anonymous_id, link, owner, profile_id, at)
        if doc is None:
            return link, False
        try:
            identifiers.create_item(doc) if link is None else identifiers.replace_item(doc, etag=link["_etag"])
            break
        except (ItemExistsError, PreconditionFailedError):
            if attempt == LINK_ATTEMPTS - 1:
                raise
    return identifiers.read_item_or_none(key, key), True  # the latest: another identify may follow at once


def settle(store: Store, anonymous_id: str, link: dict[str, Any] | None, *, changed: bool) -> int:
    """Move the device's anonymous events to the owner the link gives each (by its timestamp): those still on
    the device's own timeline and, when the link changed, those stitched earlier to a record the history no
    longer gives them to (an identify arrived after events it covers). Returns how many moved."""
    if link is None:
        return 0
    activity, moved = store.container("activity"), 0
    here = [anonymous_owner(anonymous_id)] + (held_owners(link) if changed else [])
    stitched = ("and", [("anonymous_id", "=", anonymous_id), ("user_id", "undefined", None),
                        ("type", "!=", "identify")])
    for partition in here:
        flt = None if partition == here[0] else stitched  # the device's timeline: everything on it
        for doc in list(activity.query_items(flt, partition_key=partition)):
            owner, _ = owner_at(link, doc.get("timestamp") or "")
            if owner is not None and owner != partition:
                move(store, doc, owner)
                moved += 1
    return moved


def move(store: Store, doc: dict[str, Any], owner: str) -> None:
    """Store an activity doc under another owner, then remove it from where it was (a crash in between leaves
    a copy that the next move overwrites, never a loss); its owner entry, if any, follows it."""
    activity = store.container("activity")
    activity.upsert_item({**doc, "owner": owner, "customer_key": owner.split("|", 1)[1]})
    follow_move(store, store.container(OWNERS).read_item_or_none(doc["id"], doc["id"]), doc["owner"], owner)
    activity.delete_item(doc["id"], doc["owner"])
