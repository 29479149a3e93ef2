"""What an erase leaves of a person in other people's documents, and what an export shows of other people, once
records moved between profiles: a review about a record split out since, a split (the other side's never_match,
merge log and record links keep the record keys and profile ids), a review rejected between two people, an id
merged into a profile that followed its record out. On both stores."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from shared.api.profiles import load_profile
from shared.identity import list_merges, remove_record, split_record
from shared.identity.review import reject_review
from shared.activity import save_activity
from shared.models import CustomerRecord, Transaction
from shared.privacy import erase_profile
from shared.settings import Settings

from .store_faults import Died, crashing, hooked
from .test_privacy_cascade import erase, export, resolve, status_of

SETTINGS = Settings()
CONTAINERS = ("profiles", "identifiers", "records", "blocking", "merges", "review", "activity", "activity_owners")
SCORE_FIELDS = ("score", "match_weight", "contributions", "levels")


def rec(source: str, key: str, **fields) -> CustomerRecord:
    return CustomerRecord(source=source, record_key=key, given_name="Ann", family_name="Lee", country="GB", **fields)



def docs_mentioning(store, *needles: str) -> list[tuple[str, str]]:
    """(container, id) of every stored doc naming a needle; an erased record's empty records doc is not counted."""
    found = []
    for name in CONTAINERS:
        for doc in store.container(name).query_items():
            if name == "records" and doc.get("erased_at"):
                continue
            text = json.dumps(doc).lower()
            if any(n.lower() in text for n in needles):
                found.append((name, doc["id"]))
    return sorted(found)


def tombstones(*ids: str) -> list[tuple[str, str]]:
    return sorted(("profiles", i) for i in ids)


# --- a review about a record split out of the profile it opened in --------------------------------------------

def _review_then_split(store):
    """Ann's second loyalty card opens a review (crm|c1, in the profile of web|c2); then crm|c1 is split out.
    Returns (first profile, profile left with web|c2, split profile, review id)."""
    first, second, third = resolve(
        store, rec("pos", "a1", email="ann.lee@shopmail.net", loyalty_id="L-1001"),
        rec("crm", "c1", email="ann.lee@shopmail.net", loyalty_id="L-2002", phone="+447911000003"),
        rec("web", "c2", email="annie.l@othermail.org", loyalty_id="L-2002"))
    assert second.action == "review" and third.profile_id == second.profile_id != first.profile_id
    review, = store.container("review").query_items()
    assert review["record_key"] == "crm|c1" and review["profile_id"] == second.profile_id
    split = split_record(store, second.profile_id, "crm|c1", settings=SETTINGS)
    return first.profile_id, second.profile_id, split, review["id"]


def test_a_review_about_a_record_split_out_since_is_exported_with_the_record_not_the_profile(store):
    first, left, split, review_id = _review_then_split(store)
    assert [r["id"] for r in export(store, split)["review"]] == [review_id]
    assert export(store, left)["review"] == []  # the review is about another person's record now
    shown = json.dumps(export(store, split))
    assert first not in shown and left not in shown and "pos|a1" not in shown and "web|c2" not in shown


def test_a_review_about_a_record_split_out_since_is_erased_with_the_record(store):
    _, left, split, review_id = _review_then_split(store)
    assert erase(store, split)["review"] == 1
    assert store.container("review").read_item_or_none(review_id, review_id) is None
    assert docs_mentioning(store, "crm|c1", "+447911000003", split) == tombstones(split)
    assert load_profile(store, left).get("never_match") == []


# --- a split: the other side's never_match, merge log and record links ----------------------------------------

def _linked_then_split(store):
    """Ann (pos|a1) and another Ann (web|b1) joined by score, then web|b1 split out. Returns (pos, split)."""
    first, second = resolve(store, rec("pos", "a1", email="ann.lee@shopmail.net", birth_date="1980-02-03"),
                            rec("web", "b1", phone="+447911000002", birth_date="1980-02-03", postcode="SW1A 2AA"))
    assert second.profile_id == first.profile_id and second.reason.startswith("score:")
    split = split_record(store, first.profile_id, "web|b1", settings=SETTINGS)
    return first.profile_id, split


