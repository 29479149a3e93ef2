"""The identity engine under faults: a worker dying between two writes, redelivery (also of an older version),
concurrent workers, and split, remove and review decisions caught in the middle.

Each test drives the in-memory store into one such moment; the store's invariant audit (shared/audit.py) or the
documented behaviour says what must hold after."""
from __future__ import annotations

import threading

import pytest

from shared.audit import audit_store
from shared.identity import engine
from shared.identity import find_profile_id, get_profile, remove_record, resolve_records, split_record
from shared.models import CustomerRecord
from shared.settings import Settings
from shared.store import MemoryStore

from .store_faults import Died, crashing, hooked

SETTINGS = Settings()


def rec(source: str, key: str, **fields) -> CustomerRecord:
    return CustomerRecord(source=source, record_key=key, **fields)


def resolve(store, *records):
    return resolve_records(store, list(records), settings=SETTINGS)


def violations(store):
    return audit_store(store).as_dict()["violations"]


def holders(store, key):
    return [p["id"] for p in store.container("profiles").query_items(("doc_type", "=", "profile"))
            if any(r["key"] == key for r in p["records"])]


# --- remove_record: a crash after the profile write strands the record's own identifiers ----------------------

def test_remove_record_dying_before_its_releases_is_finished_by_the_retry():
    store = MemoryStore()
    ann, = resolve(store, rec("pos", "1", email="ann.lee@shopmail.net", given_name="Ann", family_name="Lee"))
    resolve(store, rec("web", "2", email="ann.lee@shopmail.net", phone="+447911123456", given_name="Ann"))
    dying = crashing(store, "identifiers", "delete_item")
    with pytest.raises(Died):
        remove_record(dying, "web", "2", settings=SETTINGS)  # profile written, its identifiers not yet
    assert remove_record(store, "web", "2", settings=SETTINGS) == ann.profile_id  # the retry
    assert holders(store, "web|2") == []
    # the phone was only web|2's: the profile no longer lists it, yet the index still leads to it for good
    assert "phone:+447911123456" not in get_profile(store, ann.profile_id)["identifiers"]
    assert find_profile_id(store, "phone", "+447911123456") is None
    assert violations(store) == {}


def test_removing_a_profiles_last_record_dying_after_deleting_the_profile_is_finished_by_the_retry():
    """Ann's profile absorbed web|2's, then kept web|2 alone. Its removal deletes the profile, then the id merged into
    it and the history: a worker dying in between left the alias leading nowhere, which its retry (the profile gone)
    could no longer find."""
    store = MemoryStore()
    ann_fields = dict(given_name="Ann", family_name="Lee")
    ann, = resolve(store, rec("pos", "1", email="ann.lee@shopmail.net", **ann_fields))
    absorbed, = resolve(store, rec("web", "2", loyalty_id="L-1001", **ann_fields))
    resolve(store, rec("crm", "3", email="ann.lee@shopmail.net", loyalty_id="L-1001", **ann_fields))
    for source, key in (("pos", "1"), ("crm", "3")):
        remove_record(store, source, key, settings=SETTINGS)
    assert get_profile(store, absorbed.profile_id)["id"] == ann.profile_id  # web|2 alone, its id an alias
    with pytest.raises(Died):
        remove_record(crashing(store, "profiles", "delete_item", nth=2), "web", "2", settings=SETTINGS)
    assert remove_record(store, "web", "2", settings=SETTINGS) == ann.profile_id  # the retry
    assert [d["id"] for d in store.container("profiles").query_items()] == []
    assert list(store.container("merges").query_items()) == []
    assert violations(store) == {}


