"""The insight numbers on small, hand-computed scenarios: measures, enrichment, refresh, segments, funnels,
reports, the dashboard's date range and needs.

- orders are keyed by (source, order id), and a return reusing its order id does not replace the purchase
  nor the order's other returns;
- exists/missing treat null as absent;
- "as of" computations (refresh, enrichment, needs) ignore activity after the moment;
- a segment built on another segment is current after one refresh run;
- funnels find every conversion (however many step-1 events) and the channel split adds up to the total;
- revenue is never summed across currencies; analytics days are UTC days; a median is the median;
- the dashboard's "to" day is included whole.

All in process on the in-memory store (no emulator needed)."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone


from shared.activity import iso_utc, list_activity, save_activity
from shared.enrichment import enrich_profile
from shared.ingest import ingest_file, parse_mapping
from shared.insights import journeys as jr
from shared.insights import refresh
from shared.insights import reports as rp
from shared.insights import segments as seg
from shared.measures import compute_measures
from shared.models import Transaction
from shared.store import MemoryStore

from .insights_data import NOW, ROOT_DIR, ago, event, profile_doc, purchase, put_profiles

BROWSE_TO_BUY = {"name": "Browse to buy", "conversion_window_days": 7, "steps": [
    {"name": "View", "event": "Product Viewed"}, {"name": "Buy", "event": "Order Completed"}]}


def _transactions(store, owners):
    return list(list_activity(store, owners, kind="transaction"))


# --- measures -------------------------------------------------------------------------------------------

def test_measures_count_two_orders_with_the_same_number_in_two_sources_as_two_orders():
    """A profile merged from a POS record and a web record; each source numbers its own orders, and both
    happen to have order 1001 (a store receipt of 100 and a web order of 50). Two orders, 150 spent, AOV 75."""
    store = MemoryStore()
    put_profiles(store, [profile_doc("p_mia", sources=["pos|1", "web|a1"], given="Mia", family="Cole",
                                     email="mia@shopmail.net")])
    save_activity(store, [purchase("pos|1", "1001", ago(3), 100.0),
                          purchase("web|a1", "1001", ago(2), 50.0, channel="web")])
    m = compute_measures(_transactions(store, ["pos|1", "web|a1"]))
    assert m["total_spend"] == 150.0
    assert m["orders"] == 2
    assert m["average_order_value"] == 75.0


def test_a_return_row_that_reuses_the_order_id_does_not_erase_the_purchase():
    """Order O1 for 100, then a return of 30 recorded against the same order id (the usual way a till or a
    shop platform links a return to its sale). Right: 1 order, spend 100, returns 30, net 70."""
    store = MemoryStore()
    save_activity(store, [purchase("pos|1", "O1", ago(3), 100.0),
                          purchase("pos|1", "O1", ago(2), -30.0, kind="return")])
    m = compute_measures(_transactions(store, ["pos|1"]))
    assert m["returns"] == 30.0
    assert (m["orders"], m["total_spend"], m["net_spend"]) == (1, 100.0, 70.0)
    assert m["last_purchase"] is not None


def test_two_partial_returns_of_one_order_are_both_counted_and_a_re_ingest_changes_nothing(tmp_path):
    """Order O1 for 100 at the till; 10.00 of it comes back on one day, 5.00 on another, both rows with the
    order's receipt number (no return number in the file). Right: returns 15, net 85, whatever the order the
    rows come in; ingesting the same file again stores nothing new."""
    mapping = parse_mapping({"source": "pos", "entity": "transactions", "fields": {
        "order_id": "receipt", "customer_key": "cust", "timestamp": "at", "amount": "total", "kind": "type"}})
    receipts = tmp_path / "receipts.csv"
    receipts.write_text("receipt,cust,at,total,type\nO1,1,2024-09-01T10:00:00Z,100.00,purchase\n"
                        "O1,1,2024-09-05T11:00:00Z,-10.00,return\nO1,1,2024-09-09T12:00:00Z,-5.00,return\n")
    store = MemoryStore()
    ingest_file(receipts, mapping, store=store)
    m = compute_measures(_transactions(store, ["pos|1"]))
    assert (m["orders"], m["total_spend"], m["returns"], m["net_spend"]) == (1, 100.0, 15.0, 85.0)
    stored = sorted(d["id"] for d in store.container("activity").query_items())
    ingest_file(receipts, mapping, store=store)
    assert sorted(d["id"] for d in store.container("activity").query_items()) == stored
    assert compute_measures(_transactions(store, ["pos|1"]))["returns"] == 15.0


def test_exists_and_missing_on_measures_of_a_customer_who_never_bought():
    """After a refresh a never-buyer carries measures.last_purchase = null. 'Buyers' (last_purchase exists)
    must be only Ann; 'never bought' (last_purchase missing, as the rule errors advise for absent values)
    must be only Bo."""
    store = MemoryStore()
    put_profiles(store, [profile_doc("p_ann", sources=["web|a1"], given="Ann", family="Lee", email="ann@shopmail.net"),
                         profile_doc("p_bo", sources=["web|b1"], given="Bo", family="Ray", email="bo@shopmail.net")])
    save_activity(store, [purchase("web|a1", "o1", ago(3), 10.0, channel="web")])
    refresh.refresh_all(store, now=NOW)
    buyers = seg.matching_profile_ids(store, {"field": "measures.last_purchase", "op": "exists"}, now=NOW)
    never = seg.matching_profile_ids(store, {"field": "measures.last_purchase", "op": "missing"}, now=NOW)
    assert buyers == {"p_ann"}
    assert never == {"p_bo"}


def test_refresh_as_of_a_moment_ignores_later_transactions():
    """refresh_profile(now=T) computes measures 'as of' T (segments and needs use T): an order dated 5 days
    after T must not be in orders, spend or last_purchase."""
    store = MemoryStore()
    put_profiles(store, [profile_doc("p_ann", sources=["web|a1"], given="Ann", family="Lee", email="ann@shopmail.net")])
    save_activity(store, [purchase("web|a1", "o1", ago(10), 10.0, channel="web"),
                          purchase("web|a1", "o2", NOW + timedelta(days=5), 99.0, channel="web")])
    out = refresh.refresh_profile(store, "p_ann", now=NOW)
    assert out["measures"]["orders"] == 1
    assert out["measures"]["total_spend"] == 10.0
    assert out["measures"]["last_purchase"] == "2026-09-20T12:00:00.000000Z"


# --- enrichment -----------------------------------------------------------------------------------------

def test_enrichment_lifecycle_as_of_ignores_later_purchases():
    """As of NOW the person has bought nothing yet (their only purchase is dated 10 days later): a prospect
    with no tenure, not a 'new' customer."""
    profile = profile_doc("p_ann", sources=["web|a1"], given="Ann", family="Lee", email="ann@shopmail.net")
    later = [{"kind": "transaction", "timestamp": "2026-10-10T00:00:00.000000Z", "amount": 10.0,
              "transaction_kind": "purchase"}]
    out = enrich_profile(profile, later, now=NOW)
    assert (out["lifecycle_stage"], out["tenure_days"]) == ("prospect", None)


# --- segments and the refresh ---------------------------------------------------------------------------

def test_refresh_updates_a_segment_built_on_another_segment_in_the_same_run():
    """Segment A: churn risk high. Segment B: members of A. The person becomes high risk; after one refresh
    run they must be in A and in B (B is by definition a superset of A), and B's stored size must be 1."""
    store = MemoryStore()
    put_profiles(store, [profile_doc("p_ann", sources=["web|a1"], given="Ann", family="Lee", email="ann@shopmail.net",
                                     churn={"score": 0.1, "risk": "low"})])
    a = seg.create_segment(store, seg.SegmentDefinition(name="High risk", rule={
        "field": "churn.risk", "op": "=", "value": "high"}), now=NOW)
    b = seg.create_segment(store, seg.SegmentDefinition(name="In high risk", rule={
        "field": "segments", "op": "contains", "value": a["id"]}), now=NOW)
    profiles = store.container("profiles")
    doc = profiles.read_item("p_ann", "p_ann")
    profiles.upsert_item({**doc, "churn": {"score": 0.9, "risk": "high"}})
    refresh.refresh_all(store, now=NOW)
    assert profiles.read_item("p_ann", "p_ann")["segments"] == sorted([a["id"], b["id"]])
    assert seg.get_segment(store, b["id"])["size"] == 1


