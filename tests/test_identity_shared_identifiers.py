"""Identifiers the records of several profiles give (a household's phone, a split record's shared phone): the profile
holding one hands it on to another whose record gives it when it lets it go, so lookups by it still find a person and
a new record with it links to them (shared/identity/maintenance.py, note_holder and release_identifier)."""
from __future__ import annotations

import json
import threading

import pytest

from shared.audit import audit_store
from shared.cli import main
from shared.identity import find_profile_id, get_profile, index_holders, remove_record, resolve_records, split_record
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


def writes_the_phone(body, **kwargs) -> bool:
    return body["id"] == PHONE_ID


def deletes_the_phone(item_id, *args, **kwargs) -> bool:
    return item_id == PHONE_ID


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


def test_a_members_records_with_only_the_home_phone_meet_their_own_profile_as_a_holder(store):
    """Ann holds the home phone; Bob's profile is a holder of it. Bob's next records with only the phone and his name
    link to his profile, as they would had he claimed the phone first: they used to found a profile each (the phone
    led to Ann, another given name, and nothing else led to Bob), so the result depended on who came first. Ann's
    own record still links to her, and a record without a given name to the holder alone (nothing tells which
    member it is)."""
    ann, bob = household(store, "Ann", "Bob")
    results = resolve_records(store, [person("web", "8", "Bob", phone=HOME), person("web", "9", "Bobby", phone=HOME),
                                      person("app", "7", "Ann", phone=HOME)], settings=SETTINGS)
    assert [(r.profile_id, r.action, r.reason) for r in results] == [
        (bob, "linked", "rule:phone"), (bob, "linked", "rule:phone"), (ann, "linked", "rule:phone")]
    nameless, = resolve_records(store, [CustomerRecord(source="app", record_key="6", family_name="Lee", phone=HOME)],
                                settings=SETTINGS)
    assert nameless.profile_id == ann
    assert phone_doc(store)["holders"] == [bob]
    assert_consistent(store)


def test_two_records_of_a_member_with_only_the_home_phone_resolved_at_once_end_in_one_profile(store):
    """Ann holds the home phone. Bob's two records, with his name and the phone only, are resolved by two workers at
    the same moment: each reads the phone's document before the other notes his profile as a holder, so each founds
    a profile. The later note meets the earlier one's profile on the document and joins it, as the second record
    would have joined the first one after the other."""
    ann, = resolve(store, person("pos", "1", "Ann", phone=HOME, email="ann@lee.org"))
    first = []

    def bob_resolved_by_another_worker():
        first.extend(resolve(store, person("web", "8", "Bob", phone=HOME)))

    # The second worker decided from the phone as only Ann's, then the first one ran before it founded its profile.
    racing = hooked(store, "profiles", "create_item", hook=bob_resolved_by_another_worker)
    result, = resolve_records(racing, [person("web", "9", "Bob", phone=HOME)], settings=SETTINGS)
    assert racing.intercepted and first[0] != ann
    assert (result.action, result.reason) == ("merged", "new; concurrent:rule:phone")
    bob = result.profile_id  # the older of the two profiles: the second worker took its time before it wrote
    assert find_profile_id(store, "source", "web|8") == bob != ann
    assert sorted(r["key"] for r in get_profile(store, bob)["records"]) == ["web|8", "web|9"]
    assert find_profile_id(store, "phone", HOME) == ann
    assert {get_profile(store, holder)["id"] for holder in phone_doc(store)["holders"]} == {bob}  # one an alias
    assert_consistent(store)


def test_a_record_whose_notes_meet_two_of_its_persons_profiles_joins_both(store):
    """Ann holds the home phone and the family email. Bob's record with both is decided (it founds a profile: Ann's
    is another member's); before it notes its profile on them, two more of Bob's records are resolved, one with
    only the email, one with only the phone, and each founds a profile noted on its value. Its two notes meet one each:
    one after the other, all three records would have been one profile, and now they are. It used to join the first
    met only (races bench, seed 5135)."""
    ann, = resolve(store, person("pos", "1", "Ann", phone=HOME, email="home@lee.org"))
    others = []

    def two_more_of_bobs_records():
        others.extend(resolve(store, person("web", "8", "Bob", email="home@lee.org")))
        others.extend(resolve(store, person("crm", "7", "Bob", phone=HOME)))

    racing = hooked(store, "identifiers", "replace_item", when=lambda body, **_: body["id"] == "email:home@lee.org",
                    hook=two_more_of_bobs_records)
    result, = resolve_records(racing, [person("web", "9", "Bob", email="home@lee.org", phone=HOME)], settings=SETTINGS)

    assert racing.intercepted and len({ann, *others}) == 3
    assert (result.action, result.reason) == ("merged", "new; concurrent:rule:email+phone")
    assert sorted(r["key"] for r in get_profile(store, result.profile_id)["records"]) == ["crm|7", "web|8", "web|9"]
    assert find_profile_id(store, "phone", HOME) == find_profile_id(store, "email", "home@lee.org") == ann
    assert_consistent(store)


