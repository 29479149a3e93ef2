"""A merge whose worker died after folding the profile in, when no later resolve touches either profile (the
delivery's retry found its record done: another delivery had committed it). Its records are in both profiles until
the saga completes: whoever reads either profile completes it, and the timer's sweep (finish_unfinished_merges)
completes the rest (12 threads resolving random records twice each, workers dying at random writes)."""
from __future__ import annotations

import pytest

from shared.identity import Resolver, finish_unfinished_merges, get_profile
from shared.identity.merge import merge_profiles

from .store_faults import Died, crashing
from .test_identity_recovery import SETTINGS, holders, rec, resolve, violations

ANN = dict(given_name="Ann", family_name="Lee")
WHY = {"reason": "rule", "rule": "email", "via_record": "crm|3"}


def _merge_cut_off_after_its_fold(store):
    """Ann's two profiles; a merge of the second into the first dies turning the second into an alias."""
    first, = resolve(store, rec("pos", "1", email="ann.lee@shopmail.net", **ANN))
    second, = resolve(store, rec("web", "2", phone="+447911123456", **ANN))
    dying = crashing(store, "profiles", "replace_item", when=lambda body, **_: body.get("doc_type") == "alias")
    with pytest.raises(Died):
        merge_profiles(Resolver(dying, settings=SETTINGS).ctx, first.profile_id, second.profile_id, WHY)
    return first.profile_id, second.profile_id


def test_a_merge_cut_off_after_its_fold_is_completed_by_the_sweep_once_idle(store):
    first, second = _merge_cut_off_after_its_fold(store)
    assert sorted(holders(store, "pos|1") + holders(store, "web|2")) == sorted([first, first, second])
    assert {"unfinished_merge", "record_in_two_profiles"} <= set(violations(store))

    assert finish_unfinished_merges(store, settings=SETTINGS) == []  # just written: left to a worker still running
    settled = finish_unfinished_merges(store, settings=SETTINGS, idle_seconds=0)

    assert second in settled and set(settled) <= {first, second}
    assert holders(store, "pos|1") == holders(store, "web|2") == [first]
    assert get_profile(store, second)["id"] == first  # the absorbed id redirects
    assert finish_unfinished_merges(store, settings=SETTINGS, idle_seconds=0) == []  # nothing left marked
    assert violations(store) == {}


def test_the_apps_timer_completes_a_merge_cut_off_once_idle_long_enough(app_env, monkeypatch):
    """The app's timer (function_app) sweeps the store the app is configured with (Cosmos here), leaving profiles
    written less than UCP_MERGE_IDLE_SECONDS ago to the worker that may still be merging them."""
    from azure.functions.timer import TimerRequest

    from shared.settings import get_settings
    from shared.store import open_store

    from .conftest import app_functions

    store = open_store(app_env)
    store.bootstrap()
    first, second = _merge_cut_off_after_its_fold(store)
    timer = app_functions()["finish_stale_merges"]
    assert timer.get_trigger().get_binding_name() == "timerTrigger"
    timer.get_user_function()(TimerRequest(past_due=False))
    assert "unfinished_merge" in violations(store)  # fresh: left alone
    monkeypatch.setenv("UCP_MERGE_IDLE_SECONDS", "0")
    get_settings.cache_clear()
    timer.get_user_function()(TimerRequest(past_due=False))
    assert holders(store, "web|2") == [first] and get_profile(store, second)["id"] == first
    assert violations(store) == {}


def test_two_merges_of_the_same_profiles_marked_each_way_complete_into_the_older(store):
    """Two workers merging Ann's two profiles, one each way (a worker that read a profile id before it was deleted
    and founded again reads another creation time, so another survivor), each die after marking the profile it
    absorbs: each profile is marked to go into the other. Completing either used to follow the marks round and
    round (RecursionError in every reader, the timer's sweep and the repair). The older keeps its place: its mark
    is taken off, and the other is merged into it."""
    ann, = resolve(store, rec("pos", "1", email="ann.lee@shopmail.net", **ANN))
    other, = resolve(store, rec("web", "2", phone="+447911123456", **ANN))
    for survivor, absorbed in ((ann, other), (other, ann)):
        dying = crashing(store, "merges", "create_item")
        with pytest.raises(Died):
            merge_profiles(Resolver(dying, settings=SETTINGS).ctx, survivor.profile_id, absorbed.profile_id, WHY)
    assert {"pending_merge"} <= set(store.container("profiles").read_item(ann.profile_id, ann.profile_id))

    settled = finish_unfinished_merges(store, settings=SETTINGS, idle_seconds=0)

    assert other.profile_id in settled
    assert holders(store, "pos|1") == holders(store, "web|2") == [ann.profile_id]
    assert get_profile(store, other.profile_id)["id"] == ann.profile_id
    assert finish_unfinished_merges(store, settings=SETTINGS, idle_seconds=0) == []
    assert violations(store) == {}


def test_a_merge_into_a_profile_merged_into_the_one_to_absorb_meanwhile_marks_nothing(store):
    """Races bench, seed 62974: a worker decided to merge Ann's older profile into the other, which another worker
    then merged into the older one. Marked, the older profile's merge led to an alias of itself: completing it
    followed the two round and round (RecursionError in every reader of the profile, the timer's sweep and the
    repair). The two are one profile already: nothing is marked, and the live profile is returned."""
    ann, = resolve(store, rec("pos", "1", email="ann.lee@shopmail.net", **ANN))
    other, = resolve(store, rec("web", "2", phone="+447911123456", **ANN))
    ctx = Resolver(store, settings=SETTINGS).ctx
    merge_profiles(ctx, ann.profile_id, other.profile_id, WHY)

    merged = merge_profiles(ctx, other.profile_id, ann.profile_id, WHY)

    assert merged["id"] == ann.profile_id and "pending_merge" not in merged
    assert holders(store, "pos|1") == holders(store, "web|2") == [ann.profile_id]
    assert violations(store) == {}


def test_a_mark_leading_to_an_alias_of_its_own_profile_is_taken_off(store):
    """The same mark, as a worker of earlier code wrote it: Ann's older profile marked to go into the other, an
    alias of it. The timer's sweep takes the mark off and closes its pending merge; readers find the profile."""
    ann, = resolve(store, rec("pos", "1", email="ann.lee@shopmail.net", **ANN))
    other, = resolve(store, rec("web", "2", phone="+447911123456", **ANN))
    merge_profiles(Resolver(store, settings=SETTINGS).ctx, ann.profile_id, other.profile_id, WHY)
    profiles = store.container("profiles")
    doc = profiles.read_item(ann.profile_id, ann.profile_id)
    mark = {"into": other.profile_id, "merge_id": "m_old", "at": "2025-01-01T00:00:00.000000Z", **WHY}
    profiles.replace_item({**doc, "pending_merge": mark}, etag=doc["_etag"])
    store.container("merges").create_item({"id": "m_old", "profile_id": other.profile_id, "absorbed_id": ann.profile_id,
                                           "status": "pending", "at": mark["at"], **WHY})
    assert {"unfinished_merge", "pending_merge_doc"} <= set(violations(store))

    finish_unfinished_merges(store, settings=SETTINGS, idle_seconds=0)

    assert "pending_merge" not in profiles.read_item(ann.profile_id, ann.profile_id)
    assert get_profile(store, other.profile_id)["id"] == ann.profile_id
    assert finish_unfinished_merges(store, settings=SETTINGS, idle_seconds=0) == []
    assert violations(store) == {}
