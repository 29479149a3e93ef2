"""Figures every benchmark reports the same way: entity-resolution quality (pairwise, B-cubed, cluster),
classification quality (ROC AUC, PR AUC, Brier), latency percentiles and peak memory.

Pairwise figures come from the contingency table of (true cluster, predicted cluster) counts, so they cost
O(records), never O(records^2): TP pairs = sum C(n_ij, 2), predicted pairs = sum C(a_j, 2), true pairs =
sum C(b_i, 2).
"""
from __future__ import annotations

import resource
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from typing import Hashable, Iterable, Iterator, Mapping, Sequence

import numpy as np


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def _ratio(num: float, den: float, empty: float = 1.0) -> float:
    return num / den if den else empty


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def _aligned(truth: Mapping[Hashable, Hashable], predicted: Mapping[Hashable, Hashable], missing: str):
    """(true label, predicted label) per record. Records the prediction lacks are dropped (missing="ignore")
    or become singleton clusters of their own (missing="singleton": a lost record is a split)."""
    if missing not in ("ignore", "singleton"):
        raise ValueError("missing must be 'ignore' or 'singleton'")
    pairs, lost = [], 0
    for key, label in truth.items():
        if key in predicted:
            pairs.append((label, predicted[key]))
        else:
            lost += 1
            if missing == "singleton":
                pairs.append((label, ("__missing__", key)))
    return pairs, lost


def cluster_scores(truth: Mapping[Hashable, Hashable], predicted: Mapping[Hashable, Hashable], *,
                   missing: str = "ignore") -> dict[str, float | int]:
    """Quality of a clustering (record -> profile id) against the truth (record -> person id).

    Pairwise precision/recall/F1 (over record pairs), B-cubed precision/recall/F1 (per record), purity
    (share of records in their profile's majority person), split people (true people spread over several
    profiles), over-merged profiles (profiles holding several people) and exact people (a profile with exactly
    that person's records). Records only in `predicted` are ignored (they have no truth).

    Records of the truth missing from `predicted` (a record the resolver quarantined: no profile) are the scope's
    choice. missing="singleton" scores every record, each missing one a profile of its own, so its true pairs are
    misses: what a retailer sees, and the scope of the benches' headline figures and of the recall ceiling
    (bench/ceiling.py counts every record's true pairs). missing="ignore" (the default) scores the placed records
    only: their true pairs alone are counted, a narrower figure the benches name `resolved_records_only`.
    """
    pairs, lost = _aligned(truth, predicted, missing)
    cells = Counter(pairs)
    true_sizes = Counter(t for t, _ in pairs)
    pred_sizes = Counter(p for _, p in pairs)
    n = len(pairs)
    tp = sum(_pairs(c) for c in cells.values())
    pred_pairs = sum(_pairs(c) for c in pred_sizes.values())
    true_pairs = sum(_pairs(c) for c in true_sizes.values())
    precision, recall = _ratio(tp, pred_pairs), _ratio(tp, true_pairs)

    b3_p = _ratio(sum(c * c / pred_sizes[p] for (_, p), c in cells.items()), n)
    b3_r = _ratio(sum(c * c / true_sizes[t] for (t, _), c in cells.items()), n)

    profiles_of: dict[Hashable, int] = Counter(t for t, _ in cells)  # people -> number of profiles
    people_in: dict[Hashable, int] = Counter(p for _, p in cells)  # profile -> number of people
    majority: dict[Hashable, int] = {}
    for (_, p), c in cells.items():
        majority[p] = max(majority.get(p, 0), c)
    exact = sum(1 for (t, p), c in cells.items() if c == true_sizes[t] == pred_sizes[p])
    multi_record_people = sum(1 for s in true_sizes.values() if s > 1)
    split = sum(1 for k in profiles_of.values() if k > 1)
    over = sum(1 for k in people_in.values() if k > 1)
    return {
        "records": n, "records_missing": lost, "people": len(true_sizes), "profiles": len(pred_sizes),
        "pairwise_precision": precision, "pairwise_recall": recall, "pairwise_f1": _f1(precision, recall),
        "true_pairs": true_pairs, "predicted_pairs": pred_pairs, "true_positive_pairs": tp,
        "bcubed_precision": b3_p, "bcubed_recall": b3_r, "bcubed_f1": _f1(b3_p, b3_r),
        "purity": _ratio(sum(majority.values()), n),
        "split_people": split, "split_people_rate": _ratio(split, multi_record_people, 0.0),
        "over_merged_profiles": over, "over_merged_profile_rate": _ratio(over, len(pred_sizes), 0.0),
        "exact_people": exact, "exact_people_rate": _ratio(exact, len(true_sizes), 0.0),
        "profiles_per_person": _ratio(len(pred_sizes), len(true_sizes), 0.0),
    }