def test_another_members_record_resolved_at_the_same_moment_stays_apart(store):
    """As above with Cat's record in the first worker: another given name is another member of the household."""
    ann, = resolve(store, person("pos", "1", "Ann", phone=HOME, email="ann@lee.org"))

    def cat_resolved_by_another_worker():
        resolve(store, person("web", "8", "Cat", phone=HOME))

    racing = hooked(store, "profiles", "create_item", hook=cat_resolved_by_another_worker)
    bob, = resolve(racing, person("web", "9", "Bob", phone=HOME))
    cat = find_profile_id(store, "source", "web|8")
    assert racing.intercepted and len({ann, bob, cat}) == 3
    assert sorted(phone_doc(store)["holders"]) == sorted([bob, cat])
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
    resolve(store, person("pos", "1", "Ann", phone="+447911123999", email="ann@lee.org"))
    assert find_profile_id(store, "phone", HOME) == bob
    assert_consistent(store)


def test_a_member_whose_record_no_longer_gives_the_phone_is_passed_over(store):
    ann, bob, cat = household(store, "Ann", "Bob", "Cat")
    resolve(store, person("pos", "2", "Bob", phone="+447911123999", email="bob@lee.org"))
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

    racing = hooked(store, "identifiers", "create_item", hook=ann_resolved_by_another_worker, when=writes_the_phone)
    bob, = resolve(racing, person("pos", "2", "Bob", phone=HOME, email="bob@lee.org"))
    assert racing.intercepted
    ann = find_profile_id(store, "phone", HOME)
    assert ann != bob and phone_doc(store)["holders"] == [bob]
    remove_record(store, "pos", "1", settings=SETTINGS)
    assert find_profile_id(store, "phone", HOME) == bob
    assert_consistent(store)


def test_a_removal_dying_between_the_heirs_listing_and_the_pointer_is_finished_by_the_retry(store):
    ann, bob = household(store, "Ann", "Bob")
    dying = crashing(store, "identifiers", "replace_item", when=writes_the_phone)
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
    racing = hooked(store, "identifiers", "replace_item", hook=ann_deleted_by_another_worker, when=writes_the_phone)
    bob, = resolve(racing, person("pos", "2", "Bob", phone=HOME, email="bob@lee.org"))
    assert racing.intercepted and bob != ann
    assert find_profile_id(store, "phone", HOME) == bob and PHONE_ID in get_profile(store, bob)["identifiers"]
    assert_consistent(store)


def test_an_erase_meeting_a_holder_noted_meanwhile_hands_the_phone_to_them(store):
    ann, = resolve(store, person("pos", "1", "Ann", phone=HOME, email="ann@lee.org"))

    def bob_resolved_by_another_worker():
        resolve(store, person("pos", "2", "Bob", phone=HOME, email="bob@lee.org"))

    # The erase read the phone's document before Bob's worker noted him on it.
    racing = hooked(store, "identifiers", "delete_item", hook=bob_resolved_by_another_worker, when=deletes_the_phone)
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


def before_phone_pointer_write(store, hook):
    """The store, with `hook()` (another worker) run just before the phone's document is next replaced."""
    racing = hooked(store, "identifiers", "replace_item", hook=hook, when=writes_the_phone)
    return racing


def test_a_record_linked_to_the_holder_while_it_hands_the_phone_on_leaves_it_a_holder(store):
    ann, bob = household(store, "Ann", "Bob")
    racing = before_phone_pointer_write(
        store, lambda: resolve(store, person("pos", "3", "Ann", phone=HOME, email="ann@lee.org")))
    remove_record(racing, "pos", "1", settings=SETTINGS)
    assert racing.intercepted
    assert find_profile_id(store, "phone", HOME) == bob and phone_doc(store)["holders"] == [ann]
    assert PHONE_ID not in get_profile(store, ann)["identifiers"]
    assert_consistent(store)


@pytest.mark.parametrize("heir_leaves", ["changed", "removed", "erased"])
def test_an_heir_letting_the_phone_go_while_it_is_handed_on_passes_it_further(store, heir_leaves):
    ann, bob, cat = household(store, "Ann", "Bob", "Cat")
    leave = {"changed": lambda: resolve(store, person("pos", "2", "Bob", phone="+447911123999", email="bob@lee.org")),
             "removed": lambda: remove_record(store, "pos", "2", settings=SETTINGS),
             "erased": lambda: erase_profile(store, get_profile(store, bob))}[heir_leaves]
    racing = before_phone_pointer_write(store, leave)
    remove_record(racing, "pos", "1", settings=SETTINGS)
    assert racing.intercepted
    assert find_profile_id(store, "phone", HOME) == cat and PHONE_ID in get_profile(store, cat)["identifiers"]
    assert_consistent(store)


