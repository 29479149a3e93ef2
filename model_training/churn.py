"""Train, verify, export and publish the churn model (scikit-learn + skl2onnx; serving needs neither).

    histories (customer id -> shared.churn.History)
      -> labelled snapshot: features as of cut-off = as_of - window, label = no purchase in [cut-off, as_of)
      -> customer-level holdout, chosen by a hash of the customer id (the same customers every run, so no
         champion was trained on the holdout it is compared on)
      -> candidates compared by cross-validated ROC AUC (logistic regression, gradient boosting, hist GB)
      -> Platt calibration fitted on the winner's out-of-fold scores
      -> ONNX export (the calibration is part of the graph), parity with scikit-learn checked on the holdout
      -> model card; champion/challenger against the registry's `latest` on the SAME holdout
      -> publish (or not) + a run report either way.

Features are rounded to float32 before training: the ONNX graph takes float32, and trees trained on float64
can put a split between a value and its float32 rounding (the source of HistGradientBoosting's 0.02 errors).
"""
from __future__ import annotations

import hashlib
import logging
import platform
import secrets
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

import numpy as np

from shared.churn.features import DAY, FEATURE_NAMES, N_FEATURES, History
from shared.churn.registry import ModelRegistry, RegistryConflict, RegistryError
from shared.churn.serving import ChurnModel

log = logging.getLogger(__name__)

MIN_PROFILES = 500
MIN_CLASS_COUNT = 20
PARITY_TOLERANCE = 1e-5
CV_FOLDS = 5
SNAPSHOTS = 8  # training looks back from this many as-of dates...
SNAPSHOT_STEP_DAYS = 28  # ...this far apart (more rows, and every season's behaviour)
HOLDOUT_FRACTION = 0.25  # of customers, by id hash; changing it moves customers between train and holdout
MIN_HOLDOUT_CLASS_COUNT = 5  # churned and retained customers each, or the holdout AUC means nothing
GB_MAX_ROWS = 30_000  # GradientBoostingClassifier is exact but slow; above this many rows only HistGB competes
EPS = 1e-7


