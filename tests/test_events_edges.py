"""Events path edges (POST /api/events, shared/events, the events file loader): at-least-once delivery,
identify and device (anonymous id) links, erase, ordering by event time, validation with per-event reasons.
On the in-memory store; the HTTP route called as the host calls it."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import azure.functions as func
import pytest

from shared.activity import list_activity
from shared.api.profiles import load_profile, profile_view
from shared.events.devices import MAX_DEVICE_HISTORY
from shared.events.service import accept_events, anonymous_behaviour
from shared.privacy import erase_profile, export_profile
from shared.settings import Settings
from shared.store import MemoryStore

from .store_faults import InterceptingStore


def _ts(minutes_ago: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)).isoformat()


def post(store, payload):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return accept_events(store, body, Settings())


def view(store, profile_id: str) -> dict:
    return profile_view(store, load_profile(store, profile_id))


def event_docs(store) -> list[dict]:
    return list(store.container("activity").query_items(("kind", "=", "event")))


def record_keys(store, profile_id: str) -> list[str]:
    """The profile's source record keys: the owners of its activity."""
    return [r["key"] for r in load_profile(store, profile_id)["records"]]


def device_link(store, anonymous_id: str) -> dict | None:
    key = f"anonymous_id:{anonymous_id}"
    return store.container("identifiers").read_item_or_none(key, key)


# --- identify -----------------------------------------------------------------------------------------------

def test_identify_that_cannot_be_resolved_leaves_the_device_unlinked():
    """An identify whose traits resolve to nothing (only a first name) is quarantined by the resolver: the
    device stays unlinked and keeps its anonymous history, which moves to the profile when the person identifies
    properly."""
    store = MemoryStore()
    post(store, [{"type": "page", "name": "Home", "anonymousId": "dev-q", "messageId": "q-1", "timestamp": _ts(30)},
                 {"type": "track", "event": "Product Viewed", "anonymousId": "dev-q", "messageId": "q-2",
                  "timestamp": _ts(29)}])
    _, first = post(store, {"type": "identify", "anonymousId": "dev-q", "messageId": "q-3", "timestamp": _ts(28),
                            "traits": {"firstName": "Kim"}})
    assert first["results"][0]["identity"] == "quarantined" and first["results"][0]["moved_events"] == 0
    assert anonymous_behaviour(store, "dev-q")["linked_profile_id"] is None
    _, second = post(store, {"type": "identify", "anonymousId": "dev-q", "messageId": "q-4", "timestamp": _ts(20),
                             "traits": {"email": "kim.quinn@shopmail.net"}})
    pid = second["results"][0]["profile_id"]
    assert pid
    owners = [r["key"] for r in load_profile(store, pid)["records"]]
    seen = {a.get("event") or a["type"] for a in list_activity(store, owners)}
    orphaned = anonymous_behaviour(store, "dev-q")["events"]
    assert {"Home", "Product Viewed"} <= seen or orphaned == 2, (
        f"the device's page view and product view are in neither the profile ({seen}) nor the device timeline")


def test_identify_and_events_of_an_erased_person_are_not_stored():
    """After an erase, the same identify (an SDK resending it, the user logging in again) is answered identity
    'erased' and not stored, the device is not linked again, and later events of that userId are answered
    with a reason and dropped: nothing is kept where no live profile, so no erase or export, can reach it."""
    store = MemoryStore()
    email, phone = "ann.erase@shopmail.net", "+447911123456"
    _, body = post(store, {"type": "identify", "userId": "u-erase", "anonymousId": "dev-e", "messageId": "e-1",
                           "traits": {"email": email}})
    pid = body["results"][0]["profile_id"]
    erase_profile(store, load_profile(store, pid))
    assert [d for d in event_docs(store)] == []

    _, again = post(store, [
        {"type": "identify", "userId": "u-erase", "anonymousId": "dev-e", "messageId": "e-2",
         "traits": {"email": email, "phone": phone}},
        {"type": "track", "event": "Order Completed", "userId": "u-erase", "messageId": "e-3",
         "properties": {"order_id": "o-9", "revenue": 120}},
        {"type": "page", "name": "Account", "anonymousId": "dev-e", "messageId": "e-4"}])
    assert again["results"][0]["identity"] == "erased"
    assert [r["status"] for r in again["results"]] == ["accepted"] * 3
    assert [r.get("stored", True) for r in again["results"]] == [False, False, True]
    assert "erased" in again["results"][1]["reason"]
    left = [(d["owner"], d["type"]) for d in event_docs(store)
            if d["owner"].startswith("events|")]  # owned by the erased record: unreachable by any erase
    links = [d["id"] for d in store.container("identifiers").query_items(("type", "=", "anonymous_id"))]
    pii = [d["id"] for d in event_docs(store) if email in json.dumps(d) or phone in json.dumps(d)]
    assert (left, links, pii) == ([], [], []), (
        f"after the erase: activity of the erased record {left}, device links {links}, docs with PII {pii}")


