"""The insights HTTP routes, called through the real app's functions against the local stack."""
from __future__ import annotations

import json

import azure.functions as func
from azure.functions.timer import TimerRequest
import pytest

from shared.store import open_store

from .insights_data import seed_shop
from .test_insights_journeys import SHOP, seed_funnel


def call(fns, name, method="GET", route_params=None, params=None, body=None):
    raw = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else (body or b"")
    req = func.HttpRequest(method=method, url=f"http://localhost/api/{name}", headers={}, params=params or {},
                           route_params=route_params or {}, body=raw)
    resp = fns[name].get_user_function()(req)
    ctype = resp.mimetype
    data = json.loads(resp.get_body()) if "json" in ctype else resp.get_body()
    return resp, data


@pytest.fixture
def app_store(app_env):
    from shared.storage import bootstrap_storage

    store = open_store(app_env)
    store.bootstrap()
    bootstrap_storage(app_env)
    return store


def test_segment_routes(functions_by_name, app_store):
    fns = functions_by_name
    seed_shop(app_store)
    resp, problem = call(fns, "create_segment", "POST", body={"name": "bad", "rule": {"field": "churn.colour", "op": "=", "value": 1}})
    assert resp.status_code == 422 and resp.mimetype == "application/problem+json"
    assert problem["errors"][0]["field"] == "rule" and "churn has score, risk" in problem["errors"][0]["message"]
    resp, _ = call(fns, "create_segment", "POST", body=b"{not json")
    assert resp.status_code == 400

    resp, created = call(fns, "create_segment", "POST", body={
        "name": "London", "rule": {"field": "enrichment.region", "op": "=", "value": "London"}})
    assert resp.status_code == 201 and created["size"] == 2
    sid = created["id"]
    resp, listed = call(fns, "list_segments")
    assert [s["id"] for s in listed["segments"]] == [sid]
    resp, got = call(fns, "get_segment", route_params={"segment_id": sid})
    assert got["name"] == "London"
    resp, _ = call(fns, "get_segment", route_params={"segment_id": "seg_nope"})
    assert resp.status_code == 404

    resp, page = call(fns, "segment_members", route_params={"segment_id": sid}, params={"page_size": "1"})
    assert resp.status_code == 200 and len(page["members"]) == 1 and page["continuation"]
    resp, page2 = call(fns, "segment_members", route_params={"segment_id": sid},
                       params={"page_size": "1", "continuation": page["continuation"]})
    assert {m["id"] for m in page["members"] + page2["members"]} == {"p_ann", "p_dee"}
    assert page2["continuation"] is None
    for size in ("0", "\u00b9"):
        resp, _ = call(fns, "segment_members", route_params={"segment_id": sid}, params={"page_size": size})
        assert resp.status_code == 400
    resp, _ = call(fns, "segment_members", route_params={"segment_id": sid}, params={"continuation": "garbage!!"})
    assert resp.status_code == 400

    resp, size = call(fns, "segment_size", route_params={"segment_id": sid})
    assert size["size"] == 2
    resp, ev = call(fns, "evaluate_segment", "POST", route_params={"segment_id": sid})
    assert ev["size"] == 2 and ev["added"] == 0
    resp, out = call(fns, "export_segment", "POST", route_params={"segment_id": sid})
    assert resp.status_code == 201 and out["rows"] == 2

    resp, ins = call(fns, "profile_insights", route_params={"profile_id": "p_ann"})
    assert resp.status_code == 200 and ins["segments"] == [{"id": sid, "name": "London"}]
    assert ins["needs"] is None  # not computed yet
    resp, ins = call(fns, "refresh_profile_insights", "POST", route_params={"profile_id": "p_ann"})
    assert resp.status_code == 200 and ins["measures"]["orders"] == 0
    assert ins["needs"]["top_categories"] == ["shoes", "bags"]
    resp, _ = call(fns, "profile_insights", route_params={"profile_id": "p_missing"})
    assert resp.status_code == 404

    resp, deleted = call(fns, "delete_segment", "DELETE", route_params={"segment_id": sid})
    assert deleted["profiles_updated"] == 2


