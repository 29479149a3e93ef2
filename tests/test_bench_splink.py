"""The Splink baseline (bench/splink_baseline.py) on a few hundred generated customers: its figures are sane and
are what the shared metric helpers count. Skipped where Splink is not installed (CI: it is bench-only)."""
import itertools

import pytest

pytest.importorskip("splink")

from bench import splink_baseline  # noqa: E402
from bench.metrics import cluster_scores  # noqa: E402
from model_training.match_model import load_training_records  # noqa: E402
from shared.normalize import normalize_record  # noqa: E402


@pytest.fixture(scope="module")
def customers():
    return load_training_records(300, seed=5)


def _hand_count(truth: dict, assignment: dict) -> tuple[int, int, int]:
    """(true positive, predicted, true) record pairs by looking at every pair."""
    tp = predicted = true = 0
    for a, b in itertools.combinations(sorted(assignment), 2):
        same_profile, same_person = assignment[a] == assignment[b], truth[a] == truth[b]
        tp += same_profile and same_person
        predicted += same_profile
        true += same_person
    return tp, predicted, true


def test_metric_helpers_agree_with_a_hand_count_on_a_tiny_case():
    truth = {"a": 1, "b": 1, "c": 1, "d": 2}
    assignment = {"a": "x", "b": "x", "c": "y", "d": "y"}  # c split from its person and merged with d
    scores = cluster_scores(truth, assignment)
    assert _hand_count(truth, assignment) == (1, 2, 3)
    assert scores["pairwise_precision"] == pytest.approx(1 / 2)
    assert scores["pairwise_recall"] == pytest.approx(1 / 3)
    assert (scores["split_people"], scores["over_merged_profiles"]) == (1, 1)


def test_splink_clusters_are_scored_as_a_hand_count_of_their_pairs(customers):
    records, persons = customers
    truth = {r.key: p for r, p in zip(records, persons)}
    rows, id_columns = splink_baseline.splink_rows([normalize_record(r) for r in records])
    linker, df_predict, _ = splink_baseline.fit_and_predict(rows, id_columns, seed=1, max_pairs=1e6)
    assignment = splink_baseline.clusters_at(linker, df_predict, 0.95)

    assert set(assignment) == set(truth)  # every record gets a cluster, singletons included
    tp, predicted, true = _hand_count(truth, assignment)
    scores = cluster_scores(truth, assignment)
    assert (scores["true_positive_pairs"], scores["predicted_pairs"], scores["true_pairs"]) == (tp, predicted, true)
    assert 0 < tp <= min(predicted, true)


def test_baseline_figures_are_sane(customers):
    records, persons = customers
    figures = splink_baseline.run_splink(records, persons, seed=1, max_pairs=1e6)

    assert figures["splink_version"]
    assert figures["records"] == len(records) >= figures["records_in_ucp_scope"] > 0.99 * len(records)
    assert 0 < figures["pairs"]["blocking_recall"] <= 1
    recalls = []
    for threshold in splink_baseline.THRESHOLDS:
        scores = figures["thresholds"][str(threshold)]
        assert 0 < scores["pairwise_precision"] <= 1 and 0 < scores["pairwise_recall"] <= 1
        recalls.append(scores["pairwise_recall"])
    # a higher threshold keeps a subset of the links, so the clusters only split: recall cannot rise
    assert recalls == sorted(recalls, reverse=True)
    assert figures["best_f1"] == max(figures["thresholds"][str(t)]["pairwise_f1"] for t in splink_baseline.THRESHOLDS)
    assert figures["best_f1"] > 0.5  # a trained linker on names, dates and identifiers, not chance
    assert figures["unlabelled_choice_scores"] == figures["thresholds"][str(splink_baseline.UNLABELLED_CHOICE)]
