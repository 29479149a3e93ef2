"""repair_index (shared/identity/repair.py) and `ucp repair-index`: each kind of index finding the audit names is
made to agree with the profiles again, on memory and Cosmos; a second run finds nothing; a worker linking meanwhile
keeps what its record gives. A run over the documents written since a time (the hourly timer's) finds what involves
them and reads nothing else."""
from __future__ import annotations

import json
import time

import pytest

from shared.audit import audit_store
from shared.cli import main
from shared.identity import (find_profile_id, get_profile, remove_record, repair_index, repair_window,
                             split_record)
from shared.identity.repair import REPAIR_CHUNK
from shared.identity.docs import profile_id_for_record
from shared.identity.maintenance import keys_given

from .store_faults import Died, crashing, hooked
from .test_identity_recovery import holders
from .test_identity_shared_identifiers import HOME, PHONE_ID, SETTINGS, person, phone_doc, resolve

ANN_EMAIL = "email:ann@lee.org"
BIRTH_KEY = "dob:19800102|n:L000"  # the key of a Lee born on 1980-01-02 (matching.blocking_keys)
FINDINGS = ("stale_keys", "missing_keys", "dead_keys", "stale_identifiers", "unlisted_identifiers",
            "unindexed_identifiers", "dead_identifiers", "claimed", "misdirected_records",
            "records_in_two_profiles", "records_held_when_gone", "aliases_unlisted", "stale_merged_ids",
            "orphan_aliases", "stale_holders")


def household(store):
    """Ann and Bob Lee: one profile each, both giving the home phone (Ann holds it), each with a birth date."""
    ann, bob = resolve(store, person("pos", "1", "Ann", phone=HOME, email="ann@lee.org", birth_date="1975-05-06"),
                       person("pos", "2", "Bob", phone=HOME, email="bob@lee.org", birth_date="1977-07-08"))
    assert ann != bob and find_profile_id(store, "phone", HOME) == ann
    return ann, bob


def violations(store):
    return audit_store(store).as_dict()["violations"]


def found(counts):
    return {kind: counts[kind] for kind in FINDINGS if counts[kind]}


def own_key(store, profile_id, other_id):
    """A blocking key the profile's records give and the other's do not."""
    return sorted(keys_given(get_profile(store, profile_id)) - keys_given(get_profile(store, other_id)))[0]


def change(container, item_id, **fields):
    doc = container.read_item(item_id, item_id)
    container.replace_item({**doc, **fields}, etag=doc["_etag"])


def unlist(store, profile_id, iid):
    profile = get_profile(store, profile_id)
    change(store.container("profiles"), profile_id, identifiers=[i for i in profile["identifiers"] if i != iid])


def stale_key(store, ann, bob):
    key = own_key(store, bob, ann)
    change(store.container("blocking"), key, profile_ids=[bob, ann])
    return "blocking_names_non_giver", "stale_keys"


def missing_key(store, ann, bob):
    store.container("blocking").delete_item(own_key(store, ann, bob), own_key(store, ann, bob))
    return "profile_blocking_unindexed", "missing_keys"


def dead_key(store, ann, bob):
    key = own_key(store, ann, bob)
    change(store.container("blocking"), key, profile_ids=[ann, "p_gone"])
    return "blocking_points_to_dead_profile", "dead_keys"


def stale_identifier(store, ann, bob):
    store.container("identifiers").create_item({"id": "email:zed@lee.org", "type": "email", "profile_id": ann})
    return "identifier_not_held", "stale_identifiers"


def unlisted_identifier(store, ann, bob):
    unlist(store, ann, ANN_EMAIL)
    return "identifier_not_held", "unlisted_identifiers"


def unindexed_identifier(store, ann, bob):
    store.container("identifiers").delete_item(ANN_EMAIL, ANN_EMAIL)
    return "profile_identifier_unindexed", "unindexed_identifiers"


