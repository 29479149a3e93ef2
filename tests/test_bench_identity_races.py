"""bench/identity_races.py: many workers resolving at once, then the audit; the report counts what it found."""
from __future__ import annotations

import argparse
import random

import pytest

from bench import identity_races


def test_rounds_report_their_records_resolved_and_audited():
    figures = identity_races.measure(argparse.Namespace(rounds=4, seed=0, records=5, deliveries=2, switch=1e-4,
                                                        die=0.0, sequential_orders=2, repair_window=False,
                                                        repair_chunk=200, removals=0, repairs=0))
    assert figures["rounds"] == 4 and 0 <= figures["rounds_inconsistent"] <= 4
    assert len(figures["examples"]) == figures["rounds_inconsistent"]
    assert sum(figures["violations_by_kind"].values()) + sum(figures["exceptions"].values()) >= \
        figures["rounds_inconsistent"]


def test_one_round_delivers_every_record_and_leaves_them_in_profiles():
    """A round's records all end in profiles once the queue has drained (the audit checks the rest)."""
    from shared.store import MemoryStore

    store = MemoryStore()
    violations, errors, died, _ = identity_races.one_round(3, records=4, deliveries=2, store=store)
    assert errors == [] and isinstance(violations, dict) and died == 0
    records = list(store.container("records").query_items())
    assert records and all(doc.get("profile_id") for doc in records)


def test_a_round_whose_workers_all_die_is_finished_by_the_drain():
    """Every delivery's worker dies at a write of its own: no exception counts, and the drain's redeliveries leave
    every record done (delivered once more, it changes nothing) or quarantined."""
    from shared.identity import Resolver
    from shared.store import MemoryStore
    from tests.test_identity_random_operations import SETTINGS, random_record

    store = MemoryStore()
    violations, errors, died, _ = identity_races.one_round(5, records=4, deliveries=2, store=store, die=1.0)
    assert errors == [] and isinstance(violations, dict) and died >= 2
    rng = random.Random(5)
    drawn = [random_record(rng) for _ in range(4)]
    actions = [Resolver(store, settings=SETTINGS).resolve(record).action for record in drawn]
    assert set(actions) <= {"unchanged", "quarantined"} and "unchanged" in actions


def test_a_round_with_repairs_racing_runs_each_beside_the_deliveries(monkeypatch):
    """`repairs`: runs of repair_index start with the deliveries (after a short random delay), on the round's
    store; the round's records and deletes are then drained as ever, and a repair's exception would count."""
    import shared.identity

    stores = []
    real = shared.identity.repair_index
    monkeypatch.setattr(shared.identity, "repair_index", lambda store, **kwargs: stores.append(store) or real(
        store, **kwargs))
    _, errors, _, _ = identity_races.one_round(5, records=4, deliveries=2, die=0.5, removals=1, repairs=2)
    assert errors == []
    assert len(stores) == 2 and stores[0] is stores[1]


@pytest.mark.parametrize("die", [0.0, 1.0], ids=["racing", "every_worker_dying"])
def test_a_round_with_removals_racing_ends_with_their_records_removed(die):
    """Deletes at the source racing the deliveries (dying as they do): once the drain has delivered every record and
    then every delete again, the deleted keys are in no profile and their records docs are tombstones."""
    from shared.store import MemoryStore
    from tests.test_identity_random_operations import random_record

    store = MemoryStore()
    violations, errors, died, _ = identity_races.one_round(7, records=4, deliveries=2, store=store, die=die,
                                                           removals=2)
    assert errors == [] and (died >= 2 if die else died == 0)
    rng = random.Random(7)
    drawn = [random_record(rng) for _ in range(4)]
    docs = {doc["id"]: doc for doc in store.container("records").query_items()}
    removed = {key for key, doc in docs.items() if doc.get("removed_at")}
    held = {r["key"] for p in store.container("profiles").query_items(("doc_type", "=", "profile"))
            for r in p["records"]}
    assert removed and not removed & held and {r.key for r in drawn} - removed <= held | {
        key for key, doc in docs.items() if doc.get("profile_id") is None}
    assert violations == {}


def test_a_grouping_other_than_every_sequential_order_gives_is_counted():
    """Two records of Ann sharing her email are together in any order one at a time, Bob's apart from both: a
    concurrent run that split Ann's, or joined Bob's to hers, is a finding."""
    from shared.models import CustomerRecord

    ann1 = CustomerRecord(source="pos", record_key="1", given_name="Ann", family_name="Lee", email="ann@lee.org")
    ann2 = CustomerRecord(source="web", record_key="2", given_name="Ann", family_name="Lee", email="ann@lee.org")
    bob = CustomerRecord(source="web", record_key="3", given_name="Bob", family_name="Roe", phone="+447911123456")
    drawn, rng = [ann1, ann2, bob], random.Random(0)
    assert identity_races._against_sequential(drawn, {"pos|1": "a", "web|2": "a", "web|3": "b"}, 3, rng) == {}
    assert identity_races._against_sequential(drawn, {"pos|1": "a", "web|2": "b", "web|3": "c"}, 3, rng) == {
        "split_from_sequential": 1}
    assert identity_races._against_sequential(drawn, {"pos|1": "a", "web|2": "a", "web|3": "a"}, 3, rng) == {
        "joined_against_sequential": 2}