def test_erasing_the_person_split_out_leaves_the_other_history_without_their_keys(store):
    kept, split = _linked_then_split(store)
    counts = erase(store, split)
    assert docs_mentioning(store, "web|b1", "+447911000002", "SW1A2AA", split) == tombstones(split)
    assert counts["others_redacted"] == 3  # the split and the score link in kept's log, kept's never_match
    profile = load_profile(store, kept)
    assert profile["never_match"] == [] and [r["key"] for r in profile["records"]] == ["pos|a1"]
    log = {entry["reason"]: entry for entry in list_merges(store, kept)}
    assert set(log) == {"score", "split"}  # the history keeps that a record was linked, then split out
    assert (log["split"]["split_into"], log["split"]["records"]) == ("erased", [])
    assert (log["score"]["compared_record"], log["score"]["records"]) == ("pos|a1", [])
    assert not set(SCORE_FIELDS) & set(log["score"])  # the score compared the erased record with pos|a1


def test_erasing_the_person_a_record_was_split_from_leaves_the_split_profile_without_their_keys(store):
    kept, split = _linked_then_split(store)
    erase(store, kept)
    assert docs_mentioning(store, "pos|a1", "ann.lee@shopmail.net", kept) == tombstones(kept)
    profile = load_profile(store, split)
    assert profile["never_match"] == [] and profile["records"][0]["link"] == {"reason": "split", "from": "erased"}
    entry, = list_merges(store, split)
    assert (entry["split_from"], entry["records"]) == ("erased", ["web|b1"])


def test_an_export_after_a_split_holds_no_key_or_id_of_the_other_person(store):
    kept, split = _linked_then_split(store)
    mine, theirs = export(store, kept), export(store, split)
    for exported, other in ((mine, ["web|b1", split]), (theirs, ["pos|a1", kept])):
        shown = json.dumps(exported)
        assert [n for n in other if n in shown] == []
        assert exported["profile"]["never_match"] == []
    assert [(e["reason"], e["records"]) for e in mine["merges"]] == [("score", []), ("split", [])]
    assert [(e["reason"], e["records"], e["split_from"]) for e in theirs["merges"]] == [
        ("split", ["web|b1"], "withheld")]


def _erase_cut_off_then_retried(store, container: str, profile_id: str) -> None:
    with pytest.raises(Died):  # dies at its first write of the other person's docs
        erase(crashing(store, container, "replace_item"), profile_id)
    assert status_of(store, profile_id) == 200  # no tombstone yet: the client retries
    erase(store, profile_id)


@pytest.mark.parametrize("container", ["merges", "profiles"])
def test_an_erase_cut_off_while_clearing_the_other_profile_is_completed_by_the_retry(store, container):
    kept, split = _linked_then_split(store)
    _erase_cut_off_then_retried(store, container, split)
    assert docs_mentioning(store, "web|b1", split) == tombstones(split)
    stale = {"id": split}
    assert erase_profile(store, stale)["others_redacted"] == 0 and status_of(store, split) == 410


def test_the_other_profile_changed_while_it_is_cleared_keeps_the_change(store):
    kept, split = _linked_then_split(store)
    late = []
    linked = hooked(store, "profiles", "replace_item", nth=1, hook=lambda: late.extend(
        resolve(store, rec("app", "h1", email="ann.lee@shopmail.net"))))
    erase(linked, split)
    assert [(r.action, r.profile_id) for r in late] == [("linked", kept)]
    profile = load_profile(store, kept)
    assert profile["never_match"] == [] and sorted(r["key"] for r in profile["records"]) == ["app|h1", "pos|a1"]
    assert docs_mentioning(store, "web|b1", split) == tombstones(split)


# --- a review rejected between two people ----------------------------------------------------------------------

def _rejected(store):
    first, second = resolve(store, rec("pos", "a1", email="lee.family@shopmail.net", loyalty_id="L-1001"),
                            rec("crm", "c1", email="lee.family@shopmail.net", loyalty_id="L-2002"))
    assert second.action == "review"
    review, = store.container("review").query_items()
    reject_review(store, review["id"], by="steward-7", settings=SETTINGS)
    return first.profile_id, second.profile_id, review["id"]


def test_a_rejected_review_is_exported_with_its_record_only_without_the_other_person(store):
    first, second, review_id = _rejected(store)
    mine = export(store, first)
    assert mine["review"] == [] and mine["profile"]["never_match"] == []
    assert "crm|c1" not in json.dumps(mine) and second not in json.dumps(mine)
    theirs = export(store, second)
    assert [(r["id"], r["record_key"], r["status"]) for r in theirs["review"]] == [(review_id, "crm|c1", "rejected")]
    assert "pos|a1" not in json.dumps(theirs) and first not in json.dumps(theirs)
    assert not set(SCORE_FIELDS) & set(theirs["review"][0])