def dead_identifier(store, ann, bob):
    change(store.container("identifiers"), ANN_EMAIL, profile_id="p_gone")
    return "identifier_dangling", "dead_identifiers"


def held_by_no_one(store, ann, bob):
    """The household's phone, given by both members' records, leads nowhere and Ann no longer lists it."""
    store.container("identifiers").delete_item(PHONE_ID, PHONE_ID)
    unlist(store, ann, PHONE_ID)
    return "record_identifier_unindexed", "claimed"


# A full run, one over the last minute (every document of a test), and the same in chunks of one document (each
# chunk reading what its document touches): the same findings, the same mends.
SCOPES = {"everything": (None, REPAIR_CHUNK), "written_in_the_last_minute": (60, REPAIR_CHUNK),
          "written_in_the_last_minute_in_chunks_of_one": (60, 1)}


@pytest.fixture(params=SCOPES.values(), ids=SCOPES.keys())
def scope(request):
    """A function giving repair_index's scope keywords (`since`, as the repair runs, and `chunk`)."""
    seconds, chunk = request.param
    return lambda: {"since": None if seconds is None else int(time.time()) - seconds, "chunk": chunk}


@pytest.mark.parametrize("corrupt", [stale_key, missing_key, dead_key, stale_identifier, unlisted_identifier,
                                     unindexed_identifier, dead_identifier, held_by_no_one],
                         ids=lambda corrupt: corrupt.__name__)
def test_repair_index_mends_each_kind_of_finding(store, corrupt, scope):
    ann, bob = household(store)
    scope = scope()
    assert violations(store) == {}
    # A consistent store: nothing found, nothing written.
    assert found(repair_index(store, settings=SETTINGS, **scope)) == {}
    violation, kind = corrupt(store, ann, bob)
    assert violation in violations(store)
    counts = repair_index(store, settings=SETTINGS, **scope)
    assert found(counts) == {kind: 1} and counts["profiles"] == 2
    assert violations(store) == {}
    assert found(repair_index(store, settings=SETTINGS, **scope)) == {}
    # The index leads where the profiles say: each member's email to them, the shared phone to one of them.
    assert find_profile_id(store, "email", "ann@lee.org") == ann
    assert find_profile_id(store, "email", "bob@lee.org") == bob
    assert find_profile_id(store, "phone", HOME) in (ann, bob)
    assert store.container("identifiers").read_item_or_none("email:zed@lee.org", "email:zed@lee.org") is None
    # ... and resolution goes on from there: a new record of Ann's joins her by her email.
    assert resolve(store, person("web", "9", "Ann", email="ann@lee.org")) == [ann]
    assert violations(store) == {}


def resolving_as_the_birth_key_goes(store, profile_ids):
    """The store, with Ann's web record giving the birth date of BIRTH_KEY resolved (its profile id added to
    `profile_ids`) just before the key's document is deleted."""
    return hooked(store, "blocking", "delete_item", when=lambda item_id, *_, **__: item_id == BIRTH_KEY,
                  hook=lambda: profile_ids.extend(resolve(store, person("web", "9", "Ann", email="ann@lee.org",
                                                                        birth_date="1980-01-02"))))


def test_repair_index_beside_a_worker_linking_a_record_that_gives_the_stale_key_again(store, scope):
    """The key of a birth date Ann's record does not give names her (left by a version of a record that died). As
    the repair takes her off it, Ann's new record giving that birth date is linked: its worker finds her named
    under the key already and writes nothing. The repair reads her profile again after its release, and puts her
    back: the key still finds her."""
    ann, = resolve(store, person("pos", "1", "Ann", phone=HOME, email="ann@lee.org"))  # no birth date
    store.container("blocking").create_item({"id": BIRTH_KEY, "profile_ids": [ann]})
    linked = []
    racing = resolving_as_the_birth_key_goes(store, linked)
    counts = repair_index(racing, settings=SETTINGS, **scope())
    assert racing.intercepted and linked == [ann] and found(counts) == {"stale_keys": 1}
    assert BIRTH_KEY in keys_given(get_profile(store, ann))
    assert store.container("blocking").read_item(BIRTH_KEY, BIRTH_KEY)["profile_ids"] == [ann]
    assert violations(store) == {}