def test_an_heir_whose_record_changes_while_it_is_listed_is_passed_over(store):
    ann, bob, cat = household(store, "Ann", "Bob", "Cat")
    racing = hooked(store, "profiles", "replace_item", hook=lambda: resolve(
        store, person("pos", "2", "Bob", phone="+447911123999", email="bob@lee.org")),
        when=lambda body, **kwargs: body["id"] == bob)
    remove_record(racing, "pos", "1", settings=SETTINGS)
    assert racing.intercepted
    assert find_profile_id(store, "phone", HOME) == cat
    assert PHONE_ID not in get_profile(store, bob)["identifiers"]
    assert_consistent(store)


def test_an_erase_forgets_the_person_as_holder_of_a_value_their_record_no_longer_gives(store):
    ann, bob = household(store, "Ann", "Bob")
    resolve(store, person("pos", "2", "Bob", phone="+447911123999", email="bob@lee.org"))
    assert phone_doc(store)["holders"] == [bob]  # passed over when Ann lets it go (his record no longer gives it)
    erase_profile(store, get_profile(store, bob))
    assert phone_doc(store)["holders"] == []


def test_a_phone_claimed_for_a_record_after_its_holder_left_goes_with_an_erase_of_its_person(store):
    ann, = resolve(store, person("pos", "1", "Ann", phone=HOME, email="ann@lee.org"))
    ann_removed = before_phone_pointer_write(store, lambda: remove_record(store, "pos", "1", settings=SETTINGS))

    def bob_erased():
        bob = store.container("records").read_item("pos|2", "pos|2")["profile_id"]
        erase_profile(store, get_profile(store, bob))

    # Bob's worker lost the phone to Ann; her record is deleted before it notes him, so it claims the phone for
    # him, and Bob is erased as the claim is written.
    racing = hooked(ann_removed, "identifiers", "create_item", hook=bob_erased, when=writes_the_phone)
    result, = resolve_records(racing, [person("pos", "2", "Bob", phone=HOME, email="bob@lee.org")],
                              settings=SETTINGS)
    assert ann_removed.intercepted and racing.intercepted and result.action == "erased"
    assert phone_doc(store) is None
    assert_consistent(store)


@pytest.mark.parametrize("heir_leaves", ["changed", "removed"])
def test_an_heir_writing_its_change_just_after_the_hand_on_checked_it_releases_the_phone_again(store, heir_leaves):
    """The heir's change (or removal) read the phone as still Ann's, so released nothing, and writes its profile
    without the phone only after the hand-on pointed the phone at it and checked that it lists it: the heir's write
    releases it."""
    ann, bob, cat = household(store, "Ann", "Bob", "Cat")
    paused, go_on = threading.Event(), threading.Event()

    def pause():
        paused.set()
        assert go_on.wait(30)

    if heir_leaves == "changed":
        heir_store = hooked(store, "profiles", "replace_item", hook=pause,
                            when=lambda body, **kwargs: body["id"] == bob)
        leave = lambda: resolve(heir_store, person("pos", "2", "Bob", phone="+447911123999", email="bob@lee.org"))
    else:
        heir_store = hooked(store, "profiles", "delete_item", hook=pause,
                            when=lambda item_id, *args, **kwargs: item_id == bob)
        leave = lambda: remove_record(heir_store, "pos", "2", settings=SETTINGS)
    heir = threading.Thread(target=leave)
    racing = before_phone_pointer_write(store, lambda: (heir.start(), paused.wait(30)))
    remove_record(racing, "pos", "1", settings=SETTINGS)
    assert find_profile_id(store, "phone", HOME) == bob  # handed on, checked: Bob lists it still
    go_on.set()
    heir.join(30)
    assert find_profile_id(store, "phone", HOME) == cat and PHONE_ID in get_profile(store, cat)["identifiers"]
    assert_consistent(store)