# --- journeys and funnels -------------------------------------------------------------------------------

def test_funnel_by_channel_keeps_a_cross_channel_conversion():
    """One person views on the web and buys in the app two days later: 1 entered, 1 completed. Split by
    channel, that conversion must still be somewhere: the per-channel completions add up to 1."""
    store = MemoryStore()
    put_profiles(store, [profile_doc("p_ann", sources=["web|a1"], given="Ann", family="Lee", email="ann@shopmail.net")])
    save_activity(store, [event("web|a1", 1, "Product Viewed", ago(3)),
                          event("web|a1", 2, "Order Completed", ago(1), channel="mobile")])
    journey = jr.create_journey(store, jr.JourneyDefinition.model_validate(BROWSE_TO_BUY))
    report = jr.funnel(store, journey, start=ago(30), end=NOW)
    assert (report["entered"], report["completed"]) == (1, 1)
    by = report["by_channel"]
    assert sum(c["entered"] for c in by.values()) == 1
    assert sum(c["completed"] for c in by.values()) == 1


def test_funnel_finds_the_conversion_of_a_person_with_many_step_one_events():
    """An engaged shopper views a product every 2 hours for 12.5 days (150 views), then buys 30 minutes after
    the last view; window 1 day. They completed the journey (their current stage says so too)."""
    store = MemoryStore()
    put_profiles(store, [profile_doc("p_ann", sources=["web|a1"], given="Ann", family="Lee", email="ann@shopmail.net")])
    t0 = ago(20)
    views = [event("web|a1", i, "Product Viewed", t0 + timedelta(hours=2 * i)) for i in range(150)]
    buy = event("web|a1", 999, "Order Completed", t0 + timedelta(hours=2 * 149, minutes=30))
    save_activity(store, [*views, buy])
    one_day = jr.JourneyDefinition.model_validate({**BROWSE_TO_BUY, "conversion_window_days": 1})
    journey = jr.create_journey(store, one_day)
    stage = jr.profile_stage(store, journey, store.container("profiles").read_item("p_ann", "p_ann"))
    assert stage["completed"] is True
    report = jr.funnel(store, journey, start=ago(30), end=NOW)
    assert report["completed"] == 1
    assert report["steps"][1]["median_seconds_from_previous"] == 1800