def test_a_retried_older_identify_does_not_take_back_a_shared_device():
    """Shared device: Tom identifies, then Ann. Tom's identify is delivered again (its response was lost: an
    at-least-once retry). The device link follows the latest identify by event time, not by arrival, so Ann's
    later browsing stays on Ann's profile."""
    store = MemoryStore()
    tom = {"type": "identify", "anonymousId": "family-tablet", "messageId": "tom-1", "timestamp": _ts(60),
           "traits": {"email": "tom.shared@shopmail.net"}}
    _, t = post(store, tom)
    _, a = post(store, {"type": "identify", "anonymousId": "family-tablet", "messageId": "ann-1",
                        "timestamp": _ts(10), "traits": {"email": "ann.shared@shopmail.net"}})
    tom_pid, ann_pid = t["results"][0]["profile_id"], a["results"][0]["profile_id"]
    post(store, tom)  # the retry
    post(store, {"type": "page", "name": "Handbags", "anonymousId": "family-tablet", "messageId": "ann-2",
                 "timestamp": _ts(1)})
    ann_pages = [e for e in view(store, ann_pid)["recent_activity"] if e.get("type") == "page"]
    tom_pages = [e for e in view(store, tom_pid)["recent_activity"] if e.get("type") == "page"]
    assert (len(ann_pages), len(tom_pages)) == (1, 0), (
        f"Ann's page view after her identify went to Tom: ann={len(ann_pages)} tom={len(tom_pages)}")
    link = store.container("identifiers").read_item("anonymous_id:family-tablet", "anonymous_id:family-tablet")
    assert link["profile_id"] == ann_pid
    tom_keys = record_keys(store, tom_pid)
    exported = json.dumps(export_profile(store, load_profile(store, ann_pid))["device_links"])
    assert not [k for k in tom_keys if k in exported], f"Ann's export holds Tom's record keys: {exported}"


# --- shared devices: each anonymous event belongs to the latest identify at or before it -----------------------

def identify(store, device: str, message_id: str, minutes_ago: float, email: str) -> str:
    _, body = post(store, {"type": "identify", "anonymousId": device, "messageId": message_id,
                           "timestamp": _ts(minutes_ago), "traits": {"email": email}})
    return body["results"][0]["profile_id"]


def page(device: str, message_id: str, minutes_ago: float, name: str) -> dict:
    return {"type": "page", "name": name, "anonymousId": device, "messageId": message_id,
            "timestamp": _ts(minutes_ago)}


def pages_by_owner(store) -> list[tuple[str, str]]:
    return sorted((d["properties"]["name"], d["owner"]) for d in event_docs(store) if d["type"] == "page")


def shared_tablet(store) -> tuple[str, str]:
    """Ann identifies on the tablet and browses, then Tom identifies on it. Ann's page view is redelivered
    (at-least-once) after Tom's identify, and a page view of Ann's that was never delivered arrives late; then
    Tom browses. Returns (Ann's profile id, Tom's)."""
    ann = identify(store, "tablet", "ann-id", 60, "ann.tablet@shopmail.net")
    handbags = page("tablet", "ann-e1", 50, "Handbags")
    post(store, handbags)
    tom = identify(store, "tablet", "tom-id", 40, "tom.tablet@shopmail.net")
    post(store, handbags)  # the redelivery
    post(store, page("tablet", "ann-e2", 45, "Scarves"))  # late: between Ann's page view and Tom's identify
    post(store, page("tablet", "tom-e1", 30, "Drills"))
    return ann, tom


