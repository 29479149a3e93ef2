"""Benchmark metrics against hand-computed examples and brute force, and the harness's report."""
from __future__ import annotations

import io
import itertools
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.harness import run_benchmark
from bench.metrics import (Latencies, PeakRSS, brier, classification_scores, cluster_scores, pairwise_prf, percentiles,
                           pr_auc, roc_auc)

ROOT = Path(__file__).resolve().parent.parent


def test_cluster_scores_hand_computed():
    truth = {"a": 1, "b": 1, "c": 1, "d": 2, "e": 2}
    predicted = {"a": "X", "b": "X", "c": "Y", "d": "Y", "e": "Z"}
    s = cluster_scores(truth, predicted)
    # true pairs: ab ac bc de = 4; predicted pairs: ab cd = 2; both: ab = 1
    assert (s["true_pairs"], s["predicted_pairs"], s["true_positive_pairs"]) == (4, 2, 1)
    assert s["pairwise_precision"] == pytest.approx(0.5)
    assert s["pairwise_recall"] == pytest.approx(0.25)
    assert s["pairwise_f1"] == pytest.approx(1 / 3)
    assert s["purity"] == pytest.approx(4 / 5)  # X: 2 of person 1, Y: 1, Z: 1
    assert s["split_people"] == 2 and s["split_people_rate"] == pytest.approx(1.0)
    assert s["over_merged_profiles"] == 1 and s["over_merged_profile_rate"] == pytest.approx(1 / 3)
    assert s["exact_people"] == 0
    assert s["bcubed_precision"] == pytest.approx((2 + 0.5 + 0.5 + 1) / 5)
    assert s["bcubed_recall"] == pytest.approx((4 / 3 + 1 / 3 + 0.5 + 0.5) / 5)
    assert (s["records"], s["people"], s["profiles"]) == (5, 2, 3)


