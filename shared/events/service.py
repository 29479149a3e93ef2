"""Accept events as they happen: validate, store on the owner's timeline, and resolve identity on identify.

Identity from events goes through the same resolver and merge protection as files. An `identify` becomes a
customer record of source `events`: keyed by userId when there is one, else by the anonymous id together with
the identifiers it asserts, so one shared device that identifies as two people yields two records that are
linked to two profiles by their own identifiers: the device id is never an identifier and never joins anyone.
The anonymous id is then linked to the record (shared/events/devices.py): the link keeps a short history of who
identified on the device and when, and each anonymous event of the device is stored under the record of the
latest identify at or before the event's own timestamp (browsing before the first identify: the first one's).
So a shared device that changes hands keeps each person's browsing with that person whatever order identifies,
events and their retries arrive in: a retried event lands where its first delivery is and overwrites itself,
and an identify that arrives after events it covers moves them. An identify the resolver cannot use
(quarantined) links nothing; an erased person's identify and events are not stored again.

Events are stored as ingested activity is (shared/activity.py write_activity): each id under one owner, with
its owner entry in `activity_owners`, so an event id sent again for another person moves rather than being
stored twice, a retry writes no entry, and a person's export and erase find the entries. The entries of a
request's events are read in one ReadMany, apart from identifies and stitched anonymous events (each on its own).
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError

from ..activity import activity_doc, anonymous_owner, iso_utc, owner_key, save_activity, write_activity
from ..models import CustomerRecord, Event
from ..settings import Settings
from ..store import Store
from .devices import ERASED, held_owners, link_identify, owner_at, read_link, settle
from .schema import IncomingEvent

log = logging.getLogger(__name__)
EVENTS_SOURCE = "events"


@dataclass(frozen=True)
class EventLimits:
    max_body_bytes: int = 512 * 1024
    max_batch: int = 500
    max_event_bytes: int = 32 * 1024


class EventPayloadError(ValueError):
    """The request as a whole is unusable (not JSON, too large, wrong shape); status says how to answer."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def parse_payload(body: bytes, limits: EventLimits) -> list[Any]:
    if len(body) > limits.max_body_bytes:
        raise EventPayloadError(413, f"request body is {len(body)} bytes; the limit is {limits.max_body_bytes}")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nesting too deep to parse
        raise EventPayloadError(
            400, "request body must be a JSON object, a JSON array, or {\"batch\": [...]}") from None
    items = data.get("batch") if isinstance(data, dict) and "batch" in data else data
    items = items if isinstance(items, list) else [items]
    if not items:
        raise EventPayloadError(400, "no events in the request")
    if len(items) > limits.max_batch:
        raise EventPayloadError(413, f"{len(items)} events in one request; the limit is {limits.max_batch}")
    return items


def _canonical(raw: dict[str, Any]) -> str:
    return json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)


def _event_id(canonical: str, occurrence: int = 0) -> str:
    """Content hash for an event without messageId. The n-th identical item of one batch is another event (a
    batch is never a retry of itself); a retried batch gives the same ids. The first keeps the plain hash."""
    if occurrence:
        canonical += f"#{occurrence}"
    return "h-" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _reasons(err: ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}" for e in err.errors()]


def _trait(traits: dict[str, Any], *names: str) -> Any:
    for n in names:
        if traits.get(n) not in (None, ""):
            return traits[n]
    return None


