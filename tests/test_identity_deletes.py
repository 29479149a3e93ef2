"""Records deleted at their source (remove_record) and the versions of them still on their way: queued behind the
delete, redelivered, replayed, or being resolved at that very moment. On both stores."""
from __future__ import annotations

import pytest

from shared.identity import Resolver, find_profile_id, get_profile, remove_record
from shared.identity.docs import ConcurrencyConflict
from shared.identity.engine import REMOVED

from .store_faults import Died, crashing, hooked
from .test_identity_recovery import SETTINGS, holders, rec, violations

MORNING, NOON, EVENING = "2026-11-02T07:00:00.000000Z", "2026-11-02T12:00:00.000000Z", "2026-11-02T19:00:00.000000Z"
ANN = dict(given_name="Ann", family_name="Lee", email="ann.lee@shopmail.net")


def resolver(store):
    return Resolver(store, settings=SETTINGS)


def tombstone(store, key):
    return store.container("records").read_item_or_none(key, key)


def test_a_deleted_record_is_not_brought_back_by_a_version_that_landed_before_the_delete(store):
    """The morning's file was queued; the delete landed at noon; the morning's message is resolved (or redelivered,
    or replayed) after it: it stays deleted. The evening's file brings the record back."""
    created = resolver(store).resolve(rec("crm", "7", **ANN), landed_at=MORNING)
    assert remove_record(store, "crm", "7", settings=SETTINGS, landed_at=NOON) == created.profile_id
    doc = tombstone(store, "crm|7")
    assert doc["profile_id"] is None and doc["landed_at"] == NOON and "record" not in doc

    late = resolver(store).resolve(rec("crm", "7", **ANN), landed_at=MORNING)
    assert (late.profile_id, late.action, late.reason) == (None, "unchanged", REMOVED)
    assert holders(store, "crm|7") == [] and find_profile_id(store, "email", "ann.lee@shopmail.net") is None
    assert violations(store) == {}

    back = resolver(store).resolve(rec("crm", "7", **ANN), landed_at=EVENING)
    assert back.action == "created" and holders(store, "crm|7") == [back.profile_id]
    assert find_profile_id(store, "email", "ann.lee@shopmail.net") == back.profile_id
    assert tombstone(store, "crm|7")["landed_at"] == EVENING and violations(store) == {}


def test_a_record_deleted_before_its_queued_upsert_was_resolved_never_appears(store):
    assert remove_record(store, "crm", "8", settings=SETTINGS, landed_at=NOON) is None
    assert resolver(store).resolve(rec("crm", "8", **ANN), landed_at=MORNING).action == "unchanged"
    assert resolver(store).resolve(rec("crm", "8", **ANN), landed_at=NOON).reason == REMOVED  # a tie: deleted
    assert holders(store, "crm|8") == [] and violations(store) == {}
    # A version that says nothing of when it landed (a real-time event, `ucp resolve`) came after the delete.
    assert resolver(store).resolve(rec("crm", "8", **ANN)).action == "created"


def test_a_delete_that_landed_before_the_stored_version_changes_nothing(store):
    """A deletes file replayed after the record came back in a later file: the later version stays."""
    created = resolver(store).resolve(rec("crm", "7", **ANN), landed_at=EVENING)
    assert remove_record(store, "crm", "7", settings=SETTINGS, landed_at=NOON) is None
    assert holders(store, "crm|7") == [created.profile_id] and violations(store) == {}


def test_a_later_delete_of_a_removed_record_moves_its_tombstone_on(store):
    resolver(store).resolve(rec("crm", "7", **ANN), landed_at=MORNING)
    remove_record(store, "crm", "7", settings=SETTINGS, landed_at=NOON)
    assert remove_record(store, "crm", "7", settings=SETTINGS, landed_at=MORNING) is None  # an older one: kept
    assert tombstone(store, "crm|7")["landed_at"] == NOON
    remove_record(store, "crm", "7", settings=SETTINGS, landed_at=EVENING)
    assert tombstone(store, "crm|7")["landed_at"] == EVENING
    assert resolver(store).resolve(rec("crm", "7", **ANN), landed_at=NOON).reason == REMOVED