def test_cluster_scores_perfect_and_all_singletons():
    truth = {i: i // 3 for i in range(30)}
    perfect = cluster_scores(truth, {i: f"p{i // 3}" for i in range(30)})
    assert perfect["pairwise_f1"] == 1.0 and perfect["purity"] == 1.0 and perfect["exact_people_rate"] == 1.0
    assert perfect["split_people"] == 0 and perfect["over_merged_profiles"] == 0
    singletons = cluster_scores(truth, {i: i for i in range(30)})
    assert singletons["pairwise_precision"] == 1.0 and singletons["pairwise_recall"] == 0.0
    assert singletons["split_people"] == 10
    one_blob = cluster_scores(truth, {i: "all" for i in range(30)})
    assert one_blob["pairwise_recall"] == 1.0 and one_blob["pairwise_precision"] == pytest.approx(30 / 435)
    assert one_blob["over_merged_profiles"] == 1


def test_missing_records_ignored_or_counted_as_splits():
    truth = {"a": 1, "b": 1, "c": 2}
    predicted = {"a": "X", "c": "Y"}
    ignored = cluster_scores(truth, predicted)
    assert ignored["records"] == 2 and ignored["records_missing"] == 1 and ignored["pairwise_recall"] == 1.0
    singleton = cluster_scores(truth, predicted, missing="singleton")
    assert singleton["records"] == 3 and singleton["pairwise_recall"] == 0.0 and singleton["split_people"] == 1
    with pytest.raises(ValueError):
        cluster_scores(truth, predicted, missing="drop")


def test_pairwise_matches_brute_force():
    rng = random.Random(4)
    for _ in range(20):
        n = rng.randrange(2, 60)
        truth = {i: rng.randrange(max(1, n // 3)) for i in range(n)}
        predicted = {i: rng.randrange(max(1, n // 2)) for i in range(n)}
        tp = fp = fn = 0
        for a, b in itertools.combinations(range(n), 2):
            same_t, same_p = truth[a] == truth[b], predicted[a] == predicted[b]
            tp += same_t and same_p
            fp += same_p and not same_t
            fn += same_t and not same_p
        p, r, f = pairwise_prf(truth, predicted)
        assert p == pytest.approx(tp / (tp + fp) if tp + fp else 1.0)
        assert r == pytest.approx(tp / (tp + fn) if tp + fn else 1.0)


def test_roc_pr_auc_and_brier_hand_computed():
    y, s = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    assert roc_auc(y, s) == pytest.approx(0.75)
    assert pr_auc(y, s) == pytest.approx((0.5 * 1.0) + (0.5 * 2 / 3))  # recall steps at 0.8 and 0.35
    assert roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)  # a tie counts half
    assert roc_auc([1, 0], [0.9, 0.1]) == 1.0 and roc_auc([1, 0], [0.1, 0.9]) == 0.0
    assert np.isnan(roc_auc([1, 1], [0.2, 0.3]))
    assert brier([1, 0], [0.8, 0.3]) == pytest.approx(0.065)
    with pytest.raises(ValueError):
        roc_auc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError):
        brier([0, 1], [0.1])


def test_auc_matches_scikit_learn_with_ties():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    s = np.round(rng.random(500) * 0.6 + y * 0.3, 2)  # rounded: many ties
    assert roc_auc(y, s) == pytest.approx(metrics.roc_auc_score(y, s))
    assert pr_auc(y, s) == pytest.approx(metrics.average_precision_score(y, s))
    assert brier(y, s) == pytest.approx(metrics.brier_score_loss(y, s))


def test_classification_scores_at_threshold():
    out = classification_scores([1, 1, 0, 0], [0.9, 0.4, 0.6, 0.1])
    assert out["accuracy"] == 0.5 and out["precision"] == 0.5 and out["recall"] == 0.5
    assert out["base_rate"] == 0.5 and out["roc_auc"] == pytest.approx(0.75)


def test_percentiles_and_latencies():
    p = percentiles(range(1, 101))
    assert p["n"] == 100 and p["p50"] == pytest.approx(50.5) and p["p95"] == pytest.approx(95.05)
    assert p["p99"] == pytest.approx(99.01) and p["max"] == 100 and p["min"] == 1
    assert percentiles([]) == {"n": 0}
    lat = Latencies()
    for _ in range(3):
        with lat.time():
            sum(range(1000))
    assert lat.summary()["n"] == 3 and lat.summary()["p50"] >= 0


def test_peak_rss_sees_a_temporary_allocation():
    with PeakRSS(interval_s=0.005) as mem:
        block = bytearray(80 * 1024 * 1024)
        block[::4096] = b"x" * len(block[::4096])  # touch every page
        import time

        time.sleep(0.05)
        del block
    assert mem.growth_mb > 60


def test_run_benchmark_prints_one_json_report_and_saves(tmp_path):
    out = io.StringIO()
    report = run_benchmark("demo", lambda: {"rows_per_s": 123}, params={"seed": 7, "n": 3}, save=True,
                           results_dir=tmp_path, stream=out)
    printed = json.loads(out.getvalue())
    assert printed == json.loads(json.dumps(report))
    assert printed["figures"] == {"rows_per_s": 123} and printed["seed"] == 7 and printed["ok"] is True
    assert printed["machine"]["cpu_count"] >= 1 and printed["machine"]["python"].startswith("3.")
    assert printed["versions"]["pydantic"] and printed["peak_rss_mb"] > 0
    build = printed["machine"]["python_build"]  # the interpreter's build moves speed figures by 12%
    assert Path(build["executable"]).is_file()
    assert build["libpython"] is None or Path(build["libpython"]).name.startswith("libpython3")
    assert json.loads((tmp_path / "demo.json").read_text())["benchmark"] == "demo"


def test_run_benchmark_reports_failure_then_raises():
    out = io.StringIO()

    def broken():
        raise RuntimeError("no stack")

    with pytest.raises(RuntimeError):
        run_benchmark("broken", broken, stream=out)
    printed = json.loads(out.getvalue())
    assert printed["ok"] is False and "no stack" in printed["error"]


def test_bench_runner_lists_benchmarks_and_runs_one(tmp_path):
    listed = subprocess.run([sys.executable, "-m", "bench", "--list"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    names = listed.stdout.split()
    assert "generate" in names and "harness" not in names and "metrics" not in names
    run = subprocess.run([sys.executable, "-m", "bench", "generate", "--customers", "60"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["benchmark"] == "generate" and report["figures"]["customers"] == 60
    assert report["figures"]["rows"] > 60
    assert report["git"] is None or len(report["git"]["commit"]) == 40