def test_erasing_one_side_of_a_rejected_review_clears_the_others_never_match(store):
    first, second, _ = _rejected(store)
    erase(store, second)
    assert load_profile(store, first)["never_match"] == []
    assert docs_mentioning(store, "crm|c1", second) == tombstones(second)


# --- an id merged into a profile, which followed its record out by a split -------------------------------------

def test_erasing_the_person_whose_merged_id_followed_them_out_clears_the_merge_entry(store):
    survivor, = resolve(store, rec("pos", "a1", email="ann.lee@lee-mail.net"))
    absorbed, = resolve(store, rec("web", "w1", phone="+447406596447"))
    merged, = resolve(store, rec("crm", "c1", email="ann.lee@lee-mail.net", phone="+447406596447"))
    assert merged.profile_id == survivor.profile_id != absorbed.profile_id
    split = split_record(store, survivor.profile_id, "web|w1", settings=SETTINGS)
    assert absorbed.profile_id in load_profile(store, split)["merged_from"]
    erase(store, split)
    assert docs_mentioning(store, "web|w1", split, absorbed.profile_id) == tombstones(
        split, absorbed.profile_id)
    merge, = [e for e in list_merges(store, survivor.profile_id) if e["reason"] != "split"]
    assert (merge["absorbed_id"], merge["records"]) == ("erased", [])


# --- a record that left another profile by changing, not by a split -------------------------------------------

def _moved_by_change(store):
    """Elizabeth's crm record joins Liz's profile by score, then its new version (Katherine) moves it to Cathy's
    profile (record_changed). Returns (Liz's profile, Cathy's profile)."""
    person = {"family_name": "Hughes", "country": "GB"}
    home = {"email": "hughes.family3@gmail.com", "address_line1": "77 Kings Avenue", "postcode": "B33 8TH"}
    liz, cathy, crm_v0, crm_v1 = resolve(
        store, CustomerRecord(source="pos", record_key="0310", given_name="Elizabeth", phone="+44 7922 384976",
                              birth_date="1992-04-23", **person),
        CustomerRecord(source="loyalty", record_key="0235", given_name="Cathy", loyalty_id="L-4320",
                       birth_date="1986-12-15", city="Birmingham", **home, **person),
        CustomerRecord(source="crm", record_key="0141", given_name="Elizabeth", birth_date="1992-04-23",
                       updated_at="2025-01-01T01:00:00+00:00", **home, **person),
        CustomerRecord(source="crm", record_key="0141", given_name="Katherine", phone="+44 7911 680187",
                       birth_date="1986-12-15", updated_at="2025-01-02T01:00:00+00:00", **home, **person))
    assert crm_v0.profile_id == liz.profile_id and crm_v0.reason.startswith("score:")
    assert crm_v1.profile_id == cathy.profile_id != liz.profile_id
    reasons = {e["reason"] for e in list_merges(store, liz.profile_id)}
    assert reasons == {"score", "record_changed"}
    return liz.profile_id, cathy.profile_id


def test_erasing_the_person_a_changed_record_moved_to_clears_the_profile_it_left(store):
    liz, cathy = _moved_by_change(store)
    counts = erase(store, cathy)
    assert docs_mentioning(store, "crm|0141", "loyalty|0235", "L-4320", cathy) == tombstones(cathy)
    assert counts["others_redacted"] == 2  # the score link and the record leaving, in Liz's log
    log = {entry["reason"]: entry for entry in list_merges(store, liz)}
    assert set(log) == {"score", "record_changed"}  # Liz's history keeps that a record was linked, then left
    assert (log["score"]["compared_record"], log["score"]["records"]) == ("pos|0310", [])
    assert not set(SCORE_FIELDS) & set(log["score"])  # the score compared the erased record with pos|0310
    assert log["record_changed"]["records"] == []
    assert [r["key"] for r in load_profile(store, liz)["records"]] == ["pos|0310"]


