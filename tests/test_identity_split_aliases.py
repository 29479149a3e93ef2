"""The id of a profile merged into another follows the records it brought: when the last of them leaves the
survivor, by a split it redirects to the split's new profile, by a deletion it names nobody. Before, it kept
redirecting to the survivor: an app holding it was served, exported and erased as another person."""
from __future__ import annotations

import pytest

from shared.audit import audit_store
from shared.identity import get_profile, list_merges, remove_record, resolve_records, split_record
from shared.models import CustomerRecord
from shared.privacy import erase_profile, export_profile
from shared.settings import Settings
from shared.store import ItemNotFoundError

from .store_faults import Died, crashing

SETTINGS = Settings()


def rec(source: str, key: str, **fields) -> CustomerRecord:
    return CustomerRecord(source=source, record_key=key, given_name="Ann", family_name="Lee", **fields)


def resolve(store, *records):
    return [r.profile_id for r in resolve_records(store, list(records), settings=SETTINGS)]


def bridged(store, *web_keys):
    """Ann by email (pos), Ann by phone (web, one record per key), then a crm record with both: the web profile is
    merged into the pos one. Returns (survivor, absorbed)."""
    survivor, = resolve(store, rec("pos", "a1", email="ann.lee@lee-mail.net"))
    absorbed = resolve(store, *(rec("web", key, phone="+447406596447") for key in web_keys))[0]
    merged, = resolve(store, rec("crm", "c1", email="ann.lee@lee-mail.net", phone="+447406596447"))
    assert merged == survivor != absorbed and get_profile(store, absorbed)["id"] == survivor
    return survivor, absorbed


def test_split_of_the_last_record_an_absorbed_profile_brought_takes_its_id_along(store):
    survivor, absorbed = bridged(store, "w1")
    split_out = split_record(store, survivor, "web|w1", settings=SETTINGS)
    assert get_profile(store, absorbed)["id"] == split_out  # the id names the web customer again
    assert absorbed in get_profile(store, split_out)["merged_from"]
    assert absorbed not in get_profile(store, survivor)["merged_from"]
    assert absorbed not in get_profile(store, split_out).get("never_match", [])
    exported = export_profile(store, get_profile(store, absorbed))
    assert [r["id"] for r in exported["source_records"]] == ["web|w1"]
    erase_profile(store, get_profile(store, survivor))  # erasing the other person leaves the web customer's id
    assert get_profile(store, absorbed)["id"] == split_out
    assert survivor not in str(list_merges(store, split_out))  # the log of where the id came from forgets them
    assert audit_store(store).as_dict()["violations"] == {}


def test_the_id_stays_while_the_survivor_holds_one_of_its_records(store):
    survivor, absorbed = bridged(store, "w1", "w2")
    first = split_record(store, survivor, "web|w1", settings=SETTINGS)
    assert get_profile(store, absorbed)["id"] == survivor  # web|w2 is still there
    last = split_record(store, survivor, "web|w2", settings=SETTINGS)
    assert get_profile(store, absorbed)["id"] == last != first
    # the history of where it is now: the split, and the id that came with the record
    assert [(e["reason"], e["records"]) for e in list_merges(store, absorbed)] == [
        ("split", ["web|w2"]), ("id_followed_record", ["web|w2"])]


@pytest.mark.parametrize("erase_the_first_profile", [False, True])
def test_the_id_follows_its_record_again_out_of_the_profile_it_followed_it_to(store, erase_the_first_profile):
    """The web customer's loyalty card brings a record to the profile split out, then the web record is split out of
    that one too: the id goes with it again. Before, the merge entry saying which record the id brought was in the
    first profile's log only (and an erase of that person deleted it), so the id stayed behind."""
    survivor, = resolve(store, rec("pos", "a1", email="ann.lee@lee-mail.net"))
    absorbed, = resolve(store, rec("web", "w1", phone="+447406596447", loyalty_id="L-99"))
    resolve(store, rec("crm", "c1", email="ann.lee@lee-mail.net", phone="+447406596447"))
    first = split_record(store, survivor, "web|w1", settings=SETTINGS)
    if erase_the_first_profile:
        erase_profile(store, get_profile(store, survivor))
    assert resolve(store, rec("loyalty", "y5", loyalty_id="L-99")) == [first]
    second = split_record(store, first, "web|w1", settings=SETTINGS)
    assert get_profile(store, absorbed)["id"] == second != first
    assert absorbed not in get_profile(store, first)["merged_from"]
    assert audit_store(store).as_dict()["violations"] == {}


def test_deleting_the_last_record_an_absorbed_profile_brought_leaves_its_id_naming_nobody(store):
    survivor, absorbed = bridged(store, "w1")
    assert remove_record(store, "web", "w1", settings=SETTINGS) == survivor
    with pytest.raises(ItemNotFoundError):
        get_profile(store, absorbed)
    assert absorbed not in get_profile(store, survivor)["merged_from"]
    assert audit_store(store).as_dict()["violations"] == {}