@pytest.mark.parametrize("repair_window", [False, True], ids=["full_repair", "repair_over_the_round_in_chunks_of_one"])
def test_a_round_the_audit_finds_inconsistent_is_repaired_and_audited_again(monkeypatch, repair_window):
    """The report counts the rounds whose store repair_index mended, and what the audit still found after it: a
    round whose blocking key names a profile that does not give it (a death's residue) is left with nothing, by a
    full run or by one over the documents the round wrote."""
    from shared.audit import audit_store
    from tests.test_identity_repair import household, stale_key

    def round_leaving_a_stale_key(seed, records, deliveries, *, store, die, orders, removals, repairs):
        stale_key(store, *household(store))
        return audit_store(store).as_dict()["violations"], [], 0, 0

    monkeypatch.setattr(identity_races, "one_round", round_leaving_a_stale_key)
    figures = identity_races.measure(argparse.Namespace(rounds=2, seed=0, records=2, deliveries=1, switch=1e-4,
                                                        die=0.0, sequential_orders=0, repair_window=repair_window,
                                                        repair_chunk=1, removals=0, repairs=0))
    assert figures["rounds_inconsistent"] == 2 and figures["violations_by_kind"] == {"blocking_names_non_giver": 2}
    assert figures["rounds_repaired"] == 2 and figures["violations_after_repair_by_kind"] == {}


def test_a_grouping_some_order_gives_is_no_finding_though_the_sampled_orders_missed_it():
    """Dan's record giving his email and phone joins one of his two other records (two birth dates: one gives the
    email, one the phone); with the phone's record before it and the email's after, one after the other, it is with
    the phone's. Sampled orders may all miss those; a round is then checked against every order, and only groupings
    no order gives are counted."""
    from shared.models import CustomerRecord

    dan = dict(given_name="Dan", family_name="Roe")
    by_email = CustomerRecord(source="pos", record_key="1", birth_date="1980-01-02", email="dan@roe.org", **dan)
    by_phone = CustomerRecord(source="crm", record_key="2", birth_date="1981-03-04", phone="+447911123456", **dan)
    both = CustomerRecord(source="web", record_key="3", email="dan@roe.org", phone="+447911123456", **dan)
    drawn = [by_email, by_phone, both]
    with_phone = {"pos|1": "a", "crm|2": "b", "web|3": "b"}
    sampled = [identity_races._otherwise(identity_races._pairs(with_phone),
                                         [identity_races._grouped(drawn, random.Random(seed).sample(drawn, 3))])
               for seed in range(12)]
    assert {} in sampled and any(sampled)  # some single orders group them so, others miss it
    for seed in range(12):
        assert identity_races._against_sequential(drawn, with_phone, 1, random.Random(seed)) == {}
    all_three = {"pos|1": "a", "crm|2": "a", "web|3": "a"}  # the two birth dates together: no order does that
    assert identity_races._against_sequential(drawn, all_three, 1, random.Random(0)) == {"joined_against_sequential": 1}


def test_a_traced_round_the_audit_finds_inconsistent_writes_its_store_calls(monkeypatch, tmp_path):
    """--trace: the calls of an inconsistent round, in order, with their thread and outcome, under the round's seed;
    a consistent round writes nothing."""
    import json

    from shared.audit import audit_store
    from tests.test_identity_repair import household, stale_key

    def round_leaving_a_stale_key_on_odd_seeds(seed, records, deliveries, *, store, die, orders, removals, repairs):
        household(store)
        if seed % 2:
            stale_key(store, *household(store))
        return audit_store(store).as_dict()["violations"], [], 0, 0

    monkeypatch.setattr(identity_races, "one_round", round_leaving_a_stale_key_on_odd_seeds)
    figures = identity_races.measure(argparse.Namespace(rounds=2, seed=4, records=2, deliveries=1, switch=1e-4,
                                                        die=0.0, sequential_orders=0, repair_window=False,
                                                        repair_chunk=200, removals=0, repairs=0, trace=str(tmp_path)))
    assert figures["traces"] == [str(tmp_path / "round-5.jsonl")] and sorted(tmp_path.iterdir()) == [
        tmp_path / "round-5.jsonl"]
    header, *calls = [json.loads(line) for line in (tmp_path / "round-5.jsonl").read_text().splitlines()]
    assert header == {"seed": 5, "violations": {"blocking_names_non_giver": 1}, "exceptions": []}
    assert {call["thread"] for call in calls} == {"MainThread"}
    writes = [call for call in calls if call["container"] == "blocking" and call["method"] == "replace_item"]
    assert writes and all("_etag" in call["outcome"] for call in writes)
    profiles = [call for call in calls if call["container"] == "profiles" and call["method"] == "create_item"]
    assert profiles and all(isinstance(key, str) for call in profiles for key in call["outcome"]["records"])

    from shared.store import ItemNotFoundError, MemoryStore

    traced = identity_races.TracedStore(MemoryStore())
    with pytest.raises(ItemNotFoundError):  # a call that raises is recorded with what it raised
        traced.container("profiles").read_item("p_none", "p_none")
    assert traced.calls == [{"thread": "MainThread", "container": "profiles", "method": "read_item",
                             "args": ["p_none", "p_none"], "outcome": {"raised": "ItemNotFoundError"}}]
