"""Accept events as they happen: validate, store on the owner's timeline, and resolve identity on identify.

Identity from events goes through the same resolver and merge protection as files. An `identify` becomes a
customer record of source `events`: keyed by userId when there is one, else by the anonymous id together with
the identifiers it asserts, so one shared device that identifies as two people yields two records that are
linked to two profiles by their own identifiers: the device id is never an identifier and never joins anyone.
The anonymous id is then linked to the record (the person identified on that device now): its earlier events
move to that record's timeline, and later anonymous events follow the link.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError

from ..activity import activity_doc, anonymous_owner, owner_key
from ..models import CustomerRecord, Event
from ..settings import Settings
from ..store import Store
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
        raise EventPayloadError(400, "request body must be a JSON object, a JSON array, or {\"batch\": [...]}") from None
    items = data.get("batch") if isinstance(data, dict) and "batch" in data else data
    items = items if isinstance(items, list) else [items]
    if not items:
        raise EventPayloadError(400, "no events in the request")
    if len(items) > limits.max_batch:
        raise EventPayloadError(413, f"{len(items)} events in one request; the limit is {limits.max_batch}")
    return items


def _event_id(raw: dict[str, Any]) -> str:
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
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
    return store.container("identifiers").read_item_or_none(f"anonymous_id:{anonymous_id}", f"anonymous_id:{anonymous_id}")


def _link_anonymous(store: Store, anonymous_id: str, record_key: str, profile_id: str | None) -> int:
    """Point the anonymous id at the identified record and move its anonymous events there."""
    owner = owner_key(EVENTS_SOURCE, record_key)
    link_id = f"anonymous_id:{anonymous_id}"
    store.container("identifiers").upsert_item({
        "id": link_id, "type": "anonymous_id", "owner": owner, "profile_id": profile_id,
        "linked_at": datetime.now(timezone.utc).isoformat()})
    activity = store.container("activity")
    moved = 0
    for doc in list(activity.query_items(partition_key=anonymous_owner(anonymous_id))):
        doc["owner"] = owner
        doc["customer_key"] = record_key
        activity.upsert_item(doc)
        activity.delete_item(doc["id"], anonymous_owner(anonymous_id))
        moved += 1
    return moved


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
    links: dict[str, str | None] = {}  # anonymous id -> linked record key, read once per request
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
        if size > limits.max_event_bytes:
            results.append({"index": index, "status": "rejected",
                            "errors": [f"event is {size} bytes; the limit is {limits.max_event_bytes}"]})
            continue
        try:
            ev = IncomingEvent.model_validate(raw)
        except ValidationError as err:
            results.append({"index": index, "status": "rejected", "errors": _reasons(err)})
            continue
        event_id = ev.message_id or _event_id(raw)
        result: dict[str, Any] = {"index": index, "status": "accepted", "event_id": event_id}
        customer_key = ev.user_id
        if ev.type == "identify":
            try:
                record = identify_record(ev)
            except ValidationError as err:
                results.append({"index": index, "status": "rejected", "errors": _reasons(err)})
                continue
            outcome = resolve_records(store, [record], settings=settings)[0]
            result["profile_id"] = outcome.profile_id
            result["identity"] = outcome.action
            customer_key = record.record_key
            if ev.anonymous_id:
                result["moved_events"] = _link_anonymous(store, ev.anonymous_id, record.record_key, outcome.profile_id)
                links[ev.anonymous_id] = record.record_key
        elif not customer_key and ev.anonymous_id:
            if ev.anonymous_id not in links:
                link = _link(store, ev.anonymous_id)
                links[ev.anonymous_id] = link["owner"].split("|", 1)[1] if link else None
            customer_key = links[ev.anonymous_id]
        store.container("activity").upsert_item(activity_doc(_to_event(ev, event_id, customer_key)))
        results.append(result)
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