@pytest.mark.parametrize("container, method", [("profiles", "create_item"), ("identifiers", "create_item")])
def test_a_delete_waits_for_the_version_of_its_record_being_resolved(store, container, method):
    """The record changes to another person's details (a second loyalty card: it leaves Ann's profile) and is
    deleted while its worker founds its new profile. The removal meets a records doc written before its commit: it
    waits, here until it gives up (the worker cannot go on while the delete runs in its place), and is retried once
    the resolution is done. Before, it deleted that doc, or took the record out before the worker's claims, which
    then led to a deleted profile."""
    ann = resolver(store).resolve(rec("pos", "1", phone="+447911123456", loyalty_id="L1", **ANN))
    resolver(store).resolve(rec("web", "2", loyalty_id="L1", **ANN))
    failed = []

    def delete():
        try:
            remove_record(store, "pos", "1", settings=SETTINGS)
        except ConcurrencyConflict as err:
            failed.append(err)

    racing = hooked(store, container, method, hook=delete, when=lambda *args, **kwargs: container == "profiles" or (
        args[0]["id"] == "loyalty_id:L7"))
    moved = resolver(racing).resolve(rec("pos", "1", phone="+447911123456", loyalty_id="L7", **ANN))
    assert racing.intercepted and len(failed) == 1
    assert moved.action == "review" and moved.profile_id != ann.profile_id and violations(store) == {}
    assert remove_record(store, "pos", "1", settings=SETTINGS) == moved.profile_id  # the delete's retry
    assert holders(store, "pos|1") == [] and tombstone(store, "pos|1")["removed_at"]
    assert find_profile_id(store, "loyalty_id", "L7") is None and violations(store) == {}


def test_a_delete_after_a_worker_died_mid_resolution_goes_through_once_the_redelivery_finished(store):
    dying = crashing(store, "identifiers", "create_item", when=lambda body, **kwargs: body["id"].startswith("source:"))
    with pytest.raises(Died):
        resolver(dying).resolve(rec("crm", "7", **ANN), landed_at=MORNING)  # everything written but the commit
    with pytest.raises(ConcurrencyConflict):
        remove_record(store, "crm", "7", settings=SETTINGS)  # after its retries
    created = resolver(store).resolve(rec("crm", "7", **ANN), landed_at=MORNING)  # the redelivery
    assert remove_record(store, "crm", "7", settings=SETTINGS, landed_at=NOON) == created.profile_id
    assert holders(store, "crm|7") == [] and violations(store) == {}


def test_a_removal_dying_after_its_tombstone_is_finished_by_its_retry(store):
    created = resolver(store).resolve(rec("crm", "7", **ANN), landed_at=MORNING)
    resolver(store).resolve(rec("web", "2", **ANN))  # Ann's profile stays with her other record
    dying = crashing(store, "identifiers", "delete_item",
                     when=lambda item_id, *args, **kwargs: item_id == "source:crm|7")
    with pytest.raises(Died):
        remove_record(dying, "crm", "7", settings=SETTINGS, landed_at=NOON)
    assert remove_record(store, "crm", "7", settings=SETTINGS, landed_at=NOON) is None  # removed already
    assert store.container("identifiers").read_item_or_none("source:crm|7", "source:crm|7") is None
    assert [r["key"] for r in get_profile(store, created.profile_id)["records"]] == ["web|2"]
    assert violations(store) == {}


def test_the_same_content_arriving_again_after_a_removal_died_past_its_tombstone_is_resolved_again(store):
    """The removal died before deleting the source identifier, which still holds the content hash: the same content
    arriving later (here, with no landing time) is resolved as a new arrival, not answered as done already."""
    created = resolver(store).resolve(rec("crm", "7", **ANN), landed_at=MORNING)
    resolver(store).resolve(rec("web", "2", **ANN))
    dying = crashing(store, "identifiers", "delete_item",
                     when=lambda item_id, *args, **kwargs: item_id == "source:crm|7")
    with pytest.raises(Died):
        remove_record(dying, "crm", "7", settings=SETTINGS, landed_at=NOON)
    again = resolver(store).resolve(rec("crm", "7", **ANN))
    assert (again.action, again.profile_id) == ("linked", created.profile_id)
    assert holders(store, "crm|7") == [created.profile_id] and violations(store) == {}
