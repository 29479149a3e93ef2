"""`"on_invalid": "drop"` on a field spec: a row whose optional value is unusable (an impossible birth date, an
unparseable updated_at, a rating of 9, a value over the size cap) is kept without that value and flagged
`dropped_invalid:<field>`, counted in the report's flags; the default still quarantines the row. Real files (CSV,
JSON Lines, a JSON array) through the real reader, mapper and pipeline (ingest_file), mappings loaded from files."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from shared.cli import main as ucp
from shared.ingest import ingest_file, load_mapping_file
from shared.settings import get_settings
from shared.store import MemoryStore

HEADER = "customer_no,first,last,dob,mail,changed,store_code\n"
CSV_ROWS = [
    "C1,Ann,Smith,19800214,ann.smith@mailbox.org,2024-03-01T10:00:00,S1\n",
    "C2,Bob,Jones,19371233,bob.jones@mailbox.org,2024-03-02T10:00:00,S2\n",  # day 33: not a date
    "C3,Cara,Brown,19551192,cara@example.com,not a time,S3\n",  # month 11, day 92; updated_at unparseable
    "C4,Dan,Green,18500101,dan@example.com,,S4\n",  # before 1900
]
JSON_ROWS = [
    {"customer_no": "J1", "first": "Eve", "last": "Hall", "dob": "1955-11-02", "mail": "eve@example.com"},
    {"customer_no": "J2", "first": "Finn", "last": "Hill", "dob": "1955-11-92", "mail": "finn@example.com"},
    {"customer_no": "J3", "first": "Gail", "last": "Ward", "dob": "1962-02-30", "mail": "gail@example.com",
     "changed": "yesterday"},
]
BAD_VALUES = ("19371233", "19551192", "not a time", "18500101", "1955-11-92", "1962-02-30", "yesterday")


def customers_mapping(tmp_path: Path, *, birth: dict | None = None, changed: dict | None = None,
                      name: str = "pos.customers.json", **extra) -> Path:
    """A customers mapping file (birth_date and updated_at specs merged with the given keys)."""
    mapping = {"source": "pos", "entity": "customers", "record_key": ["customer_no"],
               "fields": {"given_name": "first", "family_name": "last", "email": "mail",
                          "birth_date": {"column": "dob", **(birth or {})},
                          "updated_at": {"column": "changed", **(changed or {})}},
               "attributes": ["store_code"], **extra}
    path = tmp_path / name
    path.write_text(json.dumps(mapping), encoding="utf-8")
    return path


def write_csv(tmp_path: Path, rows: list[str] = CSV_ROWS) -> Path:
    path = tmp_path / "customers.csv"
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    return path


def write_jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "customers.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in JSON_ROWS) + "\n", encoding="utf-8")
    return path


def ingest(data: Path, mapping: Path, **kw):
    report, outputs = ingest_file(data, load_mapping_file(mapping), **kw)
    records = {r.record_key: r for r in outputs.customers.records}
    return report, records, outputs.quarantine.entries


def assert_no_values(*things) -> None:
    text = json.dumps(things, default=str)
    leaked = [v for v in BAD_VALUES if v in text]
    assert not leaked, f"raw values in flags or report: {leaked}"


# ------------------------------------------------------------------------------------------------- drop


def test_drop_keeps_the_csv_row_without_the_impossible_birth_date_and_flags_it(tmp_path):
    mapping = customers_mapping(tmp_path, birth={"format": "%Y%m%d", "on_invalid": "drop"},
                                changed={"on_invalid": "drop"})
    report, records, quarantined = ingest(write_csv(tmp_path), mapping)

    assert (report["rows_read"], report["accepted"], report["quarantined"]) == (4, 4, 0)
    assert quarantined == [] and report["reasons"] == {}
    assert records["C1"].birth_date == date(1980, 2, 14)
    assert records["C1"].updated_at == datetime(2024, 3, 1, 10, tzinfo=timezone.utc)
    bob, cara, dan = records["C2"], records["C3"], records["C4"]
    assert bob.birth_date is None and bob.given_name == "Bob" and bob.email == "bob.jones@mailbox.org"
    assert bob.updated_at == datetime(2024, 3, 2, 10, tzinfo=timezone.utc)  # only the bad value goes
    assert cara.birth_date is None and cara.updated_at is None and cara.attributes == {"store_code": "S3"}
    assert dan.birth_date is None  # out of range (before 1900) is dropped the same way
    assert "birth_date" not in bob.model_dump(exclude_none=True)


def test_drop_works_on_json_lines_and_the_flags_are_on_the_row(tmp_path):
    from shared.ingest.pipeline import iter_mapped

    mapping = customers_mapping(tmp_path, birth={"on_invalid": "drop"}, changed={"on_invalid": "drop"})
    data = write_jsonl(tmp_path)
    report, records, quarantined = ingest(data, mapping)
    assert (report["rows_read"], report["accepted"], report["quarantined"]) == (3, 3, 0)
    assert records["J1"].birth_date == date(1955, 11, 2)
    assert records["J2"].birth_date is None and records["J3"].birth_date is None and records["J3"].updated_at is None
    assert report["flags"] == {"dropped_invalid:birth_date": 2, "dropped_invalid:updated_at": 1}

    with data.open("rb") as stream:
        rows = list(iter_mapped(stream, data.name, load_mapping_file(mapping)))
    assert [(r.item is not None, r.reasons, r.flags) for r in rows] == [
        (True, [], []), (True, [], ["dropped_invalid:birth_date"]),
        (True, [], ["dropped_invalid:birth_date", "dropped_invalid:updated_at"])]
    assert_no_values([r.flags for r in rows])


def test_the_report_counts_dropped_values_per_field_and_names_no_value(tmp_path):
    mapping = customers_mapping(tmp_path, birth={"format": "%Y%m%d", "on_invalid": "drop"},
                                changed={"on_invalid": "drop"})
    report, _, _ = ingest(write_csv(tmp_path), mapping)
    assert report["flags"] == {"dropped_invalid:birth_date": 3, "dropped_invalid:updated_at": 1}
    assert_no_values(report)


def test_the_cli_report_counts_the_flags(tmp_path, capsys):
    mapping = customers_mapping(tmp_path, birth={"format": "%Y%m%d", "on_invalid": "drop"})
    rc = ucp(["ingest", str(write_csv(tmp_path, CSV_ROWS[:2])), "--mapping", str(mapping), "--out",
              str(tmp_path / "out")])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and report["accepted"] == 2 and report["flags"] == {"dropped_invalid:birth_date": 1}


def test_ucp_resolve_resolves_the_row_and_counts_the_flag(tmp_path, capsys):
    mapping = customers_mapping(tmp_path, birth={"format": "%Y%m%d", "on_invalid": "drop"})
    out = tmp_path / "ids.csv"
    rc = ucp(["resolve", f"{write_csv(tmp_path, CSV_ROWS[:2])}:{mapping}", "--out", str(out), "--no-progress"])
    summary = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert rc == 0 and "invalid" not in summary["actions"] and summary["records"] == 2
    assert summary["flags"] == {"dropped_invalid:birth_date": 1}
    assert all(line.split(",")[2] for line in out.read_text(encoding="utf-8").splitlines()[1:])  # both resolved


def test_a_value_the_model_refuses_is_dropped_too(tmp_path):
    mapping = tmp_path / "shop.reviews.json"
    mapping.write_text(json.dumps({"source": "shop", "entity": "reviews",
                                   "fields": {"review_id": "review_id", "customer_key": "customer",
                                              "timestamp": "date", "rating": {"column": "stars", "on_invalid": "drop"},
                                              "text": "body"}}), encoding="utf-8")
    reviews = Path(__file__).parent / "fixtures" / "ingest" / "reviews.json"  # r2 has 9 stars
    store = MemoryStore()
    report, _ = ingest_file(reviews, load_mapping_file(mapping), store=store)
    assert (report["accepted"], report["quarantined"]) == (3, 0)
    assert report["flags"] == {"dropped_invalid:rating": 1} and report["reasons"] == {}
    stored = {d["review_id"]: d for d in store.container("activity").query_items()}
    assert stored["r2"].get("rating") is None and stored["r2"]["text"] == "Too many stars"
    assert stored["r1"]["rating"] == 5


def test_drop_also_covers_a_value_over_the_size_cap(tmp_path):
    """Size and encoding problems of a "drop" field's value drop the value too (the option is about the value,
    whatever makes it unusable); the row's other fields keep quarantining it."""
    settings = get_settings().model_copy(update={"max_field_bytes": 64})
    rows = [f"C1,Ann,Smith,19800214,ann@example.com,,{'S' * 100}\n",
            f"C2,{'B' * 100},Jones,19800214,bob@example.com,,S2\n"]
    mapping = customers_mapping(tmp_path, birth={"format": "%Y%m%d"},
                                identifiers={"store_ref": {"column": "store_code", "on_invalid": "drop"}},
                                attributes={"store_code": {"column": "store_code", "on_invalid": "drop"}})
    report, records, quarantined = ingest(write_csv(tmp_path, rows), mapping, settings=settings)
    assert (report["accepted"], report["quarantined"]) == (1, 1)
    assert records["C1"].attributes == {} and records["C1"].identifiers == {}
    assert report["flags"] == {"dropped_invalid:store_ref": 1, "dropped_invalid:store_code": 1}
    assert report["reasons"] == {"field_too_large:given_name": 1}  # given_name has no on_invalid