def test_funnel_depth_in_one_pass_equals_the_deepest_of_all_attempts():
    """Random timelines (3 steps, a step-1 event can also be step 3): the one-pass depth is the best of trying
    every step-1 event on its own."""
    import random

    steps = jr.JourneyDefinition.model_validate({"name": "j", "steps": [
        {"name": "A", "event": "A"}, {"name": "B", "event": "B"}, {"name": "A again", "event": "A"}]}).steps
    rng, window = random.Random(7), timedelta(days=2)
    for _ in range(300):
        events = sorted(({"timestamp": iso_utc(ago(rng.uniform(0, 10))), "event": rng.choice("ABC")}
                         for _ in range(rng.randint(0, 25))), key=lambda e: e["timestamp"])
        starts = [i for i, e in enumerate(events) if e["event"] == "A"]
        brute = max((len(jr.attempt(steps, events, i, window)) for i in starts), default=0)
        best, _ = jr.progress(steps, events, window)
        assert len(best) == brute


# --- reports --------------------------------------------------------------------------------------------

def test_revenue_report_counts_the_same_order_number_of_two_customers_as_two_orders():
    """Two different customers in two sources, both with an order numbered 1001 (100 and 50): 2 orders,
    AOV 75."""
    store = MemoryStore()
    put_profiles(store, [profile_doc("p_ann", sources=["pos|1"], given="Ann", family="Lee", email="ann@shopmail.net"),
                         profile_doc("p_bo", sources=["web|b1"], given="Bo", family="Ray", email="bo@shopmail.net")])
    save_activity(store, [purchase("pos|1", "1001", ago(3), 100.0, channel="store"),
                          purchase("web|b1", "1001", ago(2), 50.0, channel="web")])
    r = rp.run_report(store, "revenue", {"from": ago(10).isoformat(), "to": NOW.isoformat()})
    assert r["revenue"] == 150.0 and r["customers"] == 2
    assert r["orders"] == 2
    assert r["average_order_value"] == 75.0