def test_a_shared_devices_retried_and_late_browsing_stays_with_who_browsed():
    """Ann's redelivered page view and her late one are stored under Ann (the latest identify at or before each
    event is hers), not under Tom, who holds the device now; the redelivery is stored once."""
    store = MemoryStore()
    ann, tom = shared_tablet(store)
    [ann_key], [tom_key] = record_keys(store, ann), record_keys(store, tom)
    assert pages_by_owner(store) == [("Drills", tom_key), ("Handbags", ann_key), ("Scarves", ann_key)]
    ann_pages = [e.get("name") for e in view(store, ann)["recent_activity"] if e.get("type") == "page"]
    tom_pages = [e.get("name") for e in view(store, tom)["recent_activity"] if e.get("type") == "page"]
    assert (len(ann_pages), len(tom_pages)) == (2, 1), f"Ann's page views {ann_pages}, Tom's {tom_pages}"
    link = device_link(store, "tablet")
    assert [s["owner"] for s in link["history"]] == [ann_key, tom_key] and link["profile_id"] == tom


def test_export_of_a_shared_devices_later_user_holds_none_of_the_earlier_ones_events_or_keys():
    store = MemoryStore()
    ann, tom = shared_tablet(store)
    [ann_key], [tom_key] = record_keys(store, ann), record_keys(store, tom)
    tom_export = export_profile(store, load_profile(store, tom))
    text = json.dumps(tom_export)
    leaked = [n for n in (ann_key, ann_key.split("|", 1)[1], ann, "ann-e1", "ann-e2", "Handbags", "Scarves")
              if n in text]
    assert leaked == [], f"Tom's export holds Ann's {leaked}"
    assert [s["owner"] for d in tom_export["device_links"] for s in d["history"]] == [tom_key]
    ann_export = export_profile(store, load_profile(store, ann))
    assert tom_key not in json.dumps(ann_export) and tom not in json.dumps(ann_export["device_links"])
    assert sorted(a["properties"]["name"] for a in ann_export["activity"] if a["type"] == "page") == [
        "Handbags", "Scarves"]
    assert [d["linked_now"] for d in ann_export["device_links"]] == [False]


def test_erasing_one_user_of_a_shared_device_takes_them_out_of_its_link_and_leaves_the_other():
    """Erasing Ann leaves a gap (its time only) in the tablet's history: Ann's keys are gone from the link, her
    redelivered page view is answered "erased" (not stored, and not given to Tom), and Tom keeps his link and
    browsing. Erasing Tom too deletes the link."""
    store = MemoryStore()
    ann, tom = shared_tablet(store)
    [ann_key], [tom_key] = record_keys(store, ann), record_keys(store, tom)
    counts = erase_profile(store, load_profile(store, ann))
    assert counts["device_links"] == 1
    link = device_link(store, "tablet")
    assert ann_key not in json.dumps(link) and ann not in json.dumps(link)
    assert [s["owner"] for s in link["history"]] == [None, tom_key] and link["owners"] == [tom_key]
    _, again = post(store, [page("tablet", "ann-e1", 50, "Handbags"), page("tablet", "tom-e2", 20, "Saws")])
    assert [r.get("stored", True) for r in again["results"]] == [False, True]
    assert "erased" in again["results"][0]["reason"]
    assert pages_by_owner(store) == [("Drills", tom_key), ("Saws", tom_key)]
    assert link["profile_id"] == tom and anonymous_behaviour(store, "tablet")["linked_profile_id"] == tom
    erase_profile(store, load_profile(store, tom))
    assert device_link(store, "tablet") is None