def test_erasing_the_person_a_changed_record_moved_to_before_its_commit_erases_the_records_own_identifier(store):
    """Katherine's version moved the crm record to Cathy's profile, and its worker died before pointing the record's
    own identifier there (its commit): it still named Liz's profile. The erase followed what leads to Cathy and left
    it (the record's key), and the record's retry, refused once the record is erased, did not take it either."""
    person = {"family_name": "Hughes", "country": "GB"}
    home = {"email": "hughes.family3@gmail.com", "address_line1": "77 Kings Avenue", "postcode": "B33 8TH"}
    liz, cathy, _ = resolve(
        store, CustomerRecord(source="pos", record_key="0310", given_name="Elizabeth", phone="+44 7922 384976",
                              birth_date="1992-04-23", **person),
        CustomerRecord(source="loyalty", record_key="0235", given_name="Cathy", loyalty_id="L-4320",
                       birth_date="1986-12-15", city="Birmingham", **home, **person),
        CustomerRecord(source="crm", record_key="0141", given_name="Elizabeth", birth_date="1992-04-23",
                       updated_at="2025-01-01T01:00:00+00:00", **home, **person))
    katherine = CustomerRecord(source="crm", record_key="0141", given_name="Katherine", phone="+44 7911 680187",
                               birth_date="1986-12-15", updated_at="2025-01-02T01:00:00+00:00", **home, **person)
    with pytest.raises(Died):
        resolve(crashing(store, "identifiers", "replace_item", when=lambda body, **_: body["id"] == "source:crm|0141"),
                katherine)
    assert store.container("records").read_item("crm|0141", "crm|0141")["profile_id"] == cathy.profile_id
    erase(store, cathy.profile_id)
    left = docs_mentioning(store, "crm|0141", "loyalty|0235", "L-4320", cathy.profile_id)
    assert left == tombstones(cathy.profile_id)
    retried, = resolve(store, katherine)  # the message redelivered
    assert retried.action == "erased" and docs_mentioning(store, "crm|0141") == []


@pytest.mark.parametrize("cut_off", [None, "merges", "activity"])
def test_erasing_the_person_whose_moved_record_was_deleted_since_clears_it_everywhere(store, cut_off):
    """The crm record moved to Cathy is then deleted at its source: Cathy's profile no longer holds it, but its
    orders are still hers, and Liz's log still names it. Before, an erase followed the records the profile held
    only: both stayed. An erase cut off half-way is completed by the retry (her log, which names the deleted
    record, is deleted last)."""
    liz, cathy = _moved_by_change(store)
    save_activity(store, [Transaction(source="crm", order_id="O-7", customer_key="0141", amount="12",
                                      timestamp=datetime(2026, 9, 1, tzinfo=timezone.utc))])
    assert remove_record(store, "crm", "0141", settings=SETTINGS) == cathy
    assert [e["reason"] for e in list_merges(store, cathy)][-1] == "record_removed"
    assert [a["id"] for a in export(store, cathy)["activity"]] == ["transaction:crm:O-7"]
    if cut_off:
        with pytest.raises(Died):
            erase_profile(crashing(store, cut_off, "delete_item"), load_profile(store, cathy))
    erase(store, cathy)
    assert docs_mentioning(store, "crm|0141", "O-7", cathy) == tombstones(cathy)
    assert {e["reason"] for e in list_merges(store, liz)} == {"score", "record_changed"}


def test_erasing_the_person_leaves_a_deleted_records_key_used_again_by_another_person(store):
    """The source gives the deleted record's key to a new customer, who is Liz: that record is not Cathy's."""
    liz, cathy = _moved_by_change(store)
    remove_record(store, "crm", "0141", settings=SETTINGS)
    again, = resolve(store, CustomerRecord(source="crm", record_key="0141", given_name="Elizabeth",
                                           family_name="Hughes", phone="+44 7922 384976", country="GB"))
    assert again.profile_id == liz
    erase(store, cathy)
    assert "crm|0141" in [r["key"] for r in load_profile(store, liz)["records"]]
    assert resolve(store, CustomerRecord(source="crm", record_key="0141", given_name="Elizabeth", family_name="Hughes",
                                         phone="+44 7922 384976", country="GB"))[0].action == "unchanged"