def written_before_holders(store):
    """A store as the release before holders left it: Ann holds the home phone Bob's record gives too; Dan's record,
    deleted, released the phone Eve's record gives too. Returns (bob, eve)."""
    ann, bob = household(store, "Ann", "Bob")
    dan, eve = resolve(store, person("web", "4", "Dan", phone="+447911123999", email="dan@lee.org"),
                       person("web", "5", "Eve", phone="+447911123999", email="eve@lee.org"))
    identifiers = store.container("identifiers")
    for doc in list(identifiers.query_items()):
        if doc.get("holders") is not None:
            identifiers.replace_item({k: v for k, v in doc.items() if k != "holders"}, etag=doc["_etag"])
    remove_record(store, "web", "4", settings=SETTINGS)
    assert audit_store(store).as_dict()["violations"] == {"record_identifier_unindexed": 1}
    return bob, eve


def test_index_holders_upgrades_a_store_written_before_holders(store):
    bob, eve = written_before_holders(store)
    assert index_holders(store, settings=SETTINGS) == {"profiles": 3, "given_elsewhere": 2, "claimed": 1}
    assert index_holders(store, settings=SETTINGS)["claimed"] == 0  # idempotent
    assert phone_doc(store)["holders"] == [bob]
    assert find_profile_id(store, "phone", "+447911123999") == eve  # claimed for the one giving it
    remove_record(store, "pos", "1", settings=SETTINGS)
    assert find_profile_id(store, "phone", HOME) == bob
    assert_consistent(store)


def test_ucp_index_holders_upgrades_the_configured_store(app_env, cosmos_store, capsys):
    bob, eve = written_before_holders(cosmos_store)
    assert main(["index-holders"]) == 0
    assert json.loads(capsys.readouterr().out) == {"profiles": 3, "given_elsewhere": 2, "claimed": 1}
    assert phone_doc(cosmos_store)["holders"] == [bob]
    assert_consistent(cosmos_store)


@pytest.mark.parametrize("meanwhile", ["split", "removal"])
def test_a_record_linked_after_its_value_moved_on_leaves_it_where_it_went(store, meanwhile):
    """Ann's web record alone gives her profile the home phone, which Bob's record gives too. A new record of Ann's
    with the phone reads the index (the phone leads to Ann), then, before it reads her profile, the web record is
    split out (taking the phone along) or deleted (handing it to Bob). The new record joins Ann by her email. It used
    to trust its first read and list the phone on Ann's profile while the phone led elsewhere; now it claims it,
    finds it held, and Ann is one of its holders."""
    ann, _ = resolve(store, person("pos", "1", "Ann", email="ann@lee.org"),
                     person("web", "2", "Ann", email="ann@lee.org", phone=HOME))
    bob, = resolve(store, person("pos", "4", "Bob", phone=HOME, email="bob@lee.org"))
    moved = []

    def move_the_phone():
        if meanwhile == "split":
            moved.append(split_record(store, ann, "web|2", settings=SETTINGS))
        else:
            remove_record(store, "web", "2", settings=SETTINGS)
            moved.append(bob)

    racing = hooked(store, "profiles", "read_item_or_none", hook=move_the_phone)
    linked, = resolve(racing, person("crm", "3", "Ann", email="ann@lee.org", phone=HOME))
    assert racing.intercepted and linked == ann
    assert find_profile_id(store, "phone", HOME) == moved[0] and ann in phone_doc(store)["holders"]
    assert PHONE_ID not in get_profile(store, ann)["identifiers"]
    assert_consistent(store)


def test_a_record_merging_a_profile_whose_value_moved_on_meanwhile_decides_again_as_after_the_move(store):
    """As above, for a merge: Ann's record with her email and the home phone joins her email's profile and merges
    the phone's (one of Ann's records gives the phone there; another, her card). Before the merge marks that
    profile, the phone's record is split out, taking the phone along. That profile no longer holds what led to it:
    merged, it would join Ann's card profile on nothing, and point the phone nowhere. The record decides again, as
    it would have after the split: it joins Ann and merges the phone's new profile; the card's stays apart."""
    ann, = resolve(store, person("pos", "1", "Ann", email="ann@lee.org"))
    other, _ = resolve(store, person("web", "2", "Ann", phone=HOME, loyalty_id="L9"),
                       person("web", "6", "Ann", loyalty_id="L9"))
    moved = []
    racing = hooked(store, "profiles", "replace_item",
                    hook=lambda: moved.append(split_record(store, other, "web|2", settings=SETTINGS)),
                    when=lambda body, **_: body["id"] == other and "pending_merge" in body)

    linked, = resolve(racing, person("crm", "3", "Ann", email="ann@lee.org", phone=HOME))

    assert racing.intercepted and linked == ann and ann != other
    assert get_profile(store, other)["id"] == other  # not merged: what led to it had left
    assert get_profile(store, moved[0])["id"] == ann  # the phone's profile now, merged
    assert find_profile_id(store, "phone", HOME) == ann and PHONE_ID in get_profile(store, ann)["identifiers"]
    assert_consistent(store)
