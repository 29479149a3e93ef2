"""Identifiers the records of several profiles give (a household's phone, a split record's shared phone): the profile
holding one hands it on to another whose record gives it when it lets it go, so lookups by it still find a person and
a new record with it links to them (shared/identity/maintenance.py, note_holder and release_identifier)."""
from __future__ import annotations

import pytest

from shared.audit import audit_store
from shared.identity import find_profile_id, get_profile, remove_record, resolve_records, split_record
from shared.identity.maintenance import MAX_HOLDERS
from shared.models import CustomerRecord
from shared.privacy import erase_profile, export_profile
from shared.settings import Settings
from shared.store import MemoryStore

from .store_faults import Died, crashing, hooked

SETTINGS = Settings()
HOME = "+447911123457"
PHONE_ID = f"phone:{HOME}"


def person(source: str, key: str, given: str, **fields) -> CustomerRecord:
    return CustomerRecord(source=source, record_key=key, given_name=given, family_name="Lee", **fields)


def resolve(store, *records):
    return [r.profile_id for r in resolve_records(store, list(records), settings=SETTINGS)]


def phone_doc(store):
    return store.container("identifiers").read_item_or_none(PHONE_ID, PHONE_ID)


def household(store, *given_names):
    """One profile per member, all giving the home phone (the first member holds it)."""
    ids = resolve(store, *(person("pos", str(i), given, phone=HOME, email=f"{given.lower()}@lee.org")
                           for i, given in enumerate(given_names, 1)))
    assert len(set(ids)) == len(given_names) and find_profile_id(store, "phone", HOME) == ids[0]
    return ids


def assert_consistent(store):
    assert audit_store(store).as_dict()["violations"] == {}


def test_a_household_phone_passes_to_the_member_still_giving_it_when_the_holder_is_deleted(store):
    ann, bob = household(store, "Ann", "Bob")
    assert phone_doc(store)["holders"] == [bob]
    remove_record(store, "pos", "1", settings=SETTINGS)
    assert find_profile_id(store, "phone", HOME) == bob
    assert PHONE_ID in get_profile(store, bob)["identifiers"]
    assert phone_doc(store)["holders"] == []
    # Bob's next record with only the phone links to him, as it would had Ann never been there.
    result, = resolve_records(store, [person("web", "9", "Bob", phone=HOME)], settings=SETTINGS)
    assert (result.profile_id, result.action, result.reason) == (bob, "linked", "rule:phone")
    assert_consistent(store)


def test_a_split_records_shared_phone_passes_to_it_when_the_old_profile_lets_it_go(store):
    kept, linked = resolve(store, person("pos", "1", "Bob", phone=HOME, email="x@lee.org"),
                           person("web", "2", "Bob", phone=HOME, email="bob@lee.org"))
    assert kept == linked
    split_out = split_record(store, kept, "web|2", settings=SETTINGS)
    assert find_profile_id(store, "phone", HOME) == kept and phone_doc(store)["holders"] == [split_out]
    remove_record(store, "pos", "1", settings=SETTINGS)
    assert find_profile_id(store, "phone", HOME) == split_out
    assert PHONE_ID in get_profile(store, split_out)["identifiers"]
    assert_consistent(store)


def test_a_changed_record_that_drops_the_phone_hands_it_on(store):
    ann, bob = household(store, "Ann", "Bob")
    resolve(store, person("pos", "1", "Ann", phone="+447911999888", email="ann@lee.org"))
    assert find_profile_id(store, "phone", HOME) == bob
    assert_consistent(store)


def test_a_member_whose_record_no_longer_gives_the_phone_is_passed_over(store):
    ann, bob, cat = household(store, "Ann", "Bob", "Cat")
    resolve(store, person("pos", "2", "Bob", phone="+447911999888", email="bob@lee.org"))
    remove_record(store, "pos", "1", settings=SETTINGS)
    assert find_profile_id(store, "phone", HOME) == cat
    remove_record(store, "pos", "3", settings=SETTINGS)
    assert phone_doc(store) is None  # Bob's record gives another phone now: nobody's
    assert_consistent(store)


def test_an_erase_hands_the_phone_on_forgets_the_erased_holder_and_exports_no_other_holder(store):
    ann, bob, cat = household(store, "Ann", "Bob", "Cat")
    exported = export_profile(store, get_profile(store, ann))
    assert [doc["id"] for doc in exported["identifiers"]].count(PHONE_ID) == 1
    assert all("holders" not in doc for doc in exported["identifiers"])  # other people's profile ids
    erase_profile(store, get_profile(store, bob))
    assert phone_doc(store)["holders"] == [cat]
    erase_profile(store, get_profile(store, ann))
    assert find_profile_id(store, "phone", HOME) == cat
    assert_consistent(store)


