"""Reports: unification, churn, revenue by segment and channel, web/mobile analytics, saved custom reports."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.activity import save_activity
from shared.insights import reports as rp
from shared.insights import segments as seg
from shared.insights.common import DefinitionNotFound

from .insights_data import NOW, ago, event, purchase, seed_shop


def test_unification_report(store):
    seed_shop(store)
    store.container("profiles").upsert_item({"id": "p_old", "doc_type": "alias", "merged_into": "p_ann"})
    store.container("merges").upsert_item({"id": "m1", "profile_id": "p_ann", "absorbed_id": "p_old", "reason": "rule"})
    store.container("merges").upsert_item({"id": "m2", "profile_id": "p_ann", "absorbed_id": "p_x", "reason": "score"})
    store.container("review").upsert_item({"id": "r1", "record_key": "pos|9", "candidate_profile_id": "p_bob", "status": "open"})
    store.container("review").upsert_item({"id": "r2", "record_key": "pos|8", "candidate_profile_id": "p_bob", "status": "rejected"})
    report = rp.unification_report(store)
    # 5 records in 4 profiles; Ann's two records are the only linked ones.
    assert report["records"] == 5 and report["profiles"] == 4 and report["aliases"] == 1
    assert report["match_rate"] == 0.4 and report["records_per_profile"] == 1.25
    assert report["merges"] == 2 and report["merges_by_reason"] == {"rule": 1, "score": 1}
    assert report["review_open"] == 1
    assert report["profile_sizes"] == {"1": 3, "2": 1}
    assert report["per_source"]["pos"] == {"records": 2, "profiles": 2, "match_rate": 0.5, "profiles_with_other_sources": 1}
    assert report["per_source"]["app"]["match_rate"] == 0.0


def test_unification_report_counts_a_split_once(store):
    """A split is logged under both profiles (where the record went, where it came from): one split."""
    from shared.identity import resolve_records, split_record
    from shared.models import CustomerRecord
    from shared.settings import Settings

    email = "ann.lee@shopmail.net"
    ann, _ = resolve_records(store, [CustomerRecord(source="pos", record_key="1", email=email, given_name="Ann"),
                                     CustomerRecord(source="web", record_key="2", email=email, given_name="Ann")],
                             settings=Settings())
    split_record(store, ann.profile_id, "web|2", settings=Settings())
    report = rp.unification_report(store)
    assert report["merges_by_reason"] == {"split": 1} and report["merges"] == 1


def test_churn_report_without_a_model(store):
    seed_shop(store)
    report = rp.churn_report(store)
    assert report["scored"] == 3 and report["unscored"] == 1
    assert report["risk"] == {"low": 1, "medium": 1, "high": 1}
    assert [b["profiles"] for b in report["score_histogram"]] == [0, 1, 0, 0, 0, 1, 0, 0, 1, 0]
    assert report["average_score"] == round((0.82 + 0.1 + 0.5) / 3, 4)
    assert report["top_factors"] == [{"factor": "recency", "profiles": 1}, {"factor": "frequency", "profiles": 1}]
    assert report["model"] is None


def test_churn_report_reads_the_model_card_from_the_registry(cosmos_store, stack_settings):
    import json

    from shared.storage import blob_service, bootstrap_storage

    bootstrap_storage(stack_settings)
    # The registry layout (shared.churn.registry): churn/<version>/card.json and the churn/latest pointer.
    models = blob_service(stack_settings).get_container_client(stack_settings.models_container)
    models.upload_blob("churn/v1/card.json", json.dumps({"metrics": {"roc_auc": 0.81}, "baseline": {"roc_auc": 0.7}}))
    models.upload_blob("churn/latest", json.dumps({"version": "v1", "published_at": "2026-09-01T00:00:00Z"}))
    report = rp.run_report(cosmos_store, "churn", settings=stack_settings)
    assert report["model"]["version"] == "v1" and report["model"]["metrics"]["roc_auc"] == 0.81


def test_revenue_by_segment_and_channel(store):
    ids = seed_shop(store)
    london = seg.create_segment(store, seg.SegmentDefinition(
        name="London", rule={"field": "enrichment.region", "op": "=", "value": "London"}), now=NOW)
    save_activity(store, [
        purchase("pos|1", "o1", ago(10), 100.0, channel="store"),
        purchase("web|a1", "o2", ago(5), 50.0, channel="web"),
        purchase("web|a1", "o2r", ago(4), -20.0, channel="web", kind="return"),
        purchase("web|b1", "o3", ago(3), 200.0, channel="web"),
        purchase("web|b1", "o4", ago(200), 999.0, channel="web"),  # outside the range
        purchase("pos|4", "o5", ago(1), 30.0, channel="store"),
    ])
    report = rp.run_report(store, "revenue", {"from": ago(90).isoformat(), "to": NOW.isoformat()})
    assert report["revenue"] == 380.0 and report["returns"] == 20.0 and report["orders"] == 4
    assert report["customers"] == 3
    assert report["by_channel"]["web"]["revenue"] == 250.0 and report["by_channel"]["store"]["orders"] == 2
    by_seg = {r["segment"]: r for r in report["by_segment"]}
    assert by_seg["London"]["revenue"] == 180.0 and by_seg["London"]["customers"] == 2
    assert by_seg["(no segment)"]["revenue"] == 200.0
    both = {(r["segment"], r["channel"]): r["revenue"] for r in report["by_segment_and_channel"]}
    assert both[("London", "store")] == 130.0 and both[("London", "web")] == 50.0
    web_only = rp.run_report(store, "revenue", {"from": ago(90).isoformat(), "to": NOW.isoformat(), "channel": "web"})
    assert web_only["revenue"] == 250.0 and set(web_only["by_channel"]) == {"web"}
    assert ids and london["size"] == 2


def test_web_and_mobile_analytics(store):
    seed_shop(store)
    save_activity(store, [
        event("web|a1", 20, "Home", ago(1, 5), type_="page"),
        event("web|a1", 21, "Order Completed", ago(1, 4)),
        event("app|c1", 20, "Basket", ago(1, 3), type_="screen", channel="mobile"),
    ])
    report = rp.run_report(store, "analytics", {"from": ago(7).isoformat(), "to": NOW.isoformat()})
    # Active: Ann (web), Bob (web), Cy (mobile); Ann's two records count once.
    assert report["active_profiles"] == 3
    days = {d["date"]: d for d in report["daily_active"]}
    assert len(days) == 8 and days[ago(5).date().isoformat()] == {"date": ago(5).date().isoformat(), "active": 0}
    day = days[ago(1, 5).date().isoformat()]
    assert day["active"] == 2 and day["web"] == 1 and day["mobile"] == 1
    assert report["top_pages"] == [{"name": "Home", "views": 1}]
    assert {s["name"]: s["views"] for s in report["top_screens"]} == {"Basket": 1, "(unnamed)": 1}
    assert report["conversion_by_channel"]["web"] == {"active": 2, "converted": 2, "rate": 1.0}
    assert report["conversion_by_channel"]["mobile"]["converted"] == 0
    assert report["sessions"] >= 4 and report["sessions_by_channel"]["mobile"] == 2


def test_saved_custom_reports_run_by_id_with_parameters(store):
    seed_shop(store)
    save_activity(store, [purchase("web|b1", "o3", ago(3), 200.0, channel="web"),
                          purchase("pos|1", "o1", ago(40), 100.0, channel="store")])
    saved = rp.create_report(store, rp.ReportDefinition(name="Web revenue, last 30 days", report="revenue",
                                                        parameters={"channel": "web", "to": NOW.isoformat()}))
    assert [r["id"] for r in rp.list_reports(store)] == [saved["id"]]
    result = rp.run_report(store, saved["id"], {"from": ago(30).isoformat()})
    assert result["report_id"] == saved["id"] and result["revenue"] == 200.0 and result["channel"] == "web"
    result = rp.run_report(store, saved["id"], {"from": ago(60).isoformat(), "channel": "store"})
    assert result["revenue"] == 100.0
    with pytest.raises(ValidationError):
        rp.ReportDefinition(name="x", report="revenue", parameters={"colour": "red"})
    with pytest.raises(ValidationError):
        rp.ReportDefinition(name="x", report="pivot")
    with pytest.raises(DefinitionNotFound):
        rp.run_report(store, "rpt_missing")
    with pytest.raises(ValueError, match="journey_id"):
        rp.run_report(store, "funnel")