def test_repair_index_beside_a_worker_founding_again_the_profile_a_dead_key_names(store, scope):
    """A key names a profile that is gone (its only record deleted, the key left by a death). As the repair takes
    the id off it, the record is sent again: its worker founds the profile again, under the same id, and finds it
    named under the key already. The repair reads the profile after its write, and names it again."""
    gone = profile_id_for_record("web|9")
    store.container("blocking").create_item({"id": BIRTH_KEY, "profile_ids": [gone]})
    founded = []
    racing = resolving_as_the_birth_key_goes(store, founded)
    counts = repair_index(racing, settings=SETTINGS, **scope())
    assert racing.intercepted and founded == [gone] and found(counts) == {"dead_keys": 1}
    assert store.container("blocking").read_item(BIRTH_KEY, BIRTH_KEY)["profile_ids"] == [gone]
    assert violations(store) == {}


def test_repair_index_keeps_as_holders_only_live_profiles_giving_the_value(store):
    """The phone's holders name Bob (his record gives it), an alias merged into Bob, a profile gone and Ann, who
    holds it: each costs a profile read when a record gives the phone. Bob stays, once."""
    ann, bob = household(store)
    store.container("profiles").create_item({"id": "p_merged", "doc_type": "alias", "merged_into": bob})
    change(store.container("profiles"), bob, merged_from=["p_merged"])
    change(store.container("identifiers"), PHONE_ID, holders=[bob, "p_merged", "p_gone", ann])
    assert violations(store) == {}  # no finding of the audit's, yet reads for nothing
    assert found(repair_index(store, settings=SETTINGS)) == {"stale_holders": 3}
    assert phone_doc(store)["holders"] == [bob]
    assert found(repair_index(store, settings=SETTINGS)) == {}


def test_repair_index_beside_a_worker_linking_a_record_that_makes_a_dropped_holder_give_the_value(store, scope):
    """Cat is noted as a holder of the home phone her record does not give (left by a version of it). As the repair
    takes her off, her new record giving the phone is linked: its worker finds her noted already and writes nothing.
    The repair reads her profile again after its write, and notes her again."""
    ann, bob = household(store)
    cat, = resolve(store, person("pos", "3", "Cat", email="cat@lee.org", birth_date="1979-09-09"))
    change(store.container("identifiers"), PHONE_ID, holders=[bob, cat])
    linked = []
    racing = hooked(store, "identifiers", "replace_item", when=lambda body, **_: body["id"] == PHONE_ID,
                    hook=lambda: linked.extend(resolve(store, person("web", "4", "Cat", email="cat@lee.org",
                                                                     phone=HOME))))
    assert found(repair_index(racing, settings=SETTINGS, **scope())) == {"stale_holders": 1}
    assert racing.intercepted and linked == [cat]
    assert sorted(phone_doc(store)["holders"]) == sorted([bob, cat])
    assert violations(store) == {}


def test_repair_index_points_an_idle_records_doc_at_the_profile_holding_its_record(store):
    """A records doc naming another profile than the one holding its record (a version of the record that lost its
    commit, then died): pointed back once idle. Written recently, it is left alone: a worker moving the record names
    the profile it moves it to first, and goes on from there if it dies."""
    ann, bob = household(store)
    change(store.container("records"), "pos|1", profile_id=bob)
    assert "record_doc_points_elsewhere" in violations(store)
    assert found(repair_index(store, settings=SETTINGS)) == {}  # not idle for merge_idle_seconds yet
    assert store.container("records").read_item("pos|1", "pos|1")["profile_id"] == bob
    assert found(repair_index(store, settings=SETTINGS, idle_seconds=0)) == {"misdirected_records": 1}
    assert store.container("records").read_item("pos|1", "pos|1")["profile_id"] == ann
    assert violations(store) == {}