class TrainingRefused(Exception):
    """Training cannot produce a trustworthy model (too little data, one class, failed parity). `report` says why."""

    def __init__(self, reason: str, report: dict[str, Any]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.report = {**report, "status": "refused", "reason": reason}


@dataclass
class TrainedModel:
    version: str
    onnx: bytes
    card: dict[str, Any]
    estimator: Any
    calibration: tuple[float, float]
    holdout_ids: list[str]
    holdout_x: np.ndarray
    holdout_y: np.ndarray
    holdout_scores: np.ndarray  # scikit-learn's calibrated probabilities on the holdout
    extras: dict[str, Any] = field(default_factory=dict)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return platt(self.estimator.predict_proba(to_float32(x))[:, 1], *self.calibration)


# --- data --------------------------------------------------------------------------------------------
def to_float32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def labelled_snapshot(histories: Mapping[str, History], *, as_of: float, window_days: int
                      ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Customers with a purchase before the cut-off: their features at the cut-off and whether they then churned
    (no purchase in [cut-off, as_of))."""
    cutoff = as_of - window_days * DAY
    ids, rows, labels = [], [], []
    for cid in sorted(histories):  # row order (and so CV folds) must not depend on the storage scan order
        history = histories[cid]
        if history.purchases_before(cutoff) == 0:
            continue
        ids.append(cid)
        rows.append(history.features(cutoff))
        labels.append(int(history.purchases_between(cutoff, as_of) == 0))
    x = np.vstack(rows) if rows else np.empty((0, N_FEATURES))
    return ids, x, np.array(labels, dtype=np.int64)


def labelled_snapshots(histories: Mapping[str, History], *, as_of: float, window_days: int, snapshots: int,
                       step_days: int) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """labelled_snapshot at as_of, as_of - step, ... (as many as `snapshots`, while each cut-off still has a
    window of history before it): (customer ids, features, labels, snapshot index 0 = most recent)."""
    firsts = [h.first_purchase() for h in histories.values() if h.first_purchase() is not None]
    first = min(firsts) if firsts else as_of
    ids: list[str] = []
    xs, ys, ks = [], [], []
    for k in range(max(1, snapshots)):
        at = as_of - k * step_days * DAY
        if k and at - 2 * window_days * DAY < first:
            break
        snap_ids, x, y = labelled_snapshot(histories, as_of=at, window_days=window_days)
        ids += snap_ids
        xs.append(x)
        ys.append(y)
        ks.append(np.full(len(y), k))
    return ids, np.vstack(xs), np.concatenate(ys), np.concatenate(ks)


def data_summary(histories: Mapping[str, History], *, as_of: float, window_days: int) -> dict[str, Any]:
    firsts = [h.first_purchase() for h in histories.values() if h.first_purchase() is not None]
    first = min(firsts) if firsts else None
    return {
        "customers": len(histories),
        "first_purchase": _iso(first) if first is not None else None,
        "cutoff": _iso(as_of - window_days * DAY),
        "as_of": _iso(as_of),
        "window_days": window_days,
        "history_days": round((as_of - first) / DAY, 1) if first is not None else 0.0,
    }


def in_holdout(customer_id: str, fraction: float = HOLDOUT_FRACTION) -> bool:
    """Whether a customer belongs to the holdout: sha256 of the id as a number in [0, 1) below `fraction`.
    The same every run, whatever the data, its order or the seed; a smaller fraction gives a subset."""
    digest = hashlib.sha256(str(customer_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < fraction


# --- models ------------------------------------------------------------------------------------------
def candidate_models(seed: int) -> dict[str, Any]:
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "logistic_regression": Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(C=1.0, max_iter=5000))]),
        "gradient_boosting": GradientBoostingClassifier(
            n_estimators=150, learning_rate=0.05, max_depth=3, subsample=0.8, random_state=seed),
        "hist_gradient_boosting": HistGradientBoostingClassifier(
            max_iter=150, learning_rate=0.05, max_leaf_nodes=15, l2_regularization=1.0, early_stopping=False,
            random_state=seed),
    }


def platt(p: np.ndarray, a: float, b: float) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return 1.0 / (1.0 + np.exp(-(a * (np.log(p) - np.log1p(-p)) + b)))


def fit_platt(scores: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling on the logit of out-of-fold scores (a=1, b=0 is the identity)."""
    from sklearn.linear_model import LogisticRegression

    p = np.clip(scores, EPS, 1 - EPS)
    logit = (np.log(p) - np.log1p(-p)).reshape(-1, 1)
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(logit, y)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def select_model(x: np.ndarray, y: np.ndarray, *, seed: int, folds: int, names: list[str] | None = None,
                 groups: np.ndarray | None = None) -> tuple[str, dict[str, Any], np.ndarray]:
    """The candidate with the best mean cross-validated ROC AUC, the CV table, and its out-of-fold scores.
    With `groups` (customer ids), a customer's rows never sit on both sides of a fold."""
    from sklearn.base import clone
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    models = candidate_models(seed)
    if names:
        models = {n: models[n] for n in names}
    elif len(y) > GB_MAX_ROWS:
        models.pop("gradient_boosting")
    if groups is None:
        splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y))
    else:
        splits = list(StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(x, y, groups))
    table, oof = {}, {}
    for name, model in models.items():
        scores, aucs, started = np.zeros(len(y)), [], time.perf_counter()
        for train, test in splits:
            fitted = clone(model).fit(x[train], y[train])
            scores[test] = fitted.predict_proba(x[test])[:, 1]
            aucs.append(roc_auc_score(y[test], scores[test]))
        table[name] = {"cv_roc_auc_mean": round(float(np.mean(aucs)), 5), "cv_roc_auc_std": round(float(np.std(aucs)), 5),
                       "seconds": round(time.perf_counter() - started, 2)}
        oof[name] = scores
    best = max(table, key=lambda n: table[n]["cv_roc_auc_mean"])
    return best, table, oof[best]


# --- evaluation --------------------------------------------------------------------------------------
def evaluate(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    return {"roc_auc": round(float(roc_auc_score(y, p)), 5), "pr_auc": round(float(average_precision_score(y, p)), 5),
            "brier": round(float(brier_score_loss(y, p)), 5), "log_loss": round(float(log_loss(y, p, labels=[0, 1])), 5)}


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, Any]]:
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    return [{"bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}", "count": int(m.sum()),
             "mean_predicted": round(float(p[m].mean()), 4), "observed_rate": round(float(y[m].mean()), 4)}
            for b in range(bins) if (m := idx == b).any()]


