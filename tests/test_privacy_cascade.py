"""Erase and export reach everything held about a person, in the situations a deployment meets: a redelivered
message, a merge saga caught half-way, a record resolved while the erase runs, merges of merges, review items,
blocking keys, an erase cut off half-way. On the in-memory store; the HTTP routes are in test_api_profiles."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from shared.activity import save_activity

from shared.api.errors import ApiError
from shared.api.profiles import load_profile
from shared.identity import find_profile_id, remove_record, resolve_records
from shared.models import CustomerRecord, Transaction
from shared.privacy import erase_profile, export_profile
from shared.settings import Settings
from shared.store import MemoryStore

from .store_faults import Died, crashing, hooked

SETTINGS = Settings()
EMAIL = "ann.lee@shopmail.net"
PHONE = "+447911123456"
BIRTH = "1980-02-03"
CONTAINERS = ("profiles", "identifiers", "records", "blocking", "merges", "review", "activity",
              "activity_owners")


def rec(source: str, key: str, **fields) -> CustomerRecord:
    return CustomerRecord(source=source, record_key=key, **fields)


def resolve(store, *records):
    return resolve_records(store, list(records), settings=SETTINGS)


def erase(store, profile_id: str) -> dict:
    """What DELETE /api/profiles/{id} does."""
    return erase_profile(store, load_profile(store, profile_id))


def export(store, profile_id: str) -> dict:
    """What GET /api/profiles/{id}/export does."""
    return export_profile(store, load_profile(store, profile_id))


def status_of(store, profile_id: str) -> int:
    try:
        load_profile(store, profile_id)
    except ApiError as err:
        return err.status
    return 200


ERASED_RECORD_FIELDS = {"id", "profile_id", "erased_at", "_etag", "_ts"}


def docs_mentioning(store, *needles: str) -> list[tuple[str, str]]:
    """(container, id) of every stored document whose JSON holds one of the needles; an erased record's empty
    records doc (its key and when: what stops it from being resolved again) is not counted."""
    found = []
    for name in CONTAINERS:
        for doc in store.container(name).query_items():
            if name == "records" and doc.get("erased_at"):
                assert set(doc) <= ERASED_RECORD_FIELDS, doc  # nothing of the record's content
                continue
            text = json.dumps(doc).lower()
            if any(n.lower() in text for n in needles):
                found.append((name, doc["id"]))
    return found


def live_holders(store, record_key: str) -> list[str]:
    return [p["id"] for p in store.container("profiles").query_items(("doc_type", "=", "profile"))
            if any(r["key"] == record_key for r in p.get("records", []))]


# --- 1. a redelivered / replayed / re-landed record silently recreates the erased person ----------------------

def test_redelivered_record_after_erase_does_not_recreate_the_person():
    store = MemoryStore()
    ann = rec("pos", "1", given_name="Ann", family_name="Lee", email=EMAIL, birth_date=BIRTH)
    first, = resolve(store, ann)
    erase(store, first.profile_id)
    assert status_of(store, first.profile_id) == 410
    # The same queue message delivered again (visibility timeout, poison replay, the file landed again).
    again, = resolve(store, ann)
    assert (again.action, again.profile_id) == ("erased", None)
    assert live_holders(store, "pos|1") == [], f"the erased person is back as {again}"
    assert find_profile_id(store, "email", EMAIL) is None
    assert docs_mentioning(store, EMAIL, BIRTH, "pos|1") == []
    assert remove_record(store, "pos", "1", settings=SETTINGS) is None  # a deletion at the source keeps the mark
    assert resolve(store, ann)[0].action == "erased"


# --- 2. an erase during an unfinished merge saga leaves the other half of the person live ---------------------

@pytest.mark.parametrize("erase_via", ["survivor", "absorbed"])
def test_erase_during_an_unfinished_merge_leaves_nothing_of_the_person(erase_via):
    store = MemoryStore()
    first, = resolve(store, rec("pos", "1", given_name="Ann", family_name="Lee", email=EMAIL))
    second, = resolve(store, rec("web", "2", given_name="Ann", family_name="Lee", phone=PHONE, birth_date=BIRTH))
    bridge = rec("crm", "3", given_name="Ann", email=EMAIL, phone=PHONE)
    # The worker merging the two dies after folding the absorbed profile into the survivor (or is still running).
    with pytest.raises(Died):
        resolve(crashing(store, "identifiers", "replace_item"), bridge)
    erase(store, first.profile_id if erase_via == "survivor" else second.profile_id)
    assert status_of(store, first.profile_id) in (404, 410)
    assert status_of(store, second.profile_id) in (404, 410)
    assert find_profile_id(store, "phone", PHONE) is None
    assert find_profile_id(store, "email", EMAIL) is None
    assert live_holders(store, "web|2") == [] and live_holders(store, "pos|1") == []


# --- 3. a record linked while the erase runs is left behind (lost update + orphaned docs) ---------------------

def test_record_linked_while_the_erase_runs_is_erased_too():
    store = MemoryStore()
    first, = resolve(store, rec("pos", "1", given_name="Ann", family_name="Lee", email=EMAIL))
    profile = load_profile(store, first.profile_id)
    late = rec("web", "2", given_name="Ann", family_name="Lee", email=EMAIL, phone=PHONE, birth_date=BIRTH)
    linked = []
    # Another worker resolves a record of the same person just as the erase starts deleting.
    racing = hooked(store, "identifiers", "delete_item", nth=1, hook=lambda: linked.extend(resolve(store, late)))
    erase_profile(racing, profile)
    assert linked and linked[0].profile_id == first.profile_id and linked[0].action == "linked"
    assert "record" not in store.container("records").read_item("web|2", "web|2"), "source record kept"
    left = [d["id"] for d in store.container("identifiers").query_items() if d.get("profile_id") == first.profile_id]
    assert left == [], f"identifiers still claimed for the erased profile: {left}"
    assert docs_mentioning(store, PHONE, BIRTH) == []


# --- 4. merges of merges: merge log and alias of the absorbed profile's own merges survive ---------------------

def _three_merged_profiles(store):
    """C <- B <- A: A is merged into B, then B into C; returns the three profile ids."""
    c, = resolve(store, rec("pos", "1", given_name="Ann", family_name="Lee", email=EMAIL))
    b, = resolve(store, rec("crm", "2", given_name="Ann", family_name="Lee", phone=PHONE))
    a, = resolve(store, rec("loyalty", "3", given_name="Ann", family_name="Lee", loyalty_id="L-100"))
    ab, = resolve(store, rec("web", "4", given_name="Ann", family_name="Lee", phone=PHONE, loyalty_id="L-100"))
    bc, = resolve(store, rec("web", "5", given_name="Ann", family_name="Lee", phone=PHONE, email=EMAIL))
    assert (ab.action, ab.profile_id) == ("merged", b.profile_id)
    assert (bc.action, bc.profile_id) == ("merged", c.profile_id)
    return c.profile_id, b.profile_id, a.profile_id


def test_erase_removes_the_merge_log_and_aliases_of_earlier_merges():
    store = MemoryStore()
    c, b, a = _three_merged_profiles(store)
    erase(store, a)  # by the oldest alias: the request names the person's first id
    assert [m["id"] for m in store.container("merges").query_items()] == [], "merge log entries kept"
    assert docs_mentioning(store, "loyalty|3", "web|4") == []
    assert [status_of(store, pid) for pid in (c, b, a)] == [410, 410, 410]


def test_export_includes_the_merge_log_and_aliases_of_earlier_merges():
    store = MemoryStore()
    c, b, a = _three_merged_profiles(store)
    exported = export(store, c)
    assert sorted(exported["aliases"]) == sorted([a, b])
    assert {m["absorbed_id"] for m in exported["merges"]} == {a, b}


# --- 5. review items where the person's record is the subject (profile_id) are neither erased nor exported ----

def _review_about_the_second_card(store):
    first, = resolve(store, rec("pos", "1", given_name="Ann", family_name="Lee", email=EMAIL, loyalty_id="L-100"))
    second, = resolve(store, rec("crm", "9", given_name="Ann", family_name="Lee", email=EMAIL, loyalty_id="L-200"))
    assert second.action == "review" and second.profile_id != first.profile_id
    review, = store.container("review").query_items()
    assert review["profile_id"] == second.profile_id and review["record_key"] == "crm|9"
    return first.profile_id, second.profile_id, review["id"]


def test_erase_removes_review_items_about_the_persons_own_record():
    store = MemoryStore()
    _, erased, review_id = _review_about_the_second_card(store)
    erase(store, erased)
    assert store.container("review").read_item_or_none(review_id, review_id) is None
    assert docs_mentioning(store, "crm|9", erased) == [("profiles", erased)]  # the tombstone only


def test_export_includes_review_items_about_the_persons_own_record():
    store = MemoryStore()
    _, pid, review_id = _review_about_the_second_card(store)
    assert [r["id"] for r in export(store, pid)["review"]] == [review_id]


# --- 6. blocking keys embed birth date, postcode and email user name: emptied, never deleted ------------------

def test_erase_leaves_no_blocking_key_made_of_the_persons_data():
    store = MemoryStore()
    first, = resolve(store, rec("pos", "1", given_name="Ann", family_name="Lee", email=EMAIL, birth_date=BIRTH,
                                postcode="SW1A 1AA", country="GB"))
    assert store.container("blocking").count_items() > 0
    erase(store, first.profile_id)
    kept = [d["id"] for d in store.container("blocking").query_items()]
    assert kept == [], f"blocking keys holding the person's birth date / postcode / email user name: {kept}"


# --- 7. an erase interrupted after its tombstone can never be logged -------------------------------------------

def test_interrupted_erase_is_logged_when_retried():
    store = MemoryStore()
    first, = resolve(store, rec("pos", "1", given_name="Ann", family_name="Lee", email=EMAIL))
    with pytest.raises(Died):  # cut off after deleting, before the log and the tombstone
        erase(crashing(store, "state", "upsert_item"), first.profile_id)
    assert status_of(store, first.profile_id) == 200  # not a tombstone yet: the client's retry goes through
    assert erase(store, first.profile_id)["source_records"] == 0  # deleted by the first attempt
    assert status_of(store, first.profile_id) == 410
    log = [d for d in store.container("state").query_items() if d.get("kind") == "erasure"]
    assert [d["profile_id"] for d in log] == [first.profile_id], "the erasure is not in the erasure log"
    assert log[0]["counts"]["source_records"] == 0  # what the completing call deleted


# --- 8. owner entries of activity (activity id -> record key) outlive the activity they locate ----------------

def order(customer: str, order_id: str, amount: str = "10") -> Transaction:
    return Transaction(source="pos", order_id=order_id, customer_key=customer, amount=amount,
                       timestamp=datetime(2026, 9, 1, tzinfo=timezone.utc))


def entries(store) -> dict[str, str]:
    return {e["id"]: e["owner"] for e in store.container("activity_owners").query_items()}


@pytest.mark.parametrize("cut_off", [False, True])
def test_erase_removes_the_owner_entries_of_the_persons_activity_and_keeps_others(cut_off):
    store = MemoryStore()
    ann, = resolve(store, rec("pos", "1", given_name="Ann", family_name="Lee", email=EMAIL))
    resolve(store, rec("pos", "2", given_name="Bob", family_name="Ray", email="bob.ray@shopmail.net"))
    save_activity(store, [order("1", "O1"), order("1", "O2"), order("2", "O3")])
    save_activity(store, [order("2", "O2")])  # a later file: O2 was Bob's all along
    assert entries(store) == {"transaction:pos:O1": "pos|1", "transaction:pos:O2": "pos|2",
                              "transaction:pos:O3": "pos|2"}
    assert [e["id"] for e in export(store, ann.profile_id)["activity_owners"]] == ["transaction:pos:O1"]
    if cut_off:  # the erase dies after the owner entries, before the activity: the client retries
        with pytest.raises(Died):
            erase(crashing(store, "activity", "delete_item"), ann.profile_id)
    erase(store, ann.profile_id)
    assert entries(store) == {"transaction:pos:O2": "pos|2", "transaction:pos:O3": "pos|2"}
    assert docs_mentioning(store, "pos|1", EMAIL) == []


def test_erase_removes_the_owner_entry_of_a_file_event_moved_by_a_device_link(tmp_path):
    """An anonymous event ingested from a file, then its device identifies (POST /api/events): the event moves
    to the identified record. Its owner entry, left naming the device's timeline or moved along with the event
    (shared.activity.move_activity), goes with the erased person's activity."""
    from shared.events.service import accept_events
    from shared.ingest import ingest_file, parse_mapping

    store = MemoryStore()
    path = tmp_path / "events.csv"
    path.write_text("e,anon,ts\nE1,dev-9,2026-09-01T10:00:00\n")
    mapping = {"source": "web", "entity": "events",
               "fields": {"event_id": "e", "anonymous_id": "anon", "timestamp": "ts"}}
    ingest_file(path, parse_mapping(mapping), store=store, settings=SETTINGS)
    assert entries(store) == {"event:web:E1": "anon|dev-9"}
    body = {"type": "identify", "userId": "u-9", "anonymousId": "dev-9", "messageId": "i-9",
            "traits": {"email": EMAIL}}
    _, answer = accept_events(store, json.dumps(body).encode(), SETTINGS)
    assert [d["owner"] for d in store.container("activity").query_items(("id", "=", "event:web:E1"))] == [
        "events|u-9"]
    erase(store, answer["results"][0]["profile_id"])
    assert entries(store) == {} and docs_mentioning(store, "u-9", "dev-9", EMAIL) == []


def test_an_owner_entry_follows_a_doc_moved_to_another_owner():
    """follow_move, what a device link's move calls between writing the new copy and deleting the old one."""
    from shared.activity import OWNERS, follow_move

    store = MemoryStore()
    save_activity(store, [order("1", "O1")])
    entry = store.container(OWNERS).read_item("transaction:pos:O1", "transaction:pos:O1")
    follow_move(store, entry, "pos|3", "pos|2")  # names another owner: left as it is
    assert entries(store) == {"transaction:pos:O1": "pos|1"}
    follow_move(store, entry, "pos|1", "pos|2")
    assert entries(store) == {"transaction:pos:O1": "pos|2"}
