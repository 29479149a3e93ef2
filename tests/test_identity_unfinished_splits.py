"""A split whose worker died and whose caller never asked again: the profile stays marked (`splitting`) until its
pointers are all moved, so the audit reports it, whoever reads the profile finishes it (a merge absorbing it, an
erase of either person), and the timer's sweep (finish_unfinished_splits) finishes the rest.

Each test cuts a split off at one write on the store of the test (memory and Cosmos), then checks the lookups and
the store's invariant audit (shared/audit.py)."""
from __future__ import annotations

import threading

import pytest

from shared.identity import find_profile_id, finish_unfinished_splits, get_profile, remove_record, split_record
from shared.privacy import erase_profile

from .store_faults import Died, crashing, hooked
from .test_identity_recovery import SETTINGS, holders, rec, resolve, violations

ANN = dict(given_name="Ann", family_name="Lee")
PHONE = "+447911123456"


def _ann_with_a_web_record(store):
    """Ann's profile: pos|1 and web|2 share her email; the phone is web|2's alone (it follows a split of web|2)."""
    ann, = resolve(store, rec("pos", "1", email="ann.lee@shopmail.net", **ANN))
    resolve(store, rec("web", "2", email="ann.lee@shopmail.net", phone=PHONE, given_name="Ann"))
    return ann.profile_id


def _split_cut_off(store, profile_id, container, method, *, nth=1):
    with pytest.raises(Died):
        split_record(crashing(store, container, method, nth=nth), profile_id, "web|2", settings=SETTINGS)


def _split_into(store, profile_id):
    return [m["split_into"] for m in store.container("merges").query_items(partition_key=profile_id)
            if m.get("split_into")]


def test_a_split_cut_off_while_moving_its_pointers_is_reported_and_finished_by_the_sweep(store):
    pid = _ann_with_a_web_record(store)
    _split_cut_off(store, pid, "identifiers", "replace_item")  # both profiles written, no pointer moved
    assert "unfinished_split" in violations(store)
    assert find_profile_id(store, "phone", PHONE) == pid  # still Ann's old profile, which no longer holds web|2
    assert finish_unfinished_splits(store, settings=SETTINGS) == []  # just written: left to a worker still running
    assert finish_unfinished_splits(store, settings=SETTINGS, idle_seconds=0) == [pid]
    new_id, = [p for p in holders(store, "web|2")]
    assert new_id != pid and find_profile_id(store, "phone", PHONE) == new_id
    assert store.container("records").read_item("web|2", "web|2")["profile_id"] == new_id
    assert _split_into(store, pid) == [new_id]
    assert violations(store) == {}
    assert finish_unfinished_splits(store, settings=SETTINGS, idle_seconds=0) == []  # nothing left marked
    assert split_record(store, pid, "web|2", settings=SETTINGS) == new_id  # the caller's late retry: done already


def test_a_split_cut_off_before_it_took_its_record_out_is_carried_out_by_the_sweep(store):
    pid = _ann_with_a_web_record(store)
    _split_cut_off(store, pid, "profiles", "replace_item", nth=2)  # marked, new profile created, old one unchanged
    assert holders(store, "web|2") != [pid]  # its copy: the audit reports the record in two profiles
    assert finish_unfinished_splits(store, settings=SETTINGS, idle_seconds=0) == [pid]
    new_id, = holders(store, "web|2")
    assert new_id != pid and find_profile_id(store, "phone", PHONE) == new_id
    assert "web|2" in get_profile(store, pid)["never_match"]
    assert violations(store) == {}


def test_a_split_carried_out_after_its_profile_changed_takes_what_its_record_gives_alone_now(store):
    """Cut off after creating its new profile; pos|1 then stops giving Ann's email, which only web|2 gives now. The
    new profile kept the identifiers of its creation, without the email, and the split carried out later took the
    email off the old profile's list: its index led to a profile that did not list it."""
    pid = _ann_with_a_web_record(store)
    _split_cut_off(store, pid, "profiles", "replace_item", nth=2)  # marked, new profile created, old one unchanged
    resolve(store, rec("pos", "1", email="ann.lee@workmail.net", **ANN))  # stays Ann's, with another email
    new_id = split_record(store, pid, "web|2", settings=SETTINGS)
    assert find_profile_id(store, "email", "ann.lee@shopmail.net") == new_id
    assert find_profile_id(store, "email", "ann.lee@workmail.net") == pid
    assert violations(store) == {}