def test_a_quarantined_row_does_not_list_the_dropped_value(tmp_path):
    rows = ["C1,Ann,Smith,19371233,ann@example.com,not a time,S1\n"]  # updated_at quarantines, birth_date drops
    mapping = customers_mapping(tmp_path, birth={"format": "%Y%m%d", "on_invalid": "drop"})
    report, records, quarantined = ingest(write_csv(tmp_path, rows), mapping)
    assert records == {} and report["reasons"] == {"invalid_date:updated_at": 1}
    assert [r["field"] for r in quarantined[0]["reasons"]] == ["updated_at"]
    assert report["flags"] == {}  # flags count accepted rows only, as formula_like


def test_drop_on_an_optional_transaction_field(tmp_path):
    mapping = tmp_path / "till.transactions.json"
    mapping.write_text(json.dumps({"source": "till", "entity": "transactions", "format": "csv", "fields": {
        "order_id": "receipt", "customer_key": "customer", "timestamp": "sold_at", "amount": "total",
        "items": {"column": "items", "on_invalid": "drop"}}}), encoding="utf-8")
    data = tmp_path / "orders.csv"
    data.write_text('receipt,customer,sold_at,total,items\nO1,C1,2024-05-01T10:00:00,12.50,"[{""sku"": ""A""}]"\n'
                    'O2,C1,2024-05-02T10:00:00,3.00,[oops\n', encoding="utf-8")
    store = MemoryStore()
    report, _ = ingest_file(data, load_mapping_file(mapping), store=store)
    assert (report["accepted"], report["quarantined"]) == (2, 0)
    assert report["flags"] == {"dropped_invalid:items": 1}
    stored = {d["order_id"]: d for d in store.container("activity").query_items()}
    assert stored["O1"]["items"] == [{"sku": "A"}] and stored["O2"].get("items") in (None, [])


