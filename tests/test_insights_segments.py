"""Segments: rule validation, evaluation (pushdown + behaviour), membership on profiles, members, export."""
from __future__ import annotations

import csv
import io

import pytest
from pydantic import ValidationError

from shared.insights import segments as seg
from shared.insights.rules import RuleError, parse_rule, pushdown
from shared.store.query import to_sql

from .insights_data import NOW, seed_shop

HIGH_RISK_SHOE_LOOKERS = {"all": [
    {"field": "churn.risk", "op": "in", "value": ["high", "medium"]},
    {"behaviour": {"event": "Product Viewed", "properties": {"category": "shoes"}, "min_count": 3, "within_days": 30}},
]}


def define(name: str, rule: dict) -> seg.SegmentDefinition:
    return seg.SegmentDefinition(name=name, rule=rule)


@pytest.mark.parametrize("rule, message", [
    ({"field": "churn.colour", "op": "=", "value": 1}, "churn has score, risk"),
    ({"field": "password", "op": "=", "value": 1}, "fields start with one of"),
    ({"field": "churn.score", "op": "~", "value": 1}, "rule.op: '~' is not an operator"),
    ({"all": []}, "rule.all: a non-empty list"),
    ({"all": [{"field": "churn.risk", "op": "=", "value": "high"}, {"field": "x"}]}, "rule.all[1].field"),
    ({"not": {"behaviour": {"min_count": 2}}}, "rule.not.behaviour: name an event"),
    ({"behaviour": {"event": "X", "within_days": 0}}, "within_days: an integer >= 1"),
    ({"field": "measures.last_purchase", "op": "=", "value": {"days_ago": 3}}, "days_ago works with"),
    ({"field": "churn.score", "op": "exists", "value": 1}, "exists takes no value"),
    ({"field": "attributes.email", "op": "=", "value": "a", "extra": 1}, "unexpected key(s) extra"),
    ({"field": "attributes.e-mail", "op": "=", "value": "a"}, "not a valid field path"),
    ({"field": "attributes.city", "op": "=", "value": "x" * 1001}, "at most 1000 characters"),
    ({"field": "churn.score", "op": ">", "value": float("nan")}, "a string (at most"),
    ({"field": "attributes.city", "op": "in", "value": ["a"] * 101}, "at most 100 values"),
    ({"all": [{"not": {"not": {"not": {"not": {"not": {"not": {"not": {"not": {"not": {
        "field": "churn.score", "op": "exists"}}}}}}}}}}]}, "at most 8 levels"),
])
def test_invalid_rules_say_where_and_why(rule, message):
    with pytest.raises(RuleError) as err:
        parse_rule(rule)
    assert message in str(err.value)
    with pytest.raises(ValidationError):  # the API model wraps the same check
        seg.SegmentDefinition(name="x", rule=rule)


def test_pushdown_keeps_positive_profile_conditions_as_parameterized_sql():
    rule = parse_rule({"all": [
        {"field": "enrichment.region", "op": "=", "value": "London'; DROP"},
        {"not": {"field": "churn.risk", "op": "=", "value": "low"}},
        {"behaviour": {"event": "Product Viewed"}},
        {"any": [{"field": "measures.total_spend", "op": ">", "value": 100},
                 {"field": "attributes.email", "op": "exists"}]},
    ]})
    flt = seg.candidate_filter(rule, NOW)
    sql, params = to_sql(flt)
    assert "DROP" not in sql and "London" not in sql
    assert 'c["enrichment"]["region"] = @' in sql
    # Paths are bracketed, so the VALUE keyword of every attribute path parses and is pushed down too.
    assert 'IS_DEFINED(c["attributes"]["email"]["value"])' in sql
    assert "churn" not in sql  # the negation is checked per candidate, never pushed
    sql, _ = to_sql(seg.candidate_filter(parse_rule({"any": [
        {"field": "measures.total_spend", "op": ">", "value": 100}, {"field": "churn.score", "op": ">=", "value": 0.5}]}), NOW))
    assert '(c["measures"]["total_spend"] > @p1 OR c["churn"]["score"] >= @p2)' in sql
    assert {"name": "@p1", "value": "London'; DROP"} in params
    # A disjunction with a behaviour branch cannot narrow the candidates.
    assert pushdown(parse_rule({"any": [{"behaviour": {"type": "page"}},
                                        {"field": "churn.score", "op": ">", "value": 0.5}]}), NOW) is None


