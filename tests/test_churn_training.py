"""Churn training: refusals with reasons, model choice, calibration, ONNX parity, the model card."""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from functools import lru_cache

import numpy as np
import pytest

from model_training.churn import (
    PARITY_TOLERANCE, TrainingRefused, candidate_models, in_holdout, labelled_snapshot, labelled_snapshots, platt,
    to_float32, train, train_and_publish, verified_export,
)
from model_training.churn_synth import simulate
from shared.churn.features import FEATURE_NAMES, History, to_epoch
from shared.churn.registry import local_registry
from shared.churn.serving import ChurnModel

END = datetime(2026, 6, 30, tzinfo=timezone.utc)
AS_OF = to_epoch(END)
WINDOW = 90
FAST = {"folds": 3, "candidates": ["logistic_regression", "gradient_boosting"], "snapshots": 3}


@lru_cache(maxsize=4)
def synthetic_histories(n: int = 700, seed: int = 3, years: float = 2.0) -> dict[str, History]:
    data, _ = simulate(n, seed=seed, end=END, years=years, window_days=WINDOW)
    return {cid: History.from_docs(v["transactions"], v["events"], v["reviews"]) for cid, v in data.items()}


@lru_cache(maxsize=1)
def trained_model():
    """One real training run shared by the churn tests (a few seconds)."""
    return train(synthetic_histories(), as_of=AS_OF, window_days=WINDOW, **FAST)


def test_refuses_fewer_than_500_profiles_with_a_report():
    histories = dict(list(synthetic_histories().items())[:300])
    with pytest.raises(TrainingRefused) as err:
        train(histories, as_of=AS_OF, window_days=WINDOW, **FAST)
    assert "at least 500" in err.value.reason
    assert err.value.report["status"] == "refused"
    assert err.value.report["data"]["profiles"] < 500


def test_refuses_history_shorter_than_twice_the_window():
    histories = synthetic_histories(700, 4, 0.45)  # ~164 days < 180
    with pytest.raises(TrainingRefused, match="needs at least 180"):
        train(histories, as_of=AS_OF, window_days=WINDOW, **FAST)


def test_refuses_when_nobody_churned():
    weekly = [{"timestamp": f"2026-{m:02d}-{d:02d}T10:00:00Z", "amount": 20.0}
              for m in range(1, 7) for d in (1, 8, 15, 22)]
    histories = {f"c{i}": History.from_docs(weekly + [{"timestamp": "2025-06-01T00:00:00Z", "amount": 5.0}])
                 for i in range(600)}
    with pytest.raises(TrainingRefused, match="too few churned"):
        train(histories, as_of=AS_OF, window_days=WINDOW, **FAST)


def test_refused_run_still_writes_its_report(tmp_path):
    registry = local_registry(tmp_path)
    histories = dict(list(synthetic_histories().items())[:100])
    report = train_and_publish(histories, registry, as_of=AS_OF, window_days=WINDOW, tolerance=0.005, run_id="r1", **FAST)
    assert report["status"] == "refused"
    assert registry.read_run("r1")["reason"] == report["reason"]
    assert registry.latest() is None


def test_trained_model_is_calibrated_useful_and_exported_with_parity():
    trained = trained_model()
    card = trained.card
    metrics, base = card["metrics"], card["base_rate"]
    assert card["features"] == list(FEATURE_NAMES)
    assert card["model_selection"]["chosen"] in FAST["candidates"]
    assert set(card["model_selection"]["candidates"]) == set(FAST["candidates"])
    assert metrics["roc_auc"] > 0.75
    assert metrics["brier"] < base * (1 - base)  # better than always predicting the base rate
    assert sum(row["count"] for row in card["calibration"]) == card["rows"]["holdout"]
    rows = card["rows"]
    assert rows["train_customers"] + rows["holdout"] == rows["customers"]
    assert rows["holdout"] == pytest.approx(0.25 * rows["customers"], rel=0.15)  # a hash, not an exact draw
    assert card["holdout_split"] == {"by": "sha256(customer id)", "fraction": 0.25}
    assert rows["snapshots"] > 1 and rows["train_rows"] > rows["train_customers"]
    for key in ("trained_at", "data_window", "feature_importance", "feature_baseline", "libraries", "calibrator"):
        assert card[key]
    # the published artefact itself reproduces scikit-learn on the holdout
    model = ChurnModel(trained.onnx, card)
    onnx_scores = model.predict(trained.holdout_x)
    assert np.max(np.abs(onnx_scores - trained.predict(trained.holdout_x))) <= PARITY_TOLERANCE
    assert card["onnx"]["parity_max_abs_diff"] <= PARITY_TOLERANCE
    assert ((onnx_scores > 0) & (onnx_scores < 1)).all()