def pairwise_prf(truth: Mapping[Hashable, Hashable], predicted: Mapping[Hashable, Hashable], *,
                 missing: str = "ignore") -> tuple[float, float, float]:
    """(precision, recall, F1) over record pairs."""
    s = cluster_scores(truth, predicted, missing=missing)
    return s["pairwise_precision"], s["pairwise_recall"], s["pairwise_f1"]


# ---------------------------------------------------------------- classification

def _arrays(y_true: Iterable, scores: Iterable) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(list(y_true) if not isinstance(y_true, np.ndarray) else y_true, dtype=float)
    s = np.asarray(list(scores) if not isinstance(scores, np.ndarray) else scores, dtype=float)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError("labels and scores must be 1-D and of the same length")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    return y, s


def roc_auc(y_true: Iterable, scores: Iterable) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count half). NaN when only one class is present."""
    y, s = _arrays(y_true, scores)
    n_pos = y.sum()
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    # average ranks over ties
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_s)) + 1]
    ends = np.r_[starts[1:], len(s)]
    avg = (starts + ends + 1) / 2.0  # 1-based average rank of each tie group
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def pr_auc(y_true: Iterable, scores: Iterable) -> float:
    """Average precision (the step-wise area under the precision-recall curve, as scikit-learn computes it)."""
    y, s = _arrays(y_true, scores)
    n_pos = y.sum()
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # thresholds: distinct scores
    tp = np.cumsum(y)[last_of_group]
    predicted = last_of_group + 1
    precision = tp / predicted
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def brier(y_true: Iterable, probabilities: Iterable) -> float:
    y, p = _arrays(y_true, probabilities)
    return float(np.mean((p - y) ** 2)) if len(y) else float("nan")


def classification_scores(y_true: Sequence, probabilities: Sequence, *, threshold: float = 0.5) -> dict[str, float]:
    """ROC AUC, PR AUC, Brier, base rate, and accuracy/precision/recall/F1 at a threshold."""
    y, p = _arrays(y_true, probabilities)
    pred = p >= threshold
    tp = float(np.sum(pred & (y == 1)))
    fp = float(np.sum(pred & (y == 0)))
    fn = float(np.sum(~pred & (y == 1)))
    precision, recall = _ratio(tp, tp + fp, 0.0), _ratio(tp, tp + fn, 0.0)
    return {"n": int(len(y)), "base_rate": float(y.mean()) if len(y) else float("nan"),
            "roc_auc": roc_auc(y, p), "pr_auc": pr_auc(y, p), "brier": brier(y, p),
            "threshold": threshold, "accuracy": float(np.mean(pred == (y == 1))) if len(y) else float("nan"),
            "precision": precision, "recall": recall, "f1": _f1(precision, recall)}


# ---------------------------------------------------------------- latency

def percentiles(values: Iterable[float], ps: Sequence[float] = (50, 95, 99), *, digits: int = 3) -> dict[str, float]:
    """{"n", "mean", "min", "p50", "p95", "p99", "max"} of the values, in their unit (linear interpolation)."""
    a = np.asarray(list(values), dtype=float)
    if a.size == 0:
        return {"n": 0}
    out: dict[str, float] = {"n": int(a.size), "mean": round(float(a.mean()), digits), "min": round(float(a.min()), digits)}
    for p, v in zip(ps, np.percentile(a, ps)):
        out[f"p{p:g}"] = round(float(v), digits)
    out["max"] = round(float(a.max()), digits)
    return out


class Latencies:
    """Collects durations in milliseconds: `with lat.time(): ...` then `lat.summary()`."""

    def __init__(self):
        self.ms: list[float] = []

    @contextmanager
    def time(self) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.ms.append((time.perf_counter() - t0) * 1000.0)

    def summary(self) -> dict[str, float]:
        return percentiles(self.ms)


# ---------------------------------------------------------------- memory

def peak_rss_mb(children: bool = False) -> float:
    """Peak resident set size of this process (or of its waited-for children) since it started, in MB."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF).ru_maxrss
    return usage / (1024 * 1024) if sys.platform == "darwin" else usage / 1024  # bytes on macOS, KB on Linux


def current_rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / (1024 * 1024)


class PeakRSS:
    """Peak RSS during a block, sampled by a thread (ru_maxrss only knows the whole process lifetime).

        with PeakRSS() as mem: work()
        mem.peak_mb, mem.start_mb, mem.growth_mb
    """

    def __init__(self, interval_s: float = 0.02):
        self.interval_s = interval_s
        self.start_mb = self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        import psutil

        proc = psutil.Process()
        while not self._stop.wait(self.interval_s):
            self.peak_mb = max(self.peak_mb, proc.memory_info().rss / (1024 * 1024))

    def __enter__(self) -> "PeakRSS":
        self.start_mb = self.peak_mb = current_rss_mb()
        self._thread = threading.Thread(target=self._sample, name="peak-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_mb = max(self.peak_mb, current_rss_mb())

    @property
    def growth_mb(self) -> float:
        return self.peak_mb - self.start_mb