def test_a_merge_dying_before_it_marks_the_profile_to_absorb_leaves_no_pending_entry():
    """pos|2 gives the phone of one profile and the email of another; its worker dies as its merge is about to mark
    the second, whose record is then deleted. The redelivery only links pos|2: the merge's pending log entry, written
    before the mark, was left for good, since no saga ever finished or closed it."""
    store = MemoryStore()
    ann_fields = dict(given_name="Ann", family_name="Lee")
    kept, = resolve(store, rec("pos", "10", phone="+447911123459", **ann_fields))
    resolve(store, rec("web", "0", email="ann.lee@shopmail.net", **ann_fields))
    bridge = rec("pos", "2", email="ann.lee@shopmail.net", phone="+447911123459", **ann_fields)
    with pytest.raises(Died):
        resolve(crashing(store, "profiles", "replace_item"), bridge)
    remove_record(store, "web", "0", settings=SETTINGS)
    again, = resolve(store, bridge)
    assert again.profile_id == kept.profile_id
    assert [m["status"] for m in store.container("merges").query_items() if m["status"] != "done"] == []
    assert violations(store) == {}


# --- split_record: resumable ----------------------------------------------------------------------------

def _two_record_profile(store):
    ann, = resolve(store, rec("pos", "1", email="ann.lee@shopmail.net", given_name="Ann", family_name="Lee"))
    resolve(store, rec("web", "2", email="ann.lee@shopmail.net", phone="+447911123456", given_name="Ann"))
    return ann.profile_id


def test_split_dying_after_creating_the_new_profile_is_finished_by_the_retry():
    store = MemoryStore()
    pid = _two_record_profile(store)
    dying = crashing(store, "profiles", "replace_item")
    with pytest.raises(Died):
        split_record(dying, pid, "web|2", settings=SETTINGS)  # new profile created, old one not yet changed
    new_id = split_record(store, pid, "web|2", settings=SETTINGS)  # the caller retries the split
    assert holders(store, "web|2") == [new_id]
    assert violations(store) == {}


def test_split_dying_after_its_profile_writes_is_finished_by_the_retry():
    store = MemoryStore()
    pid = _two_record_profile(store)
    dying = crashing(store, "identifiers", "replace_item")
    with pytest.raises(Died):
        split_record(dying, pid, "web|2", settings=SETTINGS)  # both profiles written, pointers not yet
    new_id = split_record(store, pid, "web|2", settings=SETTINGS)  # the caller retries: the split is finished
    assert find_profile_id(store, "phone", "+447911123456") == new_id
    assert store.container("records").read_item("web|2", "web|2")["profile_id"] == new_id
    # The record's next update stays in the split profile, not back next to its copy in the old one.
    resolve(store, rec("web", "2", email="ann.lee@shopmail.net", phone="+447911123456", given_name="Anne"))
    assert holders(store, "web|2") == [new_id]
    assert [m["split_into"] for m in store.container("merges").query_items() if m.get("split_into")] == [new_id]
    assert violations(store) == {}


# --- a new profile under a random id: the records doc names the wrong id, so a crash duplicates the record ------

def test_crash_after_creating_a_profile_under_a_random_id_is_completed_in_that_profile():
    store = MemoryStore()
    # pos|1 founds p_<hash of pos|1>; web|2 joins it; pos|1 is then deleted at the source: the profile lives on
    # with web|2, so its id is taken when pos|1 comes back (as another person).
    ann, = resolve(store, rec("pos", "1", email="ann.lee@shopmail.net", given_name="Ann", family_name="Lee"))
    resolve(store, rec("web", "2", email="ann.lee@shopmail.net", given_name="Ann", family_name="Lee"))
    assert remove_record(store, "pos", "1", settings=SETTINGS) == ann.profile_id
    back = rec("pos", "1", email="bob.stone@shopmail.net", given_name="Bob", family_name="Stone")
    dying = crashing(store, "identifiers", "create_item")
    with pytest.raises(Died):
        resolve(dying, back)  # profile created under a random id, records doc names p_<hash>; then dies
    resolve(store, back)  # the redelivered message
    assert len(holders(store, "pos|1")) == 1, holders(store, "pos|1")
    assert violations(store) == {}


# --- two workers at once decide what one worker after the other would not --------------------------------------

def _both_read_then_write(monkeypatch, store, records):
    """Resolve the records on two threads; both finish their reads and decision before either writes."""
    barrier = threading.Barrier(len(records))
    apply = engine._Work._apply

    def after_all_read(self, *args):
        barrier.wait(timeout=10)
        return apply(self, *args)

    monkeypatch.setattr(engine._Work, "_apply", after_all_read)
    results, errors = {}, []

    def work(record):
        try:
            results[record.key] = resolve(store, record)[0]
        except Exception as err:  # noqa: BLE001 - reported by the test
            errors.append(err)

    threads = [threading.Thread(target=work, args=(r,)) for r in records]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    return results