def test_revenue_report_does_not_add_pounds_and_dollars():
    """A GBP 100 store order and a USD 100 web order (the generator writes GBP, USD and EUR by country).
    There is no single right 'revenue' in one unit: the report must keep the currencies apart."""
    store = MemoryStore()
    put_profiles(store, [profile_doc("p_ann", sources=["pos|1"], given="Ann", family="Lee", email="ann@shopmail.net"),
                         profile_doc("p_bo", sources=["web|b1"], given="Bo", family="Ray", email="bo@shopmail.net",
                                     country="US")])
    save_activity(store, [
        Transaction(source="pos", order_id="S-1", customer_key="1", timestamp=ago(2), amount=100, currency="GBP",
                    channel="store"),
        Transaction(source="web", order_id="W-1", customer_key="b1", timestamp=ago(2), amount=100, currency="USD",
                    channel="web"),
    ])
    r = rp.run_report(store, "revenue", {"from": ago(10).isoformat(), "to": NOW.isoformat()})
  
    by_currency = r.get("by_currency") or {}
    assert {c: v["revenue"] for c, v in by_currency.items()} == {"GBP": 100.0, "USD": 100.0}
    assert (r["revenue"], r["average_order_value"], r["currency"], r["orders"]) == (None, None, None, 2)
    assert (r["by_channel"]["store"]["revenue"], r["by_channel"]["store"]["currency"]) == (100.0, "GBP")


def test_analytics_daily_active_covers_the_utc_days_of_a_range_given_with_an_offset():
    """Range 2026-09-01T00:00+02:00 .. 2026-09-03T00:00+02:00 = 2026-08-31T22:00Z .. 2026-09-02T22:00Z.
    A visit at 2026-08-31T22:30Z is in range (active_profiles 1), so some day of daily_active must show it."""
    store = MemoryStore()
    put_profiles(store, [profile_doc("p_ann", sources=["web|a1"], given="Ann", family="Lee", email="ann@shopmail.net")])
    save_activity(store, [event("web|a1", 1, "Home", datetime(2026, 8, 31, 22, 30, tzinfo=timezone.utc), type_="page")])
    r = rp.run_report(store, "analytics", {"from": "2026-09-01T00:00:00+02:00", "to": "2026-09-03T00:00:00+02:00"})
    assert r["active_profiles"] == 1
    days = {d["date"]: d["active"] for d in r["daily_active"]}
    assert days.get("2026-08-31") == 1
    assert sum(days.values()) == 1


def test_analytics_median_session_length_is_the_median():
    """Two sessions of 10 s and 20 s: the median is 15 s (the funnel's medians use statistics.median)."""
    store = MemoryStore()
    put_profiles(store, [profile_doc("p_ann", sources=["web|a1"], given="Ann", family="Lee", email="ann@shopmail.net")])
    save_activity(store, [event("web|a1", 1, "Home", ago(3), type_="page"),
                          event("web|a1", 2, "Home", ago(3) + timedelta(seconds=10), type_="page"),
                          event("web|a1", 3, "Home", ago(2), type_="page"),
                          event("web|a1", 4, "Home", ago(2) + timedelta(seconds=20), type_="page")])
    r = rp.run_report(store, "analytics", {"from": ago(10).isoformat(), "to": NOW.isoformat()})
    assert r["sessions"] == 2
    assert r["median_session_seconds"] == 15


