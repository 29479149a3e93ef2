"""`ucp audit` and device links: the events service keeps `anonymous_id:<id>` links in the identifiers
container, which no profile lists (a device id is never an identifier). They are audited apart: every record a
link names must be held by a live profile."""
from __future__ import annotations

import json

from shared.audit import audit_store
from shared.events.service import accept_events
from shared.privacy import erase_profile
from shared.settings import Settings
from shared.store import MemoryStore


def identify(store, user: str, email: str, at: str, anonymous_id: str = "a1") -> str:
    status, body = accept_events(store, json.dumps({
        "type": "identify", "userId": user, "anonymousId": anonymous_id, "timestamp": at,
        "traits": {"email": email}}).encode(), Settings())
    assert status == 200, body
    return body["results"][0]["profile_id"]


def test_an_identify_with_an_anonymous_id_passes_the_audit():
    store = MemoryStore()
    identify(store, "u1", "jane.doe77@gmail.com", "2026-11-29T07:01:00Z")
    assert store.container("identifiers").read_item_or_none("anonymous_id:a1", "anonymous_id:a1") is not None
    findings = audit_store(store)
    assert findings.ok, findings.as_dict()
    assert findings.figures["identity"]["device_links"] == 1


def test_a_shared_device_after_one_person_is_erased_passes_the_audit():
    store = MemoryStore()
    first = identify(store, "u1", "jane.doe77@gmail.com", "2026-11-29T07:01:00Z")
    identify(store, "u2", "john.roe12@gmail.com", "2026-11-29T08:01:00Z")
    erase_profile(store, store.container("profiles").read_item(first, first))
    findings = audit_store(store)
    assert findings.ok, findings.as_dict()
    assert findings.figures["identity"]["device_links"] == 1


def test_a_link_naming_a_record_no_profile_holds_is_a_finding():
    store = MemoryStore()
    identify(store, "u1", "jane.doe77@gmail.com", "2026-11-29T07:01:00Z")
    identifiers = store.container("identifiers")
    link = identifiers.read_item("anonymous_id:a1", "anonymous_id:a1")
    gone = {"at": "2026-11-29T08:00:00.000000Z", "owner": "events|ghost", "profile_id": "p_gone"}
    identifiers.replace_item({**link, "history": [*link["history"], gone], "owners": [*link["owners"], gone["owner"]]})
    identifiers.create_item({"id": "anonymous_id:empty", "type": "anonymous_id", "owner": None,
                             "history": [{"at": "2026-11-29T08:00:00.000000Z", "owner": None}], "owners": []})
    report = audit_store(store).as_dict()
    assert report["violations"] == {"device_link_owner_unknown": 1, "device_link_without_owner": 1}, report
    assert report["samples"]["device_link_owner_unknown"] == [{"record": "events|ghost"}]
    assert "a1" not in json.dumps(report["samples"])  # the anonymous id is not named