@pytest.mark.parametrize("name", ["logistic_regression", "gradient_boosting", "hist_gradient_boosting"])
def test_every_candidate_exports_within_parity(name):
    ids, x, y = labelled_snapshot(synthetic_histories(), as_of=AS_OF, window_days=WINDOW)
    x = to_float32(x)
    import sklearn.ensemble  # noqa: F401  (load OpenMP before capping it, as train() does)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        estimator = candidate_models(0)[name].fit(x[:500], y[:500])
    calibration = (0.9, -0.1)
    expected = platt(estimator.predict_proba(x[500:])[:, 1], *calibration)
    blob, info = verified_export(estimator, calibration, x[500:], expected)
    assert info["parity_max_abs_diff"] <= PARITY_TOLERANCE and info["dtype"] == "float"


def test_serving_module_does_not_need_scikit_learn():
    code = ("import sys; import shared.churn.serving, shared.churn; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('sklearn', 'skl2onnx', 'pandas')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_holdout_is_a_fixed_hash_of_the_customer_id():
    """Changing this rule would put customers a published champion was trained on into the next holdout."""
    assert [i for i in (f"p_{n}" for n in range(40)) if in_holdout(i)] == [
        "p_11", "p_12", "p_13", "p_16", "p_23", "p_26", "p_30", "p_31", "p_33"]
    ids = [f"c{n}" for n in range(20000)]
    assert sum(map(in_holdout, ids)) / len(ids) == pytest.approx(0.25, abs=0.01)
    assert all(in_holdout(i, 0.25) for i in ids if in_holdout(i, 0.1))  # a smaller fraction is a subset


def test_the_champion_is_compared_on_customers_it_was_not_trained_on():
    """publish_if_better scores the champion on the challenger's holdout. With a holdout re-drawn each run, most
    of those customers were in the champion's training set (same customers, last week's cut-off): its AUC was
    inflated and the gate favoured the incumbent. Champion trained a week earlier, same code."""
    histories = synthetic_histories()
    earlier = AS_OF - 7 * 86400
    champion = train(histories, as_of=earlier, window_days=WINDOW, **FAST)
    challenger = trained_model()
    all_ids, _, _, _ = labelled_snapshots(histories, as_of=earlier, window_days=WINDOW, snapshots=FAST["snapshots"],
                                          step_days=28)
    champion_train = set(all_ids) - set(champion.holdout_ids)
    assert champion_train and not champion_train & set(challenger.holdout_ids)
    assert set(challenger.holdout_ids) & set(champion.holdout_ids)


def test_same_data_and_seed_give_the_same_model_whatever_the_input_order():
    """The nightly job's histories come in the activity scan's order (unspecified for a Cosmos cross-partition
    query): the holdout, the rows and so the model and the gate's AUC must not depend on it."""
    histories = synthetic_histories()
    forward = trained_model()
    backward = train(dict(reversed(list(histories.items()))), as_of=AS_OF, window_days=WINDOW, **FAST)
    assert forward.holdout_ids == backward.holdout_ids
    assert forward.card["metrics"] == backward.card["metrics"]
    assert forward.card["model_selection"]["chosen"] == backward.card["model_selection"]["chosen"]