def test_membership_combines_profile_conditions_and_behaviour(store):
    ids = seed_shop(store)
    assert seg.matching_profile_ids(store, HIGH_RISK_SHOE_LOOKERS, now=NOW) == {ids["ann"]}
    # Candidates come from the store filter: Bob (low risk) and Cy (no churn score) are never read.
    cands = store.container("profiles").count_items(seg.candidate_filter(parse_rule(HIGH_RISK_SHOE_LOOKERS), NOW))
    assert cands == 2
    # Dee viewed shoes 5 times, but 200+ days ago: inside a 365-day window she qualifies.
    wide = {"all": [HIGH_RISK_SHOE_LOOKERS["all"][0],
                    {"behaviour": {"event": "Product Viewed", "min_count": 3, "within_days": 365}}]}
    assert seg.matching_profile_ids(store, wide, now=NOW) == {ids["ann"], ids["dee"]}
    # NOT: a missing churn score counts as "not high".
    not_high = {"not": {"field": "churn.risk", "op": "=", "value": "high"}}
    assert seg.matching_profile_ids(store, not_high, now=NOW) == {ids["bob"], ids["cy"], ids["dee"]}
    never_viewed = {"behaviour": {"event": "Product Viewed", "max_count": 0, "within_days": 30}}
    assert seg.matching_profile_ids(store, never_viewed, now=NOW) == {ids["cy"], ids["dee"]}
    recent_buyers = {"field": "measures.last_purchase", "op": ">=", "value": {"days_ago": 30}}
    assert seg.matching_profile_ids(store, recent_buyers, now=NOW) == {ids["bob"]}
    mobile = {"behaviour": {"type": "screen", "channel": "mobile", "within_days": 7}}
    assert seg.matching_profile_ids(store, mobile, now=NOW) == {ids["cy"]}
    not_london = {"field": "enrichment.region", "op": "!=", "value": "London"}
    assert seg.matching_profile_ids(store, not_london, now=NOW) == {ids["bob"]}
    americans = {"all": [{"field": "attributes.country", "op": "=", "value": "US"},
                         {"field": "attributes.given_name.source", "op": "=", "value": "app"}]}
    assert seg.matching_profile_ids(store, americans, now=NOW) == {ids["cy"]}


def test_segment_lifecycle_members_pages_size_and_current_membership(store):
    ids = seed_shop(store)
    london = seg.create_segment(store, define("London", {"field": "enrichment.region", "op": "=", "value": "London"}), now=NOW)
    assert london["size"] == 2 and london["evaluated_at"]
    assert [s["id"] for s in seg.list_segments(store)] == [london["id"]]
    profiles = store.container("profiles")
    assert profiles.read_item(ids["ann"], ids["ann"])["segments"] == [london["id"]]
    assert "segments" not in profiles.read_item(ids["bob"], ids["bob"])

    page1, token = seg.members_page(store, london["id"], page_size=1)
    assert len(page1) == 1 and token
    page2, token2 = seg.members_page(store, london["id"], page_size=1, continuation=token)
    assert token2 is None
    assert {m["id"] for m in page1 + page2} == {ids["ann"], ids["dee"]}
    assert seg.segment_size(store, london["id"]) == 2

    # A segment of segments reads the membership kept on the profile.
    risky_london = seg.create_segment(store, define("Risky London", {"all": [
        {"field": "segments", "op": "contains", "value": london["id"]},
        {"field": "churn.score", "op": ">=", "value": 0.7}]}), now=NOW)
    assert risky_london["size"] == 1

    # Dee moves to the North West: the next evaluation takes her out, and puts Bob's change in.
    dee = profiles.read_item(ids["dee"], ids["dee"])
    dee["enrichment"]["region"] = "North West"
    profiles.replace_item(dee)
    result = seg.evaluate_segment(store, london["id"], now=NOW)
    assert result == {"segment_id": london["id"], "size": 1, "added": 0, "removed": 1}
    assert profiles.read_item(ids["dee"], ids["dee"])["segments"] == []
    assert seg.profile_segments(store, profiles.read_item(ids["ann"], ids["ann"]), now=NOW) == sorted(
        [london["id"], risky_london["id"]])

    assert seg.delete_segment(store, london["id"]) == 1
    assert profiles.read_item(ids["ann"], ids["ann"])["segments"] == [risky_london["id"]]
    with pytest.raises(LookupError):
        seg.get_segment(store, london["id"])


def test_export_writes_csv_to_blob(cosmos_store, stack_settings):
    from shared.storage import blob_service, bootstrap_storage

    bootstrap_storage(stack_settings)
    ids = seed_shop(cosmos_store)
    profiles = cosmos_store.container("profiles")
    ann = profiles.read_item(ids["ann"], ids["ann"])
    ann["attributes"]["given_name"]["value"] = "=HYPERLINK(\"x\")"
    profiles.replace_item(ann)
    london = seg.create_segment(cosmos_store, define("London", {"field": "enrichment.region", "op": "=", "value": "London"}), now=NOW)
    out = seg.export_segment(cosmos_store, london["id"], stack_settings, now=NOW)
    assert out["rows"] == 2 and out["blob"] == f"segments/{london['id']}/20260930T120000Z.csv"
    data = blob_service(stack_settings).get_blob_client(stack_settings.exports_container, out["blob"]).download_blob().readall()
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert {r["profile_id"] for r in rows} == {ids["ann"], ids["dee"]}
    by_id = {r["profile_id"]: r for r in rows}
    assert by_id[ids["ann"]]["email"] == "ann@example.com" and by_id[ids["ann"]]["churn_risk"] == "high"
    assert by_id[ids["ann"]]["given_name"].startswith("'=")  # not a live formula in a spreadsheet