def permutation_importance(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray, *,
                           seed: int, repeats: int = 3) -> dict[str, float]:
    """Mean drop in holdout ROC AUC when a feature's values are shuffled (0 = the model does not use it)."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    base = roc_auc_score(y, predict(x))
    out = {}
    for j, name in enumerate(FEATURE_NAMES):
        drops = []
        for _ in range(repeats):
            shuffled = x.copy()
            shuffled[:, j] = rng.permutation(shuffled[:, j])
            drops.append(base - roc_auc_score(y, predict(shuffled)))
        out[name] = round(float(np.mean(drops)), 5)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


# --- ONNX --------------------------------------------------------------------------------------------
class ExportError(RuntimeError):
    pass


def export_onnx(estimator: Any, calibration: tuple[float, float], *, double: bool = False) -> bytes:
    """The estimator plus Platt calibration as one ONNX graph: input `features` [N, n_features], output
    `probability` [N] (the churn probability)."""
    import onnx
    from onnx import TensorProto, helper
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    tensor_type = DoubleTensorType if double else FloatTensorType
    elem = TensorProto.DOUBLE if double else TensorProto.FLOAT
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = to_onnx(estimator, initial_types=[("features", tensor_type([None, N_FEATURES]))],
                        options={id(estimator): {"zipmap": False}})
    graph = model.graph
    probs = next(o.name for o in graph.output if o.name == "probabilities")
    a, b = calibration

    def const(name: str, values, dtype=elem, dims=None):
        graph.initializer.append(helper.make_tensor(name, dtype, [len(values)] if dims is None else dims, list(values)))

    const("churn_slice_start", [1], TensorProto.INT64)
    const("churn_slice_end", [2], TensorProto.INT64)
    const("churn_slice_axis", [1], TensorProto.INT64)
    const("churn_flat_shape", [-1], TensorProto.INT64)
    const("churn_lo", [EPS], dims=[])  # Clip bounds must be scalars
    const("churn_hi", [1 - EPS], dims=[])
    const("churn_one", [1.0])
    const("churn_a", [a])
    const("churn_b", [b])
    graph.node.extend([
        helper.make_node("Slice", [probs, "churn_slice_start", "churn_slice_end", "churn_slice_axis"], ["churn_p1"]),
        helper.make_node("Clip", ["churn_p1", "churn_lo", "churn_hi"], ["churn_p"]),
        helper.make_node("Sub", ["churn_one", "churn_p"], ["churn_q"]),
        helper.make_node("Log", ["churn_p"], ["churn_log_p"]),
        helper.make_node("Log", ["churn_q"], ["churn_log_q"]),
        helper.make_node("Sub", ["churn_log_p", "churn_log_q"], ["churn_logit"]),
        helper.make_node("Mul", ["churn_logit", "churn_a"], ["churn_scaled"]),
        helper.make_node("Add", ["churn_scaled", "churn_b"], ["churn_z"]),
        helper.make_node("Sigmoid", ["churn_z"], ["churn_p_cal"]),
        helper.make_node("Reshape", ["churn_p_cal", "churn_flat_shape"], ["probability"]),
    ])
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("probability", elem, [None]))
    model.doc_string = "ucp churn model: P(no purchase within the churn window)"
    onnx.checker.check_model(model)
    return model.SerializeToString()


def verified_export(trained_estimator: Any, calibration: tuple[float, float], x: np.ndarray, expected: np.ndarray
                    ) -> tuple[bytes, dict[str, Any]]:
    """Export in float32, else in double; keep the first graph onnxruntime loads that matches scikit-learn on
    the holdout within PARITY_TOLERANCE. Raise ExportError with what was measured otherwise."""
    import onnxruntime as ort

    attempts = []
    for double in (False, True):
        try:
            blob = export_onnx(trained_estimator, calibration, double=double)
            session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
            got = session.run(["probability"], {"features": x.astype(np.float64 if double else np.float32)})[0]
            diff = float(np.max(np.abs(got.astype(np.float64) - expected))) if len(x) else 0.0
        except Exception as err:  # e.g. double tree graphs that onnxruntime refuses to load
            attempts.append({"dtype": "double" if double else "float", "error": f"{type(err).__name__}: {str(err)[:300]}"})
            continue
        attempts.append({"dtype": "double" if double else "float", "max_abs_diff": diff})
        if diff <= PARITY_TOLERANCE:
            return blob, {"input": "features", "output": "probability", "dtype": "double" if double else "float",
                          "parity_max_abs_diff": diff, "parity_rows": int(len(x)), "attempts": attempts}
    raise ExportError(f"ONNX export does not match scikit-learn within {PARITY_TOLERANCE}: {attempts}")


def library_versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import skl2onnx
    import sklearn

    return {"python": platform.python_version(), "numpy": np.__version__, "scikit-learn": sklearn.__version__,
            "skl2onnx": skl2onnx.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


# --- training ----------------------------------------------------------------------------------------
def new_version(now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def train(histories: Mapping[str, History], *, as_of: float, window_days: int, min_profiles: int = MIN_PROFILES,
          seed: int = 0, holdout_fraction: float = HOLDOUT_FRACTION, folds: int = CV_FOLDS,
          candidates: list[str] | None = None, version: str | None = None, snapshots: int = SNAPSHOTS,
          step_days: int = SNAPSHOT_STEP_DAYS, threads: int = 1) -> TrainedModel:
    """Train and export a churn model. Raises TrainingRefused (with a report) when the data cannot support one.

    `threads` caps BLAS/OpenMP threads: on the small shared machines this runs on (2 cores, a Functions worker)
    HistGradientBoosting's OpenMP threads made cross-validation 4-5x slower than one thread (measured)."""
    import sklearn.ensemble  # noqa: F401  loads OpenMP/BLAS first: threadpool_limits only caps loaded libraries
    from threadpoolctl import threadpool_limits

    with threadpool_limits(threads):
        return _train(histories, as_of=as_of, window_days=window_days, min_profiles=min_profiles, seed=seed,
                      holdout_fraction=holdout_fraction, folds=folds, candidates=candidates, version=version,
                      snapshots=snapshots, step_days=step_days)