def test_an_identify_arriving_after_events_it_covers_moves_them():
    """Tom's page view reaches the API before his identify (batches, retries): it is stored under Ann, the only
    identify known then; when Tom's identify (earlier than the page view) arrives, the page view moves to Tom.
    Its retry stays stored once."""
    store = MemoryStore()
    ann = identify(store, "tablet", "ann-id", 60, "ann.tablet@shopmail.net")
    drills = page("tablet", "tom-e1", 30, "Drills")
    post(store, [page("tablet", "ann-e1", 50, "Handbags"), drills])
    _, answer = post(store, {"type": "identify", "anonymousId": "tablet", "messageId": "tom-id",
                             "timestamp": _ts(40), "traits": {"email": "tom.tablet@shopmail.net"}})
    tom = answer["results"][0]["profile_id"]
    assert answer["results"][0]["moved_events"] == 1
    post(store, drills)
    [ann_key], [tom_key] = record_keys(store, ann), record_keys(store, tom)
    assert pages_by_owner(store) == [("Drills", tom_key), ("Handbags", ann_key)]


def test_concurrent_identifies_of_a_shared_device_both_enter_its_history():
    """Tom's identify and Kim's race on the tablet's link (ETag): the one that loses reads the link again, so
    both hand-overs are kept, in event-time order, and each one's browsing goes to them."""
    store = MemoryStore()
    ann = identify(store, "tablet", "ann-id", 60, "ann.tablet@shopmail.net")
    kim = []
    racing = InterceptingStore(
        store, "identifiers", "replace_item", when=lambda body, **kw: body.get("type") == "anonymous_id",
        before=lambda: kim.append(identify(store, "tablet", "kim-id", 20, "kim.tablet@shopmail.net")))
    _, answer = accept_events(racing, json.dumps({
        "type": "identify", "anonymousId": "tablet", "messageId": "tom-id", "timestamp": _ts(40),
        "traits": {"email": "tom.tablet@shopmail.net"}}).encode(), Settings())
    assert racing.intercepted and kim
    tom = answer["results"][0]["profile_id"]
    keys = [record_keys(store, p)[0] for p in (ann, tom, kim[0])]
    assert [s["owner"] for s in device_link(store, "tablet")["history"]] == keys
    post(store, [page("tablet", "a", 50, "A"), page("tablet", "t", 30, "T"), page("tablet", "k", 10, "K")])
    assert pages_by_owner(store) == sorted(zip("ATK", keys))


def test_an_identify_racing_an_erase_of_the_devices_other_user_is_kept():
    """Ann is erased while Tom identifies on her device: the erase's link write loses the race (ETag), reads the
    link again and takes only Ann out: Tom's hand-over stays."""
    store = MemoryStore()
    ann = identify(store, "tablet", "ann-id", 60, "ann.tablet@shopmail.net")
    tom = []
    racing = InterceptingStore(
        store, "identifiers", "delete_item", when=lambda item_id, *a, **kw: item_id.startswith("anonymous_id:"),
        before=lambda: tom.append(identify(store, "tablet", "tom-id", 40, "tom.tablet@shopmail.net")))
    erase_profile(racing, load_profile(store, ann))
    assert racing.intercepted and tom
    link = device_link(store, "tablet")
    assert [s["owner"] for s in link["history"]] == [None] + record_keys(store, tom[0])


def test_device_history_is_bounded_and_older_events_are_answered_not_stored():
    """A device that changed hands more often than the link keeps forgets the oldest hand-overs: an anonymous
    event older than what it remembers is answered with a reason, not stored (whose it is is not known)."""
    store = MemoryStore()
    people = ["ann.bound@shopmail.net", "tom.bound@shopmail.net"]
    for i in range(MAX_DEVICE_HISTORY + 3):
        identify(store, "kiosk", f"id-{i}", 200 - i, people[i % 2])
    link = device_link(store, "kiosk")
    assert len(link["history"]) == MAX_DEVICE_HISTORY and link["forgotten_before"] == link["history"][0]["at"]
    _, body = post(store, [page("kiosk", "old", 199.5, "Old"), page("kiosk", "new", 150, "New")])
    assert [r.get("stored", True) for r in body["results"]] == [False, True]
    assert "older than" in body["results"][0]["reason"]
    assert [name for name, _ in pages_by_owner(store)] == ["New"]