def beside_bobs_record(store, ann, bob, entry, ann_profile=None):
    change(store.container("profiles"), bob, records=[*get_profile(store, bob)["records"], entry])


def in_a_profile_of_its_own(store, ann, bob, entry, ann_profile=None):
    """`ann_profile`: Ann's profile as it was, when it is gone now."""
    profile = {**(ann_profile or get_profile(store, ann)), "id": "p_founded_by_the_dead", "records": [entry],
               "merged_from": []}
    store.container("profiles").create_item({k: v for k, v in profile.items() if not k.startswith("_")})


@pytest.mark.parametrize("left_behind", [beside_bobs_record, in_a_profile_of_its_own], ids=lambda f: f.__name__)
def test_repair_index_keeps_a_record_two_profiles_hold_only_where_its_commit_is(store, left_behind, scope):
    """An attempt of another version of Ann's record placed it in a second profile and died before its commit, and
    no delivery of that version came back (its message poisoned): the record is in two profiles. Once idle, its
    entry is taken out of the profile its commit does not name, with what only it gave there (a profile it founded
    goes); the commit's profile keeps it."""
    ann, bob = household(store)
    entry = next(r for r in get_profile(store, ann)["records"] if r["key"] == "pos|1")
    left_behind(store, ann, bob, entry)
    assert "record_in_two_profiles" in violations(store)
    # Not idle for merge_idle_seconds yet: left (the profile holding it is indexed under what the entry gives).
    assert repair_index(store, settings=SETTINGS, **scope())["records_in_two_profiles"] == 0
    assert len(holders(store, "pos|1")) == 2
    assert repair_index(store, settings=SETTINGS, idle_seconds=0, **scope())["records_in_two_profiles"] == 1
    assert holders(store, "pos|1") == [ann]
    assert store.container("records").read_item("pos|1", "pos|1")["profile_id"] == ann
    assert violations(store) == {}
    assert sorted(p["id"] for p in store.container("profiles").query_items(("doc_type", "=", "profile"))) == sorted(
        [ann, bob])  # a profile the dead attempt founded went with the record's entry
    assert find_profile_id(store, "email", "ann@lee.org") == ann
    assert resolve(store, person("web", "9", "Ann", email="ann@lee.org")) == [ann]
    assert violations(store) == {}


@pytest.mark.parametrize("left_behind", [beside_bobs_record, in_a_profile_of_its_own], ids=lambda f: f.__name__)
@pytest.mark.parametrize("gone", ["removed", "erased"])
def test_repair_index_takes_a_record_deleted_at_its_source_or_erased_out_of_a_profile_still_holding_it(store, gone,
                                                                                                    left_behind):
    """An attempt of a version of Ann's record placed it in Bob's profile (or founded one for it) and died; the record
    was then deleted at its source (or its person erased) before the removal took out what the records doc had named
    before. Once idle, the record leaves the profile still holding it, with what only it gave there; Bob keeps his
    own. A profile it founded goes, and so does its source identifier, which the repair had indexed first as the
    profile listed it (races bench seed 807901: left leading to the profile gone, `identifier_dangling`)."""
    from shared.privacy import erase_profile

    ann, bob = household(store)
    ann_profile = get_profile(store, ann)
    entry = next(r for r in ann_profile["records"] if r["key"] == "pos|1")
    if gone == "removed":
        remove_record(store, "pos", "1", settings=SETTINGS)
    else:
        erase_profile(store, get_profile(store, ann))
    left_behind(store, ann, bob, entry, ann_profile)
    assert "record_doc_missing" in violations(store)
    assert repair_index(store, settings=SETTINGS)["records_held_when_gone"] == 0  # not idle yet
    assert repair_index(store, settings=SETTINGS, idle_seconds=0)["records_held_when_gone"] == 1
    assert holders(store, "pos|1") == [] and [r["key"] for r in get_profile(store, bob)["records"]] == ["pos|2"]
    assert find_profile_id(store, "email", "ann@lee.org") is None
    assert find_profile_id(store, "email", "bob@lee.org") == bob
    assert violations(store) == {}