def test_behaviour_is_read_only_for_profiles_that_pass_the_profile_conditions(store, monkeypatch):
    seed_shop(store)
    counted: list[str] = []
    real = seg.behaviour_counts
    monkeypatch.setattr(seg, "behaviour_counts", lambda st, p, c, n: counted.append(p["id"]) or real(st, p, c, n))
    rule = {"all": [{"not": {"field": "churn.risk", "op": "=", "value": "low"}},
                    {"behaviour": {"event": "Product Viewed", "min_count": 3, "within_days": 30}}]}
    assert seg.matching_profile_ids(store, rule, now=NOW) == {"p_ann"}
    assert sorted(counted) == ["p_ann", "p_cy", "p_dee"]  # Bob (low risk) never had his activity read


def test_cli_segment_check_and_members_on_files(tmp_path):
    import json
    import subprocess
    import sys

    from shared.store import MemoryStore

    store = MemoryStore()
    seed_shop(store)
    profiles = tmp_path / "profiles.jsonl"
    profiles.write_text("\n".join(json.dumps({k: v for k, v in d.items() if not k.startswith("_")})
                                  for d in store.container("profiles").query_items()) + "\n")
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(d) for d in [
        {"source": "web", "event_id": f"x{i}", "type": "track", "event": "Product Viewed", "customer_key": "a1",
         "timestamp": f"2026-09-2{i}T10:00:00Z", "properties": {"category": "shoes"}} for i in range(4)]) + "\n")
    rule = tmp_path / "rule.json"
    rule.write_text(json.dumps(HIGH_RISK_SHOE_LOOKERS))
    cli = [sys.executable, "-m", "shared.cli", "segment"]
    run = subprocess.run([*cli, "check", "--rule", str(rule)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "valid" in run.stdout
    run = subprocess.run([*cli, "members", "--rule", str(rule), "--profiles", str(profiles), "--events", str(events),
                          "--at", "2026-09-30T12:00:00Z"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"size": 1, "members": ["p_ann"]}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"field": "churn.colour", "op": "=", "value": 1}))
    run = subprocess.run([*cli, "check", "--rule", str(bad)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "churn has score, risk" in run.stderr


def test_cli_takes_a_segment_definition_as_docs_show_it_or_the_rule_alone(tmp_path, capsys):
    """`ucp segment check|members --rule R.json`: R.json may be the POST /segments body ({"name", "rule"}, as
    in docs/insights.md) or the rule alone; a definition is validated as POST /segments validates it."""
    import json
    import re
    from pathlib import Path

    from shared.cli import main

    doc = (Path(__file__).resolve().parents[1] / "docs" / "insights.md").read_text(encoding="utf-8")
    example = json.loads(re.search(r"```json\n(\{\"name\".*?)```", doc, re.S).group(1))
    assert set(example) == {"name", "rule"}
    as_documented = tmp_path / "R.json"
    as_documented.write_text(json.dumps(example))
    assert main(["segment", "check", "--rule", str(as_documented)]) == 0
    assert capsys.readouterr().out == "segment definition is valid\n"

    from shared.store import MemoryStore

    store = MemoryStore()
    seed_shop(store)
    profiles = tmp_path / "P.jsonl"
    profiles.write_text("\n".join(json.dumps({k: v for k, v in d.items() if not k.startswith("_")})
                                  for d in store.container("profiles").query_items()) + "\n")
    rule = {"field": "churn.risk", "op": "in", "value": ["medium", "high"]}
    expected = sorted(seg.matching_profile_ids(store, rule, now=NOW))
    assert expected
    for i, body in enumerate(({"name": "Risky", "rule": rule}, rule)):
        path = tmp_path / f"r{i}.json"
        path.write_text(json.dumps(body))
        assert main(["segment", "members", "--rule", str(path), "--profiles", str(profiles),
                     "--at", NOW.isoformat()]) == 0
        assert json.loads(capsys.readouterr().out)["members"] == expected

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "", "rule": rule}))
    assert main(["segment", "check", "--rule", str(bad)]) == 2
    assert "name" in capsys.readouterr().err
    bad.write_text(json.dumps({"name": "x", "rule": {"field": "churn.colour", "op": "=", "value": 1}}))
    assert main(["segment", "check", "--rule", str(bad)]) == 2
    assert "churn has score, risk" in capsys.readouterr().err
