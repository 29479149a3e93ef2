"""Customer needs (affinity, next categories) and the refresh job that writes insights onto profiles."""
from __future__ import annotations

import json
import subprocess
import sys

from shared.activity import save_activity
from shared.insights import journeys as jr
from shared.insights import needs
from shared.insights import refresh
from shared.insights import segments as seg

from .insights_data import NOW, ROOT_DIR, ago, event, purchase, seed_shop


def test_affinity_weights_kind_and_recency():
    activity = [
        {"kind": "transaction", "timestamp": "2026-09-29T00:00:00Z", "amount": 10.0, "transaction_kind": "purchase",
         "items": [{"sku": "SH-1", "category": "shoes"}]},
        {"kind": "transaction", "timestamp": "2024-09-30T00:00:00Z", "amount": 10.0, "transaction_kind": "purchase",
         "items": [{"sku": "BK-1", "category": "books"}]},
        {"kind": "transaction", "timestamp": "2026-09-01T00:00:00Z", "amount": -10.0, "transaction_kind": "return",
         "items": [{"sku": "TV-1", "category": "electronics"}]},  # returns are not a need
        # a view of a product bought earlier maps through its sku; a view with an explicit category counts too
        {"kind": "event", "event": "Product Viewed", "timestamp": "2026-09-28T00:00:00Z", "properties": {"product_id": "BK-1"}},
        {"kind": "event", "event": "Product Added", "timestamp": "2026-09-28T00:00:00Z", "properties": {"category": "toys"}},
        {"kind": "event", "event": "Page Scrolled", "timestamp": "2026-09-28T00:00:00Z", "properties": {"category": "x"}},
        {"kind": "event", "event": "Product Viewed", "timestamp": "2026-10-30T00:00:00Z", "properties": {"category": "future"}},
    ]
    signals = needs.category_signals(activity)
    assert sorted(c for c, _, _ in signals) == ["books", "books", "future", "shoes", "toys"]
    aff = needs.affinity(signals, NOW)
    assert "future" not in aff and abs(sum(aff.values()) - 1) < 1e-9
    assert list(aff) == ["shoes", "toys", "books"]  # 3 recent > 2 recent > (3 two years ago = 0.75) + 1 recent view
    out = needs.profile_needs(activity, NOW, {"grocery": 0.9, "shoes": 0.1})
    assert out["top_categories"] == ["shoes", "toys", "books"]
    assert out["next_categories"] == ["shoes", "toys", "books"]
    # A thin history is filled from overall popularity.
    thin = needs.profile_needs(activity[:1], NOW, {"grocery": 0.6, "toys": 0.3, "shoes": 0.1})
    assert thin["next_categories"] == ["shoes", "grocery", "toys"]


def test_refresh_writes_measures_needs_stages_and_segments(store):
    ids = seed_shop(store)
    save_activity(store, [
        purchase("web|a1", "o1", ago(3), 80.0, channel="web", items=[{"sku": "SH-1", "category": "shoes", "price": 80.0}]),
        purchase("pos|1", "o2", ago(40), 20.0, channel="store", items=[{"sku": "BA-1", "category": "bags", "price": 20.0}]),
        purchase("web|b1", "o3", ago(2), 15.0, channel="web", items=[{"sku": "BK-1", "category": "books", "price": 15.0}]),
    ])
    shoes = seg.create_segment(store, seg.SegmentDefinition(name="Shoe people", rule={
        "field": "needs.top_categories", "op": "contains", "value": "shoes"}), now=NOW)
    assert shoes["size"] == 0  # nobody has needs yet
    big = seg.create_segment(store, seg.SegmentDefinition(name="Spent 100+", rule={
        "field": "measures.total_spend", "op": ">=", "value": 100}), now=NOW)
    journey = jr.create_journey(store, jr.JourneyDefinition.model_validate({"name": "Browse", "steps": [
        {"name": "View", "event": "Product Viewed"}, {"name": "Buy", "event": "Order Completed"}]}))

    stats = refresh.refresh_all(store, now=NOW)
    assert stats == {"profiles": 4, "failed": 0, "segments": 2, "journeys": 1}
    profiles = store.container("profiles")
    ann = profiles.read_item(ids["ann"], ids["ann"])
    assert ann["measures"]["orders"] == 2 and ann["measures"]["total_spend"] == 100.0
    assert ann["needs"]["top_categories"][0] == "shoes"
    assert ann["segments"] == sorted([shoes["id"], big["id"]])
    assert ann["journey_stage"][journey["id"]]["step_name"] == "View"
    bob = profiles.read_item(ids["bob"], ids["bob"])
    assert bob["journey_stage"][journey["id"]]["completed"] is True
    assert bob["needs"]["top_categories"] == ["books", "shoes"]  # a purchase (3) outweighs a view (1)
    assert shoes["id"] in bob["segments"] and big["id"] not in bob["segments"]
    assert seg.get_segment(store, shoes["id"])["size"] == 3  # Ann, Bob and Dee (who viewed shoes long ago)
    popularity = refresh.load_popularity(store)
    assert set(popularity) == {"shoes", "bags", "books"}

    # Unchanged data: once the popularity from the first run is in, another run writes nothing (no ETag churn).
    refresh.refresh_all(store, now=NOW)
    etag = profiles.read_item(ids["ann"], ids["ann"])["_etag"]
    refresh.refresh_all(store, now=NOW)
    assert profiles.read_item(ids["ann"], ids["ann"])["_etag"] == etag
    # One profile on demand, after new activity.
    save_activity(store, [event("app|c1", 7, "Product Viewed", ago(0, 1), channel="mobile", category="shoes")])
    out = refresh.refresh_profile(store, ids["cy"], now=NOW)
    assert out["needs"]["top_categories"] == ["shoes"] and shoes["id"] in out["segments"]
    assert refresh.refresh_profile(store, "p_nobody", now=NOW) is None


def test_needs_bench_beats_the_most_popular_baseline():
    run = subprocess.run([sys.executable, str(ROOT_DIR / "bench" / "needs.py"), "--shoppers", "600"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["held_out_purchases"] > 100
    assert result["model_default"]["hit_rate_at_3"] > result["baseline_most_popular"]["hit_rate_at_3"]


def test_refresh_skips_a_stored_segment_whose_rule_no_longer_validates(store):
    ids = seed_shop(store)
    ok = seg.create_segment(store, seg.SegmentDefinition(name="All", rule={"field": "attributes.given_name", "op": "exists"}), now=NOW)
    store.container("segments").create_item({"id": "seg_old", "doc_type": "segment", "name": "Old", "created_at": "2020",
                                             "rule": {"field": "loyalty.tier", "op": "=", "value": "gold"}})
    stats = refresh.refresh_all(store, now=NOW)
    assert stats["failed"] == 0 and stats["segments"] == 1
    assert store.container("profiles").read_item(ids["cy"], ids["cy"])["segments"] == [ok["id"]]