def _final(store, profile_id):
    return get_profile(store, profile_id)["id"]


def _while_deciding(monkeypatch, record, worker_run, meanwhile):
    """Run `worker_run()` on a thread whose resolution of `record` stops after its reads and decision; run
    `meanwhile()` (another worker), then let the first one write. Returns ({"result" or "error"}, meanwhile())."""
    decided, go = threading.Event(), threading.Event()
    apply = engine._Work._apply

    def paused(self, *args):
        if self.key == record.key and not go.is_set():
            decided.set()
            assert go.wait(timeout=10)
        return apply(self, *args)

    monkeypatch.setattr(engine._Work, "_apply", paused)
    out = {}

    def work():
        try:
            out["result"] = worker_run()
        except Exception as err:  # noqa: BLE001 - the caller checks it
            out["error"] = err

    worker = threading.Thread(target=work)
    worker.start()
    assert decided.wait(timeout=10)  # the worker has read everything and decided
    other = meanwhile()
    go.set()
    worker.join(timeout=30)
    return out, other


def test_concurrent_household_members_on_a_family_email_stay_apart(monkeypatch):
    dad = rec("pos", "1", email="lee.home@shopmail.net", given_name="Raymond", family_name="Lee")
    son = rec("web", "2", email="lee.home@shopmail.net", given_name="Kevin", family_name="Lee")
    sequential = resolve(MemoryStore(), dad, son)
    assert sequential[0].profile_id != sequential[1].profile_id  # one after the other: two people
    store = MemoryStore()
    results = _both_read_then_write(monkeypatch, store, [dad, son])
    assert _final(store, results["pos|1"].profile_id) != _final(store, results["web|2"].profile_id)


def test_concurrent_known_customers_sharing_a_device_id_stay_apart(monkeypatch):
    ann = rec("web", "1", email="ann.lee@shopmail.net", given_name="Ann", identifiers={"device_id": "dev-42"})
    bob = rec("web", "2", email="bob.stone@shopmail.net", given_name="Bob", identifiers={"device_id": "dev-42"})
    sequential = resolve(MemoryStore(), ann, bob)
    assert sequential[0].profile_id != sequential[1].profile_id  # "a device id alone never joins known customers"
    store = MemoryStore()
    results = _both_read_then_write(monkeypatch, store, [ann, bob])
    assert _final(store, results["web|1"].profile_id) != _final(store, results["web|2"].profile_id)


def test_concurrent_twins_go_to_review_not_joined_by_score(monkeypatch):
    home = dict(family_name="Butler", address_line1="43 High Drive", postcode="EC1V 5FX", country="GB",
                birth_date="1991-08-19")
    stephen, stephanie = rec("pos", "1", given_name="Stephen", **home), rec("crm", "2", given_name="Stephanie", **home)
    sequential = resolve(MemoryStore(), stephen, stephanie)
    assert sequential[1].action == "review" and sequential[0].profile_id != sequential[1].profile_id
    store = MemoryStore()
    results = _both_read_then_write(monkeypatch, store, [stephen, stephanie])
    assert _final(store, results["pos|1"].profile_id) != _final(store, results["crm|2"].profile_id)
    reviews = list(store.container("review").query_items())
    assert reviews and {r["reason"] for r in reviews} == {"score:given_name"}  # as one after the other


# --- a claim written after another worker merged the profile away points at the alias ---------------------------

def test_claims_made_after_a_concurrent_merge_follow_the_survivor():
    store = MemoryStore()
    older, = resolve(store, rec("pos", "0", loyalty_id="L-1", given_name="Ann", family_name="Lee"))
    bridge = rec("crm", "2", email="ann.lee@shopmail.net", loyalty_id="L-1", given_name="Ann", family_name="Lee")
    merged = []
    # worker 1 creates its profile A and claims the email; worker 2 then links the email and the loyalty id,
    # merging A into the older profile; worker 1 goes on to claim the phone for A.
    interfered = hooked(store, "identifiers", "create_item", nth=2,
                       hook=lambda: merged.append(resolve(store, bridge)[0]))
    first, = resolve(interfered, rec("web", "1", email="ann.lee@shopmail.net", phone="+447911123456",
                                 given_name="Ann", family_name="Lee"))
    assert merged and merged[0].action == "merged" and first.profile_id == older.profile_id
    assert violations(store) == {}  # no identifier names the absorbed id