def _train(histories: Mapping[str, History], *, as_of: float, window_days: int, min_profiles: int, seed: int,
           holdout_fraction: float, folds: int, candidates: list[str] | None, version: str | None, snapshots: int,
           step_days: int) -> TrainedModel:
    from sklearn.base import clone

    started = time.perf_counter()
    summary = data_summary(histories, as_of=as_of, window_days=window_days)
    report: dict[str, Any] = {"data": summary}
    if summary["history_days"] < 2 * window_days:
        raise TrainingRefused(f"history covers {summary['history_days']} days; the churn window of {window_days} "
                              f"days needs at least {2 * window_days}", report)
    ids, x, y = labelled_snapshot(histories, as_of=as_of, window_days=window_days)
    summary.update(profiles=len(ids), churned=int(y.sum()), base_rate=round(float(y.mean()), 5) if len(y) else None)
    if len(ids) < min_profiles:
        raise TrainingRefused(f"{len(ids)} profiles have a purchase before the cut-off; at least {min_profiles} "
                              "are needed", report)
    if min(y.sum(), len(y) - y.sum()) < MIN_CLASS_COUNT:
        raise TrainingRefused(f"too few churned ({int(y.sum())}) or retained ({int(len(y) - y.sum())}) customers "
                              f"to learn from; each needs at least {MIN_CLASS_COUNT}", report)

    # Customer-level holdout by id hash: the same customers every run, so the champion (trained on the others)
    # is compared on customers it never saw; their rows stay out of every snapshot.
    hold_set = {cid for cid in ids if in_holdout(cid, holdout_fraction)}
    hold_idx = np.array([i for i, cid in enumerate(ids) if cid in hold_set], dtype=np.int64)
    x_hold, y_hold = to_float32(x[hold_idx]), y[hold_idx]
    held_churned = int(y_hold.sum())
    if min(held_churned, len(y_hold) - held_churned) < MIN_HOLDOUT_CLASS_COUNT:
        raise TrainingRefused(f"the holdout ({holdout_fraction:.0%} of customers by id hash) has {held_churned} "
                              f"churned and {len(y_hold) - held_churned} retained customers; each needs at least "
                              f"{MIN_HOLDOUT_CLASS_COUNT}", report)

    all_ids, x_all, y_all, k_all = labelled_snapshots(histories, as_of=as_of, window_days=window_days,
                                                      snapshots=snapshots, step_days=step_days)
    in_train = np.array([not in_holdout(cid, holdout_fraction) for cid in all_ids])
    x_train, y_train = to_float32(x_all[in_train]), y_all[in_train]
    groups = np.array(all_ids, dtype=object)[in_train]
    latest_train = x_train[k_all[in_train] == 0]

    chosen, cv_table, oof = select_model(x_train, y_train, seed=seed, folds=folds, names=candidates, groups=groups)
    calibration = fit_platt(oof, y_train)
    estimator = clone(candidate_models(seed)[chosen]).fit(x_train, y_train)
    raw_hold = estimator.predict_proba(x_hold)[:, 1]
    hold_scores = platt(raw_hold, *calibration)
    try:
        onnx_blob, onnx_info = verified_export(estimator, calibration, x_hold, hold_scores)
    except ExportError as err:
        raise TrainingRefused(str(err), {**report, "model_selection": {"chosen": chosen, "candidates": cv_table}}) from err

    import onnxruntime as ort

    session = ort.InferenceSession(onnx_blob, providers=["CPUExecutionProvider"])
    input_dtype = np.float64 if onnx_info["dtype"] == "double" else np.float32

    def predict(rows: np.ndarray) -> np.ndarray:
        """The exported model (verified equal to scikit-learn above; much faster on small batches than
        HistGradientBoosting's own predict)."""
        return session.run(["probability"], {"features": rows.astype(input_dtype)})[0].astype(np.float64)

    from sklearn.metrics import roc_auc_score

    version = version or new_version()
    recency = x_hold[:, FEATURE_NAMES.index("recency_days")]
    card = {
        "model": "churn",
        "version": version,
        "trained_at": datetime.now(timezone.utc).isoformat(),
        "definition": f"P(no purchase within {window_days} days after the as-of date)",
        "data_window": {k: summary[k] for k in ("first_purchase", "cutoff", "as_of", "window_days", "history_days")},
        "rows": {"customers": len(ids), "train_customers": len(ids) - len(hold_idx), "holdout": int(len(hold_idx)),
                 "train_rows": int(len(y_train)), "snapshots": int(k_all.max()) + 1, "snapshot_step_days": step_days},
        "base_rate": summary["base_rate"],
        "holdout_split": {"by": "sha256(customer id)", "fraction": holdout_fraction},
        "metrics": evaluate(y_hold, hold_scores),
        "metrics_uncalibrated": evaluate(y_hold, raw_hold),
        "baselines": {"recency_rule_roc_auc": round(float(roc_auc_score(y_hold, recency)), 5)},
        "calibration": calibration_table(y_hold, hold_scores),
        "calibrator": {"method": "platt_on_logit", "a": calibration[0], "b": calibration[1], "fitted_on": "out-of-fold"},
        "model_selection": {"metric": "roc_auc", "folds": folds, "grouped_by": "customer", "chosen": chosen,
                            "candidates": cv_table},
        "features": list(FEATURE_NAMES),
        "feature_importance": permutation_importance(predict, x_hold, y_hold, seed=seed),
        "feature_baseline": {n: float(v) for n, v in zip(FEATURE_NAMES, np.median(latest_train, axis=0))},
        "onnx": onnx_info,
        "libraries": library_versions(),
        "training_seconds": round(time.perf_counter() - started, 2),
    }
    return TrainedModel(version=version, onnx=onnx_blob, card=card, estimator=estimator, calibration=calibration,
                        holdout_ids=[ids[i] for i in hold_idx], holdout_x=x_hold, holdout_y=y_hold,
                        holdout_scores=hold_scores)