# --- dashboard ------------------------------------------------------------------------------------------

def test_dashboard_date_range_includes_the_whole_last_day():
    """The dashboard sends a day range as from=<day>T00:00:00Z, to=<day after><suffix> to half-open reports. An
    order at 23:59:59.5 on the 'to' day belongs to that day; revenue for 2026-09-29..2026-09-29 is 40.
    (The source is read as text: the test checks the suffix, and nextDay is checked in the browser test.)"""
    source = (ROOT_DIR / "shared" / "dashboard" / "app.js").read_text(encoding="utf-8")
    found = re.search(r'to: to \? nextDay\(to\) \+ "([^"]*)"', source)
    assert found, "dayRange in app.js changed shape"
    from_suffix = re.search(r'from: from \? from \+ "([^"]*)"', source).group(1)
    params = {"from": "2026-09-29" + from_suffix, "to": "2026-09-30" + found.group(1)}  # nextDay("2026-09-29")
    store = MemoryStore()
    put_profiles(store, [profile_doc("p_ann", sources=["web|a1"], given="Ann", family="Lee", email="ann@shopmail.net")])
    late = datetime(2026, 9, 29, 23, 59, 59, 500000, tzinfo=timezone.utc)
    save_activity(store, [purchase("web|a1", "o1", datetime(2026, 9, 29, 9, tzinfo=timezone.utc), 15.0, channel="web"),
                          purchase("web|a1", "o2", late, 25.0, channel="web")])
    r = rp.run_report(store, "revenue", params)
    assert r["revenue"] == 40.0


# --- needs ----------------------------------------------------------------------------------------------

def test_needs_as_of_a_moment_use_nothing_from_after_it():
    """A view of product SKU1 (no category on the event) 10 days before NOW; the only thing that says SKU1 is
    'shoes' is a purchase 5 days after NOW. As of NOW there is no category signal at all."""
    from shared.activity import activity_doc
    from shared.insights.needs import profile_needs

    activity = [activity_doc(event("web|a1", 1, "Product Viewed", ago(10), product_id="SKU1")),
                activity_doc(purchase("web|a1", "o1", NOW + timedelta(days=5), 20.0, channel="web",
                                      items=[{"sku": "SKU1", "category": "shoes"}]))]
    needs = profile_needs(activity, NOW, {})
    assert needs["affinity"] == {}
    assert needs["signals"] == 0


def test_exists_and_missing_are_exact_under_not_for_every_kind_of_value():
    """exists/missing are two-valued on both stores (so "not" of them is their opposite), whatever the type."""
    from shared.insights.rules import evaluate, parse_rule
    from shared.store.query import to_sql

    docs = {"absent": {}, "null": {"measures": {"orders": None}}, "zero": {"measures": {"orders": 0}},
            "text": {"measures": {"orders": "x"}}, "list": {"measures": {"orders": [None]}}}
    for op, present in (("exists", {"zero", "text", "list"}), ("missing", {"absent", "null"})):
        rule = parse_rule({"field": "measures.orders", "op": op})
        negated = parse_rule({"not": {"field": "measures.orders", "op": op}})
        assert {k for k, d in docs.items() if evaluate(rule, d, {}, NOW)} == present
        assert {k for k, d in docs.items() if evaluate(negated, d, {}, NOW)} == set(docs) - present
    sql, params = to_sql(parse_rule({"field": "measures.orders", "op": "exists"}).store_filter(NOW))
    assert sql == '(IS_DEFINED(c["measures"]["orders"]) AND (NOT (ARRAY_CONTAINS(@p0, c["measures"]["orders"]))))'
    assert params == [{"name": "@p0", "value": [None]}]