@pytest.mark.parametrize("left_by_ann", [False, True], ids=["listed_by_no_one", "still_listed_where_it_was"])
def test_repair_index_lists_an_alias_at_the_profile_it_leads_to(store, left_by_ann, scope):
    """A worker moving the ids merged into Ann's profile after the record that brought them (its new version,
    another person's) repointed an alias at Bob's profile and died before Bob listed it (and before Ann forgot it),
    and no delivery came back: the alias leads to a profile that does not record the merge (nor reads its merge log
    as its own, nor frees it from never-match). Once idle, Bob lists it and Ann no longer does; the id still leads to
    Bob."""
    ann, bob = household(store)
    store.container("profiles").create_item({"id": "p_merged", "doc_type": "alias", "merged_into": bob})
    change(store.container("profiles"), bob, never_match=["p_merged"])
    if left_by_ann:
        change(store.container("profiles"), ann, merged_from=["p_merged"])
    assert "alias_not_in_merged_from" in violations(store)
    assert repair_index(store, settings=SETTINGS, **scope())["aliases_unlisted"] == 0  # not idle yet
    assert found(repair_index(store, settings=SETTINGS, idle_seconds=0, **scope())) == {"aliases_unlisted": 1}
    assert get_profile(store, bob)["merged_from"] == ["p_merged"] and get_profile(store, bob)["never_match"] == []
    assert get_profile(store, ann)["merged_from"] == []
    assert get_profile(store, "p_merged")["id"] == bob
    assert violations(store) == {}
    assert found(repair_index(store, settings=SETTINGS, idle_seconds=0, **scope())) == {}


@pytest.mark.parametrize("listed", ["p_gone", "bob"])
def test_repair_index_forgets_an_id_a_profile_lists_as_merged_that_does_not_lead_to_it(store, listed, scope):
    """A removal deleted the alias of an id its record had brought, and died before the profile forgot the id (its
    message poisoned); or the id names a profile of its own now (here Bob's). Listed as merged into Ann, the id would
    be dropped from the blocking keys her records write (Bob no longer found by them) and its merge log read as hers
    in an export or an erase. Once idle, Ann forgets it; Bob stays as he is."""
    ann, bob = household(store)
    merged = bob if listed == "bob" else listed
    change(store.container("profiles"), ann, merged_from=[merged])
    assert "merged_id_not_alias" in violations(store)
    assert repair_index(store, settings=SETTINGS, **scope())["stale_merged_ids"] == 0  # not idle yet
    assert found(repair_index(store, settings=SETTINGS, idle_seconds=0, **scope())) == {"stale_merged_ids": 1}
    assert get_profile(store, ann)["merged_from"] == [] and get_profile(store, bob)["id"] == bob
    assert violations(store) == {}
    assert found(repair_index(store, settings=SETTINGS, idle_seconds=0, **scope())) == {}
    assert resolve(store, person("web", "9", "Ann", email="ann@lee.org")) == [ann]
    assert violations(store) == {}


def test_repair_index_drops_an_alias_leading_to_no_profile(store, scope):
    """A removal took down the profile an id had been merged into (its last record deleted) and died before deleting
    the id's alias, and never came back (its message poisoned): the alias names no one, nor do the keys and the
    history under it. Once idle, they go as the removal would have let them go."""
    ann, bob = household(store)
    store.container("profiles").create_item({"id": "p_merged", "doc_type": "alias", "merged_into": "p_gone"})
    store.container("merges").upsert_item({"id": "m_old", "profile_id": "p_merged", "status": "done"})
    key = own_key(store, ann, bob)
    change(store.container("blocking"), key, profile_ids=[ann, "p_merged"])
    assert violations(store) == {"orphan_alias": 1}
    assert repair_index(store, settings=SETTINGS, **scope())["orphan_aliases"] == 0  # not idle yet
    assert found(repair_index(store, settings=SETTINGS, idle_seconds=0, **scope())) == {"orphan_aliases": 1}
    assert store.container("profiles").read_item_or_none("p_merged", "p_merged") is None
    assert list(store.container("merges").query_items(partition_key="p_merged")) == []
    assert store.container("blocking").read_item(key, key)["profile_ids"] == [ann]
    assert violations(store) == {}
    assert found(repair_index(store, settings=SETTINGS, idle_seconds=0, **scope())) == {}