def test_phone_claimed_after_a_concurrent_merge_is_moved_by_a_split():
    store = MemoryStore()
    older, = resolve(store, rec("pos", "0", loyalty_id="L-1", given_name="Ann", family_name="Lee"))
    bridge = rec("crm", "2", email="ann.lee@shopmail.net", loyalty_id="L-1", given_name="Ann", family_name="Lee")
    interfered = hooked(store, "identifiers", "create_item", nth=2, hook=lambda: resolve(store, bridge))
    resolve(interfered, rec("web", "1", email="ann.lee@shopmail.net", phone="+447911123456", given_name="Ann",
                        family_name="Lee"))
    new_id = split_record(store, older.profile_id, "web|1", settings=SETTINGS)
    # the phone is web|1's alone: it must follow the record into the split profile
    assert find_profile_id(store, "phone", "+447911123456") == new_id


# --- an updated record never leaves the profile it was in -------------------------------------------------------

def test_record_corrected_to_another_persons_details_moves_to_that_person():
    store = MemoryStore()
    ann, = resolve(store, rec("pos", "1", email="ann.lee@shopmail.net", given_name="Ann", family_name="Lee",
                              birth_date="1980-02-03"))
    resolve(store, rec("web", "2", email="ann.lee@shopmail.net", given_name="Ann", family_name="Lee"))
    bob, = resolve(store, rec("crm", "3", email="bob.stone@shopmail.net", given_name="Bob", family_name="Stone"))
    # pos|1 was keyed in with Ann's details by mistake; the source corrects it to Bob's (a new content hash)
    moved, = resolve(store, rec("pos", "1", email="bob.stone@shopmail.net", given_name="Bob", family_name="Stone"))
    assert _final(store, ann.profile_id) != _final(store, bob.profile_id), moved  # Ann and Bob stay two people
    assert _final(store, moved.profile_id) == _final(store, bob.profile_id)
    assert holders(store, "web|2") == [_final(store, ann.profile_id)]
    assert holders(store, "pos|1") == [_final(store, bob.profile_id)]
    assert [m["reason"] for m in store.container("merges").query_items()] == ["record_changed"]
    assert violations(store) == {}


@pytest.mark.parametrize("container, method", [("merges", "upsert_item"), ("profiles", "replace_item"),
                                               ("records", "replace_item")])
def test_record_moving_to_another_person_survives_a_crash(container, method):
    store = MemoryStore()
    ann, = resolve(store, rec("pos", "1", email="ann.lee@shopmail.net", given_name="Ann", family_name="Lee"))
    resolve(store, rec("web", "2", email="ann.lee@shopmail.net", given_name="Ann", family_name="Lee"))
    bob, = resolve(store, rec("crm", "3", email="bob.stone@shopmail.net", given_name="Bob", family_name="Stone"))
    corrected = rec("pos", "1", email="bob.stone@shopmail.net", given_name="Bob", family_name="Stone")
    with pytest.raises(Died):
        resolve(crashing(store, container, method), corrected)
    moved, = resolve(store, corrected)  # the redelivery
    assert moved.profile_id == bob.profile_id and holders(store, "pos|1") == [bob.profile_id]
    assert holders(store, "web|2") == [ann.profile_id]
    assert resolve(store, corrected)[0].action == "unchanged"
    assert violations(store) == {}