@pytest.mark.parametrize("container, method", [("profiles", "replace_item")])
def test_a_split_dying_while_moving_the_id_is_finished_by_the_retry(store, container, method):
    survivor, absorbed = bridged(store, "w1")
    # the writes of a split: the old profile, then the alias, then the new profile's merged_from (3rd replace)
    with pytest.raises(Died):
        split_record(crashing(store, container, method, nth=3), survivor, "web|w1", settings=SETTINGS)
    split_out = split_record(store, survivor, "web|w1", settings=SETTINGS)
    assert get_profile(store, absorbed)["id"] == split_out
    assert absorbed in get_profile(store, split_out)["merged_from"]
    assert absorbed not in get_profile(store, survivor)["merged_from"]
    assert audit_store(store).as_dict()["violations"] == {}


def test_deleting_every_record_of_a_merged_profile_leaves_no_alias_nor_history(store):
    """The survivor's own record first, the absorbed profile's last: the survivor goes with its last record, and so
    do the ids merged into it and its merge log (a record founding the same id again starts a history of its own)."""
    survivor, absorbed = bridged(store, "w1")
    for source, key in (("pos", "a1"), ("crm", "c1"), ("web", "w1")):
        assert remove_record(store, source, key, settings=SETTINGS) == survivor
    for gone in (survivor, absorbed):
        with pytest.raises(ItemNotFoundError):
            get_profile(store, gone)
    assert list(store.container("merges").query_items()) == []
    assert audit_store(store).as_dict()["violations"] == {}
    again, = resolve(store, rec("pos", "a1", email="ann.lee@lee-mail.net"))
    assert again == survivor and list_merges(store, again) == []


def test_a_split_takes_no_identifier_another_profile_holds(store):
    """William's record carries the household email, which stayed with Steve's profile (the names disagree), and
    joined William by phone: split out, its profile does not list the email it never held."""
    def brennan(source, key, given, **fields):
        return CustomerRecord(source=source, record_key=key, given_name=given, family_name="Brennan", **fields)

    william, steve, linked = resolve(
        store, brennan("pos", "0250", "William", phone="+44 20 7305 8568", postcode="LS1 4AP"),
        brennan("crm", "2097", "Steve", email="brennan.family92@gmail.com", phone="+44 7911 606735", city="Leeds"),
        brennan("web", "0090", "William", email="brennan.family92@gmail.com", phone="+44 20 7305 8568"))
    assert linked == william != steve
    split_out = split_record(store, william, "web|0090", settings=SETTINGS)
    assert "email:brennan.family92@gmail.com" not in get_profile(store, split_out)["identifiers"]
    assert audit_store(store).as_dict()["violations"] == {}


def hughes(source, key, given, **fields):
    return CustomerRecord(source=source, record_key=key, given_name=given, family_name="Hughes", **fields)


def taken_over_web_account(store):
    """Stephen's web account founded a profile, merged into his main one by a crm record; James has a profile of
    his own. Returns (stephen, web_id, james, the web record's new version: James's)."""
    stephen, web_id = resolve(store, hughes("pos", "3231", "Stephen", postcode="B33 8TH"), hughes(
        "web", "3330", "Stephen", email="stephen.hughes87@gmail.com", phone="+44 20 7322 4774",
        updated_at="2025-01-02T09:00:00+00:00"))
    resolve(store, hughes("crm", "3153", "Stephen", email="stephen.hughes87@gmail.com", phone="+44 7911 298199",
                          birth_date="1967-10-14", postcode="B33 8TH", city="Birmingham"))
    assert get_profile(store, web_id)["id"] == stephen
    james, = resolve(store, hughes("loyalty", "2024", "James", loyalty_id="L-1634", email="james.hughes26@gmail.com",
                                   birth_date="1988-08-27"))
    return stephen, web_id, james, hughes("web", "3330", "James", email="james.hughes26@gmail.com",
                                          birth_date="1988-08-27", updated_at="2025-01-03T09:00:00+00:00")


def test_a_record_that_changes_to_another_person_takes_the_id_it_brought_along(store):
    """The web account is taken over by James (same record key, his email, later updated_at): it moves to James's
    profile (record_changed), and the web account's first profile id goes with it, not left naming Stephen."""
    stephen, web_id, james, changed = taken_over_web_account(store)
    moved, = resolve(store, changed)
    assert moved == james
    assert get_profile(store, web_id)["id"] == james and web_id in get_profile(store, james)["merged_from"]
    assert web_id not in get_profile(store, stephen)["merged_from"]
    assert audit_store(store).as_dict()["violations"] == {}


@pytest.mark.parametrize("container, method, when", [
    ("identifiers", "replace_item", lambda body, **_: body["id"] == "source:web|3330"),  # the commit
    ("profiles", "replace_item", lambda body, **_: body.get("doc_type") == "alias")])  # the id's move
def test_a_worker_dying_between_the_records_change_and_the_ids_move_leaves_the_retry_to_move_it(
        store, container, method, when):
    """The message is delivered again after the worker died: the id still follows the record. Before, the move came
    after the commit, so a retry found the record done (or out of the profile it was in) and never moved the id."""
    stephen, web_id, james, changed = taken_over_web_account(store)
    with pytest.raises(Died):
        resolve_records(crashing(store, container, method, when=when), [changed], settings=SETTINGS)
    moved, = resolve(store, changed)
    assert moved == james
    assert get_profile(store, web_id)["id"] == james and web_id in get_profile(store, james)["merged_from"]
    assert web_id not in get_profile(store, stephen)["merged_from"]
    assert audit_store(store).as_dict()["violations"] == {}
