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
