"""Churn features: the ONE definition used by training, batch scoring, the CLI and the HTTP path.

A customer's activity (the activity doc shape of shared.activity: transactions with timestamp, amount, kind,
channel, category; events with timestamp, channel; reviews with timestamp, rating, text) is parsed once into
sorted numpy arrays (`History`), then `History.features(as_of)` gives the fixed FEATURE_NAMES vector for any
cut-off, so training can look back from several dates without re-parsing.

Conventions (so training and serving cannot drift):
- Time windows are half-open: activity at or after `as_of` does not exist yet; "last 4 weeks" is
  [as_of - 28 days, as_of).
- A purchase is a transaction that is not a return/refund and has amount >= 0; a return is kind return/refund or
  a negative amount. Amounts are in the source currency, unconverted.
- Purchases are orders, not rows: the purchase docs of one order (source, order_id) are one purchase (a
  line-level file stores each order line as its own doc): earliest time, summed amount, categories together.
  Likewise a return's lines (docs with a line_id of one order, kind and return: return_id, else time) are one
  return. An order stored as one row or as its lines gives the same features. Docs without order_id (the churn
  CLI's rows) are each their own.
- Every feature is a finite float: no NaN reaches a model (some converted models fail silently on NaN).
- Durations are in days.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Iterable, Mapping

import numpy as np

from ..sentiment import sentiment_score

DAY = 86400.0
WEEK = 7 * DAY

FEATURE_NAMES: tuple[str, ...] = (
    "recency_days",  # days since the last purchase
    "frequency",  # purchases
    "monetary_total",
    "monetary_mean",
    "monetary_max",
    "tenure_days",  # days since the first purchase
    "ipt_mean_days",  # mean inter-purchase time (tenure when fewer than 2 purchases)
    "ipt_std_days",
    "recency_over_ipt",  # recency / mean inter-purchase time: > 1 means "later than usual"
    "recency_z",  # (recency - ipt mean) / ipt std
    "purchases_4w",
    "purchases_13w",
    "purchases_26w",
    "spend_4w",
    "spend_13w",
    "spend_26w",
    "spend_trend",  # (last 13 weeks - the 13 before) / their sum, in [-1, 1]
    "purchases_trend",
    "returns_ratio",  # returns per purchase
    "return_amount_ratio",  # returned amount / purchased amount
    "share_store",  # channel mix of purchases
    "share_web",
    "share_mobile",
    "distinct_categories",
    "web_events_13w",
    "mobile_events_13w",
    "events_4w",
    "events_since_last_purchase",  # browsing without buying: still around
    "last_seen_days",  # days since any activity at all (purchase, return, event, review)
    "reviews",  # reviews and feedback events
    "review_sentiment",  # mean VADER compound score of review/feedback texts, 0 when none
    "review_rating",  # mean rating - 3 (so "no reviews" is neutral 0)
)
N_FEATURES = len(FEATURE_NAMES)

# Features that move together (recency_days and recency_over_ipt, say) are explained together: changing one
# alone while its siblings keep their values says little about what the customer actually did.
FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "recency": ("recency_days", "recency_over_ipt", "recency_z", "last_seen_days"),
    "frequency": ("frequency", "purchases_4w", "purchases_13w", "purchases_26w", "purchases_trend"),
    "spend": ("monetary_total", "monetary_mean", "monetary_max", "spend_4w", "spend_13w", "spend_26w", "spend_trend"),
    "tenure": ("tenure_days",),
    "purchase_rhythm": ("ipt_mean_days", "ipt_std_days"),
    "returns": ("returns_ratio", "return_amount_ratio"),
    "channel_mix": ("share_store", "share_web", "share_mobile"),
    "assortment": ("distinct_categories",),
    "engagement": ("web_events_13w", "mobile_events_13w", "events_4w", "events_since_last_purchase"),
    "reviews": ("reviews", "review_sentiment", "review_rating"),
}
INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}
assert sorted(sum(FEATURE_GROUPS.values(), ())) == sorted(FEATURE_NAMES), "every feature in exactly one group"

RETURN_KINDS = frozenset({"return", "refund"})
# The activity-doc fields History reads: the nightly job keeps only these, so they must match from_docs or its
# features drift from profile_history's. `properties` is left out: only a review's text fallback, and stored
# reviews have none (shared.models.Review) while events' can be large.
ACTIVITY_FIELDS = ("timestamp", "amount", "kind", "transaction_kind", "channel", "category", "items", "rating",
                   "sentiment", "text", "source", "order_id", "line_id", "return_id")
CHANNEL_GROUPS = {
    "store": "store", "pos": "store", "instore": "store", "in-store": "store", "in_store": "store", "retail": "store",
    "web": "web", "online": "web", "ecommerce": "web", "e-commerce": "web", "website": "web",
    "mobile": "mobile", "app": "mobile", "mobile_app": "mobile", "ios": "mobile", "android": "mobile",
}
_CHANNEL_CODE = {"store": 1, "web": 2, "mobile": 3}


def to_epoch(value: Any) -> float:
    """Seconds since the epoch for an ISO string, datetime or date; naive values are UTC."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip())
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        raise TypeError(f"not a timestamp: {type(value).__name__}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def as_of_instant(value: Any) -> float:
    """The as-of instant for a user-given date or datetime: a bare date means the END of that day."""
    if isinstance(value, str) and len(value.strip()) == 10:
        value = date.fromisoformat(value.strip())
    if isinstance(value, date) and not isinstance(value, datetime):
        return to_epoch(value + timedelta(days=1))
    return to_epoch(value)


def channel_group(channel: Any) -> str | None:
    return CHANNEL_GROUPS.get(str(channel).strip().lower()) if channel else None


def _sentiment(doc: Mapping[str, Any]) -> float:
    """The stored sentiment of a review or feedback event (shared.activity scores it on ingestion), else scored
    here the same way; NaN when there is no text."""
    score = doc.get("sentiment")
    if score is None:
        score = sentiment_score(doc.get("text") or (doc.get("properties") or {}).get("text"))
    return float(score) if score is not None else float("nan")


def _categories(tx: Mapping[str, Any]) -> set[str]:
    cats = {str(tx["category"]).strip().lower()} if tx.get("category") else set()
    for item in tx.get("items") or ():
        if isinstance(item, Mapping) and item.get("category"):
            cats.add(str(item["category"]).strip().lower())
    return cats


def _finite_amount(value: Any) -> float:
    amount = float(value if value is not None else 0.0)
    return amount if np.isfinite(amount) else 0.0


def _purchase_key(tx: Mapping[str, Any]) -> tuple | None:
    """The order a purchase doc belongs to (its lines share it); None: the doc is a purchase of its own."""
    return ("order", tx.get("source"), str(tx["order_id"])) if tx.get("order_id") else None


def _return_key(tx: Mapping[str, Any], kind: str, t: float) -> tuple | None:
    """The return a return line belongs to (docs with a line_id: its order, kind and return number, else time);
    None: the doc is a return of its own (a row without line is a whole return)."""
    if not tx.get("line_id") or not tx.get("order_id"):
        return None
    return ("return", tx.get("source"), str(tx["order_id"]), kind, str(tx["return_id"]) if tx.get("return_id") else t)


def _total(amounts: list[float]) -> float:
    """The sum of an order's line amounts, as the order's own total would be: exact in decimal (0.1 + 0.2 is
    0.3, as a one-row order of 0.3 stores it) and the same in any order the lines are read."""
    return amounts[0] if len(amounts) == 1 else float(sum(Decimal(repr(a)) for a in amounts))


def _grouped(rows: list[tuple]) -> list[tuple]:
    """(key, time, amount, channel code, categories) rows -> one (time, amount, channel, categories) per key (a
    None key alone): the earliest time, the total, the channel (the lowest known code when lines disagree), the
    categories together. Independent of the rows' order, so the nightly scan and serving agree."""
    merged: dict[Any, list] = {}
    for i, (key, t, amount, channel, cats) in enumerate(rows):
        merged.setdefault(key if key is not None else ("row", i), []).append((t, amount, channel, cats))
    out = []
    for parts in merged.values():
        if len(parts) == 1:
            out.append(parts[0])
            continue
        known = [c for _, _, c, _ in parts if c]
        out.append((min(p[0] for p in parts), _total([p[1] for p in parts]), min(known) if known else 0,
                    frozenset().union(*(p[3] for p in parts))))
    return out


@dataclass
class History:
    """One customer's activity as sorted arrays. Build with `History.from_docs`; query with `features(as_of)`."""

    purchase_times: np.ndarray = field(default_factory=lambda: np.empty(0))
    purchase_amounts: np.ndarray = field(default_factory=lambda: np.empty(0))
    purchase_channels: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int8))
    purchase_categories: list[frozenset[str]] = field(default_factory=list)
    return_times: np.ndarray = field(default_factory=lambda: np.empty(0))
    return_amounts: np.ndarray = field(default_factory=lambda: np.empty(0))
    event_times: np.ndarray = field(default_factory=lambda: np.empty(0))
    event_channels: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int8))
    review_times: np.ndarray = field(default_factory=lambda: np.empty(0))
    review_sentiments: np.ndarray = field(default_factory=lambda: np.empty(0))  # NaN when the review has no text
    review_ratings: np.ndarray = field(default_factory=lambda: np.empty(0))  # NaN when unrated

    @classmethod
    def from_docs(
        cls,
        transactions: Iterable[Mapping[str, Any]] = (),
        events: Iterable[Mapping[str, Any]] = (),
        reviews: Iterable[Mapping[str, Any]] = (),
    ) -> "History":
        purchase_rows, return_rows = [], []
        for tx in transactions:
            t, amount = to_epoch(tx["timestamp"]), _finite_amount(tx.get("amount"))
            # stored activity docs keep the transaction's own kind as transaction_kind (kind = "transaction")
            kind = str(tx.get("transaction_kind") or tx.get("kind") or "purchase").lower()
            if kind in RETURN_KINDS or amount < 0:
                return_rows.append((_return_key(tx, kind, t), t, abs(amount), 0, frozenset()))
            else:
                channel = _CHANNEL_CODE.get(channel_group(tx.get("channel")), 0)
                purchase_rows.append((_purchase_key(tx), t, amount, channel, frozenset(_categories(tx))))
        purchases = sorted(_grouped(purchase_rows), key=lambda p: p[0])
        returns = sorted(((r[0], r[1]) for r in _grouped(return_rows)), key=lambda r: r[0])
        evs, revs = [], []
        for e in events:
            evs.append((to_epoch(e["timestamp"]), _CHANNEL_CODE.get(channel_group(e.get("channel")), 0)))
            if e.get("sentiment") is not None:  # feedback events carry the customer's words, like a review
                revs.append((evs[-1][0], float(e["sentiment"]), float("nan")))
        for r in reviews:
            rating = r.get("rating")
            revs.append((to_epoch(r["timestamp"]), _sentiment(r), float(rating) if rating is not None else float("nan")))
        evs.sort(key=lambda e: e[0])
        revs.sort(key=lambda r: r[0])
        return cls(
            purchase_times=np.array([p[0] for p in purchases], dtype=np.float64),
            purchase_amounts=np.array([p[1] for p in purchases], dtype=np.float64),
            purchase_channels=np.array([p[2] for p in purchases], dtype=np.int8),
            purchase_categories=[p[3] for p in purchases],
            return_times=np.array([r[0] for r in returns], dtype=np.float64),
            return_amounts=np.array([r[1] for r in returns], dtype=np.float64),
            event_times=np.array([e[0] for e in evs], dtype=np.float64),
            event_channels=np.array([e[1] for e in evs], dtype=np.int8),
            review_times=np.array([r[0] for r in revs], dtype=np.float64),
            review_sentiments=np.array([r[1] for r in revs], dtype=np.float64),
            review_ratings=np.array([r[2] for r in revs], dtype=np.float64),
        )

    @classmethod
    def from_activity(cls, docs: Iterable[Mapping[str, Any]]) -> "History":
        """From mixed activity docs (shared.activity), split by their `kind` field."""
        tx, ev, rv = [], [], []
        for doc in docs:
            kind = doc.get("kind")
            (ev if kind == "event" else rv if kind == "review" else tx).append(doc)
        return cls.from_docs(tx, ev, rv)

    # --- queries ---------------------------------------------------------------------------------------
    def first_purchase(self) -> float | None:
        return float(self.purchase_times[0]) if self.purchase_times.size else None

    def purchases_before(self, as_of: float) -> int:
        return int(np.searchsorted(self.purchase_times, as_of, side="left"))

    def purchases_between(self, start: float, end: float) -> int:
        """Purchases in [start, end)."""
        return self.purchases_before(end) - self.purchases_before(start)

    def features(self, as_of: float) -> np.ndarray:
        """FEATURE_NAMES as of this instant (epoch seconds); requires at least one purchase before it."""
        n = self.purchases_before(as_of)
        if n == 0:
            raise ValueError("no purchase before the as-of date: churn is not defined for this customer")
        times, amounts = self.purchase_times[:n], self.purchase_amounts[:n]
        f = np.zeros(N_FEATURES, dtype=np.float64)

        recency = (as_of - times[-1]) / DAY
        tenure = (as_of - times[0]) / DAY
        gaps = np.diff(times) / DAY
        ipt_mean = float(gaps.mean()) if gaps.size else tenure
        ipt_std = float(gaps.std()) if gaps.size else 0.0
        total = float(amounts.sum())
        f[INDEX["recency_days"]] = recency
        f[INDEX["frequency"]] = n
        f[INDEX["monetary_total"]] = total
        f[INDEX["monetary_mean"]] = total / n
        f[INDEX["monetary_max"]] = float(amounts.max())
        f[INDEX["tenure_days"]] = tenure
        f[INDEX["ipt_mean_days"]] = ipt_mean
        f[INDEX["ipt_std_days"]] = ipt_std
        f[INDEX["recency_over_ipt"]] = recency / max(ipt_mean, 1.0)
        f[INDEX["recency_z"]] = (recency - ipt_mean) / max(ipt_std, 1.0)

        counts, spends = {}, {}
        for weeks in (4, 13, 26):
            start = np.searchsorted(times, as_of - weeks * WEEK, side="left")
            counts[weeks], spends[weeks] = n - start, float(amounts[start:].sum())
            f[INDEX[f"purchases_{weeks}w"]] = counts[weeks]
            f[INDEX[f"spend_{weeks}w"]] = spends[weeks]
        f[INDEX["spend_trend"]] = _trend(spends[13], spends[26] - spends[13])
        f[INDEX["purchases_trend"]] = _trend(counts[13], counts[26] - counts[13])

        n_returns = int(np.searchsorted(self.return_times, as_of, side="left"))
        f[INDEX["returns_ratio"]] = n_returns / n
        f[INDEX["return_amount_ratio"]] = float(self.return_amounts[:n_returns].sum()) / total if total > 0 else 0.0

        channels = self.purchase_channels[:n]
        for name, code in _CHANNEL_CODE.items():
            f[INDEX[f"share_{name}"]] = float(np.count_nonzero(channels == code)) / n
        f[INDEX["distinct_categories"]] = len(frozenset().union(*self.purchase_categories[:n]))

        n_events = int(np.searchsorted(self.event_times, as_of, side="left"))
        start13 = int(np.searchsorted(self.event_times, as_of - 13 * WEEK, side="left"))
        recent_channels = self.event_channels[start13:n_events]
        f[INDEX["web_events_13w"]] = np.count_nonzero(recent_channels == _CHANNEL_CODE["web"])
        f[INDEX["mobile_events_13w"]] = np.count_nonzero(recent_channels == _CHANNEL_CODE["mobile"])
        f[INDEX["events_4w"]] = n_events - int(np.searchsorted(self.event_times, as_of - 4 * WEEK, side="left"))
        f[INDEX["events_since_last_purchase"]] = n_events - int(np.searchsorted(self.event_times, times[-1], side="right"))
        last_seen = times[-1]
        for other, count in ((self.event_times, n_events), (self.return_times, n_returns)):
            if count:
                last_seen = max(last_seen, other[count - 1])

        n_reviews = int(np.searchsorted(self.review_times, as_of, side="left"))
        if n_reviews:
            last_seen = max(last_seen, self.review_times[n_reviews - 1])
        f[INDEX["last_seen_days"]] = (as_of - last_seen) / DAY
        f[INDEX["reviews"]] = n_reviews
        f[INDEX["review_sentiment"]] = _nanmean_or_zero(self.review_sentiments[:n_reviews])
        ratings = self.review_ratings[:n_reviews]
        f[INDEX["review_rating"]] = _nanmean_or_zero(ratings - 3.0)
        return f


def _trend(recent: float, earlier: float) -> float:
    total = recent + earlier
    return (recent - earlier) / total if total > 0 else 0.0


def _nanmean_or_zero(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else 0.0


def compute_features(
    transactions: Iterable[Mapping[str, Any]],
    as_of: Any,
    events: Iterable[Mapping[str, Any]] = (),
    reviews: Iterable[Mapping[str, Any]] = (),
) -> np.ndarray:
    """FEATURE_NAMES for one customer as of `as_of` (epoch seconds, datetime or ISO string)."""
    return History.from_docs(transactions, events, reviews).features(to_epoch(as_of))


def feature_matrix(histories: Iterable[History], as_of: float) -> np.ndarray:
    """Rows of FEATURE_NAMES for customers that all have a purchase before `as_of`."""
    rows = [h.features(as_of) for h in histories]
    return np.vstack(rows) if rows else np.empty((0, N_FEATURES))
