"""The identity bench's in-process run: records streamed from pickles end as resolving them directly would."""
from __future__ import annotations

import pickle
import random

from collections import Counter

from bench.identity import cosmos_sample, final_assignment, load_customer_records, run_in_process
from bench.metrics import cluster_scores
from shared.generate import GeneratorConfig, generate, load_truth_records
from shared.identity import resolve_records
from shared.identity.engine import default_model
from shared.store import MemoryStore


def test_streamed_run_scores_as_resolving_the_records_in_that_order(tmp_path):
    generate(tmp_path, GeneratorConfig(customers=120, seed=4), progress=False)
    records, rows = load_customer_records(tmp_path), load_truth_records(tmp_path)
    truth = {r.key: rows[r.key] for r in records}  # as the bench scores them: the records given to the resolver
    packed = [pickle.dumps(r) for r in records]
    run = run_in_process(packed, [r.key for r in records], truth, default_model(), order_seed=3)

    ordered = list(records)
    random.Random(3).shuffle(ordered)  # the order the bench resolves them in
    store = MemoryStore()
    resolve_records(store, ordered)
    assignment = final_assignment(store, records)
    expected = cluster_scores(truth, assignment, missing="singleton")  # every record: a quarantined one is a miss
    assert run["pairwise_f1"] == round(expected["pairwise_f1"], 5) and 0.5 < run["pairwise_f1"] <= 1
    assert run["records"] == len(truth) and run["true_pairs"] == expected["true_pairs"]
    assert run["records_missing"] == len(truth) - len(assignment) == run["actions"].get("quarantined", 0)
    resolved = cluster_scores(truth, assignment)
    assert run["resolved_records_only"]["pairwise_f1"] == round(resolved["pairwise_f1"], 5)
    assert run["split_people"] == expected["split_people"]
    assert sum(run["actions"].values()) == len(records)
    assert run["records_per_cpu_s"] > 0 and run["unpickling_cpu_s"] >= 0


def test_cosmos_sample_is_whole_people_from_every_source(tmp_path):
    """The emulator's records: whole people drawn at random, so the sources (and links, merges) come in the data's
    mix, not the files' first records (one source's, almost all new profiles)."""
    generate(tmp_path, GeneratorConfig(customers=150, seed=5), progress=False)
    records, rows = load_customer_records(tmp_path), load_truth_records(tmp_path)
    truth = {r.key: rows[r.key] for r in records}
    assert {r.source for r in records[:50]} == {"crm"}  # why the first records will not do

    sample = cosmos_sample(records, truth, 100, seed=1)
    assert 90 <= len(sample) <= 100 and len({r.key for r in sample}) == len(sample)
    people = Counter(truth[r.key] for r in sample)
    whole = Counter(truth[r.key] for r in records)
    assert all(whole[p] == n for p, n in people.items())  # every record of each person drawn
    assert {r.source for r in sample} == {r.source for r in records}
    assert any(n > 1 for n in people.values())  # people with several records: links to make
    assert [r.key for r in cosmos_sample(records, truth, 100, seed=1)] == [r.key for r in sample]  # seeded

    everything = cosmos_sample(records, truth, len(records), seed=1)
    assert sorted(r.key for r in everything) == sorted(r.key for r in records)