# --- champion / challenger ---------------------------------------------------------------------------
def champion_on_holdout(registry: ModelRegistry, trained: TrainedModel) -> tuple[dict[str, Any] | None, str | None]:
    """The champion's ROC AUC on the challenger's holdout and the pointer ETag to publish against (None, None when
    there is no champion). A champion the registry cannot load (missing or changed blob, corrupt pointer or card)
    is reported as incompatible, so it is replaced rather than blocking every publish. Other errors (storage
    unreachable) propagate: the run fails and the gate is not skipped."""
    from sklearn.metrics import roc_auc_score

    etag = registry.latest_etag()  # read first: a broken pointer is replaced only if nobody moved it since
    if etag is None:
        return None, None
    try:
        found = registry.load_latest()
    except RegistryError as err:
        return {"version": _pointer_version(registry), "incompatible": f"{type(err).__name__}: {err}"}, etag
    if found is None:  # deleted since: publishing against `etag` then conflicts, as it should
        return None, etag
    pointer, etag, blob, card = found
    info: dict[str, Any] = {"version": pointer["version"], "card_roc_auc": card.get("metrics", {}).get("roc_auc")}
    try:
        champion = ChurnModel(blob, card)
        info["holdout_roc_auc"] = round(float(roc_auc_score(trained.holdout_y, champion.predict(trained.holdout_x))), 5)
    except Exception as err:  # incompatible features or unloadable: it cannot serve this code anyway
        info["incompatible"] = f"{type(err).__name__}: {err}"
    return info, etag