def test_record_updated_with_a_new_address_stays_in_its_profile():
    """Joined by score (name, birth date, address), the record moves house and drops its birth date: it no longer
    scores as a match with the other record, but nothing says it is someone else, so the profile keeps it (ids
    stay stable; only a record whose identifiers lead to another profile leaves, see above)."""
    store = MemoryStore()
    ann = dict(given_name="Ann", family_name="Lee", birth_date="1980-02-03", country="GB")
    home = dict(address_line1="1 Mill Street", city="Leeds", postcode="LS1 4AP")
    first, = resolve(store, rec("pos", "1", email="ann.lee@shopmail.net", **ann, **home))
    web, = resolve(store, rec("web", "2", phone="+447911123456", **ann, **home))
    assert (web.action, web.profile_id) == ("linked", first.profile_id)
    moved, = resolve(store, rec("pos", "1", email="ann.lee@shopmail.net", given_name="Ann", family_name="Lee",
                                country="GB", address_line1="9 High Road", city="York", postcode="YO1 7HH"))
    assert (moved.action, moved.profile_id) == ("linked", first.profile_id)
    assert holders(store, "web|2") == holders(store, "pos|1") == [first.profile_id]
    assert violations(store) == {}


# --- a merge saga dying after the alias write never closes its merge log entry -----------------------------------

@pytest.mark.parametrize("container, method, when", [
    ("merges", "upsert_item", lambda body, **_: body.get("status") == "done"),  # writing the merge log's "done"
    ("profiles", "replace_item", lambda body, **_: body.get("doc_type") == "alias"),  # turning it into an alias
])
def test_merge_saga_dying_at_its_last_steps_is_finished_by_the_redelivery(container, method, when):
    store = MemoryStore()
    first, = resolve(store, rec("pos", "1", email="ann.lee@shopmail.net", given_name="Ann", family_name="Lee"))
    second, = resolve(store, rec("web", "2", phone="+447911123456", given_name="Ann", family_name="Lee"))
    bridge = rec("crm", "3", email="ann.lee@shopmail.net", phone="+447911123456", given_name="Ann")
    dying = crashing(store, container, method, when=when)
    with pytest.raises(Died):
        resolve(dying, bridge)
    assert resolve(store, bridge)[0].profile_id == first.profile_id  # the redelivery
    assert resolve(store, bridge)[0].action == "unchanged"
    assert store.container("profiles").read_item(second.profile_id, second.profile_id)["doc_type"] == "alias"
    statuses = [m["status"] for m in store.container("merges").query_items() if m.get("absorbed_id")]
    assert statuses == ["done"], statuses
    assert violations(store) == {}


# --- review: a reject and an approve at once end rejected on paper and merged in fact -----------------------------

def _mother_and_daughter():
    ann = dict(email="fam.lee@shopmail.net", given_name="Ann", family_name="Lee")
    return rec("pos", "1", birth_date="1960-05-05", **ann), rec("pos", "2", birth_date="1995-09-09", **ann)


def test_concurrent_approve_and_reject_of_one_review_end_as_the_review_says():
    from shared.identity.review import ReviewDecisionError, approve_review, get_review, reject_review

    store = MemoryStore()
    mum, kid = resolve(store, *_mother_and_daughter())  # one family email, two birth dates: a review
    review_id = next(store.container("review").query_items())["id"]
    # One person approves; while the merge runs, another person rejects the same review: the first decision
    # taken on the review wins, the other gets an error, and what happened is what the review says.
    rejected = []

    def bob_rejects():
        with pytest.raises(ReviewDecisionError):
            reject_review(store, review_id, by="bob", settings=SETTINGS)
        rejected.append("refused")

    interfered = hooked(store, "profiles", "replace_item", nth=1, hook=bob_rejects)
    approved = approve_review(interfered, review_id, by="alice", settings=SETTINGS)
    assert rejected == ["refused"]
    assert approved["status"] == get_review(store, review_id)["status"] == "approved"
    assert approved["decided_by"] == "alice" and "decision" not in approved
    assert _final(store, mum.profile_id) == _final(store, kid.profile_id)


