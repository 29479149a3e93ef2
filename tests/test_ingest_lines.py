"""Line-level transaction files (one row per order line, as POS exports write them): each line is its own
activity doc (fields.line_id), and every consumer counts orders, not rows: profile measures, the revenue
report, churn features (serving and the nightly job). Re-ingesting changes nothing; a delete row for an order
removes all its lines; a mapping without line_id keeps the order-level ids. In process, on the in-memory store."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from model_training.churn_job import load_histories
from shared.activity import list_activity
from shared.churn.features import FEATURE_NAMES, to_epoch
from shared.churn.serving import profile_history
from shared.ingest import ingest_file, parse_mapping
from shared.ingest.mapping import RowMapper
from shared.insights import reports as rp
from shared.insights.needs import category_signals
from shared.measures import compute_measures
from shared.store import MemoryStore

NOW = datetime(2025, 6, 1, tzinfo=timezone.utc)
OWNER = "pos|C1"
LINE_FIELDS = {"order_id": "order", "line_id": "line", "customer_key": "cust", "timestamp": "at", "amount": "amount",
               "currency": "cur", "channel": "channel", "category": "cat", "kind": "type",
               "sku": "sku", "quantity": "qty", "unit_price": "price"}
LINE_MAPPING = {"source": "pos", "entity": "transactions", "fields": LINE_FIELDS}
# Order O1 (store, 2024-09-01): 2 x A at 5.00, 1 x B at 12.50, 3 x C at 2.50 = 30.00.
# Order O2 (store, 2024-09-10): three lines of 0.10, 0.20 and 0.30 = 0.60 (added as floats: 0.6000000000000001).
LINES = [
    ("O1", "1", "2024-09-01T10:00:00Z", "A", "2", "5.00", "10.00", "shoes"),
    ("O1", "2", "2024-09-01T10:00:00Z", "B", "1", "12.50", "12.50", "bags"),
    ("O1", "3", "2024-09-01T10:00:00Z", "C", "3", "2.50", "7.50", "socks"),
    ("O2", "1", "2024-09-10T15:30:00Z", "D", "1", "0.10", "0.10", "socks"),
    ("O2", "2", "2024-09-10T15:30:00Z", "E", "1", "0.20", "0.20", "socks"),
    ("O2", "3", "2024-09-10T15:30:00Z", "F", "1", "0.30", "0.30", "gifts"),
]
PROFILE = {"id": "p_1", "doc_type": "profile", "records": [{"key": OWNER, "source": "pos", "record_key": "C1"}]}
AS_OF = to_epoch("2024-12-01T00:00:00Z")


def line_file(tmp_path, rows=LINES, extra: str = ""):
    path = tmp_path / "lines.csv"
    path.write_text("order,line,cust,at,sku,qty,price,amount,cur,channel,cat,type\n"
                    + "".join(f"{o},{n},C1,{at},{s},{q},{p},{a},GBP,store,{c},purchase\n"
                              for o, n, at, s, q, p, a, c in rows) + extra)
    return path


def order_file(tmp_path):
    """The same two orders, one row each, with their items as a JSON list (the ecommerce form)."""
    orders: dict[str, dict] = {}
    for o, _, at, sku, qty, price, amount, cat in LINES:
        row = orders.setdefault(o, {"order": o, "cust": "C1", "at": at, "amount": 0, "cur": "GBP",
                                    "channel": "store", "cat": cat, "items": []})
        row["items"].append({"sku": sku, "quantity": int(qty), "price": float(price), "category": cat})
    orders["O1"]["amount"], orders["O2"]["amount"] = "30.00", "0.60"
    path = tmp_path / "orders.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in orders.values()))
    mapping = parse_mapping({"source": "pos", "entity": "transactions", "fields": {
        "order_id": "order", "customer_key": "cust", "timestamp": "at", "amount": "amount", "currency": "cur",
        "channel": "channel", "category": "cat", "items": "items"}})
    return path, mapping


def stored(store) -> list[dict]:
    return sorted((d for d in store.container("activity").query_items()), key=lambda d: d["id"])


def transactions(store) -> list[dict]:
    return list(list_activity(store, [OWNER], kind="transaction"))


def ingested_lines(tmp_path, store=None):
    store = store if store is not None else MemoryStore()
    store.container("profiles").upsert_item(PROFILE)
    report, _ = ingest_file(line_file(tmp_path), parse_mapping(LINE_MAPPING), store=store)
    assert (report["accepted"], report["quarantined"], report["duplicates"]) == (6, 0, 0)
    return store


def test_a_line_level_file_stores_every_line_and_measures_count_orders(tmp_path):
    """2 orders x 3 lines: 6 docs (transaction:pos:<order>:<line>), each with its line's amount and its one item
    from the sku/qty/price columns; measures: 2 orders, spend 30.60, AOV 15.30."""
    store = ingested_lines(tmp_path)
    docs = stored(store)
    assert [d["id"] for d in docs] == [f"transaction:pos:{o}:{n}" for o in ("O1", "O2") for n in "123"]
    first = docs[0]
    assert (first["order_id"], first["line_id"], first["amount"], first["owner"]) == ("O1", "1", 10.0, OWNER)
    assert first["items"] == [{"sku": "A", "quantity": 2, "price": 5.0, "category": "shoes"}]
    m = compute_measures(transactions(store))
    assert (m["orders"], m["total_spend"], m["average_order_value"], m["currency"]) == (2, 30.6, 15.3, "GBP")
    assert m["first_purchase"] == "2024-09-01T10:00:00.000000Z" and m["last_purchase"].startswith("2024-09-10")


def test_the_revenue_report_counts_orders_not_lines(tmp_path):
    store = ingested_lines(tmp_path)
    r = rp.run_report(store, "revenue", {"from": "2024-08-01T00:00:00Z", "to": "2024-10-01T00:00:00Z"})
    assert (r["revenue"], r["orders"], r["customers"], r["average_order_value"]) == (30.6, 2, 1, 15.3)
    gbp = r["by_currency"]["GBP"]
    assert (gbp["orders"], gbp["average_order_value"]) == (2, 15.3)
    assert (r["by_channel"]["store"]["orders"], r["by_channel"]["store"]["average_order_value"]) == (2, 15.3)


def test_churn_features_of_lines_equal_those_of_the_same_orders_stored_one_row_each(tmp_path):
    """Serving (profile_history) and the nightly job (load_histories) give the same features for the line-level
    store, and these equal the order-level store's: frequency 2, monetary total 30.6, mean 15.3, max 30."""
    lines = ingested_lines(tmp_path)
    orders = MemoryStore()
    orders.container("profiles").upsert_item(PROFILE)
    path, mapping = order_file(tmp_path)
    ingest_file(path, mapping, store=orders)
    assert len(stored(orders)) == 2
    history = profile_history(lines, PROFILE)
    assert history.purchase_amounts.tolist() == [30.0, 0.6]  # O2's lines summed as the till would: not 0.6000...1
    by_lines = dict(zip(FEATURE_NAMES, history.features(AS_OF)))
    by_orders = dict(zip(FEATURE_NAMES, profile_history(orders, PROFILE).features(AS_OF)))
    assert by_lines == by_orders
    assert (by_lines["frequency"], by_lines["monetary_total"], by_lines["monetary_max"]) == (2, 30.6, 30.0)
    assert by_lines["monetary_mean"] == 15.3 and by_lines["distinct_categories"] == 4
    nightly = dict(zip(FEATURE_NAMES, load_histories(lines)["p_1"].features(AS_OF)))
    assert nightly == by_lines
    # needs count item categories (one per line, as the order's items list has them), not rows
    signals = [sorted(category_signals(list_activity(s, [OWNER]))) for s in (lines, orders)]
    assert signals[0] == signals[1] and len(signals[0]) == 6


