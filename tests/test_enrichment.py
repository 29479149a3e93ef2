"""Derived attributes: region, email domain type, household, tenure and lifecycle; stored apart, labelled derived."""
from __future__ import annotations

from datetime import datetime, timezone

from shared.activity import save_activity
from shared.enrichment import enrich_profile, run_enrichment
from shared.enrichment.derive import email_domain_type, region_of
from shared.models import Transaction
from shared.sentiment import sentiment_score

NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)


def profile(pid="p_1", **attrs):
    return {"id": pid, "doc_type": "profile", "records": [{"key": f"pos|{pid}"}],
            "attributes": {k: {"value": v, "source": "pos"} for k, v in attrs.items()}}


def test_region_and_email_type():
    assert region_of("SW1A 1AA", None, None, "GB") == "London"
    assert region_of("eh1 1yz", None, None, None) == "Scotland"
    assert region_of(None, None, "tx", "US") == "South"
    assert region_of(None, "Manchester", None, None) == "North West"
    assert region_of(None, "Atlantis", None, None) is None
    assert email_domain_type("a@GMAIL.com") == "free"
    assert email_domain_type("a@mailinator.com") == "disposable"
    assert email_domain_type("buyer@acme-retail.co.uk") == "corporate"
    assert email_domain_type(None) is None


def test_household_and_lifecycle():
    a = profile("p_a", address_line1="1 High St", postcode="AB1 2CD", family_name="Lee", email="x@gmail.com")
    b = profile("p_b", address_line1="1 high st.", postcode="ab1 2cd", family_name="LEE")
    c = profile("p_c", address_line1="1 High St", postcode="AB1 2CD", family_name="Khan")
    ea, eb, ec = (enrich_profile(p, [], now=NOW) for p in (a, b, c))
    assert ea["household_id"] == eb["household_id"] != ec["household_id"]
    assert ea["derived"] is True and ea["lifecycle_stage"] == "prospect" and ea["tenure_days"] is None
    txs = [{"timestamp": "2025-01-01T00:00:00Z", "amount": 5.0}, {"timestamp": "2026-10-01T00:00:00Z", "amount": 9.0},
           {"timestamp": "2026-10-30T00:00:00Z", "amount": -9.0, "transaction_kind": "return"}]
    e = enrich_profile(a, txs, now=NOW)
    assert e["lifecycle_stage"] == "active" and e["tenure_days"] == (NOW - datetime(2025, 1, 1, tzinfo=timezone.utc)).days
    assert enrich_profile(a, txs[:1], now=NOW)["lifecycle_stage"] == "lapsed"
    assert enrich_profile(a, txs[:1] + txs[2:], now=NOW)["lifecycle_stage"] == "lapsed"  # a return is no purchase


def test_run_enrichment_writes_derived_block_on_every_profile(store):
    profiles = store.container("profiles")
    profiles.create_item(profile("p_1", postcode="M1 1AA", email="a@outlook.com", given_name="Ann"))
    profiles.create_item(profile("p_2", city="Leeds"))
    profiles.create_item({"id": "p_old", "doc_type": "alias", "merged_into": "p_1"})
    save_activity(store, [Transaction(source="pos", order_id="o1", customer_key="p_1",
                                      timestamp="2026-10-20T10:00:00Z", amount="10")])
    counts = run_enrichment(store, now=NOW)
    assert counts["profiles"] == 2 and counts["updated"] == 2
    p1 = profiles.read_item("p_1", "p_1")
    assert p1["enrichment"]["region"] == "North West" and p1["enrichment"]["lifecycle_stage"] == "new"
    assert p1["attributes"]["given_name"]["value"] == "Ann"  # source attributes untouched
    assert "enrichment" not in profiles.read_item("p_old", "p_old")
    assert run_enrichment(store, now=NOW)["updated"] == 0  # nothing changed, nothing written


def test_sentiment_follows_the_words():
    assert sentiment_score("Absolutely love it, perfect fit and fast delivery!") > 0.5
    assert sentiment_score("Terrible. Broke after a day, waste of money.") < -0.3
    assert sentiment_score("   ") is None