def test_repair_index_leaves_a_profile_in_a_merge_to_its_saga(store):
    """A merge cut off (marked, not folded) and not idle long enough for the sweep: the repair neither finishes it
    nor touches the profiles' documents; it counts them."""
    ann, bob = household(store)
    change(store.container("profiles"), bob, pending_merge={"into": ann, "merge_id": "m_test", "at": "now"})
    stale_key(store, bob, ann)  # Bob named under a key of Ann's
    counts = repair_index(store, settings=SETTINGS)
    assert counts["in_saga"] == 1 and counts["merges_finished"] == 0 and found(counts) == {}
    assert bob in store.container("blocking").read_item(own_key(store, ann, bob), own_key(store, ann, bob))[
        "profile_ids"]


@pytest.mark.parametrize("last_record", [False, True], ids=["one_of_two_records", "the_profiles_last_record"])
def test_repair_index_leaves_a_removal_cut_off_before_its_tombstone_to_its_retry(store, scope, last_record):
    """A delete at the source took Ann's web record out of her profile (deleting the profile with it when it was
    her last record) and its worker died before the tombstone: the records doc and the source identifier still name
    the profile. The repair, run before the delete's retry, took the source identifier for a stale one and deleted
    it; the retry then took the records doc without its source identifier for a version being resolved and waited
    for it for good (ConcurrencyConflict). The repair leaves that identifier to the retry, which finishes the
    removal."""
    ann, = resolve(store, person("web", "2", "Ann", email="ann@lee.org"))
    if not last_record:
        assert resolve(store, person("pos", "1", "Ann", email="ann@lee.org")) == [ann]
    with pytest.raises(Died):
        remove_record(crashing(store, "records", "replace_item"), "web", "2", settings=SETTINGS)
    assert store.container("identifiers").read_item("source:web|2", "source:web|2")["profile_id"] == ann
    counts = repair_index(store, settings=SETTINGS, **scope())
    assert counts["removals_in_flight"] == 1 and found(counts) == {}
    assert store.container("identifiers").read_item_or_none("source:web|2", "source:web|2") is not None
    assert remove_record(store, "web", "2", settings=SETTINGS) == ann  # the delete's retry
    assert store.container("records").read_item("web|2", "web|2")["removed_at"]
    assert store.container("identifiers").read_item_or_none("source:web|2", "source:web|2") is None
    # Ann's email leads to her pos record's profile, or, her web record gone with her profile, to no one.
    assert find_profile_id(store, "email", "ann@lee.org") == (None if last_record else ann)
    assert violations(store) == {}
    assert found(repair_index(store, settings=SETTINGS, **scope())) == {}