def identify_record(ev: IncomingEvent) -> CustomerRecord:
    t = ev.traits
    address = t.get("address") if isinstance(t.get("address"), dict) else {}
    fields = {
        "email": _trait(t, "email"), "phone": _trait(t, "phone"),
        "loyalty_id": _trait(t, "loyalty_id", "loyaltyId"),
        "given_name": _trait(t, "firstName", "first_name"), "family_name": _trait(t, "lastName", "last_name"),
        "full_name": _trait(t, "name"), "birth_date": _trait(t, "birthday", "birth_date"),
        "address_line1": _trait(address, "street", "line1"), "city": _trait(address, "city"),
        "postcode": _trait(address, "postal_code", "postalCode"), "state": _trait(address, "state"),
        "country": _trait(address, "country"),
    }
    fields = {k: str(v) for k, v in fields.items() if v is not None}
    if ev.user_id:
        key = ev.user_id
    else:
        asserted = "|".join(f"{k}={fields[k].strip().lower()}" for k in ("email", "phone", "loyalty_id") if k in fields)
        key = "anon-" + hashlib.sha256(f"{ev.anonymous_id}|{asserted}".encode()).hexdigest()[:24]
    return CustomerRecord(source=EVENTS_SOURCE, record_key=key, **fields)


def _store_once(store: Store, doc: dict[str, Any], link: dict[str, Any]) -> None:
    """Store a device's anonymous event under the owner its link gives it; a retry lands there too and
    overwrites itself. A copy under another record of the link (stored before a change of the link that was
    racing it, or an event without timestamp, placed by its arrival) is left where it is, not stored twice: the
    next change of the link settles it. Otherwise it is written as any activity is (write_activity): a copy under
    an owner outside the link (the same messageId sent for someone else) moves here, and its owner entry with it."""
    activity = store.container("activity")
    elsewhere = [o for o in held_owners(link) if o != doc["owner"]]
    if elsewhere and any(activity.read_items([(doc["id"], o) for o in elsewhere])):
        return
    write_activity(store, [doc])


def _flush(store: Store, pending: list[Event]) -> None:
    """Store the events held back, as ingestion stores activity (save_activity: an id posted before for another
    owner is moved there, and its owner entry written or, when it did not move, left alone)."""
    if pending:
        save_activity(store, pending)
        pending.clear()


def _erased(store: Store, record_key: str) -> bool:
    key = owner_key(EVENTS_SOURCE, record_key)
    return bool((store.container("records").read_item_or_none(key, key) or {}).get("erased_at"))


def _to_event(ev: IncomingEvent, event_id: str, customer_key: str | None, at: datetime) -> Event:
    context = ev.context.model_dump(exclude_none=True)
    return Event(source=EVENTS_SOURCE, event_id=event_id, type=ev.type, event=ev.event or ev.name,
                 timestamp=at, anonymous_id=ev.anonymous_id,
                 customer_key=customer_key, user_id=ev.user_id, traits=ev.traits if ev.type == "identify" else {},
                 properties={**ev.properties, **({"name": ev.name} if ev.name else {})},
                 channel=context.get("channel"), context=context)


