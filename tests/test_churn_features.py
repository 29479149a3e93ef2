"""Churn features on hand-made histories: exact values, windows, returns, channels, events, reviews, labels."""
from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pytest

from model_training.churn import labelled_snapshot
from shared.activity import activity_doc
from shared.churn.features import DAY, FEATURE_NAMES, History, as_of_instant, compute_features, to_epoch
from shared.models import Event, Review, Transaction
from shared.sentiment import sentiment_score

AS_OF = "2024-07-01T00:00:00Z"


def feats(transactions, events=(), reviews=(), as_of=AS_OF) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, compute_features(transactions, as_of, events, reviews)))


def tx(day: str, amount: float, **extra):
    return {"timestamp": f"{day}T00:00:00Z", "amount": amount, **extra}


def test_rfm_tenure_and_inter_purchase_times_exact():
    # purchases 2024-01-01, 2024-03-01 (60 days later), 2024-06-01 (92 days later); as of 2024-07-01
    f = feats([tx("2024-03-01", 30.0), tx("2024-01-01", 10.0), tx("2024-06-01", 50.0)])
    assert f["recency_days"] == 30.0
    assert f["frequency"] == 3
    assert f["monetary_total"] == 90.0 and f["monetary_mean"] == 30.0 and f["monetary_max"] == 50.0
    assert f["tenure_days"] == 182.0
    assert f["ipt_mean_days"] == 76.0
    assert f["ipt_std_days"] == 16.0
    assert f["recency_over_ipt"] == pytest.approx(30 / 76)
    assert f["recency_z"] == pytest.approx((30 - 76) / 16)


def test_recent_windows_and_trend_exact():
    # as of 2024-07-01: 4 weeks back = 2024-06-03, 13 weeks = 2024-04-01, 26 weeks = 2023-12-31
    f = feats([tx("2024-06-10", 20.0), tx("2024-05-01", 30.0), tx("2024-03-15", 100.0), tx("2023-10-01", 7.0)])
    assert (f["purchases_4w"], f["purchases_13w"], f["purchases_26w"]) == (1, 2, 3)
    assert (f["spend_4w"], f["spend_13w"], f["spend_26w"]) == (20.0, 50.0, 150.0)
    assert f["spend_trend"] == pytest.approx((50 - 100) / 150)
    assert f["purchases_trend"] == pytest.approx((2 - 1) / 3)


def test_window_edges_are_half_open():
    # exactly 4 weeks before as_of counts in the 4-week window; activity at as_of itself does not exist yet
    f = feats([tx("2024-06-03", 5.0), tx("2024-07-01", 99.0)])
    assert f["frequency"] == 1 and f["purchases_4w"] == 1 and f["recency_days"] == 28.0


def test_single_purchase_uses_tenure_as_inter_purchase_time():
    f = feats([tx("2024-05-02", 12.5)])
    assert f["ipt_mean_days"] == f["tenure_days"] == f["recency_days"] == 60.0
    assert f["ipt_std_days"] == 0.0 and f["recency_over_ipt"] == 1.0 and f["recency_z"] == 0.0
    assert f["spend_trend"] == 1.0  # all spend in the recent 13 weeks


def test_returns_channels_and_categories():
    f = feats([
        tx("2024-06-01", 40.0, channel="Store", category="shoes"),
        tx("2024-06-02", 60.0, channel="online", items=[{"category": "Bags"}, {"category": "shoes"}]),
        tx("2024-06-03", 20.0, channel="app"),
        tx("2024-06-04", 30.0, channel="carrier-pigeon"),
        tx("2024-06-05", -15.0, kind="return", channel="web"),
        tx("2024-06-06", 10.0, kind="refund"),  # a refund is a return whatever the sign says
    ])
    assert f["frequency"] == 4 and f["monetary_total"] == 150.0
    assert f["returns_ratio"] == 0.5
    assert f["return_amount_ratio"] == pytest.approx(25 / 150)
    assert (f["share_store"], f["share_web"], f["share_mobile"]) == (0.25, 0.25, 0.25)
    assert f["distinct_categories"] == 2


def test_events_and_reviews():
    events = [
        {"timestamp": "2024-06-20T10:00:00Z", "channel": "web"},
        {"timestamp": "2024-05-01T10:00:00Z", "channel": "mobile"},
        {"timestamp": "2024-01-01T10:00:00Z", "channel": "web"},  # older than 13 weeks
        {"timestamp": "2024-07-02T10:00:00Z", "channel": "web"},  # after as_of
        {"timestamp": "2024-06-25T10:00:00Z", "channel": "web", "sentiment": -0.5},  # feedback event
    ]
    reviews = [
        {"timestamp": "2024-06-01T00:00:00Z", "rating": 5, "sentiment": 0.8},
        {"timestamp": "2024-06-02T00:00:00Z", "rating": 2, "text": "Terrible, broke after a day"},
        {"timestamp": "2024-08-01T00:00:00Z", "rating": 1, "sentiment": -0.9},  # after as_of
    ]
    f = feats([tx("2024-06-01", 10.0)], events, reviews)
    assert f["web_events_13w"] == 2 and f["mobile_events_13w"] == 1 and f["events_4w"] == 2
    assert f["events_since_last_purchase"] == 2  # 06-20 and 06-25 (05-01 was before the purchase)
    assert f["last_seen_days"] == pytest.approx(6 - 10 / 24)  # the feedback event of 2024-06-25 10:00
    assert f["reviews"] == 3  # two reviews + one feedback event
    text_score = sentiment_score("Terrible, broke after a day")
    assert text_score < -0.3  # VADER, offline, scored the unscored text
    assert f["review_sentiment"] == pytest.approx((0.8 + text_score - 0.5) / 3)
    assert f["review_rating"] == pytest.approx(((5 - 3) + (2 - 3)) / 2)


