"""Events API: validation, per-event results, limits, identity from events, sessions, sentiment."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import azure.functions as func
import pytest

from shared.activity import list_activity
from shared.events.service import EventLimits, EventPayloadError, accept_events
from shared.events.sessions import sessionize
from shared.settings import Settings


def _ts(minutes_ago: float) -> str:
    return (datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)).isoformat()


def post(store, payload, **kw):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return accept_events(store, body, Settings(), **kw)


def test_batch_reports_each_event_and_keeps_the_good_ones(store):
    status, body = post(store, {"batch": [
        {"type": "page", "name": "Home", "anonymousId": "dev-1", "timestamp": _ts(10), "context": {"channel": "web"}},
        {"type": "track", "anonymousId": "dev-1"},  # no event name
        {"type": "bogus", "anonymousId": "dev-1"},
        {"type": "track", "event": "Product Viewed", "timestamp": _ts(5)},  # nobody
        "not an object",
        {"type": "track", "event": "Product Viewed", "anonymousId": "dev-1", "timestamp": "2999-01-01T00:00:00Z"},
    ]})
    assert status == 207
    assert [r["status"] for r in body["results"]] == ["accepted"] + ["rejected"] * 5
    reasons = [" ".join(r.get("errors", [])) for r in body["results"]]
    assert "event name" in reasons[1] and "type" in reasons[2] and "anonymousId or userId" in reasons[3]
    assert "JSON object" in reasons[4] and "future" in reasons[5]
    stored = list(list_activity(store, ["anon|dev-1"]))
    assert len(stored) == 1 and stored[0]["type"] == "page" and stored[0]["channel"] == "web"


def test_same_message_id_is_stored_once(store):
    event = {"type": "track", "event": "Added to Cart", "anonymousId": "dev-2", "messageId": "m-1", "timestamp": _ts(1)}
    post(store, event)
    post(store, [event])
    assert len(list(list_activity(store, ["anon|dev-2"]))) == 1


def test_request_limits_have_clear_errors(store):
    with pytest.raises(EventPayloadError) as err:
        post(store, b"{not json")
    assert err.value.status == 400
    with pytest.raises(EventPayloadError) as err:
        post(store, [{"type": "page", "anonymousId": "a"}] * 3, limits=EventLimits(max_batch=2))
    assert err.value.status == 413 and "limit is 2" in str(err.value)
    with pytest.raises(EventPayloadError) as err:
        post(store, b"[" + b" " * 2000 + b"]", limits=EventLimits(max_body_bytes=1000))
    assert err.value.status == 413
    status, body = post(store, {"type": "track", "event": "x", "anonymousId": "a", "properties": {"blob": "x" * 5000}},
                        limits=EventLimits(max_event_bytes=1000))
    assert status == 400 and "limit is 1000" in body["results"][0]["errors"][0]


def test_identify_links_earlier_anonymous_events_to_the_profile(store):
    from shared.identity import find_profile_id

    post(store, [{"type": "page", "name": "Home", "anonymousId": "dev-3", "timestamp": _ts(50)},
                 {"type": "track", "event": "Product Viewed", "anonymousId": "dev-3", "timestamp": _ts(45)}])
    status, body = post(store, {"type": "identify", "anonymousId": "dev-3", "timestamp": _ts(40),
                                "traits": {"email": "Kim.Park@Shopmail.net", "firstName": "Kim", "lastName": "Park"}})
    assert status == 200
    result = body["results"][0]
    assert result["profile_id"] and result["moved_events"] == 2
    assert find_profile_id(store, "email", "kim.park@shopmail.net") == result["profile_id"]
    # A later anonymous event from the same device follows the link.
    post(store, {"type": "track", "event": "Checkout Started", "anonymousId": "dev-3", "timestamp": _ts(1)})
    assert list(list_activity(store, ["anon|dev-3"])) == []
    from shared.api.profiles import load_profile, profile_view

    view = profile_view(store, load_profile(store, result["profile_id"]))
    assert view["behaviour"]["events"] == 4  # page, product view, identify, checkout
    assert view["behaviour"]["sessions"] == 2  # 40 minutes of silence split them


def test_a_shared_device_never_joins_two_known_customers(store):
    first = post(store, {"type": "identify", "anonymousId": "family-ipad", "traits": {"email": "ann@shopmail.net"}})[1]
    second = post(store, {"type": "identify", "anonymousId": "family-ipad", "traits": {"email": "tom@shopmail.net"}})[1]
    a, b = first["results"][0]["profile_id"], second["results"][0]["profile_id"]
    assert a and b and a != b
    from shared.identity import get_profile

    assert get_profile(store, a)["id"] == a and get_profile(store, b)["id"] == b


def test_user_id_events_belong_to_that_user(store):
    post(store, {"type": "identify", "userId": "u-77", "traits": {"email": "lee@shopmail.net"}})
    post(store, {"type": "screen", "name": "Basket", "userId": "u-77", "context": {"channel": "mobile"}})
    events = list(list_activity(store, ["events|u-77"]))
    assert [e["type"] for e in events].count("screen") == 1


def test_sessionize_splits_on_inactivity():
    base = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    ev = lambda m, ch="web": {"timestamp": (base + timedelta(minutes=m)).isoformat().replace("+00:00", "Z"),
                              "channel": ch, "type": "page"}
    sessions = sessionize([ev(0), ev(10), ev(39), ev(70, "mobile"), ev(200)])
    assert [s["events"] for s in sessions] == [3, 1, 1]
    assert sessions[0]["duration_seconds"] == 39 * 60 and sessions[1]["channels"] == ["mobile"]


def test_post_events_through_the_blueprint_on_cosmos(functions_by_name, app_env, cosmos_store):
    fn = functions_by_name["post_events"].get_user_function()
    body = json.dumps({"type": "identify", "anonymousId": "dev-9", "traits": {"phone": "+1 415 555 2671"}}).encode()
    resp = fn(func.HttpRequest(method="POST", url="http://127.0.0.1/api/events", body=body, headers={}))
    assert resp.status_code == 200, resp.get_body()
    pid = json.loads(resp.get_body())["results"][0]["profile_id"]
    assert cosmos_store.container("profiles").read_item(pid, pid)["doc_type"] == "profile"
    resp = fn(func.HttpRequest(method="POST", url="http://127.0.0.1/api/events", body=b"nope", headers={}))
    assert resp.status_code == 400 and resp.mimetype == "application/problem+json"

    sessions = functions_by_name["anonymous_sessions"].get_user_function()
    resp = sessions(func.HttpRequest(method="GET", url="http://127.0.0.1/api/events/sessions", body=b"", headers={},
                                     params={"anonymous_id": "dev-9"}))
    assert resp.status_code == 200 and json.loads(resp.get_body())["linked_profile_id"] == pid
    resp = sessions(func.HttpRequest(method="GET", url="http://127.0.0.1/api/events/sessions", body=b"", headers={}))
    assert resp.status_code == 400 and "anonymous_id" in json.loads(resp.get_body())["detail"]


def test_lone_surrogates_are_rejected_not_crashing(store):
    body = b'[{"type": "track", "event": "x\\udee8", "anonymousId": "a"}, {"type": "page", "anonymousId": "a"}]'
    status, result = post(store, body)
    assert status == 207
    assert "invalid Unicode" in result["results"][0]["errors"][0] and result["results"][1]["status"] == "accepted"


def test_sessions_of_an_anonymous_device(store):
    from shared.events.service import anonymous_behaviour

    post(store, [{"type": "page", "name": "Home", "anonymousId": "dev-s", "timestamp": _ts(120), "context": {"channel": "web"}},
                 {"type": "page", "name": "Shoes", "anonymousId": "dev-s", "timestamp": _ts(110)},
                 {"type": "screen", "name": "Cart", "anonymousId": "dev-s", "timestamp": _ts(5), "context": {"channel": "mobile"}}])
    seen = anonymous_behaviour(store, "dev-s")
    assert seen["sessions"] == 2 and seen["events"] == 3 and seen["channels"] == ["mobile", "web"]
    assert seen["linked_profile_id"] is None
    post(store, {"type": "identify", "anonymousId": "dev-s", "traits": {"email": "sam.reed@shopmail.net"}})
    after = anonymous_behaviour(store, "dev-s")
    assert after["linked_profile_id"] and after["events"] == 0  # its events moved to the identified person


def test_a_device_names_the_profile_holding_its_person_now(store):
    """The device's profile follows its person's record: through a merge that absorbs the profile it was identified
    into, and a split that takes the record out again (not the id stored at identify time)."""
    from shared.events.service import anonymous_behaviour
    from shared.identity import get_profile, resolve_records, split_record
    from shared.models import CustomerRecord

    older = resolve_records(store, [CustomerRecord(source="pos", record_key="p1", given_name="Maria",
                                                   family_name="Novak", phone="+447406596447")])[0].profile_id
    _, body = post(store, {"type": "identify", "anonymousId": "dev-m", "userId": "u1",
                           "traits": {"email": "maria.novak@novak-mail.net", "firstName": "Maria",
                                      "lastName": "Novak"}})
    identified = body["results"][0]["profile_id"]
    assert identified != older and anonymous_behaviour(store, "dev-m")["linked_profile_id"] == identified
    bridge = CustomerRecord(source="crm", record_key="c1", given_name="Maria", family_name="Novak",
                            phone="+447406596447", email="maria.novak@novak-mail.net")
    merged = resolve_records(store, [bridge])[0]
    assert merged.action == "merged" and merged.profile_id == older
    assert anonymous_behaviour(store, "dev-m")["linked_profile_id"] == older
    split_out = split_record(store, older, "events|u1")
    assert split_out != older and "events|u1" in [r["key"] for r in get_profile(store, split_out)["records"]]
    assert anonymous_behaviour(store, "dev-m")["linked_profile_id"] == split_out


def test_shared_device_history_stitching_export_and_erase(store):
    """On both stores (the link's queries: held owners, stitched events): Ann identifies and browses, Tom's page
    view arrives before his identify; Ann's page view is redelivered after Tom's identify. Each page view ends
    under who browsed, Tom's export holds nothing of Ann's, and erasing Ann leaves Tom's part of the link."""
    from shared.api.profiles import load_profile
    from shared.privacy import erase_profile, export_profile

    def identify(mid: str, minutes_ago: float, email: str) -> str:
        return post(store, {"type": "identify", "anonymousId": "den-pc", "messageId": mid,
                            "timestamp": _ts(minutes_ago), "traits": {"email": email}})[1]["results"][0]["profile_id"]

    def page(mid: str, minutes_ago: float) -> dict:
        return {"type": "page", "name": mid, "anonymousId": "den-pc", "messageId": mid, "timestamp": _ts(minutes_ago)}

    ann = identify("ann-id", 60, "ann.den@shopmail.net")
    post(store, [page("ann-p", 50), page("tom-p", 30)])
    tom = identify("tom-id", 40, "tom.den@shopmail.net")
    post(store, page("ann-p", 50))
    keys = {p: [r["key"] for r in load_profile(store, p)["records"]] for p in (ann, tom)}
    owners = {d["properties"]["name"]: d["owner"] for k in keys.values()
              for d in list_activity(store, k, kind="event") if d["type"] == "page"}
    assert owners == {"ann-p": keys[ann][0], "tom-p": keys[tom][0]}
    exported = json.dumps(export_profile(store, load_profile(store, tom)))
    assert keys[ann][0] not in exported and "ann-p" not in exported
    erase_profile(store, load_profile(store, ann))
    link = store.container("identifiers").read_item("anonymous_id:den-pc", "anonymous_id:den-pc")
    assert [s["owner"] for s in link["history"]] == [None, keys[tom][0]] and link["owners"] == keys[tom]
    assert post(store, page("ann-p", 50))[1]["results"][0]["stored"] is False


# --- Owner entries (activity_owners): events posted here are indexed like activity ingested from files ----------

def test_an_event_id_posted_again_for_another_customer_is_moved_not_stored_twice(store):
    """Cosmos ids are unique per owner partition only: the same messageId sent for u-1, then (corrected) for u-2,
    was stored under both and counted twice. It moves, as a file's order does (shared.activity.write_activity)."""
    from .test_ingest_adversarial import placed

    event = {"type": "track", "event": "Order Completed", "messageId": "m-moved", "timestamp": _ts(5)}
    post(store, {**event, "userId": "u-1"})
    assert placed(store) == [("event:events:m-moved", "events|u-1")]
    post(store, {**event, "userId": "u-2"})
    assert placed(store) == [("event:events:m-moved", "events|u-2")]
    post(store, {**event, "anonymousId": "dev-m"})  # an unlinked device's timeline is an owner like any other
    assert placed(store) == [("event:events:m-moved", "anon|dev-m")]


def test_the_same_event_posted_again_writes_no_owner_entry(store):
    from .test_ingest_adversarial import CountingStore, placed

    batch = [{"type": "track", "event": "Product Viewed", "userId": "u-3", "messageId": f"m-{i}",
              "timestamp": _ts(10 - i)} for i in range(3)]
    post(store, batch)
    before = placed(store)
    counted = CountingStore(store)
    status, body = post(counted, batch)  # a retried batch
    assert status == 200 and placed(store) == before and len(before) == 3
    entries = {k: v for k, v in counted.ops.items() if k[0] == "activity_owners"}
    assert entries == {("activity_owners", "read_items"): 3, ("activity_owners", "read_items calls"): 1}, entries
    assert ("activity", "delete_item") not in counted.ops


def test_erase_and_export_cover_the_owner_entries_of_posted_events(store):
    """Identify, anonymous browsing before it (moved on identify) and after it (stitched through the device
    link), and events by userId: each stored once with its entry; the export lists them, the erase deletes them
    and leaves another person's."""
    from shared.api.profiles import load_profile
    from shared.privacy import erase_profile, export_profile

    from .test_ingest_adversarial import placed

    post(store, {"type": "page", "name": "Home", "anonymousId": "dev-e", "messageId": "e-1", "timestamp": _ts(30)})
    _, body = post(store, {"type": "identify", "userId": "u-e", "anonymousId": "dev-e", "messageId": "e-2",
                           "timestamp": _ts(20), "traits": {"email": "eve.stone@shopmail.net"}})
    pid = body["results"][0]["profile_id"]
    post(store, [{"type": "page", "name": "Shoes", "anonymousId": "dev-e", "messageId": "e-3", "timestamp": _ts(10)},
                 {"type": "track", "event": "Order Completed", "userId": "u-e", "messageId": "e-4",
                  "timestamp": _ts(5)},
                 {"type": "track", "event": "Order Completed", "userId": "u-other", "messageId": "o-1",
                  "timestamp": _ts(5)}])
    mine = [(f"event:events:e-{i}", "events|u-e") for i in range(1, 5)]
    assert placed(store) == [*mine, ("event:events:o-1", "events|u-other")]
    exported = export_profile(store, load_profile(store, pid))
    assert sorted((e["id"], e["owner"]) for e in exported["activity_owners"]) == mine
    erase_profile(store, load_profile(store, pid))
    assert placed(store) == [("event:events:o-1", "events|u-other")]