def accept_events(store: Store, body: bytes, settings: Settings, *,
                  limits: EventLimits = EventLimits()) -> tuple[int, dict[str, Any]]:
    """Validate and store every event of the request; answer per event. Raises EventPayloadError when the
    request as a whole cannot be read."""
    from ..identity import resolve_records

    items = parse_payload(body, limits)
    results: list[dict[str, Any]] = []
    links: dict[str, dict[str, Any] | None] = {}  # anonymous id -> its link, read once per request
    erased: dict[str, bool] = {}  # userId -> its events record was erased, read once per request
    copies: Counter[str] = Counter()  # identical items without messageId seen so far in this batch
    pending: list[Event] = []  # stored together, before anything reads the activity back (identify, stitching)
    for index, raw in enumerate(items):
        if not isinstance(raw, dict):
            results.append({"index": index, "status": "rejected", "errors": ["an event must be a JSON object"]})
            continue
        try:
            size = len(json.dumps(raw, default=str, ensure_ascii=False).encode("utf-8"))
        except UnicodeEncodeError:  # JSON allows "\ud800" escapes that no UTF-8 store can hold
            results.append({"index": index, "status": "rejected",
                            "errors": ["the event holds invalid Unicode (a lone surrogate escape)"]})
            continue
        except RecursionError:  # nested nearly as deep as the parser allows, e.g. in an unused field
            results.append({"index": index, "status": "rejected", "errors": ["the event is nested too deep"]})
            continue
        if size > limits.max_event_bytes:
            results.append({"index": index, "status": "rejected",
                            "errors": [f"event is {size} bytes; the limit is {limits.max_event_bytes}"]})
            continue
        try:
            ev = IncomingEvent.model_validate(raw)
        except ValidationError as err:
            results.append({"index": index, "status": "rejected", "errors": _reasons(err)})
            continue
        if ev.message_id:
            event_id = ev.message_id
        else:
            canonical = _canonical(raw)
            event_id = _event_id(canonical, copies[canonical])
            copies[canonical] += 1
        result: dict[str, Any] = {"index": index, "status": "accepted", "event_id": event_id}
        at = ev.timestamp or datetime.now(timezone.utc)  # one time for stitching and storing
        results.append(result)
        customer_key = ev.user_id
        if ev.type == "identify":
            _flush(store, pending)  # its device's events, to be moved by settle
            try:
                record = identify_record(ev)
            except ValidationError as err:
                result.update(status="rejected", errors=_reasons(err))
                del result["event_id"]
                continue
            outcome = resolve_records(store, [record], settings=settings)[0]
            result["profile_id"] = outcome.profile_id
            result["identity"] = outcome.action
            if outcome.action == "erased":  # its traits and device link would be out of reach of any erase
                result.update(stored=False, reason=ERASED)
                continue
            if outcome.profile_id is None:  # quarantined: the event stays with the device (or userId) until usable
                result["moved_events"] = 0
            else:
                customer_key = record.record_key
                if ev.anonymous_id:
                    link, changed = link_identify(store, ev.anonymous_id, owner_key(EVENTS_SOURCE, record.record_key),
                                                  outcome.profile_id, iso_utc(at))
                    links[ev.anonymous_id] = link
                    result["moved_events"] = settle(store, ev.anonymous_id, link, changed=changed)
        elif customer_key:
            if customer_key not in erased:
                erased[customer_key] = _erased(store, customer_key)
            if erased[customer_key]:
                result.update(stored=False, reason=ERASED)
                continue
        elif ev.anonymous_id:
            if ev.anonymous_id not in links:
                links[ev.anonymous_id] = read_link(store, ev.anonymous_id)
            link = links[ev.anonymous_id]
            if link is not None:  # the owner of the latest identify on the device at or before the event
                owner, why_not = owner_at(link, iso_utc(at))
                if owner is None:
                    result.update(stored=False, reason=why_not)
                    continue
                _flush(store, pending)
                _store_once(store, activity_doc(_to_event(ev, event_id, owner.split("|", 1)[1], at)), link)
                continue
        pending.append(_to_event(ev, event_id, customer_key, at))
    _flush(store, pending)
    accepted = sum(r["status"] == "accepted" for r in results)
    status = 200 if accepted == len(results) else 207 if accepted else 400
    log.info("events: %d accepted, %d rejected", accepted, len(results) - accepted)
    return status, {"accepted": accepted, "rejected": len(results) - accepted, "results": results}


def anonymous_behaviour(store: Store, anonymous_id: str) -> dict[str, Any]:
    """Sessions of an anonymous (device) id: its own unidentified events, and the record it is linked to."""
    from .sessions import behaviour_summary

    if not anonymous_id or len(anonymous_id) > 256:
        raise ValueError("anonymous_id must be 1 to 256 characters")
    from ..identity import find_profile_id

    link = read_link(store, anonymous_id)
    owner = link.get("owner") if link else None
    events = list(store.container("activity").query_items(partition_key=anonymous_owner(anonymous_id)))
    # The profile holding the owner's record now: the one stored at identify time may since have been merged away
    # or have lost the record to a split.
    linked = find_profile_id(store, "source", owner) if owner else None
    return {"anonymous_id": anonymous_id, "linked_profile_id": linked, **behaviour_summary(events)}
