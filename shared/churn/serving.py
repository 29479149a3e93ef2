"""Churn scoring with onnxruntime only (no scikit-learn): one InferenceSession per worker, loaded lazily from
the registry and reloaded when the `latest` pointer changes; per-profile top factors from the same session.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from .features import FEATURE_GROUPS, FEATURE_NAMES, INDEX, History, to_epoch
from .registry import ModelRegistry

log = logging.getLogger(__name__)

TOP_FACTORS = 5
GROUP_INDEX = {g: np.array([INDEX[n] for n in names]) for g, names in FEATURE_GROUPS.items()}
RELOAD_CHECK_SECONDS = 60.0


class ModelNotAvailable(RuntimeError):
    """No churn model is published yet (run the trainer) or the published one cannot be used."""


def risk_level(score: float, *, medium: float, high: float) -> str:
    return "high" if score >= high else "medium" if score >= medium else "low"


class ChurnModel:
    """A loaded ONNX churn model and its card."""

    def __init__(self, model: bytes, card: Mapping[str, Any], *, etag: str | None = None) -> None:
        import onnxruntime as ort

        if list(card.get("features", [])) != list(FEATURE_NAMES):
            raise ModelNotAvailable(
                f"churn model {card.get('version')} was trained on other features than this code computes; retrain it")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # single rows and small batches: threads cost more than they save
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.card = dict(card)
        self.version: str = card["version"]
        self.etag = etag
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.dtype = np.float64 if inp.type == "tensor(double)" else np.float32
        self.output_name = card.get("onnx", {}).get("output", "probability")
        baseline = card.get("feature_baseline") or {}
        self.baseline = np.array([baseline.get(n, 0.0) for n in FEATURE_NAMES], dtype=np.float64)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Churn probabilities for rows of FEATURE_NAMES."""
        x = np.ascontiguousarray(np.atleast_2d(features), dtype=self.dtype)
        (out,) = self.session.run([self.output_name], {self.input_name: x})
        return np.asarray(out, dtype=np.float64).reshape(-1)

    def explain(self, features: np.ndarray, *, top: int = TOP_FACTORS) -> tuple[float, list[dict[str, Any]]]:
        """The score and the factors that move it most. Each factor (a group of related features, FEATURE_GROUPS)
        is set in turn to the training medians; the change in score is its impact (positive = this customer's
        values push the churn risk up compared with a typical customer). One session.run of 1 + groups rows."""
        x = np.asarray(features, dtype=np.float64).reshape(-1)
        rows = np.tile(x, (len(GROUP_INDEX) + 1, 1))
        for row, idx in enumerate(GROUP_INDEX.values(), start=1):
            rows[row, idx] = self.baseline[idx]
        probs = self.predict(rows)
        score, impacts = float(probs[0]), probs[0] - probs[1:]
        names = list(GROUP_INDEX)
        factors = []
        for g in np.argsort(-np.abs(impacts), kind="stable")[:top]:
            if abs(impacts[g]) < 1e-6:
                break
            idx = GROUP_INDEX[names[g]]
            factors.append({
                "factor": names[g], "impact": round(float(impacts[g]), 4), "direction": "up" if impacts[g] > 0 else "down",
                "values": {FEATURE_NAMES[i]: _round(x[i]) for i in idx},
                "typical": {FEATURE_NAMES[i]: _round(self.baseline[i]) for i in idx},
            })
        return score, factors


def _round(v: float) -> float:
    return round(float(v), 3)


class ChurnScorer:
    """Per-worker holder of the champion model: lazy load, reload when the pointer's ETag changes (checked at most
    every `check_seconds`). Thread-safe; keeps serving the loaded model if the registry is unreachable."""

    def __init__(self, registry: ModelRegistry, *, check_seconds: float = RELOAD_CHECK_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry
        self.check_seconds = check_seconds
        self.clock = clock
        self._model: ChurnModel | None = None
        self._checked_at: float | None = None
        self._error: str | None = None
        self._lock = threading.Lock()

    def model(self) -> ChurnModel:
        now = self.clock()
        if self._model is not None and self._checked_at is not None and now - self._checked_at < self.check_seconds:
            return self._model
        with self._lock:
            if self._checked_at is None or now - self._checked_at >= self.check_seconds:
                try:
                    self._refresh()
                finally:
                    self._checked_at = now  # failures are retried at the next check, not on every request
            if self._model is None:
                raise ModelNotAvailable(self._error or "no churn model is published yet: run `ucp churn train` "
                                                      "or the churn_retrain timer")
            return self._model

    def _refresh(self) -> None:
        try:
            etag = self.registry.latest_etag()
            if etag is None or (self._model is not None and etag == self._model.etag):
                return
            found = self.registry.load_latest()
            if found is None:
                return
            pointer, etag, model, card = found
            self._model = ChurnModel(model, card, etag=etag)
            self._error = None
            log.info("churn model loaded: version=%s", pointer["version"])
        except Exception as err:  # keep serving the model we have; try again at the next check
            self._error = f"churn model could not be loaded: {type(err).__name__}: {err}"
            log.warning("churn model check failed (serving %s)", self._model.version if self._model else "nothing",
                        exc_info=True)


_scorers: dict[tuple, ChurnScorer] = {}
_scorers_lock = threading.Lock()


def default_scorer(settings=None) -> ChurnScorer:
    """The worker's scorer on the Blob registry of these settings (one per process and registry)."""
    from ..settings import get_settings
    from .registry import blob_registry

    s = settings or get_settings()
    key = (s.storage_connection, s.storage_account_name, s.models_container)
    with _scorers_lock:
        if key not in _scorers:
            _scorers[key] = ChurnScorer(blob_registry(s))
        return _scorers[key]


def profile_history(store, profile: Mapping[str, Any]) -> History:
    """All activity of a profile's source records (transactions, events, reviews): one partition query each."""
    from ..activity import list_activity

    return History.from_activity(list_activity(store, [r["key"] for r in profile.get("records", [])]))


def score_history(model: ChurnModel, history: History, *, as_of: float, medium: float, high: float,
                  top: int = TOP_FACTORS) -> dict[str, Any] | None:
    """{score, risk, model_version, top_factors}, or None when the customer has no purchase before as_of."""
    if history.purchases_before(as_of) == 0:
        return None
    score, factors = model.explain(history.features(as_of), top=top)
    return {"score": round(score, 6), "risk": risk_level(score, medium=medium, high=high),
            "model_version": model.version, "top_factors": factors}


def score_profile(store, profile: Mapping[str, Any], *, scorer: ChurnScorer | None = None,
                  as_of: datetime | None = None, settings=None) -> dict[str, Any] | None:
    """Churn score of a profile now (or as of a time): {score, risk, model_version, top_factors}; None when the
    profile has no purchase yet. Raises ModelNotAvailable when no model is published."""
    from ..settings import get_settings

    s = settings or get_settings()
    model = (scorer or default_scorer(s)).model()
    when = to_epoch(as_of or datetime.now(timezone.utc))  # a naive as_of is UTC, as everywhere in churn
    return score_history(model, profile_history(store, profile), as_of=when,
                         medium=s.churn_risk_medium, high=s.churn_risk_high)


def score_many(model: ChurnModel, histories: Iterable[History], as_of: float) -> np.ndarray:
    """Scores for many customers in one session.run (all must have a purchase before as_of)."""
    from .features import feature_matrix

    return model.predict(feature_matrix(histories, as_of))