def test_review_decision_dying_half_way_is_finished_by_taking_it_again():
    from shared.identity.review import ReviewDecisionError, approve_review, get_review, reject_review

    store = MemoryStore()
    mum, kid = resolve(store, *_mother_and_daughter())  # one family email, two birth dates: a review
    review_id = next(store.container("review").query_items())["id"]
    with pytest.raises(Died):
        approve_review(crashing(store, "profiles", "replace_item"), review_id, by="alice", settings=SETTINGS)
    assert get_review(store, review_id)["status"] == "deciding"
    with pytest.raises(ReviewDecisionError, match="being decided"):
        reject_review(store, review_id, by="bob", settings=SETTINGS)  # taken already: another decision is refused
    assert approve_review(store, review_id, by="alice", settings=SETTINGS)["status"] == "approved"
    assert _final(store, mum.profile_id) == _final(store, kid.profile_id)
    assert violations(store) == {}


def test_concurrent_records_meeting_only_through_a_profile_update_end_in_one_profile(monkeypatch):
    """r0 founds P. r1 joins P by its email (it writes no blocking key: r0 has them all). r2 is r1's person by
    score (not r0's): one after the other it joins P. Here r2's worker reads P (holding r0 only) and decides to
    create a profile; r1's worker then links r1 into P and finishes; r2's worker writes its profile and the shared
    blocking keys (unchanged since it read them, so no ETag conflict): it must still learn of r1."""
    e = dict(email="john.smith77@shopmail.net")
    r0 = rec("pos", "0", given_name="John", family_name="Smyth", birth_date="1980-03-02", **e)
    r1 = rec("web", "1", given_name="John", family_name="Smith", birth_date="1980-02-03", **e)
    r2 = rec("crm", "2", given_name="John", family_name="Smith", birth_date="1980-02-03")
    sequential = resolve(MemoryStore(), r0, r1, r2)
    assert len({r.profile_id for r in sequential}) == 1  # one after the other: one profile

    store = MemoryStore()
    p, = resolve(store, r0)
    # r2's worker reads and decides; r1's worker runs to the end meanwhile
    out, (one,) = _while_deciding(monkeypatch, r2, lambda: resolve(store, r2)[0], lambda: resolve(store, r1))
    assert one.profile_id == p.profile_id
    assert _final(store, out["result"].profile_id) == _final(store, p.profile_id), out


# --- a lost claim's identifier is never dropped if the worker dies before dropping it ----------------------------

def test_identifier_of_a_lost_claim_leaves_the_profile_after_a_crash(monkeypatch):
    """Mother and daughter share the family email (birth dates conflict: review). The daughter's worker decides
    first, creates her profile listing the email, loses the claim to the mother's profile, opens the review and
    dies before dropping the email from the daughter's profile. The redelivery links the record to its profile
    again but keeps the email listed: the profile claims an identifier indexed to another profile, for good."""
    email = "email:fam.lee@shopmail.net"
    mum, kid = _mother_and_daughter()
    store = MemoryStore()
    dying = crashing(store, "profiles", "replace_item",  # the write dropping the email
                     when=lambda body, **_: body.get("doc_type") == "profile" and email not in body["identifiers"])
    out, _ = _while_deciding(monkeypatch, kid, lambda: resolve(dying, kid), lambda: resolve(store, mum))
    assert isinstance(out.get("error"), Died), out
    again, = resolve(store, kid)  # the redelivered message
    assert email not in get_profile(store, again.profile_id)["identifiers"]
    assert violations(store) == {}


# --- redelivery of an older version of a record undoes the newer one ---------------------------------------------

def test_redelivered_older_version_of_a_record_changes_nothing():
    store = MemoryStore()
    v1 = rec("pos", "1", email="ann.lee@shopmail.net", given_name="Ann", family_name="Lee", city="Leeds",
             updated_at="2025-01-01T00:00:00Z")
    v2 = rec("pos", "1", email="ann.lee@shopmail.net", given_name="Ann", family_name="Lee", city="York",
             updated_at="2025-06-01T00:00:00Z")
    first, = resolve(store, v1)
    resolve(store, v2)
    again, = resolve(store, v1)  # v1's message redelivered (its first delivery's ack was lost) after v2's
    assert (again.action, again.profile_id) == ("unchanged", first.profile_id) and "newer version" in again.reason
    profile = get_profile(store, first.profile_id)
    assert profile["attributes"]["city"]["value"] == "York", again
    assert store.container("records").read_item("pos|1", "pos|1")["record"]["city"] == "York"


