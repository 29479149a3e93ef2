"""Churn serving: lazy load, reload when `latest` changes, top factors, scoring a stored profile."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

import numpy as np
import pytest

from model_training.churn import new_version
from shared.activity import save_activity
from shared.churn.features import FEATURE_GROUPS, FEATURE_NAMES, INDEX
from shared.churn.registry import local_registry
from shared.churn.serving import ChurnModel, ChurnScorer, ModelNotAvailable, risk_level, score_profile
from shared.models import Transaction
from shared.settings import Settings
from shared.store import MemoryStore
from tests.test_churn_training import trained_model


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingRegistry:
    """The real local registry, counting how often serving asks it for the pointer."""

    def __init__(self, registry) -> None:
        self.registry, self.etag_checks, self.loads = registry, 0, 0

    def latest_etag(self):
        self.etag_checks += 1
        return self.registry.latest_etag()

    def load_latest(self):
        self.loads += 1
        return self.registry.load_latest()


def publish(registry, trained):
    version = new_version()
    card = {**trained.card, "version": version}
    previous = registry.latest_etag()
    registry.publish(version, trained.onnx, card, expected_latest=previous)
    return version


def test_scorer_loads_lazily_and_reloads_when_latest_changes(tmp_path):
    registry = local_registry(tmp_path)
    counting, clock = CountingRegistry(registry), Clock()
    scorer = ChurnScorer(counting, check_seconds=30, clock=clock)
    with pytest.raises(ModelNotAvailable, match="no churn model is published"):
        scorer.model()

    v1 = publish(registry, trained_model())
    with pytest.raises(ModelNotAvailable):  # the failed check is not repeated on every request
        scorer.model()
    clock.now += 31
    assert scorer.model().version == v1
    checks = counting.etag_checks
    for _ in range(100):  # within the interval: no registry traffic at all
        scorer.model()
    assert counting.etag_checks == checks

    clock.now += 31
    scorer.model()  # pointer unchanged: one cheap ETag check, no download
    assert counting.loads == 1

    v2 = publish(registry, trained_model())
    assert scorer.model().version == v1  # not yet: checked at most every 30 s
    clock.now += 31
    session_before = scorer.model()
    assert session_before.version == v2 and counting.loads == 2


def test_scorer_keeps_serving_when_the_new_model_is_unusable(tmp_path):
    registry = local_registry(tmp_path)
    clock = Clock()
    scorer = ChurnScorer(registry, check_seconds=10, clock=clock)
    v1 = publish(registry, trained_model())
    assert scorer.model().version == v1
    broken = dataclasses.replace(trained_model(), card={**trained_model().card, "features": ["other"]})
    publish(registry, broken)
    clock.now += 11
    assert scorer.model().version == v1


def test_top_factors_point_the_right_way():
    trained = trained_model()
    model = ChurnModel(trained.onnx, trained.card)
    typical = model.baseline.copy()

    def last_purchase(days: float) -> np.ndarray:
        """The typical customer, but last seen and last buying `days` ago."""
        x = typical.copy()
        ipt_mean, ipt_std = typical[INDEX["ipt_mean_days"]], typical[INDEX["ipt_std_days"]]
        x[INDEX["recency_days"]] = x[INDEX["last_seen_days"]] = days
        x[INDEX["recency_over_ipt"]] = days / max(ipt_mean, 1)
        x[INDEX["recency_z"]] = (days - ipt_mean) / max(ipt_std, 1)
        return x

    lapsed = last_purchase(400.0)
    score, factors = model.explain(lapsed)
    assert [f["factor"] for f in factors] == ["recency"]  # the only group that differs from typical
    assert factors[0]["direction"] == "up" and factors[0]["impact"] > 0
    assert factors[0]["values"]["recency_days"] == 400.0
    assert score == pytest.approx(model.predict(lapsed)[0])
    assert factors[0]["impact"] == pytest.approx(score - model.predict(typical)[0], abs=1e-4)

    loyal = last_purchase(2.0)
    for name in ("purchases_4w", "purchases_13w", "purchases_26w"):
        loyal[INDEX[name]] = typical[INDEX[name]] + 6
    _, factors = model.explain(loyal)
    directions = {f["factor"]: f["direction"] for f in factors}
    assert set(directions) <= {"recency", "frequency"} and directions["recency"] == "down"
    assert sum(f["impact"] for f in factors) < 0
    assert model.explain(typical)[1] == []  # a typical customer has nothing unusual to explain


def test_score_profile_reads_the_profiles_activity(tmp_path):
    store = MemoryStore()
    registry = local_registry(tmp_path)
    registry.publish(trained_model().version, trained_model().onnx, trained_model().card, expected_latest=None)
    scorer = ChurnScorer(registry)
    settings = Settings(churn_risk_medium=0.4, churn_risk_high=0.7)
    ts = lambda d: datetime.fromisoformat(d).replace(tzinfo=timezone.utc)  # noqa: E731
    save_activity(store, [
        Transaction(source="pos", order_id=f"o{i}", customer_key="42", timestamp=ts(day), amount="25")
        for i, day in enumerate(["2025-01-10", "2025-02-11", "2025-03-09", "2025-04-12"])
    ] + [Transaction(source="web", order_id="w1", customer_key="a7", timestamp=ts("2025-05-01"), amount="80",
                     channel="web")])
    profile = {"id": "p_1", "doc_type": "profile", "records": [{"key": "pos|42"}, {"key": "web|a7"}]}

    soon = score_profile(store, profile, scorer=scorer, as_of=ts("2025-05-08"), settings=settings)
    later = score_profile(store, profile, scorer=scorer, as_of=ts("2026-05-08"), settings=settings)
    assert soon["model_version"] == trained_model().card["version"]
    assert 0 < soon["score"] < later["score"] < 1  # a year without buying is riskier than a week
    assert later["risk"] == risk_level(later["score"], medium=0.4, high=0.7)
    assert later["top_factors"] and later["top_factors"][0]["direction"] == "up"
    assert score_profile(store, {"id": "p_2", "records": [{"key": "pos|nobody"}]}, scorer=scorer, settings=settings) is None


def test_risk_levels():
    assert [risk_level(s, medium=0.4, high=0.7) for s in (0.1, 0.4, 0.69, 0.7, 0.99)] == [
        "low", "medium", "medium", "high", "high"]


def test_groups_cover_every_feature_once():
    names = [n for group in FEATURE_GROUPS.values() for n in group]
    assert sorted(names) == sorted(FEATURE_NAMES) and len(names) == len(set(names))
    assert np.array_equal(np.sort(np.concatenate([[INDEX[n] for n in g] for g in FEATURE_GROUPS.values()])),
                          np.arange(len(FEATURE_NAMES)))


def test_a_naive_as_of_is_utc_whatever_the_machines_time_zone(tmp_path, monkeypatch):
    import time

    store, registry = MemoryStore(), local_registry(tmp_path)
    registry.publish(trained_model().version, trained_model().onnx, trained_model().card, expected_latest=None)
    save_activity(store, [Transaction(source="pos", order_id="o1", customer_key="42", amount="25",
                                      timestamp=datetime(2025, 5, 1, tzinfo=timezone.utc))])
    profile = {"id": "p_1", "doc_type": "profile", "records": [{"key": "pos|42"}]}
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")  # UTC+14: read as local, 06:00 would be before the purchase
    time.tzset()
    try:
        naive = score_profile(store, profile, scorer=ChurnScorer(registry), as_of=datetime(2025, 5, 1, 6))
        aware = score_profile(store, profile, scorer=ChurnScorer(registry),
                              as_of=datetime(2025, 5, 1, 6, tzinfo=timezone.utc))
    finally:
        monkeypatch.undo()
        time.tzset()
    assert naive is not None and naive == aware