def test_a_deleted_records_key_used_again_while_the_person_is_erased_is_left_to_the_new_record(store):
    """The key comes back, as Liz's new record, after the erase has listed the person's deleted records: the erase
    wrote the key's doc over the new record's, which then had a profile but no doc."""
    liz, cathy = _moved_by_change(store)
    remove_record(store, "crm", "0141", settings=SETTINGS)
    liz_again = CustomerRecord(source="crm", record_key="0141", given_name="Elizabeth", family_name="Hughes",
                               phone="+44 7922 384976", country="GB")
    comes_back = hooked(store, "records", "read_item_or_none", when=lambda item_id, *_: item_id == "crm|0141",
                        hook=lambda: resolve(store, liz_again))
    erase_profile(comes_back, load_profile(store, cathy))
    assert comes_back.intercepted
    assert "crm|0141" in [r["key"] for r in load_profile(store, liz)["records"]]
    assert store.container("records").read_item("crm|0141", "crm|0141")["profile_id"] == liz
    assert resolve(store, liz_again)[0].action == "unchanged"
    assert status_of(store, cathy) == 410


def test_an_erase_deletes_every_blocking_key_naming_the_person_also_those_no_record_of_theirs_gives(store):
    """Two versions of web|4 resolved at once leave keys of the first (Dan's name with Ann's birth date) naming the
    profile that version founded, merged into Ann's since; a third version gives other keys. The erase deleted the
    keys its records gave: those stayed, naming the erased person's ids, made of their birth date."""
    ann, = resolve(store, CustomerRecord(source="pos", record_key="8", given_name="Ann", family_name="Roe",
                                         birth_date="1980-01-02", loyalty_id="L2"))
    dan = CustomerRecord(source="web", record_key="4", given_name="Dan", family_name="Roe", birth_date="1980-01-02",
                         email="dan.roe@shopmail.net", phone="+447911123459")
    bob = CustomerRecord(source="web", record_key="4", given_name="Bob", family_name="Lee", phone="+447911123457",
                         loyalty_id="L2")
    racing = hooked(store, "blocking", "replace_item", hook=lambda: resolve(store, bob))
    resolve(racing, dan)
    assert racing.intercepted
    resolve(store, bob.model_copy(update={"postcode": "LS1 4AB"}))
    assert load_profile(store, ann.profile_id)["id"] == ann.profile_id
    erase(store, ann.profile_id)
    assert [doc["id"] for doc in store.container("blocking").query_items()] == []


# --- a profile split from the person's before its id was used again ---------------------------------------------

def _split_then_refounded(store):
    """Elizabeth's web record is split out of her loyalty profile; the loyalty record is deleted at its source and
    sent again, founding a profile under the same id, which never met the split one. Returns (that id, split)."""
    person = {"given_name": "Elizabeth", "family_name": "Okafor", "country": "GB",
              "email": "elizabeth.okafor11@gmail.com"}
    loyalty = CustomerRecord(source="loyalty", record_key="1099", loyalty_id="L-9132", **person)
    first, _ = resolve(store, loyalty, CustomerRecord(source="web", record_key="1127", birth_date="1995-10-15",
                                                      phone="+44 20 7494 9633", **person))
    split = split_record(store, first.profile_id, "web|1127", settings=SETTINGS)
    remove_record(store, "loyalty", "1099", settings=SETTINGS)
    again, = resolve(store, loyalty)
    assert again.profile_id == first.profile_id and load_profile(store, again.profile_id)["never_match"] == []
    assert set(load_profile(store, split)["never_match"]) == {"loyalty|1099", first.profile_id}
    return first.profile_id, split


def test_erasing_a_refounded_profile_clears_the_profile_split_from_its_id(store):
    refounded, split = _split_then_refounded(store)
    erase(store, refounded)
    assert docs_mentioning(store, "loyalty|1099", "L-9132", refounded) == tombstones(refounded)
    profile = load_profile(store, split)
    assert profile["never_match"] == [] and profile["records"][0]["link"] == {"reason": "split", "from": "erased"}
    entry, = list_merges(store, split)
    assert (entry["reason"], entry["split_from"], entry["records"]) == ("split", "erased", ["web|1127"])


@pytest.mark.parametrize("container", ["merges", "profiles"])
def test_an_erase_of_a_refounded_profile_cut_off_while_clearing_others_is_completed_by_the_retry(store, container):
    refounded, split = _split_then_refounded(store)
    _erase_cut_off_then_retried(store, container, refounded)
    assert docs_mentioning(store, "loyalty|1099", refounded) == tombstones(refounded)
    assert load_profile(store, split)["records"][0]["link"] == {"reason": "split", "from": "erased"}
