"""Journeys: ordered funnels over stored events, per channel and date range, current stage, and the CLI."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import ValidationError

from shared.activity import save_activity
from shared.insights import journeys as jr

from .insights_data import NOW, ago, event, profile_doc, put_profiles

SHOP = {"name": "Shop", "conversion_window_days": 7, "steps": [
    {"name": "Visit", "type": "page"},
    {"name": "View", "event": "Product Viewed"},
    {"name": "Cart", "event": "Product Added"},
    {"name": "Buy", "event": "Order Completed"},
]}


def seed_funnel(store):
    """Ann: full journey on web over two of her records (visit on one, the rest on the other).
    Bob: visit, view, then cart 10 days later (outside the 7-day window) -> stops at View.
    Cy: on mobile, visit then cart then view (out of order) -> reaches View only.
    An anonymous visitor: visit only. Dee: a purchase before any visit (no journey)."""
    put_profiles(store, [profile_doc("p_ann", sources=["pos|1", "web|a1"], given="Ann", family="Lee"),
                         profile_doc("p_bob", sources=["web|b1"], given="Bob", family="Ray"),
                         profile_doc("p_cy", sources=["app|c1"], given="Cy", family="Moss"),
                         profile_doc("p_dee", sources=["web|d1"], given="Dee", family="Hart")])
    save_activity(store, [
        event("pos|1", 1, "Home", ago(6), type_="page"),
        event("web|a1", 2, "Product Viewed", ago(5, 23)),
        event("web|a1", 3, "Product Added", ago(5, 22)),
        event("web|a1", 4, "Order Completed", ago(5, 20)),
        event("web|b1", 1, "Home", ago(20), type_="page"),
        event("web|b1", 2, "Product Viewed", ago(19)),
        event("web|b1", 3, "Product Added", ago(9)),
        event("app|c1", 1, "Home", ago(3), type_="page", channel="mobile"),
        event("app|c1", 2, "Product Added", ago(2, 23), channel="mobile"),
        event("app|c1", 3, "Product Viewed", ago(2, 22), channel="mobile"),
        event("anon|x", 1, "Home", ago(1), type_="page"),
        event("web|d1", 1, "Order Completed", ago(4)),
    ])
    # The anonymous visitor has no source record: its owner is the anonymous key.
    store.container("activity").upsert_item({**store.container("activity").read_item("event:anon:x-1", "anon|x"),
                                             "owner": "anon|visitor-1"})
    store.container("activity").delete_item("event:anon:x-1", "anon|x")
    return jr.create_journey(store, jr.JourneyDefinition.model_validate(SHOP))


def test_invalid_journeys_are_rejected_with_reasons():
    with pytest.raises(ValidationError, match="give an event name"):
        jr.JourneyDefinition.model_validate({"name": "x", "steps": [{"name": "a"}, {"name": "b", "type": "page"}]})
    with pytest.raises(ValidationError, match="at least 2"):
        jr.JourneyDefinition.model_validate({"name": "x", "steps": [{"name": "a", "type": "page"}]})
    with pytest.raises(ValidationError):
        jr.JourneyDefinition.model_validate({**SHOP, "conversion_window_days": 0})


def test_funnel_counts_ordered_steps_within_the_window(store):
    journey = seed_funnel(store)
    report = jr.funnel(store, journey, start=ago(30), end=NOW)
    assert [s["reached"] for s in report["steps"]] == [4, 3, 1, 1]
    assert report["entered"] == 4 and report["completed"] == 1 and report["overall_conversion"] == 0.25
    view = report["steps"][1]
    assert view["conversion_from_previous"] == 0.75 and view["drop_off"] == 1
    cart = report["steps"][2]
    assert cart["drop_off"] == 2 and cart["drop_off_rate"] == round(1 - 1 / 3, 4)
    # Ann's visit -> view took 1 h, Bob's 1 day, Cy's 2 h: the median is 2 h.
    assert view["median_seconds_from_previous"] == 7200
    assert report["steps"][3]["median_seconds_from_previous"] == 7200  # Ann's cart -> order
    assert report["median_seconds_to_complete"] == 4 * 3600

    assert set(report["by_channel"]) == {"web", "mobile"}
    assert [s["reached"] for s in report["by_channel"]["mobile"]["steps"]] == [1, 1, 0, 0]
    mobile = jr.funnel(store, journey, start=ago(30), end=NOW, channel="mobile")
    assert mobile["entered"] == 1 and "by_channel" not in mobile

    # A date range that excludes Bob's steps and the anonymous visit.
    recent = jr.funnel(store, journey, start=ago(7), end=ago(2))
    assert [s["reached"] for s in recent["steps"]] == [2, 2, 1, 1]
    with pytest.raises(ValueError, match="empty"):
        jr.funnel(store, journey, start=NOW, end=ago(1))


def test_current_stage_of_each_profile(store):
    journey = seed_funnel(store)
    profiles = store.container("profiles")
    stages = {pid: jr.profile_stage(store, journey, profiles.read_item(pid, pid)) for pid in ("p_ann", "p_bob", "p_cy", "p_dee")}
    assert stages["p_ann"]["step_name"] == "Buy" and stages["p_ann"]["completed"] is True
    assert stages["p_bob"]["step"] == 2 and stages["p_bob"]["step_name"] == "View"
    assert stages["p_cy"]["step"] == 2
    assert stages["p_dee"] is None
    assert jr.stages_for(store, [journey], profiles.read_item("p_bob", "p_bob"))[journey["id"]]["step"] == 2
    assert [j["id"] for j in jr.list_journeys(store)] == [journey["id"]]


def test_cli_funnel_on_sdk_event_files(tmp_path):
    lines = [
        {"type": "page", "name": "Home", "anonymousId": "d1", "timestamp": "2026-09-01T10:00:00Z", "context": {"channel": "web"}},
        {"type": "identify", "anonymousId": "d1", "userId": "u1", "timestamp": "2026-09-01T10:01:00Z", "traits": {}},
        {"type": "track", "event": "Product Viewed", "userId": "u1", "timestamp": "2026-09-01T10:05:00Z", "context": {"channel": "web"}},
        {"type": "track", "event": "Order Completed", "userId": "u1", "timestamp": "2026-09-01T10:30:00Z", "context": {"channel": "web"}},
        {"type": "screen", "name": "Home", "anonymousId": "d2", "timestamp": "2026-09-02T08:00:00Z", "context": {"channel": "mobile"}},
        {"type": "track", "event": "Product Viewed", "anonymousId": "d2", "timestamp": "2026-09-02T08:03:00Z", "context": {"channel": "mobile"}},
        {"type": "track", "anonymousId": "d3", "timestamp": "2026-09-02T08:03:00Z"},  # no event name: rejected
    ]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json at all\n")
    definition = tmp_path / "journey.json"
    definition.write_text(json.dumps({"name": "Browse to buy", "steps": [
        {"name": "Visit", "event": "Home"}, {"name": "View", "event": "Product Viewed"},
        {"name": "Buy", "event": "Order Completed"}]}))
    run = subprocess.run([sys.executable, "-m", "shared.cli", "journey", "funnel", "--events", str(events),
                          "--definition", str(definition)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["input"]["events"] == 6 and report["input"]["rejected"] == 2
    assert report["input"]["errors"][0].startswith("line 7: ")  # the track without an event name
    assert report["input"]["errors"][1].startswith("line 8: not valid JSON")
    # d1's anonymous visit is stitched to u1 by the identify: one person reaches all three steps.
    assert [s["reached"] for s in report["steps"]] == [2, 2, 1]
    assert report["steps"][2]["median_seconds_from_previous"] == 25 * 60
    assert report["by_channel"]["mobile"]["completed"] == 0


def test_cli_funnel_on_generated_events(tmp_path):
    """The generator's web/mobile events (SDK shape, channel at the top level) go through the CLI funnel."""
    from shared.generate import GeneratorConfig, generate

    generate(tmp_path / "data", GeneratorConfig(customers=60, seed=3), progress=False)
    events = sorted((tmp_path / "data" / "landing" / "ecommerce" / "events").glob("*.jsonl*"))
    definition = tmp_path / "journey.json"
    definition.write_text(json.dumps({"name": "Shop", "conversion_window_days": 1, "steps": [
        {"name": "Product view", "event": "Product Viewed"}, {"name": "Cart", "event": "Product Added"},
        {"name": "Checkout", "event": "Checkout Started"}, {"name": "Purchase", "event": "Order Completed"}]}))
    run = subprocess.run([sys.executable, "-m", "shared.cli", "journey", "funnel", "--events", str(events[0]),
                          "--definition", str(definition)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    reached = [s["reached"] for s in report["steps"]]
    assert reached == sorted(reached, reverse=True) and reached[-1] > 0
    # Every generated online order is a session that views, adds, checks out and completes within minutes.
    assert report["steps"][3]["conversion_from_previous"] == 1.0
    assert report["steps"][3]["median_seconds_from_previous"] < 120
    assert set(report["by_channel"]) <= {"web", "mobile"} and report["by_channel"]
    assert report["input"]["rejected"] <= report["input"]["events"] * 0.02  # only the generator's malformed rows