def test_a_link_written_before_the_history_still_finds_a_retry_under_the_persons_earlier_record():
    """A device link in the earlier format (owner, identified_at, previous_owners): a retried event stored under
    the person's earlier record is still stored once."""
    store = MemoryStore()
    store.container("identifiers").create_item({
        "id": "anonymous_id:old-phone", "type": "anonymous_id", "owner": "events|rec-2", "profile_id": "p-1",
        "linked_at": _ts(30), "identified_at": "2000-01-01T00:00:00.000000Z", "previous_owners": ["events|rec-1"]})
    retry = page("old-phone", "o-1", 40, "Home")
    store.container("activity").upsert_item({"id": "event:events:o-1", "owner": "events|rec-1", "kind": "event",
                                             "type": "page", "source": "events", "event_id": "o-1",
                                             "anonymous_id": "old-phone", "timestamp": "2000-01-02T00:00:00.000000Z",
                                             "properties": {"name": "Home"}})
    post(store, retry)
    copies = [owner for name, owner in pages_by_owner(store) if name == "Home"]
    assert len(copies) == 1 and copies[0] in ("events|rec-1", "events|rec-2"), copies


# --- at-least-once ------------------------------------------------------------------------------------------

def test_retried_anonymous_event_is_stored_once_after_the_device_link_moved():
    """An anonymous event is delivered, the device identifies (the event moves to that record), the same person
    identifies again asserting one more identifier (a second events record, same profile) and the event's
    retry arrives. The link remembers its earlier owner, so the retry is found there and not stored again."""
    store = MemoryStore()
    page = {"type": "page", "name": "Checkout", "anonymousId": "dev-r", "messageId": "r-1", "timestamp": _ts(30)}
    post(store, page)
    _, first = post(store, {"type": "identify", "anonymousId": "dev-r", "messageId": "r-2", "timestamp": _ts(29),
                            "traits": {"email": "rae.retry@shopmail.net"}})
    _, second = post(store, {"type": "identify", "anonymousId": "dev-r", "messageId": "r-3", "timestamp": _ts(28),
                             "traits": {"email": "rae.retry@shopmail.net", "phone": "+14155552671"}})
    pid = first["results"][0]["profile_id"]
    assert second["results"][0]["profile_id"] == pid  # one person, two events records
    post(store, page)  # the client's retry of the first request
    copies = [d["owner"] for d in event_docs(store) if d["id"] == "event:events:r-1"]
    pages = view(store, pid)["behaviour"]["recent_sessions"][-1]["views"]
    assert len(copies) == 1 and pages == 1, f"one page view stored as {copies}; the profile counts {pages} views"


def test_identical_events_without_message_id_in_one_batch_are_both_kept():
    """Two events alike in every field and without messageId or timestamp (the same product added twice) in
    one batch are two events: a batch is never a retry of itself. The same batch sent again gets the same ids,
    so a retry is still stored once."""
    store = MemoryStore()
    added = {"type": "track", "event": "Product Added", "anonymousId": "dev-h", "properties": {"sku": "SKU-1"}}
    status, body = post(store, [added, dict(added)])
    assert status == 200 and body["accepted"] == 2
    stored = list(list_activity(store, ["anon|dev-h"]))
    ids = [r["event_id"] for r in body["results"]]
    assert len(stored) == 2, f"2 events accepted, {len(stored)} stored (both answered with event id {ids[0]})"
    _, retry = post(store, [added, dict(added)])
    assert [r["event_id"] for r in retry["results"]] == ids and len(list(list_activity(store, ["anon|dev-h"]))) == 2


# --- validation ---------------------------------------------------------------------------------------------

@pytest.fixture
def post_events(functions_by_name, monkeypatch):
    import functions.events

    store = MemoryStore()
    monkeypatch.setattr(functions.events, "open_store", lambda *a, **k: store)
    fn = functions_by_name["post_events"].get_user_function()

    def call(body: bytes):
        resp = fn(func.HttpRequest(method="POST", url="http://127.0.0.1/api/events", body=body, headers={}))
        return resp, store

    return call