def test_a_split_cut_off_after_its_log_is_unmarked_by_the_sweep(store):
    pid = _ann_with_a_web_record(store)
    _split_cut_off(store, pid, "profiles", "replace_item", nth=3)  # everything written but the mark's clearing
    new_id, = holders(store, "web|2")
    assert find_profile_id(store, "phone", PHONE) == new_id
    assert set(violations(store)) == {"unfinished_split"}
    assert finish_unfinished_splits(store, settings=SETTINGS, idle_seconds=0) == [pid]
    assert _split_into(store, pid) == [new_id]
    assert violations(store) == {}


def test_a_merge_absorbing_the_old_profile_finishes_the_split_first(store):
    """The loyalty profile is older, so a record joining it to Ann's absorbs Ann's profile. Absorbed while its split
    was moving pointers, the old profile's mark went with it and web|2's phone led to an alias of the loyalty
    profile, which does not hold web|2."""
    older, = resolve(store, rec("crm", "0", loyalty_id="L-1001", **ANN))
    pid = _ann_with_a_web_record(store)
    _split_cut_off(store, pid, "identifiers", "replace_item")
    joined, = resolve(store, rec("crm", "3", email="ann.lee@shopmail.net", loyalty_id="L-1001", **ANN))
    new_id, = holders(store, "web|2")
    assert joined.profile_id == older.profile_id == get_profile(store, pid)["id"] != new_id
    assert sorted(r["key"] for r in get_profile(store, pid)["records"]) == ["crm|0", "crm|3", "pos|1"]
    assert find_profile_id(store, "phone", PHONE) == new_id
    assert violations(store) == {}


@pytest.mark.parametrize("last_record_goes", ["deleted", "changed to another person"])
def test_the_old_profiles_last_record_leaving_finishes_the_split_first(store, last_record_goes):
    """web|2 is out of Ann's old profile, its pointers not moved; pos|1, its last record, then leaves, and the
    profile goes with it (its mark too). Web|2's identifiers led to a deleted profile."""
    pid = _ann_with_a_web_record(store)
    _split_cut_off(store, pid, "identifiers", "replace_item")
    if last_record_goes == "deleted":
        remove_record(store, "pos", "1", settings=SETTINGS)
    else:
        resolve(store, rec("pos", "1", email="zed.moss@shopmail.net", given_name="Zed", family_name="Moss"))
    new_id, = holders(store, "web|2")
    assert find_profile_id(store, "phone", PHONE) == new_id != pid
    assert store.container("records").read_item("web|2", "web|2")["profile_id"] == new_id
    assert violations(store) == {}


def test_an_erase_of_the_new_profiles_person_finishes_the_split_into_it_first(store):
    """The split moved the phone to the new profile, not yet web|2's source identifier. Erased then, the new
    profile's person left that identifier naming Ann's old profile, which does not hold the record."""
    pid = _ann_with_a_web_record(store)
    _split_cut_off(store, pid, "identifiers", "replace_item", nth=2)  # phone moved, the source identifier not
    new_id = find_profile_id(store, "phone", PHONE)
    assert new_id != pid
    erase_profile(store, get_profile(store, new_id))
    assert holders(store, "web|2") == [] and find_profile_id(store, "phone", PHONE) is None
    assert store.container("identifiers").read_item_or_none("source:web|2", "source:web|2") is None
    assert [r["key"] for r in get_profile(store, pid)["records"]] == ["pos|1"]
    assert violations(store) == {}