def test_re_ingesting_the_line_file_changes_nothing(tmp_path):
    store = ingested_lines(tmp_path)
    before = [{k: v for k, v in d.items() if not k.startswith("_")} for d in stored(store)]
    entries = sorted(e["id"] for e in store.container("activity_owners").query_items())
    report, _ = ingest_file(line_file(tmp_path), parse_mapping(LINE_MAPPING), store=store)
    counts = (report["accepted"], report["duplicates"], report["activity_saved"], report["activity_moved"])
    assert counts == (6, 0, 6, 0)
    assert [{k: v for k, v in d.items() if not k.startswith("_")} for d in stored(store)] == before
    assert sorted(e["id"] for e in store.container("activity_owners").query_items()) == entries
    assert compute_measures(transactions(store))["orders"] == 2


def test_a_delete_row_for_an_order_removes_all_its_lines(tmp_path, store):
    """A deletes file naming O1 (order id, customer key) removes its three lines and their owner entries; O2
    and an order whose number starts with O1's ("O1:9") stay. On both stores (the id-prefix query)."""
    store = ingested_lines(tmp_path, store)
    ingest_file(line_file(tmp_path, [("O1:9", "1", "2024-09-02T10:00:00Z", "G", "1", "1.00", "1.00", "hats")]),
                parse_mapping(LINE_MAPPING), store=store)
    deletes = tmp_path / "deletes.csv"
    deletes.write_text("order,cust\nO1,C1\n")
    report, _ = ingest_file(deletes, parse_mapping(LINE_MAPPING), store=store, mode="delete")
    assert (report["accepted"], report["deleted"]) == (1, 1)
    assert [d["id"] for d in stored(store)] == ["transaction:pos:O1:9:1"] + [f"transaction:pos:O2:{n}" for n in "123"]
    assert sorted(e["id"] for e in store.container("activity_owners").query_items()) == [
        d["id"] for d in stored(store)]
    m = compute_measures(transactions(store))
    assert (m["orders"], m["total_spend"]) == (2, 1.6)