def test_deeply_nested_properties_are_rejected_per_event_not_a_500(post_events):
    """Properties nested 300 levels deep (1.5 KB, far under every size limit) are rejected with a reason, and
    the rest of the batch is stored (207), instead of a 500 after part of the batch was stored."""
    nested = "{\"a\":" * 300 + "1" + "}" * 300
    body = ('[{"type":"page","name":"Home","anonymousId":"dev-n","messageId":"n-1"},'
            '{"type":"track","event":"Deep","anonymousId":"dev-n","messageId":"n-2","properties":' + nested + '}]')
    resp, store = post_events(body.encode())
    assert resp.status_code == 207, (resp.status_code, resp.get_body()[:200])
    results = json.loads(resp.get_body())["results"]
    assert results[0]["status"] == "accepted" and results[1]["status"] == "rejected"
    assert "nested" in results[1]["errors"][0]


def test_non_finite_numbers_are_rejected_per_event():
    """Python's JSON parser reads NaN and Infinity, which are not JSON: no store or client could read them back."""
    body = b'[{"type":"track","event":"Paid","anonymousId":"d","properties":{"revenue":NaN}},' \
           b'{"type":"identify","anonymousId":"d","traits":{"score":-Infinity}}]'
    status, result = post(MemoryStore(), body)
    assert status == 400 and all("finite" in r["errors"][0] for r in result["results"])


def test_timestamp_without_a_zone_is_rejected_with_a_reason():
    """'2026-03-29T02:30:00' from a device clock in local time is refused: taken as UTC it would move by the
    device's offset, splitting or joining sessions and shifting daily counts. Ingested files state the zone of
    naive times in their mapping (`timezone`); the events API has nothing to go on."""
    store = MemoryStore()
    naive = (datetime.now(timezone.utc) - timedelta(hours=2)).replace(tzinfo=None).isoformat(timespec="seconds")
    status, body = post(store, {"type": "page", "name": "Home", "anonymousId": "dev-z", "timestamp": naive})
    assert status == 400 and "zone" in " ".join(body["results"][0].get("errors", [])).lower(), body


# --- events from files (ucp journey / segment CLI) ----------------------------------------------------------

def test_events_file_with_one_deeply_nested_line_is_counted_not_fatal(tmp_path):
    """load_events counts and reports bad lines, never fatal: also a line nested deeper than the JSON parser's
    stack."""
    from shared.insights.files import load_events

    path = tmp_path / "events.jsonl"
    good = {"type": "page", "name": "Home", "anonymousId": "d1", "messageId": "f-1", "timestamp": _ts(5)}
    deep = "[" * 5000 + "]" * 5000
    path.write_text(json.dumps(good) + "\n" + '{"type":"page","anonymousId":"d1","properties":{"x":' + deep + "}}\n")
    counts = load_events(MemoryStore(), path)
    assert counts["events"] == 1 and counts["rejected"] == 1


def test_events_file_stitches_a_shared_devices_browsing_to_the_latest_identify(tmp_path):
    """The file loader stitches each anonymous event to the latest identify on its device before it (as the
    events API follows the latest identify), whatever the order of the lines in the file."""
    from shared.insights.files import load_events

    t0 = datetime(2026, 11, 1, 10, 0, tzinfo=timezone.utc)
    at = lambda m: (t0 + timedelta(minutes=m)).isoformat()
    lines = [
        {"type": "page", "name": "Drills", "anonymousId": "tab", "messageId": "s-4", "timestamp": at(61)},
        {"type": "identify", "anonymousId": "tab", "userId": "tom", "messageId": "s-3", "timestamp": at(60)},
        {"type": "page", "name": "Home", "anonymousId": "tab", "messageId": "s-0", "timestamp": at(-5)},
        {"type": "identify", "anonymousId": "tab", "userId": "ann", "messageId": "s-1", "timestamp": at(0)},
        {"type": "page", "name": "Shoes", "anonymousId": "tab", "messageId": "s-2", "timestamp": at(1)},
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    store = MemoryStore()
    load_events(store, path)
    owner = {d["properties"].get("name"): d["owner"] for d in event_docs(store) if d["type"] == "page"}
    assert owner == {"Home": "events|ann", "Shoes": "events|ann", "Drills": "events|tom"}, owner