def test_repair_index_beside_a_split_moving_its_records_identifiers_leaves_the_new_profile_to_it(store, scope):
    """Ann's web record, with an email of its own, is split out of her profile. The split marks the old profile,
    creates the new one listing the record's identifiers, then points each at it. A repair run just before it points
    the source identifier found the new profile (not marked) listing an identifier that led to the old one: it
    took the identifier off the new profile and noted it a holder; the split, its write refused (412), started
    again from the new profile as the repair left it, and the source identifier kept leading to the old profile,
    which no longer lists it (random operations racing the repair, tests/test_identity_random_operations.py: seeds
    125, 134 and 167). The repair leaves the profile a split is moving a record into to that split, as it leaves
    the profile being split."""
    ann, = resolve(store, person("pos", "1", "Ann", email="ann@lee.org", phone=HOME))
    assert resolve(store, person("web", "2", "Ann", email="ann.web@lee.org", phone=HOME)) == [ann]
    repairs = []
    racing = hooked(store, "identifiers", "replace_item", when=lambda body, **_: body["id"] == "source:web|2",
                    hook=lambda: repairs.append(repair_index(store, settings=SETTINGS, **scope())))
    new_id = split_record(racing, ann, "web|2", settings=SETTINGS)
    assert racing.intercepted and found(repairs[0]) == {}
    assert get_profile(store, new_id)["identifiers"] == ["email:ann.web@lee.org", "source:web|2"]
    assert find_profile_id(store, "email", "ann.web@lee.org") == new_id
    assert store.container("identifiers").read_item("source:web|2", "source:web|2")["profile_id"] == new_id
    assert violations(store) == {}


