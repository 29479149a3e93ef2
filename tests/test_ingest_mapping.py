"""Mappings, row validation, messages and the local pipeline (ucp ingest), on fixture files. No stack needed."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from shared.cli import main as ucp
from shared.ingest import (decode_message, encode_batches, escape_formula, ingest_file, load_mapping_file,
                           parse_landing_path, parse_mapping)
from shared.ingest.mapping import RowMapper
from shared.ingest.messages import MAX_MESSAGE_JSON_BYTES, MAX_RECORDS_PER_MESSAGE, by_source_key
from shared.ingest.pipeline import SeenKeys
from shared.ingest.readers import FileError
from shared.models import CustomerRecord
from shared.normalize import normalize_record
from shared.store import MemoryStore

FIXTURES = Path(__file__).parent / "fixtures" / "ingest"
NOW = datetime(2025, 6, 1, tzinfo=timezone.utc)


def mapper(mapping: dict, **kw) -> RowMapper:
    return RowMapper(parse_mapping(mapping), now=NOW, **kw)


def test_issue_mapping_maps_every_field():
    m = load_mapping_file(FIXTURES / "pos.customers.json")
    raw = {"customer_no": "C9", "first": " Ann ", "last": "Lee", "dob": "19800214", "mail": "a@b.co", "tel": "07700 900123",
           "addr1": "1 High St", "addr2": "Flat 2", "town": "Leeds", "zip": "LS1", "county": "WY", "house_no": "1",
           "card_no": "L9", "store_code": "S1", "ignored": "x"}
    out = RowMapper(m).map_row(1, raw)
    assert not out.reasons
    r = out.item
    assert (r.record_key, r.given_name, r.birth_date, r.phone_region, r.loyalty_id) == ("C9", "Ann", date(1980, 2, 14), "GB", "L9")
    assert r.attributes == {"store_code": "S1"} and r.address_line2 == "Flat 2" and r.street_number == "1"


@pytest.mark.parametrize("country", ["", "n/a", "N/A", "-", "unknown", "?", "none", "#N/A"])
def test_a_placeholder_country_keeps_the_mappings_default_phone_region(country):
    """The shipped pos mapping reads phone_region from the country column, with GB as its default: a placeholder
    there names no country, so the default still reads a national number, as for an empty cell."""
    m = load_mapping_file(Path(__file__).parents[1] / "config" / "sources" / "pos.customers.json")
    raw = {"customer_no": "C1", "first": "Ann", "last": "Lee", "tel": "07911 123456", "country": country,
           "zip": "SW1A 1AA"}
    r = RowMapper(m).map_row(1, raw).item
    assert r.phone_region == "GB"
    assert normalize_record(r).phone == "+447911123456"


def test_a_country_in_the_row_still_overrides_the_mappings_default_phone_region():
    m = load_mapping_file(Path(__file__).parents[1] / "config" / "sources" / "pos.customers.json")
    for country, phone, expected in (("United Kingdom", "07911 123456", "+447911123456"),
                                     ("Ireland", "087 123 4567", "+353871234567"),
                                     ("Untied Kingdom", "07911 123456", None)):  # a country it does not know: no guess
        raw = {"customer_no": "C1", "first": "Ann", "last": "Lee", "tel": phone, "country": country}
        r = RowMapper(m).map_row(1, raw).item
        assert normalize_record(r).phone == expected, country
        assert r.phone_region == (country if expected else "GB"), country


def test_composite_key_custom_identifiers_nested_columns_and_formats():
    m = mapper({"source": "crm", "entity": "customers", "record_key": ["region", "id"],
                "fields": {"given_name": "name.first", "birth_date": {"column": "born", "format": ["%d/%m/%Y", "%Y"]},
                           "updated_at": {"column": "changed", "format": "epoch_ms"}},
                "identifiers": {"crm_guid": "guid"}, "attributes": {"tier": "loyalty.tier"}})
    out = m.map_row(1, {"region": "EU", "id": 7, "name": {"first": "Zoë"}, "born": "02/03/1970",
                        "changed": "1700000000000", "guid": "g-1", "loyalty": {"tier": "gold"}})
    assert not out.reasons, out.reasons
    r = out.item
    assert r.record_key == "EU|7" and r.given_name == "Zoë" and r.birth_date == date(1970, 3, 2)
    assert r.identifiers == {"crm_guid": "g-1"} and r.attributes == {"tier": "gold"}
    assert r.updated_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)


def test_every_reason_of_a_row_is_collected():
    m = mapper({"source": "pos", "entity": "customers", "record_key": ["id"],
                "fields": {"birth_date": "dob", "given_name": "name"}, "required": ["email_col"]},
               max_field_bytes=100)
    out = m.map_row(4, {"id": "", "dob": "1850-01-01", "name": "x" * 200, "email_col": ""})
    assert out.item is None
    assert sorted(r.key for r in out.reasons) == ["date_out_of_range:birth_date", "field_too_large:given_name",
                                                  "missing_value:email_col", "missing_value:record_key"]


def test_transactions_amount_rules_and_timezone():
    m = mapper({"source": "shop", "entity": "transactions", "timezone": "Europe/London",
                "fields": {"order_id": "o", "customer_key": "c", "timestamp": "ts", "amount": {"column": "a", "decimal": ","},
                           "kind": "k", "items": "items"}})
    ok = m.map_row(1, {"o": "1", "c": "C", "ts": "2024-07-01 12:00:00", "a": "1.234,50", "k": "Purchase",
                       "items": '[{"sku": "A", "quantity": 2}]'})
    assert not ok.reasons
    assert ok.item.amount == Decimal("1234.50") and ok.item.kind == "purchase"
    assert ok.item.timestamp == datetime(2024, 7, 1, 11, 0, tzinfo=timezone.utc)  # BST -> UTC
    assert ok.item.items == [{"sku": "A", "quantity": 2}]
    bad = m.map_row(2, {"o": "2", "c": "C", "ts": "2024-07-01", "a": "-3", "k": "purchase", "items": "[oops"})
    assert sorted(r.key for r in bad.reasons) == ["invalid_json:items", "negative_amount:amount"]
    refund = m.map_row(3, {"o": "3", "c": "C", "ts": "2024-07-01", "a": "-3", "k": "refund"})
    assert not refund.reasons
    assert [r.key for r in m.map_row(4, {"o": "4", "c": "C", "ts": "2024-07-01", "a": "NaN"}).reasons] == ["invalid_number:amount"]
    assert [r.key for r in m.map_row(5, {"o": "5", "ts": "2024-07-01", "a": "1"}).reasons] == ["missing_value:customer_key"]
    assert [r.key for r in m.map_row(6, {"o": "6", "c": "C", "ts": "2024-07-01", "a": "1", "k": "gift"}).reasons] == ["invalid_value:kind"]


def test_record_key_fills_the_natural_id_of_activity():
    m = mapper({"source": "web", "entity": "events", "record_key": ["id"],
                "fields": {"timestamp": "ts", "anonymous_id": "anon", "properties": "props", "event": "event"}})
    out = m.map_row(1, {"id": "e1", "ts": "2024-03-01T10:00:00Z", "anon": "a1", "props": {"sku": "S"}, "event": "View"})
    assert not out.reasons and out.item.event_id == "e1" and out.item.properties == {"sku": "S"}


def test_formula_injection_is_flagged_kept_and_escapable():
    m = mapper({"source": "pos", "entity": "customers", "record_key": ["id"],
                "fields": {"given_name": "n", "phone": "p", "city": "c"}})
    out = m.map_row(1, {"id": "1", "n": "=cmd|' /C calc'!A0", "p": "+44 7700 900123", "c": "-Leeds"})
    assert not out.reasons and out.item.given_name == "=cmd|' /C calc'!A0"
    assert out.flags == ["formula_like:given_name", "formula_like:city"]  # the phone's '+' is not a formula
    assert escape_formula("=1+1") == "'=1+1" and escape_formula("-12.5") == "-12.5" and escape_formula("Ann") == "Ann"


@pytest.mark.parametrize("bad, problem", [
    ({"source": "pos", "entity": "customers", "fields": {}}, "record_key"),
    ({"source": "pos", "entity": "widgets", "record_key": "id"}, "entity"),
    ({"source": "pos", "entity": "customers", "record_key": "id", "fields": {"shoe": "s"}}, "unknown customers fields"),
    ({"source": "pos", "entity": "customers", "record_key": "id", "fields": {"city": {"format": "x"}}}, "column"),
    ({"source": "pos", "entity": "customers", "record_key": "id", "timezone": "Mars/Olympus"}, "timezone"),
    ({"source": "pos", "entity": "transactions", "fields": {"amount": "a"}}, "order_id"),
])
def test_invalid_mappings_are_rejected_with_the_reason(bad, problem):
    with pytest.raises(ValueError) as err:
        parse_mapping(bad)
    assert problem in str(err.value)


def test_yaml_mapping_is_accepted():
    m = parse_mapping("source: pos\nentity: customers\nrecord_key: [id]\nfields: {email: mail}\n")
    assert m.record_key == ["id"] and m.fields["email"].column == "mail"


def test_landing_paths():
    assert parse_landing_path("pos/customers/2024/x.csv").mode == "upsert"
    p = parse_landing_path("crm/customers/IncrementalData/2024/05/01/10/Deletes/part-0.csv")
    assert (p.source, p.entity, p.mode) == ("crm", "customers", "delete")
    for bad, code in (("x.csv", "bad_path"), ("pos/things/x.csv", "unknown_entity"),
                      ("pos/customers/IncrementalData/2024/x.csv", "bad_path")):
        with pytest.raises(FileError) as err:
            parse_landing_path(bad)
        assert err.value.code == code


def test_messages_stay_under_the_limit_and_round_trip():
    records = [CustomerRecord(source="pos", record_key=f"K{i}", given_name="Ann", email=f"a{i}@b.co",
                              attributes={"note": "n" * (i % 700)}) for i in range(600)]
    batches = list(encode_batches(records, ingestion_id="ing_x"))
    assert len(batches) > 1 and not any(b.oversize for b in batches)
    assert all(len(b.text.encode()) <= MAX_MESSAGE_JSON_BYTES and b.count <= MAX_RECORDS_PER_MESSAGE for b in batches)
    assert any(len(b.text.encode()) > MAX_MESSAGE_JSON_BYTES // 2 for b in encode_batches(records, max_records=1000))
    decoded = [r for b in batches for r in decode_message(b.text)]
    assert decoded == records
    huge = CustomerRecord(source="pos", record_key="H", attributes={"blob": "z" * 60_000})
    assert [b.oversize for b in encode_batches([records[0], huge, records[1]])] == [False, True, False]


def test_records_of_one_source_record_share_a_message_in_order():
    records = [CustomerRecord(source="pos", record_key=f"K{i % 7}", given_name=f"N{i}") for i in range(21)]
    grouped = by_source_key(records)
    assert [r.given_name for r in grouped if r.record_key == "K3"] == ["N3", "N10", "N17"]
    batches = [decode_message(b.text) for b in encode_batches(grouped, max_records=4)]
    assert len(batches) == 4 and max(len(b) for b in batches) == 6  # the cap stretches, never splitting a key
    holders = {key: [i for i, batch in enumerate(batches) if any(r.record_key == key for r in batch)]
               for key in {r.record_key for r in records}}
    assert all(len(found) == 1 for found in holders.values())
    assert sorted(r.given_name for batch in batches for r in batch) == sorted(r.given_name for r in records)


@pytest.mark.parametrize("text, problem", [
    ("not json", "not JSON"), ("[1]", "JSON object"), ('{"v": 2, "records": []}', "version"),
    ('{"v": 1}', "records"), ('{"v": 1, "records": [{"source": "pos"}]}', "record_key"),
    (b"\xff\xfe", "UTF-8"), ('{"v": 1, "claim": ""}', "claim"),
])
def test_decode_message_rejects_malformed_input(text, problem):
    with pytest.raises(ValueError) as err:
        decode_message(text)
    assert problem in str(err.value)


def test_seen_keys_stays_exact_across_flushes(monkeypatch):
    monkeypatch.setattr(SeenKeys, "FLUSH_AT", 100)
    seen = SeenKeys()
    fps = [SeenKeys.fingerprint(f"k{i}", "h") for i in range(1000)]
    assert all(seen.add(fp) for fp in fps)
    assert not any(seen.add(fp) for fp in fps)
    assert seen.add(SeenKeys.fingerprint("new", "h"))


def test_local_pipeline_accounts_for_every_row(tmp_path):
    mapping = load_mapping_file(FIXTURES / "pos.customers.json")
    report, outputs = ingest_file(FIXTURES / "customers.csv", mapping, out_dir=tmp_path)
    assert report["rows_read"] == report["accepted"] + report["quarantined"] + report["duplicates"] == 9
    lines = (tmp_path / "customers.jsonl").read_text().splitlines()
    assert len(lines) == report["accepted"] == 3
    quarantine = Path(report["quarantine_blob"]).read_text().splitlines()
    assert len(quarantine) == report["quarantined"] == 5


def test_local_pipeline_stores_activity_idempotently(tmp_path):
    mapping = parse_mapping({"source": "web", "entity": "events", "record_key": ["id"],
                             "fields": {"timestamp": "ts", "anonymous_id": "anon", "customer_key": "user",
                                        "type": "type", "event": "event", "properties": "props", "traits": "traits"}})
    store = MemoryStore()
    report, _ = ingest_file(FIXTURES / "events.jsonl", mapping, store=store)
    assert (report["rows_read"], report["accepted"], report["quarantined"]) == (5, 3, 2)
    assert report["reasons"] == {"invalid_json": 1, "not_an_object": 1}
    again, _ = ingest_file(FIXTURES / "events.jsonl", mapping, store=store)
    assert store.container("activity").count_items() == 3 == again["activity_saved"]
    owners = {d["owner"] for d in store.container("activity").query_items()}
    assert owners == {"anon|a1", "web|C1"}


def test_reviews_json_array_with_out_of_range_rating(tmp_path):
    mapping = parse_mapping({"source": "shop", "entity": "reviews",
                             "fields": {"review_id": "review_id", "customer_key": "customer", "timestamp": "date",
                                        "rating": "stars", "text": "body"}})
    report, _ = ingest_file(FIXTURES / "reviews.json", mapping)
    assert (report["accepted"], report["quarantined"]) == (2, 1)
    assert report["reasons"] == {"invalid_value:rating": 1}


def test_ucp_ingest_command(tmp_path, capsys):
    rc = ucp(["ingest", str(FIXTURES / "customers.csv"), "--mapping", str(FIXTURES / "pos.customers.json"),
              "--out", str(tmp_path)])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and report["accepted"] == 3 and report["quarantined"] == 5
    assert json.loads((tmp_path / "report.json").read_text())["id"] == report["id"]
    rc = ucp(["ingest", str(tmp_path / "nope.csv"), "--mapping", str(FIXTURES / "pos.customers.json")])
    assert rc == 2


def test_event_needs_an_owner():
    m = mapper({"source": "web", "entity": "events", "fields": {"event_id": "id", "timestamp": "ts",
                                                                "anonymous_id": "anon", "customer_key": "user"}})
    assert [r.key for r in m.map_row(1, {"id": "e", "ts": "2024-01-01T00:00:00"}).reasons] == ["missing_value:customer_key"]
    assert not m.map_row(2, {"id": "e", "ts": "2024-01-01T00:00:00", "anon": "a"}).reasons


def test_parquet_typed_dates_get_the_range_check():
    m = mapper({"source": "loyalty", "entity": "customers", "record_key": ["id"], "fields": {"birth_date": "dob"}})
    assert [r.key for r in m.map_row(1, {"id": "1", "dob": date(2030, 1, 1)}).reasons] == ["date_out_of_range:birth_date"]
    assert m.map_row(2, {"id": "2", "dob": datetime(1970, 5, 4, 0, 0)}).item.birth_date == date(1970, 5, 4)


def test_activity_deletes_remove_the_stored_rows(tmp_path):
    """A delete row removes the order: its sale and its returns and refund (stored under their own ids), not
    those of an order whose number starts with its own ("O1:b")."""
    mapping = parse_mapping({"source": "shop", "entity": "transactions",
                             "fields": {"order_id": "o", "customer_key": "c", "timestamp": "ts", "amount": "a",
                                        "kind": "k"}})
    orders = tmp_path / "orders.csv"
    orders.write_text("o,c,ts,a,k\nO1,C1,2024-01-01,5,purchase\nO1,C1,2024-01-03,-2,return\n"
                      "O1,C1,2024-01-04,-1,return\nO1,C1,2024-01-05,-1,refund\n"
                      "O2,C1,2024-01-02,6,purchase\nO3,C2,2024-01-03,7,purchase\n")
    store = MemoryStore()
    ingest_file(orders, mapping, store=store)
    deletes = tmp_path / "deletes.csv"
    deletes.write_text("o,c,k\nO1,C1,\nO1,C1,\nO3,,\n")
    report, _ = ingest_file(deletes, mapping, store=store, mode="delete")
    assert (report["deleted"], report["duplicates"], report["quarantined"]) == (1, 1, 1)
    assert sorted(d["id"] for d in store.container("activity").query_items()) == ["transaction:shop:O2",
                                                                                "transaction:shop:O3"]
    orders.write_text("o,c,ts,a,k\nO1,C1,2024-01-03,-2,return\nO1:b,C1,2024-01-03,-2,return\n")
    ingest_file(orders, mapping, store=store)
    deletes.write_text("o,c,k\nO1,C1,\n")
    ingest_file(deletes, mapping, store=store, mode="delete")
    assert [d["order_id"] for d in store.container("activity").query_items(partition_key="shop|C1")
            if d.get("transaction_kind") == "return"] == ["O1:b"]


def test_a_mapped_return_id_tells_returns_apart_and_a_re_ingest_changes_nothing(tmp_path):
    """Two returns of order O1 with the same time and amount (two identical items brought back at one till
    visit, two credit notes): their own numbers (fields.return_id) keep both. A file without return numbers
    tells returns apart by time, amount and lines; in both, the same file twice leaves the same documents."""
    fields = {"order_id": "o", "customer_key": "c", "timestamp": "ts", "amount": "a", "kind": "k"}
    with_ids = parse_mapping({"source": "shop", "entity": "transactions", "fields": {**fields, "return_id": "r"}})
    mapped = RowMapper(with_ids, now=NOW).map_row(1, {"o": "O1", "c": "C1", "ts": "2024-01-03", "a": "-2",
                                                       "k": "return", "r": "CN-7"})
    assert not mapped.reasons and mapped.item.return_id == "CN-7"
    orders = tmp_path / "orders.csv"
    orders.write_text("o,c,ts,a,k,r\nO1,C1,2024-01-01,5,purchase,\nO1,C1,2024-01-03,-2,return,CN-7\n"
                      "O1,C1,2024-01-03,-2,return,CN-8\n")
    store = MemoryStore()
    for _ in range(2):
        report, _ = ingest_file(orders, with_ids, store=store)
        assert (report["accepted"], report["duplicates"]) == (3, 0)
        assert sorted(d["id"] for d in store.container("activity").query_items()) == [
            "transaction-return:shop:O1:CN-7", "transaction-return:shop:O1:CN-8", "transaction:shop:O1"]
    lines = tmp_path / "lines.jsonl"
    rows = [{"o": "O2", "c": "C1", "ts": "2024-01-05", "a": "-3.50", "k": "refund", "items": [{"sku": s}]}
            for s in ("A", "B")]
    lines.write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = parse_mapping({"source": "shop", "entity": "transactions", "fields": {**fields, "items": "items"}})
    store = MemoryStore()
    for _ in range(2):
        ingest_file(lines, items, store=store)
        assert len([d for d in store.container("activity").query_items() if d["order_id"] == "O2"]) == 2
