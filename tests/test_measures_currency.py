"""Profile measures never add money across currencies (the revenue report's convention, docs/insights.md).

A customer who bought in GBP and in EUR has no single lifetime spend: ``total_spend``, ``returns``,
``net_spend`` and ``average_order_value`` are null, ``by_currency`` holds each currency's figures and
``orders`` counts every order. Segment rules on the single figures leave such a customer out (a comparison
with null is false, on both stores); ``measures.by_currency.<code>.<name>`` compares one currency's figures."""
from __future__ import annotations

import pytest

from shared.activity import list_activity, save_activity
from shared.api.profiles import profile_view
from shared.insights import refresh
from shared.insights import segments as seg
from shared.insights.rules import RuleError, parse_rule
from shared.measures import compute_measures
from shared.models import Transaction
from shared.store import MemoryStore

from .insights_data import NOW, ago, profile_doc, put_profiles


def _tx(owner: str, order: str, days: float, amount: float, currency: str | None, kind: str = "purchase"):
    source, key = owner.split("|", 1)
    return Transaction(source=source, order_id=order, customer_key=key, timestamp=ago(days), amount=amount,
                       currency=currency, kind=kind, channel="store" if source == "pos" else "web")


def _mixed_shopper(store) -> None:
    """Mia: two store orders in London (60 + 40 GBP, 10 GBP of it returned) and one web order from Paris
    (30 EUR). Lee: one order of 120 GBP. Zoe: 150 EUR on the web and 5 GBP in a store."""
    put_profiles(store, [
        profile_doc("p_mia", sources=["pos|1", "web|a1"], given="Mia", family="Cole", email="mia@shopmail.net"),
        profile_doc("p_lee", sources=["pos|2"], given="Lee", family="Park", email="lee@shopmail.net"),
        profile_doc("p_zoe", sources=["web|z1", "pos|3"], given="Zoe", family="Roy", email="zoe@shopmail.net")])
    save_activity(store, [
        _tx("pos|1", "S-1", 20, 60.0, "GBP"), _tx("pos|1", "S-2", 10, 40.0, "GBP"),
        _tx("pos|1", "S-2", 8, -10.0, "GBP", kind="return"), _tx("web|a1", "W-1", 5, 30.0, "EUR"),
        _tx("pos|2", "S-3", 4, 120.0, "GBP"),
        _tx("web|z1", "W-2", 6, 150.0, "EUR"), _tx("pos|3", "S-4", 3, 5.0, "GBP")])


def test_measures_of_a_customer_who_bought_in_pounds_and_euros_are_per_currency():
    store = MemoryStore()
    _mixed_shopper(store)
    m = compute_measures(list_activity(store, ["pos|1", "web|a1"], kind="transaction"))
    assert m["orders"] == 3
    assert (m["total_spend"], m["returns"], m["net_spend"], m["average_order_value"]) == (None, None, None, None)
    assert m["currency"] is None
    assert m["by_currency"] == {
        "EUR": {"orders": 1, "total_spend": 30.0, "returns": 0.0, "net_spend": 30.0, "average_order_value": 30.0},
        "GBP": {"orders": 2, "total_spend": 100.0, "returns": 10.0, "net_spend": 90.0, "average_order_value": 50.0}}
    assert (m["first_purchase"], m["last_purchase"]) == ("2026-09-10T12:00:00.000000Z", "2026-09-25T12:00:00.000000Z")


def test_measures_in_one_currency_keep_their_single_figures_and_name_the_currency():
    store = MemoryStore()
    save_activity(store, [_tx("pos|1", "S-1", 20, 60.0, "GBP"), _tx("pos|1", "S-2", 10, 40.0, "GBP"),
                          _tx("pos|1", "S-2", 8, -10.0, "GBP", kind="refund")])
    m = compute_measures(list_activity(store, ["pos|1"], kind="transaction"))
    assert (m["orders"], m["total_spend"], m["returns"], m["net_spend"], m["average_order_value"]) == \
        (2, 100.0, 10.0, 90.0, 50.0)
    assert m["currency"] == "GBP" and list(m["by_currency"]) == ["GBP"]


def test_measures_without_a_currency_use_the_unknown_key_and_a_never_buyer_has_zeroes():
    m = compute_measures([{"kind": "transaction", "transaction_kind": "purchase", "amount": 12.5, "source": "pos",
                           "order_id": "1", "timestamp": "2026-09-01T00:00:00.000000Z"}])
    assert (m["total_spend"], m["currency"], list(m["by_currency"])) == (12.5, "unknown", ["unknown"])
    none = compute_measures([])
    assert (none["orders"], none["total_spend"], none["average_order_value"], none["currency"], none["by_currency"]) \
        == (0, 0.0, None, None, {})


def test_profile_view_shows_per_currency_measures():
    store = MemoryStore()
    _mixed_shopper(store)
    view = profile_view(store, store.container("profiles").read_item("p_mia", "p_mia"))
    assert view["measures"]["total_spend"] is None
    assert {c: v["total_spend"] for c, v in view["measures"]["by_currency"].items()} == {"EUR": 30.0, "GBP": 100.0}


def test_spend_segments_after_a_refresh_never_compare_a_sum_of_two_currencies(store):
    """'Spent over 100' on the single figure: Lee (120 GBP) only. Old code added Zoe's 150 EUR and 5 GBP into
    155 and took her in. Per currency: 'over 100 GBP' is Lee, 'over 100 EUR' is Zoe; 'several currencies'
    (total_spend missing while orders > 0) is Mia and Zoe. The same on the in-memory store and Cosmos."""
    _mixed_shopper(store)
    refresh.refresh_all(store, now=NOW)
    zoe = store.container("profiles").read_item("p_zoe", "p_zoe")["measures"]
    assert (zoe["total_spend"], zoe["orders"], zoe["by_currency"]["EUR"]["total_spend"]) == (None, 2, 150.0)

    def members(rule):
        return seg.matching_profile_ids(store, rule, now=NOW)

    assert members({"field": "measures.total_spend", "op": ">", "value": 100}) == {"p_lee"}
    assert members({"field": "measures.by_currency.GBP.total_spend", "op": ">", "value": 100}) == {"p_lee"}
    assert members({"field": "measures.by_currency.EUR.total_spend", "op": ">", "value": 100}) == {"p_zoe"}
    assert members({"all": [{"field": "measures.orders", "op": ">", "value": 0},
                            {"field": "measures.total_spend", "op": "missing"}]}) == {"p_mia", "p_zoe"}
    assert members({"field": "measures.currency", "op": "=", "value": "GBP"}) == {"p_lee"}


@pytest.mark.parametrize("field, ok", [("measures.by_currency.GBP.total_spend", True),
                                       ("measures.by_currency.GBP", False),
                                       ("measures.by_currency.GBP.total_spend.x", False),
                                       ("measures.total_spend.GBP", False)])
def test_per_currency_rule_fields(field, ok):
    rule = {"field": field, "op": ">", "value": 1}
    if ok:
        assert parse_rule(rule).path == field
    else:
        with pytest.raises(RuleError):
            parse_rule(rule)