def test_group_member_merged_into_a_third_profile_meanwhile_is_decided_again(monkeypatch):
    """R's worker finds A by email and B by phone and decides to merge B into A. Before it writes, Q's worker
    merges B into T (Q has B's phone and T's loyalty id). R's merge must not skip B as "already merged" (A and T,
    one person, would stay two profiles, where one after the other gives one in either order): R decides again."""
    a = rec("pos", "a", email="ann.lee@shopmail.net", given_name="Ann")
    t = rec("pos", "t", loyalty_id="L-77", given_name="Ann")
    b = rec("pos", "b", phone="+447911123456", given_name="Ann")
    r = rec("web", "r", email="ann.lee@shopmail.net", phone="+447911123456", given_name="Ann")
    q = rec("crm", "q", phone="+447911123456", loyalty_id="L-77", given_name="Ann")
    for order in ([r, q], [q, r]):
        sequential = MemoryStore()
        resolve(sequential, a, t, b)
        assert len({_final(sequential, x.profile_id) for x in resolve(sequential, *order)}) == 1

    store = MemoryStore()
    resolve(store, a, t, b)
    out, (other,) = _while_deciding(monkeypatch, r, lambda: resolve(store, r)[0], lambda: resolve(store, q))
    assert _final(store, out["result"].profile_id) == _final(store, other.profile_id), (out, other)
    assert violations(store) == {}


# --- a worker dying after creating the record's profile, before opening its review --------------------------

def test_review_a_dead_worker_did_not_open_is_opened_by_the_redelivery(store):
    """Same name at one address, a family mailbox against a personal one: the second record founds its own profile
    and is sent to review. The worker dies at the review's write; the redelivered message finds the record's own
    profile and must still open the review (it linked the record to that profile and opened none)."""
    home = dict(given_name="Ann", family_name="Lee", postcode="LS1 4AB", city="Leeds")
    first, = resolve(store, rec("pos", "A-1", address_line1="1 High Street", email="thelees4300@mail.net", **home))
    second = rec("web", "A-2", address_line1="1 High St", email="ann.lee88@post.net", **home)
    with pytest.raises(Died):
        resolve_records(crashing(store, "review", "create_item"), [second], settings=SETTINGS)
    again, = resolve(store, second)
    opened = list(store.container("review").query_items())
    assert [(r["record_key"], r["candidate_profile_id"], r["status"]) for r in opened] == [
        ("web|A-2", first.profile_id, "open")]
    assert again.profile_id != first.profile_id and "review" in again.reason


# --- a worker dying after its profile write, before its blocking keys -------------------------------------------

def test_blocking_keys_a_dead_worker_never_wrote_are_written_by_the_next_record_or_the_retry(store):
    """Pauline's crm record dies at its first blocking write; her loyalty record links by email meanwhile, and the
    crm record is delivered again. Before, both skipped the keys the other record listed in the profile, so the
    index never had them: her pos record, with nothing but her name, birth date and address, founded a second
    profile. The audit now checks that every key a profile's records give finds it."""
    person = dict(given_name="Pauline", family_name="Boyer", birth_date="1996-03-06", address_line1="12 Rue Sainte",
                  postcode="13001", city="Marseille", country="FR")
    crm = rec("crm", "A1", email="pauline.boyer82@orange.fr", phone="+33612345678", **person)
    with pytest.raises(Died):
        resolve(crashing(store, "blocking", "create_item"), crm)
    loyalty, = resolve(store, rec("loyalty", "L1", email="pauline.boyer82@orange.fr", **person))
    retried, = resolve(store, crm)
    assert retried.profile_id == loyalty.profile_id
    assert violations(store) == {}
    pos, = resolve(store, rec("pos", "P9", **person))
    assert (pos.action, pos.profile_id) == ("linked", loyalty.profile_id)