def test_journey_and_report_routes(functions_by_name, app_store):
    fns = functions_by_name
    journey = seed_funnel(app_store)
    resp, problem = call(fns, "create_journey", "POST", body={"name": "x", "steps": [{"name": "only", "type": "page"}]})
    assert resp.status_code == 422 and problem["errors"][0]["field"] == "steps"
    resp, created = call(fns, "create_journey", "POST", body=SHOP)
    assert resp.status_code == 201
    resp, listed = call(fns, "list_journeys")
    assert {j["id"] for j in listed["journeys"]} == {journey["id"], created["id"]}
    resp, got = call(fns, "get_journey", route_params={"journey_id": created["id"]})
    assert resp.status_code == 200 and got["name"] == SHOP["name"] and len(got["steps"]) == len(SHOP["steps"])
    resp, _ = call(fns, "get_journey", route_params={"journey_id": "jny_nope"})
    assert resp.status_code == 404

    params = {"from": "2026-09-01T00:00:00Z", "to": "2026-09-30T12:00:00Z"}
    resp, report = call(fns, "journey_funnel", route_params={"journey_id": journey["id"]}, params=params)
    assert resp.status_code == 200 and [s["reached"] for s in report["steps"]] == [4, 3, 1, 1]
    resp, _ = call(fns, "journey_funnel", route_params={"journey_id": journey["id"]}, params={"from": "yesterday"})
    assert resp.status_code == 400
    resp, stage = call(fns, "journey_stage", route_params={"journey_id": journey["id"], "profile_id": "p_bob"})
    assert stage["stage"]["step_name"] == "View"

    resp, names = call(fns, "list_reports")
    assert "unification" in names["builtin"] and names["saved"] == []
    resp, unification = call(fns, "run_report", route_params={"report": "unification"})
    assert unification["profiles"] == 4
    resp, saved = call(fns, "create_report", "POST", body={"name": "Shop funnel", "report": "funnel",
                                                            "parameters": {"journey_id": journey["id"], **params}})
    assert resp.status_code == 201
    resp, run = call(fns, "run_report", route_params={"report": saved["id"]}, params={"channel": "mobile"})
    assert run["report_id"] == saved["id"] and run["entered"] == 1
    resp, _ = call(fns, "create_report", "POST", body={"name": "x", "report": "revenue", "parameters": {"colour": 1}})
    assert resp.status_code == 422
    resp, _ = call(fns, "run_report", route_params={"report": "pivot"})
    assert resp.status_code == 404
    for top in ("many", "\u00b9", "\u0663"):  # superscript one and Arabic-Indic three are digits to str.isdigit
        resp, _ = call(fns, "run_report", route_params={"report": "analytics"}, params={"top": top})
        assert resp.status_code == 400


NIGHTLY_TIMERS = [("refresh_insights", "UCP_INSIGHTS_SCHEDULE", "shared.insights.refresh"),
                  ("enrich_profiles", "UCP_ENRICHMENT_SCHEDULE", "shared.enrichment.derive")]


@pytest.mark.parametrize("name, setting, module", NIGHTLY_TIMERS)
def test_the_nightly_timers_update_every_profile_and_log_their_figures_once(functions_by_name, app_store, caplog,
                                                                             name, setting, module):
    fn = functions_by_name[name]
    assert fn.get_trigger().schedule == f"%{setting}%" and not fn.get_trigger().run_on_startup
    seed_shop(app_store)
    caplog.set_level("INFO")

    fn.get_user_function()(TimerRequest(past_due=False))

    profiles = {p["id"]: p for p in app_store.container("profiles").query_items(("doc_type", "=", "profile"))}
    assert set(profiles) == {"p_ann", "p_bob", "p_cy", "p_dee"}
    if name == "refresh_insights":
        assert all(p["needs"]["computed_at"] for p in profiles.values())
        assert profiles["p_ann"]["needs"]["top_categories"] == ["shoes", "bags"]
        assert profiles["p_ann"]["measures"]["orders"] == 0  # seeded as 2: recomputed from its activity
    else:
        assert all(p["enrichment"]["derived"] and p["enrichment"]["computed_at"] for p in profiles.values())
        assert profiles["p_ann"]["enrichment"]["email_domain_type"] == "corporate"
    figures = [r for r in caplog.records if r.name == module and "'profiles': 4" in r.getMessage()]
    assert len(figures) == 1 and len([r for r in caplog.records if "'profiles': 4" in r.getMessage()]) == 1


def test_dashboard_page_and_assets(functions_by_name):
    fns = functions_by_name
    resp, html = call(fns, "dashboard")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    assert resp.headers["Referrer-Policy"] == "no-referrer" and "script-src 'self'" in resp.headers["Content-Security-Policy"]
    text = html.decode()
    assert 'src="dashboard/assets/app.js"' in text and "http" not in text.replace('http-equiv', '')  # no CDN
    resp, js = call(fns, "dashboard_asset", route_params={"name": "app.js"})
    assert resp.status_code == 200 and resp.mimetype == "text/javascript" and b"innerHTML" not in js
    resp, _ = call(fns, "dashboard_asset", route_params={"name": "app.css"})
    assert resp.mimetype == "text/css"
    for bad in ("../__init__.py", "__init__.py", "index.html", "nope.js"):
        resp, _ = call(fns, "dashboard_asset", route_params={"name": bad})
        assert resp.status_code == 404