# ------------------------------------------------------------------------------------------------- default


@pytest.mark.parametrize("spec", [{}, {"on_invalid": "quarantine"}], ids=["default", "explicit"])
def test_without_drop_the_row_is_quarantined_as_before(tmp_path, spec):
    mapping = customers_mapping(tmp_path, birth={"format": "%Y%m%d", **spec}, changed=spec,
                                name=f"pos{len(spec)}.customers.json")
    assert load_mapping_file(mapping).fields["birth_date"].on_invalid == "quarantine"
    report, records, quarantined = ingest(write_csv(tmp_path), mapping)
    assert (report["accepted"], report["quarantined"]) == (1, 3) and list(records) == ["C1"]
    assert report["reasons"] == {"invalid_date:birth_date": 2, "invalid_date:updated_at": 1,
                                 "date_out_of_range:birth_date": 1}
    assert report["flags"] == {}


# ------------------------------------------------------------------------------------------------- refused


@pytest.mark.parametrize("entity, fields, extra, refused", [
    ("customers", {"record_key": {"column": "customer_no", "on_invalid": "drop"}}, {}, "fields.record_key"),
    ("customers", {"email": {"column": "mail", "on_invalid": "drop"}}, {"required": ["email"]}, "fields.email"),
    ("transactions", {"order_id": {"column": "o", "on_invalid": "drop"}}, {}, "fields.order_id"),
    ("transactions", {"customer_key": {"column": "c", "on_invalid": "drop"}}, {}, "fields.customer_key"),
    ("transactions", {"amount": {"column": "a", "on_invalid": "drop"}}, {}, "fields.amount"),
    ("transactions", {"timestamp": {"column": "t", "on_invalid": "drop"}}, {}, "fields.timestamp"),
    ("transactions", {"kind": {"column": "k", "on_invalid": "drop"}}, {}, "fields.kind"),
    ("events", {"event_id": {"column": "e", "on_invalid": "drop"}}, {}, "fields.event_id"),
    ("events", {"customer_key": {"column": "c", "on_invalid": "drop"}}, {}, "fields.customer_key"),
    ("reviews", {"review_id": {"column": "r", "on_invalid": "drop"}}, {}, "fields.review_id"),
    ("reviews", {"customer_key": {"column": "c", "on_invalid": "drop"}}, {}, "fields.customer_key"),
])
def test_drop_is_refused_at_load_where_the_row_cannot_do_without_the_value(tmp_path, entity, fields, extra, refused):
    base = {"customers": {"record_key": ["customer_no"]},
            "transactions": {"fields": {"order_id": "o", "customer_key": "c", "timestamp": "t", "amount": "a"}},
            "events": {"fields": {"event_id": "e", "timestamp": "t", "customer_key": "c"}},
            "reviews": {"fields": {"review_id": "r", "customer_key": "c", "timestamp": "t"}}}[entity]
    mapping = {"source": "s", "entity": entity, **base, **extra, "fields": {**base.get("fields", {}), **fields}}
    path = tmp_path / f"s.{entity}.json"
    path.write_text(json.dumps(mapping), encoding="utf-8")
    with pytest.raises(ValueError) as err:
        load_mapping_file(path)
    assert str(err.value).startswith("invalid mapping:")
    assert 'on_invalid "drop" is only for optional values' in str(err.value) and refused in str(err.value)


def test_an_unknown_on_invalid_value_is_refused_and_drop_on_optional_fields_loads(tmp_path):
    with pytest.raises(ValueError) as err:
        load_mapping_file(customers_mapping(tmp_path, birth={"on_invalid": "skip"}))
    assert "'quarantine' or 'drop'" in str(err.value)
    loaded = load_mapping_file(customers_mapping(tmp_path, birth={"on_invalid": "drop"}, changed={"on_invalid": "drop"},
                                                 identifiers={"loyalty_id": {"column": "card", "on_invalid": "drop"}}))
    assert loaded.fields["birth_date"].on_invalid == loaded.identifiers["loyalty_id"].on_invalid == "drop"