def test_a_record_leaving_its_profile_whose_worker_died_after_founding_its_new_one_is_continued_there(store):
    """pos|1 founded Ann's profile; its new version gives a second loyalty card, so it leaves (merge protection) and
    founds a profile of its own, under a random id (the derived one is Ann's). The worker dies claiming the card: the
    redelivered record goes on in that profile instead of founding a second one."""
    ann = dict(given_name="Ann", family_name="Lee", email="ann.lee@shopmail.net")
    first, _ = resolve(store, rec("pos", "1", loyalty_id="L-1001", **ann), rec("web", "2", loyalty_id="L-1001", **ann))
    changed = rec("pos", "1", loyalty_id="L-7007", **ann)
    with pytest.raises(Died):
        resolve(crashing(store, "identifiers", "create_item",
                         when=lambda body, **kwargs: body["id"].startswith("loyalty_id:")), changed)
    result, = resolve(store, changed)
    assert holders(store, "pos|1") == [result.profile_id] != [first.profile_id]
    assert violations(store) == {}


def test_a_split_that_died_after_moving_the_source_identifier_is_completed_after_a_new_version_of_its_record(store):
    """Ann's profile absorbed web|2's (its id an alias now). A split of web|2 dies after pointing its identifiers at
    the new profile; a new version of web|2 then links there and writes its records doc. The split's retry still
    finishes the split: the alias follows the record and both logs say so."""
    ann_fields = dict(given_name="Ann", family_name="Lee")
    ann, = resolve(store, rec("pos", "1", email="ann.lee@shopmail.net", **ann_fields))
    absorbed, = resolve(store, rec("web", "2", loyalty_id="L-1001", **ann_fields))
    resolve(store, rec("crm", "3", email="ann.lee@shopmail.net", loyalty_id="L-1001", **ann_fields))
    assert get_profile(store, absorbed.profile_id)["id"] == ann.profile_id
    with pytest.raises(Died):
        split_record(crashing(store, "merges", "upsert_item"), ann.profile_id, "web|2", settings=SETTINGS)
    new_version, = resolve(store, rec("web", "2", loyalty_id="L-1001", phone="+447911123456", **ann_fields))
    new_id = split_record(store, ann.profile_id, "web|2", settings=SETTINGS)
    assert holders(store, "web|2") == [new_version.profile_id] == [new_id]
    assert get_profile(store, absorbed.profile_id)["id"] == new_id  # the alias followed its record
    splits = {(m["profile_id"], m["reason"]) for m in store.container("merges").query_items() if m["reason"] == "split"}
    assert splits == {(ann.profile_id, "split"), (new_id, "split")}
    assert violations(store) == {}


def test_a_new_version_meeting_a_removal_that_died_after_deleting_its_profile_forgets_the_merged_ids(store):
    """pos|8 left Ann's profile when it changed (another birth date), founding a profile of its own under its key's
    id and taking with it the id merged in with it (crm|a's profile, which it had joined). Its removal deletes that
    profile, then dies before forgetting the merged id. A new version of pos|8 arrives before the removal's retry:
    it founded a profile under the same id again, which the merged id led to without being listed in it, and the
    retry, finding the record there, could no longer find the id (it then led nowhere)."""
    ann = dict(given_name="Ann", family_name="Lee")
    resolve(store, rec("web", "1", phone="+447911123451", birth_date="1980-01-02", **ann),
            rec("crm", "a", email="ann.lee@shopmail.net", **ann), rec("pos", "8", email="ann.lee@shopmail.net", **ann),
            rec("app", "5", email="ann.lee@shopmail.net", phone="+447911123451", **ann))  # merges crm|a's profile
    remove_record(store, "crm", "a", settings=SETTINGS)
    left, = resolve(store, rec("pos", "8", email="ann.lee@shopmail.net", birth_date="1990-05-06", **ann))
    merged_id, = get_profile(store, left.profile_id)["merged_from"]
    with pytest.raises(Died):
        remove_record(crashing(store, "merges", "delete_item"), "pos", "8", settings=SETTINGS)

    again, = resolve(store, rec("pos", "8", email="ann.lee@shopmail.net", birth_date="1990-05-06",
                                phone="+447911123499", **ann))
    assert violations(store) == {}
    assert store.container("profiles").read_item_or_none(merged_id, merged_id) is None  # it named no one
    assert remove_record(store, "pos", "8", settings=SETTINGS) == again.profile_id  # the retry
    assert violations(store) == {}