def test_the_apps_timer_finishes_a_split_cut_off_once_idle_long_enough(app_env, monkeypatch):
    """The app's timer (function_app) sweeps the store the app is configured with (Cosmos here), leaving profiles
    written less than UCP_SPLIT_IDLE_SECONDS ago to the worker that may still be splitting them."""
    from azure.functions.timer import TimerRequest

    from shared.settings import get_settings
    from shared.store import open_store

    from .conftest import app_functions

    store = open_store(app_env)
    store.bootstrap()
    pid = _ann_with_a_web_record(store)
    _split_cut_off(store, pid, "identifiers", "replace_item")
    timer = app_functions()["finish_stale_splits"]
    assert timer.get_trigger().get_binding_name() == "timerTrigger"
    timer.get_user_function()(TimerRequest(past_due=False))
    assert holders(store, "web|2") != [] and "unfinished_split" in violations(store)  # fresh: left alone
    monkeypatch.setenv("UCP_SPLIT_IDLE_SECONDS", "0")
    get_settings.cache_clear()
    timer.get_user_function()(TimerRequest(past_due=False))
    new_id, = holders(store, "web|2")
    assert find_profile_id(store, "phone", PHONE) == new_id != pid
    assert violations(store) == {}


# --- a split moving its pointers while a record of either profile changes ----------------------------------------

def test_a_split_record_changing_to_join_another_profile_while_its_pointers_move_ends_there(store):
    """web|8 is split out of the profile it shares with web|3 (a loyalty card). While the split moves its pointers,
    its new version (Cat's phone) joins Cat's profile, which absorbs the new profile. The split then pointed the
    record's doc and blocking keys at the absorbed id, which the record's removal later deleted; and then put Cat's
    profile under the keys of the version it had read."""
    cat, = resolve(store, rec("web", "10", given_name="Cat", family_name="Roe", phone="+447911123458"))
    pid = resolve(store, rec("web", "3", given_name="Cat", family_name="Roe", phone="+447911123459", loyalty_id="L3"),
                  rec("web", "8", given_name="Bob", family_name="Lee", birth_date="1980-01-02", email="bob@lee.org",
                      phone="+447911123457", loyalty_id="L3"))[0].profile_id
    changed = rec("web", "8", given_name="Cat", family_name="Roe", phone="+447911123458")
    racing = hooked(store, "blocking", "read_item_or_none", hook=lambda: resolve(store, changed))
    split_record(racing, pid, "web|8", settings=SETTINGS)
    assert racing.intercepted
    assert holders(store, "web|8") == [cat.profile_id]
    assert store.container("records").read_item("web|8", "web|8")["profile_id"] == cat.profile_id
    # Not under the keys of the version the split read (Bob's birth date): Cat's records do not give them.
    assert [b["id"] for b in store.container("blocking").query_items() if b["id"].startswith("dob:19800102")] == []
    assert violations(store) == {}
    remove_record(store, "web", "8", settings=SETTINGS)
    assert violations(store) == {}


def test_a_new_version_of_the_split_record_linked_while_the_split_moves_leaves_the_keys_its_old_version_gave(store):
    """pos|7 is split out of the profile it shares with web|1 (an email). Before the split writes the old profile,
    pos|7's new version (another email) finishes the split and replaces its entry in the new profile, taking the
    new profile off the old email's key. The split then put it back under that key, which went on naming the new
    profile after pos|7 was deleted and the profile with it."""
    ann = dict(given_name="Ann", family_name="Roe")
    pid = resolve(store, rec("web", "1", email="home@lee.org", **ann),
                  rec("pos", "7", email="home@lee.org", phone="+447911123457", **ann))[0].profile_id
    changed = rec("pos", "7", email="bob.roe@lee.org", phone="+447911123457", **ann)
    racing = hooked(store, "profiles", "replace_item", nth=2, hook=lambda: resolve(store, changed))
    new_id = split_record(racing, pid, "pos|7", settings=SETTINGS)
    assert racing.intercepted and holders(store, "pos|7") == [new_id]
    assert store.container("blocking").read_item("eu:home", "eu:home")["profile_ids"] == [pid]
    assert violations(store) == {}
    remove_record(store, "pos", "7", settings=SETTINGS)
    assert violations(store) == {}


