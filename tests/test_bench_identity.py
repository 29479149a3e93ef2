"""The identity bench's in-process run: records streamed from pickles end as resolving them directly would."""
from __future__ import annotations

import pickle
import random

from bench.identity import final_assignment, load_customer_records, run_in_process
from bench.metrics import cluster_scores
from shared.generate import GeneratorConfig, generate, load_truth_records
from shared.identity import resolve_records
from shared.identity.engine import default_model
from shared.store import MemoryStore


def test_streamed_run_scores_as_resolving_the_records_in_that_order(tmp_path):
    generate(tmp_path, GeneratorConfig(customers=120, seed=4), progress=False)
    records, truth = load_customer_records(tmp_path), load_truth_records(tmp_path)
    packed = [pickle.dumps(r) for r in records]
    run = run_in_process(packed, [r.key for r in records], truth, default_model(), order_seed=3)

    ordered = list(records)
    random.Random(3).shuffle(ordered)  # the order the bench resolves them in
    store = MemoryStore()
    resolve_records(store, ordered)
    expected = cluster_scores(truth, final_assignment(store, records))
    assert run["pairwise_f1"] == round(expected["pairwise_f1"], 5) and 0.5 < run["pairwise_f1"] <= 1
    assert run["split_people"] == expected["split_people"]
    assert sum(run["actions"].values()) == len(records)
    assert run["records_per_cpu_s"] > 0 and run["unpickling_cpu_s"] >= 0
