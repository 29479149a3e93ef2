"""Accept events as they happen: validate, store on the owner's timeline, and resolve identity on identify.

Identity from events goes through the same resolver and merge protection as files. An `identify` becomes a
customer record of source `events`: keyed by userId when there is one, else by the anonymous id together with
the identifiers it asserts, so one shared device that identifies as two people yields two records that are
linked to two profiles by their own identifiers: the device id is never an identifier and never joins anyone.
The anonymous id is then linked to the record (the person identified on that device now): its earlier events
move to that record's timeline, and later anonymous events follow the link. The link follows the latest identify
by event time (a retried older identify does not take the device back) and remembers the person's records it
pointed at before, so a retried anonymous event already stored under one of them is not stored twice. An
identify the resolver cannot use (quarantined) links nothing; an erased person's identify and events are not
stored again.
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

from ..activity import activity_doc, anonymous_owner, iso_utc, owner_key
from ..models import CustomerRecord, Event
from ..settings import Settings
from ..store import ItemExistsError, PreconditionFailedError, Store
from .schema import IncomingEvent

log = logging.getLogger(__name__)
EVENTS_SOURCE = "events"
MAX_PREVIOUS_OWNERS = 10  # records of the same person a device link remembers, to de-duplicate retries
LINK_ATTEMPTS = 5  # ETag-guarded link writes racing other identifies of the same device
ERASED = "its person was erased on request: the event is not stored"


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


def _link(store: Store, anonymous_id: str) -> dict[str, Any] | None:
    link_id = f"anonymous_id:{anonymous_id}"
    return store.container("identifiers").read_item_or_none(link_id, link_id)


def _identified_at(link: dict[str, Any]) -> str:
    """When the identify behind the link happened (links written before this was kept: when they were made)."""
    return link.get("identified_at") or iso_utc(datetime.fromisoformat(link["linked_at"]))


def _link_anonymous(store: Store, anonymous_id: str, record_key: str, profile_id: str,
                    identified: datetime) -> tuple[dict[str, Any], int]:
    """Point the anonymous id at the identified record unless a later identify (by event time) holds it, then
    move the device's anonymous events to whoever holds it. Returns the link and how many events moved."""
    owner = owner_key(EVENTS_SOURCE, record_key)
    link_id, at = f"anonymous_id:{anonymous_id}", iso_utc(identified)
    identifiers = store.container("identifiers")
    for attempt in range(LINK_ATTEMPTS):
        link = identifiers.read_item_or_none(link_id, link_id)
        same = link is not None and link["owner"] == owner and link.get("profile_id") == profile_id
        if link is not None and _identified_at(link) >= at and (same or link["owner"] != owner):
            break  # a later identify holds the device, or this one is a retry: nothing to change
        # Only the same person's records: the link is exported and erased with its owner's profile.
        previous = [] if link is None or link.get("profile_id") != profile_id else [
            link["owner"], *link.get("previous_owners", [])]
        doc = {"id": link_id, "type": "anonymous_id", "owner": owner, "profile_id": profile_id,
               "linked_at": datetime.now(timezone.utc).isoformat(),
               "identified_at": max(at, _identified_at(link)) if link and link["owner"] == owner else at,
               "previous_owners": [o for o in dict.fromkeys(previous) if o != owner][:MAX_PREVIOUS_OWNERS]}
        try:
            link = identifiers.create_item(doc) if link is None else identifiers.replace_item(doc, etag=link["_etag"])
            break
        except (ItemExistsError, PreconditionFailedError):
            if attempt == LINK_ATTEMPTS - 1:
                raise
    return link, _move_anonymous(store, anonymous_id, link["owner"])


def _move_anonymous(store: Store, anonymous_id: str, owner: str) -> int:
    activity = store.container("activity")
    moved = 0
    for doc in list(activity.query_items(partition_key=anonymous_owner(anonymous_id))):
        doc["owner"] = owner
        doc["customer_key"] = owner.split("|", 1)[1]
        activity.upsert_item(doc)
        activity.delete_item(doc["id"], anonymous_owner(anonymous_id))
        moved += 1
    return moved


def _stored_before(store: Store, doc_id: str, link: dict[str, Any]) -> bool:
    """A retried anonymous event may be stored under an owner the device was linked to before."""
    owners = link.get("previous_owners") or []
    return any(store.container("activity").read_items([(doc_id, o) for o in owners])) if owners else False


def _erased(store: Store, record_key: str) -> bool:
    key = owner_key(EVENTS_SOURCE, record_key)
    return bool((store.container("records").read_item_or_none(key, key) or {}).get("erased_at"))


def _to_event(ev: IncomingEvent, event_id: str, customer_key: str | None) -> Event:
    context = ev.context.model_dump(exclude_none=True)
    return Event(source=EVENTS_SOURCE, event_id=event_id, type=ev.type, event=ev.event or ev.name,
                 timestamp=ev.timestamp or datetime.now(timezone.utc), anonymous_id=ev.anonymous_id,
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
    activity = store.container("activity")
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
        results.append(result)
        customer_key = ev.user_id
        if ev.type == "identify":
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
                    links[ev.anonymous_id], result["moved_events"] = _link_anonymous(
                        store, ev.anonymous_id, record.record_key, outcome.profile_id,
                        ev.timestamp or datetime.now(timezone.utc))
        elif customer_key:
            if customer_key not in erased:
                erased[customer_key] = _erased(store, customer_key)
            if erased[customer_key]:
                result.update(stored=False, reason=ERASED)
                continue
        elif ev.anonymous_id:
            if ev.anonymous_id not in links:
                links[ev.anonymous_id] = _link(store, ev.anonymous_id)
            link = links[ev.anonymous_id]
            if link is not None:
                customer_key = link["owner"].split("|", 1)[1]
                if _stored_before(store, f"event:{EVENTS_SOURCE}:{event_id}", link):
                    continue  # a retry of an event stored before the device's link moved
        activity.upsert_item(activity_doc(_to_event(ev, event_id, customer_key)))
    accepted = sum(r["status"] == "accepted" for r in results)
    status = 200 if accepted == len(results) else 207 if accepted else 400
    log.info("events: %d accepted, %d rejected", accepted, len(results) - accepted)
    return status, {"accepted": accepted, "rejected": len(results) - accepted, "results": results}


def anonymous_behaviour(store: Store, anonymous_id: str) -> dict[str, Any]:
    """Sessions of an anonymous (device) id: its own unidentified events, and the record it is linked to."""
    from .sessions import behaviour_summary

    if not anonymous_id or len(anonymous_id) > 256:
        raise ValueError("anonymous_id must be 1 to 256 characters")
    link = _link(store, anonymous_id)
    events = list(store.container("activity").query_items(partition_key=anonymous_owner(anonymous_id)))
    return {"anonymous_id": anonymous_id, "linked_profile_id": link.get("profile_id") if link else None,
            **behaviour_summary(events)}