def _pointer_version(registry: ModelRegistry) -> str | None:
    try:
        found = registry.latest()
    except RegistryError:
        return None
    return found[0]["version"] if found else None


def train_and_publish(histories: Mapping[str, History], registry: ModelRegistry, *, as_of: float, window_days: int,
                      tolerance: float, run_id: str | None = None, **train_options) -> dict[str, Any]:
    """Train a challenger and publish it if it holds up against the champion (see publish_if_better).
    Writes churn/runs/<run id>.json whatever happens and returns that report (status published | kept_champion
    | refused | failed)."""
    report: dict[str, Any] = {"run_id": run_id or new_version(), "started_at": datetime.now(timezone.utc).isoformat(),
                              "as_of": _iso(as_of), "window_days": window_days, "tolerance": tolerance}
    try:
        trained = train(histories, as_of=as_of, window_days=window_days, **train_options)
    except TrainingRefused as err:
        return _finish(registry, {**report, **err.report})
    except Exception as err:
        log.exception("churn training run %s failed", report["run_id"])
        return _finish(registry, {**report, "status": "failed", "reason": f"{type(err).__name__}: {err}"})
    return publish_if_better(trained, registry, tolerance=tolerance, report=report)


def publish_if_better(trained: TrainedModel, registry: ModelRegistry, *, tolerance: float,
                      report: dict[str, Any] | None = None) -> dict[str, Any]:
    """Champion/challenger: publish if the challenger's holdout ROC AUC >= the champion's AUC on the SAME holdout
    - tolerance (a champion that cannot score this code's features is replaced). Writes the run report."""
    report = dict(report or {})
    report.setdefault("run_id", trained.version)
    report.setdefault("started_at", trained.card["trained_at"])
    card = trained.card
    report.update(
        data={**card["data_window"], "rows": card["rows"], "base_rate": card["base_rate"]},
        challenger={"version": trained.version, **card["metrics"], "chosen": card["model_selection"]["chosen"],
                    "recency_rule_roc_auc": card["baselines"]["recency_rule_roc_auc"], "onnx": card["onnx"]},
    )
    try:
        champion, etag = champion_on_holdout(registry, trained)
        report["champion"] = champion
        auc = card["metrics"]["roc_auc"]
        if champion is None or "incompatible" in champion:
            publish, why = True, "no usable champion"
        else:
            publish = auc >= champion["holdout_roc_auc"] - tolerance
            why = (f"challenger AUC {auc:.4f} {'>=' if publish else '<'} champion AUC "
                   f"{champion['holdout_roc_auc']:.4f} - tolerance {tolerance} on the same holdout")
        report.update(decision=why, status="kept_champion")
        if publish:
            card["champion_replaced"] = champion
            try:
                report["pointer"] = registry.publish(trained.version, trained.onnx, card, expected_latest=etag)
                report["status"] = "published"
            except RegistryConflict as err:
                report["decision"] = f"{why}; but another run published first ({err})"
    except Exception as err:
        log.exception("churn run %s: champion/challenger failed", report["run_id"])
        report.update(status="failed", reason=f"{type(err).__name__}: {err}")
    return _finish(registry, report)


def _finish(registry: ModelRegistry, report: dict[str, Any]) -> dict[str, Any]:
    report["finished_at"] = datetime.now(timezone.utc).isoformat()
    registry.write_run(report["run_id"], report)
    log.info("churn run %s: %s", report["run_id"], report["status"])
    return report


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat()