def test_a_split_still_running_when_a_new_version_of_its_record_releases_a_key_leaves_it_released(store):
    """pos|7 is split out of the profile it shares with web|1 (an email); the split stops just before moving the old
    email's key. Its new version (another email) finishes the split, links to the new profile and releases that
    key; just before its profile write, the split goes on: it puts the new profile back under the key and reads the
    profile, which still gives it. The key then named a profile none of whose records gave it. Two threads: the
    split waits in one while the new version runs in the other."""
    ann = dict(given_name="Ann", family_name="Roe")
    pid = resolve(store, rec("web", "1", email="home@lee.org", **ann),
                  rec("pos", "7", email="home@lee.org", phone="+447911123457", **ann))[0].profile_id
    at_key, go_on, split_done = threading.Event(), threading.Event(), threading.Event()
    splitting = hooked(store, "blocking", "read_item_or_none", when=lambda key, *_: key == "eu:home",
                       hook=lambda: (at_key.set(), go_on.wait(30)))
    split = threading.Thread(target=lambda: (split_record(splitting, pid, "pos|7", settings=SETTINGS),
                                             split_done.set()))
    split.start()
    assert at_key.wait(30)

    def the_new_versions_link(body, **_):  # its entry in the new profile, without the old email's key
        entry = next((r for r in body.get("records", []) if r["key"] == "pos|7"), None)
        return body["id"] != pid and entry is not None and "eu:home" not in entry["blocking_keys"]

    linking = hooked(store, "profiles", "replace_item", when=the_new_versions_link,
                     hook=lambda: (go_on.set(), split_done.wait(30)))
    changed, = resolve(linking, rec("pos", "7", email="bob.roe@lee.org", phone="+447911123457", **ann))
    go_on.set()
    split.join(30)
    assert linking.intercepted and split_done.is_set() and holders(store, "pos|7") == [changed.profile_id]
    assert store.container("blocking").read_item("eu:home", "eu:home")["profile_ids"] == [pid]
    assert violations(store) == {}


def test_a_new_version_of_the_old_profiles_other_record_keeps_its_blocking_keys_while_the_split_moves(store):
    """pos|7 is split out of the profile it shares with pos|3 (a phone). While the split moves its pointers, pos|3's
    new version gives a blocking key (Ann, born 1 January 1980) that only pos|7 gave when the split began: the
    split took the old profile off that key, and records of Ann born that day no longer found it."""
    pid = resolve(store, rec("pos", "3", given_name="Ann", family_name="Roe", phone="+447911123457"),
                  rec("pos", "7", given_name="Ann", family_name="Roe", birth_date="1980-01-02", email="home@lee.org",
                      phone="+447911123457"))[0].profile_id
    changed = rec("pos", "3", given_name="Ann", family_name="Lee", birth_date="1980-01-02")
    racing = hooked(store, "profiles", "read_item_or_none", nth=2, when=lambda item_id, *_: item_id == pid,
                    hook=lambda: resolve(store, changed))
    split_record(racing, pid, "pos|7", settings=SETTINGS)
    assert racing.intercepted and holders(store, "pos|3") == [pid]
    assert violations(store) == {}


def test_a_record_linked_to_the_old_profile_while_the_split_moves_keeps_it_under_its_keys(store):
    """pos|9 is split out of the profile it shares with pos|11 (a loyalty card). While the split moves its blocking
    keys, pos|10 links to the old profile and gives one of them (the email's name) that only pos|9 gave: the split
    took the old profile off it."""
    dan = dict(given_name="Dan", family_name="Roe", loyalty_id="L2")
    pid = resolve(store, rec("pos", "11", **dan), rec("pos", "9", email="home@lee.org", **dan))[0].profile_id
    racing = hooked(store, "blocking", "read_item_or_none", hook=lambda: resolve(store, rec(
        "pos", "10", given_name="Dan", family_name="Lee", email="home@workmail.net", loyalty_id="L2")))
    split_record(racing, pid, "pos|9", settings=SETTINGS)
    assert racing.intercepted and pid in holders(store, "pos|10")
    assert violations(store) == {}