def test_ucp_repair_index_mends_the_configured_store(app_env, cosmos_store, capsys):
    ann, bob = household(cosmos_store)
    unindexed_identifier(cosmos_store, ann, bob)
    assert main(["repair-index"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert found(out) == {"unindexed_identifiers": 1} and out["profiles"] == 2
    assert phone_doc(cosmos_store)["profile_id"] == ann
    assert violations(cosmos_store) == {}


def next_second() -> int:
    """A time after every write so far, once it has come (`_ts` counts whole seconds)."""
    after = int(time.time()) + 1
    time.sleep(max(0.0, after - time.time()))
    return after


def test_repair_index_since_finds_what_the_documents_written_since_involve(store):
    """Findings left before `since` wait for a full run, or for a write that brings them in: a new record of Ann's
    brings her profile, its index documents and those naming her, and so a key of Bob's naming her too (written
    before, as her record's older version would leave it), not Bob's own email, which leads nowhere."""
    ann, bob = household(store)
    stale_key(store, ann, bob)
    store.container("identifiers").delete_item("email:bob@lee.org", "email:bob@lee.org")
    since = next_second()
    counts = repair_index(store, settings=SETTINGS, since=since)
    assert found(counts) == {} and counts["profiles"] == 0
    assert resolve(store, person("web", "8", "Ann", email="ann@lee.org")) == [ann]
    counts = repair_index(store, settings=SETTINGS, since=since)
    assert found(counts) == {"stale_keys": 1} and counts["profiles"] == 1
    assert set(violations(store)) == {"profile_identifier_unindexed", "record_identifier_unindexed"}  # Bob's email
    assert found(repair_index(store, settings=SETTINGS)) == {"unindexed_identifiers": 1}
    assert violations(store) == {}


def test_repair_index_since_follows_a_recent_document_to_profiles_and_aliases_written_before(store):
    """An identifier document written since names a profile gone, and Ann, who lists the value, was written before:
    she is found by a query on the listing (the scope holds no profile). Another names an alias of Bob's, and the
    home phone's holders name it too: its chain is read to Bob, who takes his email back and stays a holder."""
    ann, bob = household(store)
    store.container("profiles").create_item({"id": "p_merged", "doc_type": "alias", "merged_into": bob})
    change(store.container("profiles"), bob, merged_from=["p_merged"])
    since = next_second()
    change(store.container("identifiers"), ANN_EMAIL, profile_id="p_gone")
    change(store.container("identifiers"), "email:bob@lee.org", profile_id="p_merged")
    change(store.container("identifiers"), PHONE_ID, holders=["p_merged"])
    assert {"identifier_dangling", "identifier_points_to_alias"} <= set(violations(store))
    counts = repair_index(store, settings=SETTINGS, since=since)
    assert found(counts) == {"dead_identifiers": 2, "stale_holders": 1} and counts["profiles"] == 0
    assert find_profile_id(store, "email", "ann@lee.org") == ann
    assert find_profile_id(store, "email", "bob@lee.org") == bob
    assert phone_doc(store)["holders"] == [bob]
    assert violations(store) == {}


def test_the_apps_hourly_timer_repairs_what_was_written_in_its_window(app_env, monkeypatch, caplog):
    """repair_recent_index (function_app) repairs the configured store (Cosmos here) over the last
    UCP_REPAIR_WINDOW_SECONDS; 0 turns it off. A run that mended something logs a warning (counts, no values), one
    that found nothing an info line."""
    from azure.functions.timer import TimerRequest

    from shared.settings import get_settings
    from shared.store import open_store

    from .conftest import app_functions

    store = open_store(app_env)
    store.bootstrap()
    ann, bob = household(store)
    unindexed_identifier(store, ann, bob)
    timer = app_functions()["repair_recent_index"]
    assert timer.get_trigger().get_binding_name() == "timerTrigger" and timer.get_trigger().schedule == "0 10 * * * *"
    monkeypatch.setenv("UCP_REPAIR_WINDOW_SECONDS", "0")
    get_settings.cache_clear()
    timer.get_user_function()(TimerRequest(past_due=False))
    assert "profile_identifier_unindexed" in violations(store)
    monkeypatch.setenv("UCP_REPAIR_WINDOW_SECONDS", "3600")
    get_settings.cache_clear()
    with caplog.at_level("INFO", logger="functions.resolve"):
        timer.get_user_function()(TimerRequest(past_due=False))
        timer.get_user_function()(TimerRequest(past_due=False))
    assert violations(store) == {} and find_profile_id(store, "email", "ann@lee.org") == ann
    runs = [r for r in caplog.records if r.getMessage().startswith("index repair over the last 3600 s")]
    assert [r.levelname for r in runs] == ["WARNING", "INFO"]
    assert "'unindexed_identifiers': 1" in runs[0].getMessage() and "ann@lee.org" not in caplog.text


def test_ucp_repair_index_since_seconds(app_env, cosmos_store, capsys):
    ann, bob = household(cosmos_store)
    unindexed_identifier(cosmos_store, ann, bob)
    assert main(["repair-index", "--since-seconds", "600"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert found(out) == {"unindexed_identifiers": 1} and out["profiles"] == 2
    assert violations(cosmos_store) == {}


def test_repair_window_starts_no_chunk_past_its_budget(store):
    """The timer's run over the last UCP_REPAIR_WINDOW_SECONDS stops starting chunks once its budget is spent (the
    host stops a function at its timeout): counted as cut short, the rest left to the next run."""
    ann, bob = household(store)
    unindexed_identifier(store, ann, bob)
    counts = repair_window(store, settings=SETTINGS.model_copy(update={"repair_window_seconds": 600}),
                           budget_seconds=-1)
    assert counts["cut_short"] == 1 and counts["profiles"] == 0 and found(counts) == {}
    assert "profile_identifier_unindexed" in violations(store)
    counts = repair_window(store, settings=SETTINGS.model_copy(update={"repair_window_seconds": 600}))
    assert counts["cut_short"] == 0 and found(counts) == {"unindexed_identifiers": 1}
    assert repair_window(store, settings=SETTINGS.model_copy(update={"repair_window_seconds": 0})) is None
    assert violations(store) == {}


def test_a_merge_hands_its_absorbed_profiles_holder_notes_to_the_survivor(store):
    """Bob, noted as a holder of the home phone Ann holds, is merged into another profile of his: the phone's
    holders name that profile, not the alias, and the repair finds nothing to prune."""
    from shared.identity import Resolver
    from shared.identity.merge import merge_profiles

    ann, bob = household(store)
    other, = resolve(store, person("web", "5", "Robert", email="rob@lee.org", birth_date="1990-01-01"))
    assert other not in (ann, bob) and phone_doc(store)["holders"] == [bob]
    merge_profiles(Resolver(store, settings=SETTINGS).ctx, other, bob, {"reason": "test"})
    assert phone_doc(store)["holders"] == [other]
    assert found(repair_index(store, settings=SETTINGS)) == {} and violations(store) == {}