def test_a_claim_lost_to_a_household_member_resolved_at_the_same_moment_is_remembered(store):
    def ann_resolved_by_another_worker():
        resolve(store, person("pos", "1", "Ann", phone=HOME, email="ann@lee.org"))

    racing = hooked(store, "identifiers", "create_item", nth=1, hook=ann_resolved_by_another_worker)
    racing._when = lambda body, **kwargs: body["id"] == PHONE_ID
    bob, = resolve(racing, person("pos", "2", "Bob", phone=HOME, email="bob@lee.org"))
    assert racing.intercepted
    ann = find_profile_id(store, "phone", HOME)
    assert ann != bob and phone_doc(store)["holders"] == [bob]
    remove_record(store, "pos", "1", settings=SETTINGS)
    assert find_profile_id(store, "phone", HOME) == bob
    assert_consistent(store)


def test_a_removal_dying_between_the_heirs_listing_and_the_pointer_is_finished_by_the_retry(store):
    ann, bob = household(store, "Ann", "Bob")
    dying = crashing(store, "identifiers", "replace_item", when=lambda body, **kwargs: body["id"] == PHONE_ID)
    with pytest.raises(Died):
        remove_record(dying, "pos", "1", settings=SETTINGS)
    assert PHONE_ID in get_profile(store, bob)["identifiers"]  # listed first
    remove_record(store, "pos", "1", settings=SETTINGS)
    assert find_profile_id(store, "phone", HOME) == bob
    assert_consistent(store)


def test_an_identifier_remembers_a_bounded_number_of_other_holders():
    store = MemoryStore()
    names = "Ann Bob Cat Dan Eve Finn Gus Hal Ivy Jon Kim Leo Max Ned Oscar Pia Quinn Rosa Sam Tess".split()
    members = household(store, *names[:MAX_HOLDERS + 3])
    assert phone_doc(store)["holders"] == members[1:MAX_HOLDERS + 1]


def test_a_phone_released_while_a_household_member_is_resolved_is_claimed_for_them(store):
    ann, = resolve(store, person("pos", "1", "Ann", phone=HOME, email="ann@lee.org"))

    def ann_deleted_by_another_worker():
        remove_record(store, "pos", "1", settings=SETTINGS)

    # Bob's attempt read the phone as Ann's; her record is deleted before it notes Bob as another holder.
    racing = hooked(store, "identifiers", "replace_item", nth=1, hook=ann_deleted_by_another_worker)
    racing._when = lambda body, **kwargs: body["id"] == PHONE_ID
    bob, = resolve(racing, person("pos", "2", "Bob", phone=HOME, email="bob@lee.org"))
    assert racing.intercepted and bob != ann
    assert find_profile_id(store, "phone", HOME) == bob and PHONE_ID in get_profile(store, bob)["identifiers"]
    assert_consistent(store)


def test_an_erase_meeting_a_holder_noted_meanwhile_hands_the_phone_to_them(store):
    ann, = resolve(store, person("pos", "1", "Ann", phone=HOME, email="ann@lee.org"))

    def bob_resolved_by_another_worker():
        resolve(store, person("pos", "2", "Bob", phone=HOME, email="bob@lee.org"))

    # The erase read the phone's document before Bob's worker noted him on it.
    racing = hooked(store, "identifiers", "delete_item", nth=1, hook=bob_resolved_by_another_worker)
    racing._when = lambda item_id, *args, **kwargs: item_id == PHONE_ID
    erase_profile(racing, get_profile(store, ann))
    assert racing.intercepted
    bob = find_profile_id(store, "email", "bob@lee.org")
    assert find_profile_id(store, "phone", HOME) == bob
    assert_consistent(store)


def test_a_record_claiming_a_phone_left_pointing_at_a_gone_profile_keeps_its_other_holders(store):
    ann, bob = household(store, "Ann", "Bob")
    store.container("profiles").delete_item(ann, ann)  # as a worker dying half-way through an old removal left it
    cat, = resolve(store, person("web", "3", "Cat", phone=HOME))
    assert find_profile_id(store, "phone", HOME) == cat and phone_doc(store)["holders"] == [bob]
    remove_record(store, "web", "3", settings=SETTINGS)
    assert find_profile_id(store, "phone", HOME) == bob