def test_without_line_id_the_ids_stay_order_level(tmp_path):
    """The same file with a mapping that does not name the line (an order-level source): today's ids,
    transaction:pos:<order>, so the last line of each order is what is kept, as before."""
    fields = {k: v for k, v in LINE_FIELDS.items() if k not in ("line_id", "sku", "quantity", "unit_price")}
    store = MemoryStore()
    ingest_file(line_file(tmp_path), parse_mapping({"source": "pos", "entity": "transactions", "fields": fields}),
                store=store)
    assert [(d["id"], d["amount"]) for d in stored(store)] == [("transaction:pos:O1", 7.5), ("transaction:pos:O2", 0.3)]
    assert all("line_id" not in d and not d["items"] for d in stored(store))


def test_line_rows_are_checked_and_return_lines_are_each_kept(tmp_path):
    """With line_id mapped, a purchase row without its line is quarantined (it would sit beside the lines as a
    whole order); a return row may have none. The lines of one return (one return number) are each kept, and
    a delete row removes them with the order's sale lines."""
    mapping = parse_mapping({**LINE_MAPPING, "fields": {**LINE_FIELDS, "return_id": "ret"}})
    mapper = RowMapper(mapping, now=NOW)
    row = {"order": "O1", "line": "", "cust": "C1", "at": "2024-09-01", "amount": "5", "type": "purchase",
           "qty": "x"}
    assert sorted(r.key for r in mapper.map_row(1, row).reasons) == ["invalid_number:quantity",
                                                                    "missing_value:line_id"]
    refund = mapper.map_row(2, {**row, "type": "refund", "amount": "-5", "qty": "", "ret": "RF-1"})
    assert not refund.reasons and refund.item.line_id is None and refund.item.items == []
    path = tmp_path / "returns.csv"
    path.write_text("order,line,cust,at,sku,qty,price,amount,cur,channel,cat,type,ret\n"
                    "O1,1,C1,2024-09-01T10:00:00Z,A,2,5.00,10.00,GBP,store,shoes,purchase,\n"
                    "O1,1,C1,2024-09-05T10:00:00Z,A,-1,5.00,-5.00,GBP,store,shoes,return,CN-7\n"
                    "O1,2,C1,2024-09-05T10:00:00Z,A,-1,5.00,-5.00,GBP,store,shoes,return,CN-7\n")
    store = MemoryStore()
    store.container("profiles").upsert_item(PROFILE)
    for _ in range(2):
        ingest_file(path, mapping, store=store)
        assert [d["id"] for d in stored(store)] == ["transaction-return:pos:O1:CN-7:1",
                                                    "transaction-return:pos:O1:CN-7:2", "transaction:pos:O1:1"]
    m = compute_measures(transactions(store))
    assert (m["orders"], m["total_spend"], m["returns"], m["net_spend"]) == (1, 10.0, 10.0, 0.0)
    f = dict(zip(FEATURE_NAMES, profile_history(store, PROFILE).features(AS_OF)))
    assert (f["frequency"], f["returns_ratio"], f["return_amount_ratio"]) == (1, 1.0, 1.0)  # one return of 2 lines
    deletes = tmp_path / "deletes.csv"
    deletes.write_text("order,cust\nO1,C1\n")
    ingest_file(deletes, mapping, store=store, mode="delete")
    assert stored(store) == []


def test_item_fields_are_only_for_transactions_and_not_beside_a_json_items_column():
    base = {"order_id": "o", "customer_key": "c", "timestamp": "t", "amount": "a"}
    for bad, message in [({"source": "s", "entity": "transactions", "fields": {**base, "items": "i", "sku": "s"}},
                          "exclude each other"),
                         ({"source": "s", "entity": "reviews", "fields": {"review_id": "r", "sku": "s"}},
                          "unknown reviews fields: sku")]:
        try:
            parse_mapping(bad)
        except ValueError as err:
            assert message in str(err)
        else:
            raise AssertionError(f"accepted {bad}")