def test_no_events_or_reviews_are_neutral_zeros_never_nan():
    f = feats([tx("2024-06-01", 10.0)])
    assert all(math.isfinite(v) for v in f.values())
    assert f["reviews"] == f["review_sentiment"] == f["review_rating"] == f["events_4w"] == 0
    assert f["last_seen_days"] == f["recency_days"] == 30.0 and f["events_since_last_purchase"] == 0


def test_a_late_return_counts_as_being_seen():
    f = feats([tx("2024-06-01", 10.0), tx("2024-06-21", -10.0, kind="return")])
    assert f["recency_days"] == 30.0 and f["last_seen_days"] == 10.0


def test_stored_activity_docs_give_the_same_features():
    """The shape shared.activity stores (kind=transaction, transaction_kind=return) is read correctly."""
    items = [
        Transaction(source="pos", order_id="1", customer_key="c", timestamp=datetime(2024, 6, 1, tzinfo=timezone.utc),
                    amount="40", channel="store"),
        Transaction(source="pos", order_id="2", customer_key="c", timestamp=datetime(2024, 6, 5, tzinfo=timezone.utc),
                    amount="-10", kind="return"),
        Event(source="web", event_id="e1", customer_key="c", timestamp=datetime(2024, 6, 20, tzinfo=timezone.utc),
              channel="web"),
        Review(source="web", review_id="r1", customer_key="c", timestamp=datetime(2024, 6, 2, tzinfo=timezone.utc),
               rating=4, text="Lovely"),
    ]
    docs = [activity_doc(i) for i in items]
    history = History.from_activity(docs)
    f = dict(zip(FEATURE_NAMES, history.features(to_epoch(AS_OF))))
    assert f["frequency"] == 1 and f["returns_ratio"] == 1.0 and f["return_amount_ratio"] == 0.25
    assert f["share_store"] == 1.0 and f["web_events_13w"] == 1 and f["reviews"] == 1 and f["review_sentiment"] > 0


def test_no_purchase_before_as_of_is_refused():
    with pytest.raises(ValueError, match="no purchase"):
        compute_features([tx("2024-08-01", 10.0), tx("2024-06-01", -5.0, kind="return")], AS_OF)


def test_as_of_dates_mean_the_end_of_that_day_and_naive_times_are_utc():
    assert as_of_instant("2024-06-30") == to_epoch("2024-07-01T00:00:00+00:00")
    assert to_epoch("2024-06-30T12:00:00") == to_epoch("2024-06-30T14:00:00+02:00")
    assert as_of_instant("2024-06-30T12:00:00Z") == to_epoch(datetime(2024, 6, 30, 12, tzinfo=timezone.utc))


def test_labels_come_from_the_window_after_the_cutoff():
    as_of = to_epoch("2024-07-01T00:00:00Z")  # window 30 days -> cut-off 2024-06-01
    histories = {
        "stays": History.from_docs([tx("2024-05-01", 10), tx("2024-06-15", 10)]),
        "churns": History.from_docs([tx("2024-05-01", 10), tx("2024-05-20", 10)]),
        "buys_on_cutoff": History.from_docs([tx("2024-05-01", 10), tx("2024-06-01", 10)]),
        "only_returns_after": History.from_docs([tx("2024-05-01", 10), tx("2024-06-10", -10, kind="return")]),
        "new_after_cutoff": History.from_docs([tx("2024-06-10", 10)]),
        "buys_at_as_of": History.from_docs([tx("2024-05-01", 10), tx("2024-07-01", 10)]),
    }
    ids, x, y = labelled_snapshot(histories, as_of=as_of, window_days=30)
    labels = dict(zip(ids, y))
    assert labels == {"stays": 0, "churns": 1, "buys_on_cutoff": 0, "only_returns_after": 1, "buys_at_as_of": 1}
    # features are as of the cut-off: the purchase on 2024-06-15 is not visible
    row = x[ids.index("stays")]
    assert row[FEATURE_NAMES.index("frequency")] == 1
    assert row[FEATURE_NAMES.index("recency_days")] == (to_epoch("2024-06-01T00:00:00Z") - to_epoch("2024-05-01T00:00:00Z")) / DAY


def test_history_features_at_many_dates_match_fresh_computation():
    rng = np.random.default_rng(1)
    txs = [tx(f"2024-{m:02d}-{d:02d}", float(rng.integers(1, 100)), channel=rng.choice(["web", "store"]))
           for m, d in zip(rng.integers(1, 7, 30), rng.integers(1, 28, 30))]
    history = History.from_docs(txs)
    for day in ("2024-03-01", "2024-05-15", "2024-07-01"):
        visible = [t for t in txs if t["timestamp"] < f"{day}T00:00:00Z"]
        if visible:
            assert np.array_equal(history.features(to_epoch(f"{day}T00:00:00Z")), compute_features(visible, f"{day}T00:00:00Z"))
