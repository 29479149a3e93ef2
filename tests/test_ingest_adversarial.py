"""Adversarial files through the ingestion pipeline: hostile nesting, calendar edges, lone surrogates, stray
quotes, guessed encodings, decimal commas, Parquet BINARY/NaN keys, repeated headers, PII in reports and a file
that keeps crashing. Each case once crashed a file, lost or doubled rows, or changed a value's meaning. In process,
with the in-memory store (the blob side is a small in-memory fake where needed)."""
from __future__ import annotations

import collections
import io
import json
import math
import types
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

from shared.ingest import ingest_file, ledger, parse_mapping
from shared.ingest.ledger import ingestion_id
from shared.settings import Settings
from shared.store import MemoryStore

CUSTOMERS = {"source": "ecommerce", "entity": "customers", "record_key": ["id"],
             "fields": {"given_name": "first", "family_name": "last", "email": "email", "updated_at": "updated"},
             "attributes": ["note"]}
EVENTS = {"source": "web", "entity": "events",
          "fields": {"event_id": "id", "timestamp": "ts", "anonymous_id": "anon", "properties": "props"}}
ORDERS = {"source": "shop", "entity": "transactions",
          "fields": {"order_id": "o", "customer_key": "c", "timestamp": "ts", "amount": "a"}}


def ingest(tmp_path: Path, name: str, data: bytes, mapping: dict, store: MemoryStore | None = None, **kw):
    path = tmp_path / name
    path.write_bytes(data)
    report, outputs = ingest_file(path, parse_mapping(mapping), store=store if store is not None else MemoryStore(),
                                  settings=Settings(), **kw)
    assert report["rows_read"] == report["accepted"] + report["quarantined"] + report["duplicates"], report
    return report, outputs


def reasons_of(outputs) -> dict[int, list[str]]:
    return {e["row"]: [r["code"] for r in e["reasons"]] for e in outputs.quarantine.entries}


def stored(store: MemoryStore) -> list[dict]:
    return list(store.container("activity").query_items())


def pq_bytes(table: pa.Table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------- crashes on bad input

DEEP = "[" * 50_000 + "]" * 50_000  # 100 KB: well under the 1 MB line cap


@pytest.mark.parametrize("name, data, mapping", [
    ("deep.jsonl", ('{"id": "1", "first": "Ann"}\n' + DEEP + '\n{"id": "2", "first": "Bo"}\n').encode(), CUSTOMERS),
    ("deep_value.jsonl", ('{"id": "1", "first": "Ann"}\n{"id": "2", "note": ' + DEEP + '}\n').encode(), CUSTOMERS),
    ("deep.json", ('[{"id": "1", "first": "Ann"}, ' + DEEP + ', {"id": "2", "first": "Bo"}]').encode(), CUSTOMERS),
    ("deep_props.csv", ('id,ts,anon,props\ne1,2024-01-01T00:00:00,a1,{}\ne2,2024-01-01T00:00:00,a2,"'
                        + "[" * 15_000 + "]" * 15_000 + '"\n').encode(), EVENTS),
    # 500 levels: json.loads copes, but pydantic's serializer (content_hash) raises ValueError past ~255
    ("deep_props.jsonl", ('{"id": "e1", "ts": "2024-01-01T00:00:00", "anon": "a1"}\n{"id": "e2", "ts": '
                          '"2024-01-01T00:00:00", "anon": "a2", "props": {"x": ' + "[" * 500 + "]" * 500
                          + '}}\n').encode(), EVENTS),
])
def test_deeply_nested_json_is_a_reason_not_a_crash(tmp_path, name, data, mapping):
    """One hostile line (deeply nested JSON) must be quarantined (or fail the file with a reason); today
    json.loads raises RecursionError, which is neither ValueError nor FileError, and escapes the worker."""
    report, outputs = ingest(tmp_path, name, data, mapping)
    if report["status"] == "failed":
        assert report["error"]["code"]
    else:
        assert report["accepted"] >= 1 and report["quarantined"] >= 1, report


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_timestamp_with_offset_at_the_calendar_edge_is_a_reason_not_a_crash(tmp_path, value):
    """astimezone(utc) of year 1 (+01:00) or year 9999 (-01:00) overflows: OverflowError escapes map_row."""
    data = (json.dumps({"id": "1", "first": "Ann", "updated": value}) + "\n"
            + json.dumps({"id": "2", "first": "Bo"}) + "\n").encode()
    report, outputs = ingest(tmp_path, "edge.jsonl", data, CUSTOMERS)
    assert (report["accepted"], report["quarantined"]) == (1, 1), report
    assert reasons_of(outputs)[1] in (["date_out_of_range"], ["invalid_date"])


def test_naive_year_one_timestamp_in_a_mapping_time_zone_is_a_reason_not_a_crash(tmp_path):
    mapping = {**CUSTOMERS, "timezone": "Europe/Berlin"}
    data = b'{"id": "1", "updated": "0001-01-01T00:00:00"}\n{"id": "2", "first": "Bo"}\n'
    report, _ = ingest(tmp_path, "edge.jsonl", data, mapping)
    assert (report["accepted"], report["quarantined"]) == (1, 1), report


@pytest.mark.parametrize("line", [
    '{"id": "C1\\ud83d", "first": "Ann"}',  # a key cut in the middle of an emoji (UTF-16 code units)
    '{"id": "C1", "first": "Ann", "note": "loves \\ud83d"}',  # an attribute cut the same way
])
def test_lone_surrogate_from_a_json_escape_is_quarantined_not_a_crash(tmp_path, line):
    """JSON may escape a lone UTF-16 surrogate (JS truncating a string mid-emoji). has_bad_encoding only knows
    the surrogateescape range, so the value passes; then key.encode() (mapping.py) or part.encode()
    (messages.py) raises UnicodeEncodeError and the whole file crashes."""
    data = (line + "\n" + '{"id": "C2", "first": "Bo"}\n').encode()
    report, outputs = ingest(tmp_path, "surrogate.jsonl", data, CUSTOMERS)
    assert (report["accepted"], report["quarantined"]) == (1, 1), report
    assert [r.record_key for r in outputs.customers.records] == ["C2"]


def test_parquet_binary_attribute_with_invalid_utf8_does_not_crash(tmp_path):
    """A BINARY Parquet column kept as an attribute: bytes reach the model, and content_hash's JSON dump raises
    UnicodeDecodeError for the whole file."""
    mapping = {"source": "loyalty", "entity": "customers", "record_key": ["member_id"],
               "fields": {"email": "email"}, "attributes": ["tier"]}
    table = pa.table({"member_id": ["M1", "M2"], "email": ["m1@shopmail.net", "m2@shopmail.net"],
                      "tier": pa.array([b"gold", b"\xff\xfe"], pa.binary())})
    report, _ = ingest(tmp_path, "members.parquet", pq_bytes(table), mapping)
    assert report["rows_read"] == 2 and report["accepted"] >= 1, report


@pytest.mark.parametrize("options", [{"delimiter": ";;"}, {"quotechar": ""}, {"delimiter": "'", "quotechar": "'"}])
def test_mapping_with_an_unusable_delimiter_or_quotechar_is_rejected_when_loaded(options):
    """`"delimiter": ";;"` (or quotechar "") passed the Mapping model, then csv raised TypeError on every file of
    the source: a crash loop instead of invalid_mapping (resolve_mapping turns the ValueError into that)."""
    with pytest.raises(ValueError, match="delimiter|quotechar"):
        parse_mapping({**CUSTOMERS, **options})


def test_mapping_delimiter_tab_is_read_as_a_tab(tmp_path):
    """A delimiter of "tab" once looked like a value to reject; it is the obvious way to write a tab in JSON
    config, so it is accepted as one (like "\\t", which the reader already understood)."""
    report, outputs = ingest(tmp_path, "tabs.csv", b"id\tfirst\n1\tAnn\n", {**CUSTOMERS, "delimiter": "tab"})
    assert report["status"] == "completed" and [r.given_name for r in outputs.customers.records] == ["Ann"], report


# ------------------------------------------------------------------------------------------- rows lost or doubled


def test_a_stray_quote_does_not_swallow_the_rest_of_the_file(tmp_path):
    """One unbalanced quote on data row 2 makes the csv reader read every following line as part of that field
    (strict=False, 256 MB field limit): 2,997 valid rows become one quarantined row whose raw value is cut to
    1000 characters. They are neither accepted nor quarantined, and cannot be replayed from the quarantine."""
    body = "".join(f"{i},N{i},L{i},n{i}@shopmail.net\n" for i in range(3, 3000))
    data = ("id,first,last,email\n1,Ann,Lee,ann@shopmail.net\n2,\"Bob,Ray,bob@shopmail.net\n" + body).encode()
    report, outputs = ingest(tmp_path, "stray_quote.csv", data, CUSTOMERS)
    assert report["rows_read"] == 2999, report
    assert (report["accepted"], report["quarantined"]) == (2998, 1), report


def test_an_order_moved_to_another_customer_in_one_file_is_stored_once(tmp_path):
    """Activity ids are stable (transaction:<source>:<order id>) but stored per owner partition: when the same
    file names the order with a different customer, a second document with the same id landed in the other
    partition and the order was counted twice (revenue, churn features). The last row wins."""
    store = MemoryStore()
    ingest(tmp_path, "day3.csv", b"o,c,ts,a\nO2,C1,2024-01-02T10:00:00,5.00\nO2,C3,2024-01-02T10:00:00,5.00\n",
           ORDERS, store)
    assert [(d["id"], d["customer_key"]) for d in stored(store)] == [("transaction:shop:O2", "C3")]


def test_an_order_moved_to_another_customer_by_a_later_file_is_not_stored_twice(tmp_path):
    store = MemoryStore()
    ingest(tmp_path, "day1.csv", b"o,c,ts,a\nO1,C1,2024-01-01T10:00:00,10.00\n", ORDERS, store)
    ingest(tmp_path, "day2.csv", b"o,c,ts,a\nO1,C2,2024-01-01T10:00:00,10.00\n", ORDERS, store)
    assert [(d["id"], d["customer_key"]) for d in stored(store)] == [("transaction:shop:O1", "C2")]


DAY1 = b"o,c,ts,a\nO1,C1,2024-01-01T10:00:00,10.00\nO2,C1,2024-01-01T11:00:00,5.00\n"
DAY2 = b"o,c,ts,a\nO1,C2,2024-01-01T10:00:00,10.00\nO2,C1,2024-01-01T11:00:00,5.00\n"  # O1 moves, O2 stays


def placed(store) -> list[tuple[str, str]]:
    """(activity id, owner) of every stored activity doc, and the same from the owner entries: equal when each id
    is stored once and its entry names where."""
    docs = sorted((d["id"], d["owner"]) for d in store.container("activity").query_items())
    entries = sorted((e["id"], e["owner"]) for e in store.container("activity_owners").query_items())
    assert docs == entries, (docs, entries)
    return docs


def test_a_move_across_files_and_across_the_write_buffer_leaves_one_copy_on_both_stores(tmp_path, store, monkeypatch):
    """The same on the in-memory store and on Cosmos DB (the emulator): a later file moves O1 from C1 to C2, and
    within one file a row beyond the write buffer (3 rows here) moves O3 back, after O3 was flushed under C2."""
    monkeypatch.setattr("shared.ingest.sinks.ACTIVITY_BUFFER", 3)
    ingest(tmp_path, "day1.csv", DAY1, ORDERS, store)
    report, _ = ingest(tmp_path, "day2.csv", DAY2, ORDERS, store)
    assert report["activity_moved"] == 1, report
    rows = "".join(f"{o},{c},2024-01-02T10:00:00,1.00\n" for o, c in
                   [("O3", "C2"), ("O4", "C2"), ("O5", "C2"), ("O6", "C2"), ("O3", "C1")])
    report, _ = ingest(tmp_path, "day3.csv", b"o,c,ts,a\n" + rows.encode(), ORDERS, store)
    assert report["activity_moved"] == 1 and report["activity_saved"] == 5, report
    assert placed(store) == [("transaction:shop:O1", "shop|C2"), ("transaction:shop:O2", "shop|C1"),
                             ("transaction:shop:O3", "shop|C1"), ("transaction:shop:O4", "shop|C2"),
                             ("transaction:shop:O5", "shop|C2"), ("transaction:shop:O6", "shop|C2")]


def test_an_order_moved_beyond_the_1000_row_write_buffer_of_the_same_file_is_stored_once(tmp_path):
    filler = "".join(f"F{i},C9,2024-01-02T10:00:00,1.00\n" for i in range(1000))
    data = ("o,c,ts,a\nO1,C1,2024-01-01T10:00:00,10.00\n" + filler + "O1,C2,2024-01-01T10:00:00,10.00\n").encode()
    store = MemoryStore()
    report, _ = ingest(tmp_path, "big.csv", data, ORDERS, store)
    assert report["activity_moved"] == 1, report
    assert [d["owner"] for d in stored(store) if d["order_id"] == "O1"] == ["shop|C2"]


@pytest.mark.parametrize("mapping, rows", [
    ({"source": "shop", "entity": "reviews", "fields": {"review_id": "r", "customer_key": "c", "timestamp": "ts",
                                                         "rating": "a"}},
     ("r,c,ts,a\nR1,C1,2024-01-01T10:00:00,4\n", "r,c,ts,a\nR1,C2,2024-01-01T10:00:00,4\n")),
    ({"source": "web", "entity": "events", "fields": {"event_id": "e", "anonymous_id": "anon", "customer_key": "c",
                                                       "timestamp": "ts"}},  # anonymous first, then known
     ("e,anon,c,ts\nE1,d1,,2024-01-01T10:00:00\n", "e,anon,c,ts\nE1,d1,C2,2024-01-01T10:00:00\n")),
])
def test_reviews_and_events_moved_by_a_later_file_are_stored_once(tmp_path, mapping, rows):
    store = MemoryStore()
    ingest(tmp_path, "one.csv", rows[0].encode(), mapping, store)
    ingest(tmp_path, "two.csv", rows[1].encode(), mapping, store)
    [(doc_id, owner)] = placed(store)
    assert owner == f"{mapping['source']}|C2", (doc_id, owner)


class CountingStore:
    """Counts the store operations per (container, method) (ReadMany: each id; a batch: each operation)."""

    def __init__(self, store):
        self._store = store
        self.ops: collections.Counter = collections.Counter()

    def container(self, name: str):
        inner, ops = self._store.container(name), self.ops

        class Counted:
            def __getattr__(self, attr):
                value = getattr(inner, attr)
                if not callable(value) or attr == "partition_key_of":
                    return value

                def call(*args, **kwargs):
                    n = len(args[0]) if attr == "read_items" else len(args[1]) if attr == "execute_batch" else 1
                    ops[(name, attr)] += n
                    ops[(name, attr + " calls")] += 1
                    return value(*args, **kwargs)
                return call
        return Counted()


def test_the_same_file_delivered_again_changes_nothing_and_writes_no_owner_entry(tmp_path):
    store = MemoryStore()
    ingest(tmp_path, "day1.csv", DAY1, ORDERS, store)
    counted = CountingStore(store)
    first, _ = ingest(tmp_path, "day2.csv", DAY2, ORDERS, counted)
    assert first["activity_moved"] == 1
    after = placed(store)
    counted.ops.clear()
    again, _ = ingest(tmp_path, "day2.csv", DAY2, ORDERS, counted)  # redelivered (or landed again)
    assert again["activity_moved"] == 0 and placed(store) == after
    entries = {k: v for k, v in counted.ops.items() if k[0] == "activity_owners"}
    assert entries == {("activity_owners", "read_items"): 2, ("activity_owners", "read_items calls"): 1}, entries
    assert ("activity", "delete_item") not in counted.ops


@pytest.mark.parametrize("container, method", [
    ("activity", "delete_item"),  # before anything changed
    ("activity", "upsert_item"),  # between deleting the old owner's copy and writing the new one
    ("activity_owners", "replace_item"),  # between writing the new copy and its owner entry
])
def test_a_move_cut_off_between_two_writes_is_completed_by_the_retry(tmp_path, container, method):
    from .store_faults import Died, crashing

    store = MemoryStore()
    ingest(tmp_path, "day1.csv", b"o,c,ts,a\nO1,C1,2024-01-01T10:00:00,10.00\n", ORDERS, store)
    day2 = b"o,c,ts,a\nO1,C2,2024-01-01T10:00:00,10.00\n"
    with pytest.raises(Died):
        ingest(tmp_path, "day2.csv", day2, ORDERS, crashing(store, container, method))
    assert len(stored(store)) <= 1, "the order is never stored twice, not even half-way"
    ingest(tmp_path, "day2.csv", day2, ORDERS, store)  # the retry (at-least-once delivery)
    assert placed(store) == [("transaction:shop:O1", "shop|C2")]


def test_a_delete_row_removes_the_order_and_its_owner_entry(tmp_path):
    store = MemoryStore()
    ingest(tmp_path, "day1.csv", DAY1, ORDERS, store)
    ingest(tmp_path, "deletes.csv", b"o,c\nO1,C1\n", ORDERS, store, mode="delete")
    assert placed(store) == [("transaction:shop:O2", "shop|C1")]


# ------------------------------------------------------------------------------------------- values changed in meaning


@pytest.mark.parametrize("people", [
    [("José", "Muñoz"), ("Iñigo", "Peña"), ("María", "Núñez"), ("Begoña", "Ibáñez")],
    [("João", "Simões"), ("Conceição", "Gonçalves")],
    [("Søren", "Ødegård"), ("Åsa", "Ærø")],
])
def test_western_european_single_byte_file_is_not_decoded_as_central_european(tmp_path, people):
    """A cp1252/Latin-1 export (no declared encoding: the README promises detection) is guessed by
    charset-normalizer as cp1250: ñ becomes ń, ã becomes ă, ø becomes ř, Å becomes Ĺ. Every row is accepted,
    with names that no longer match the same people in other sources."""
    text = "id,first,last,email\n" + "".join(f"{i},{first},{last},p{i}@shopmail.net\n"
                                             for i, (first, last) in enumerate(people, 1))
    report, outputs = ingest(tmp_path, "contacts.csv", text.encode("cp1252"), CUSTOMERS)
    got = [(r.given_name, r.family_name) for r in outputs.customers.records]
    assert got == people, (report["encoding"], got)
    assert any("cp1252" in w for w in report["warnings"]), report["warnings"]  # the guess is told


def test_decimal_comma_amounts_are_not_scaled(tmp_path):
    """With "decimal": ",", every "." is deleted as a thousands separator: "12.50" is stored as 1250 (100x), a
    JSON/Parquet number 12.5 as 125, "1,234.50" as 1.2345. Each must be read right or quarantined."""
    mapping = {**ORDERS, "fields": {**ORDERS["fields"], "amount": {"column": "a", "decimal": ","}}}
    store = MemoryStore()
    rows = [{"o": "O1", "c": "C1", "ts": "2024-01-01T10:00:00", "a": "12.50"},
            {"o": "O2", "c": "C1", "ts": "2024-01-01T10:00:00", "a": 12.5},
            {"o": "O3", "c": "C1", "ts": "2024-01-01T10:00:00", "a": "1,234.50"},
            {"o": "O4", "c": "C1", "ts": "2024-01-01T10:00:00", "a": "1.234,50"}]  # the one real comma amount
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    report, outputs = ingest(tmp_path, "orders.jsonl", data, mapping, store)
    amounts = {d["order_id"]: d["amount"] for d in stored(store)}
    assert amounts.get("O4") == 1234.5
    plausible = {"O1": 12.5, "O2": 12.5, "O3": 1234.5}
    wrong = {k: v for k, v in amounts.items() if k in plausible and v != plausible[k]}
    assert not wrong, f"amounts silently changed: {wrong}"


def test_amount_beyond_float_range_is_quarantined_not_stored_as_infinity(tmp_path):
    """Decimal("1e400") is finite, so the row passes; activity_doc stores float(amount) = inf (Cosmos refuses
    Infinity in JSON, in memory it poisons every sum)."""
    store = MemoryStore()
    report, outputs = ingest(tmp_path, "big.csv", b"o,c,ts,a\nO1,C1,2024-01-01T10:00:00,1e400\n"
                                                  b"O2,C1,2024-01-01T10:00:00,9.99\n", ORDERS, store)
    assert all(math.isfinite(d["amount"]) for d in stored(store)), stored(store)
    assert report["quarantined"] == 1 and reasons_of(outputs)[1] == ["invalid_number"], report


def test_parquet_binary_key_column_is_not_keyed_by_its_python_repr(tmp_path):
    """Writers such as Impala/older Spark store strings as BINARY (no UTF8 annotation): the key becomes
    str(b'M1') = "b'M1'", so the member never links to the same key in other files."""
    mapping = {"source": "loyalty", "entity": "customers", "record_key": ["member_id"], "fields": {"email": "email"}}
    table = pa.table({"member_id": pa.array([b"M1", b"M2"], pa.binary()),
                      "email": ["m1@shopmail.net", "m2@shopmail.net"]})
    report, outputs = ingest(tmp_path, "members.parquet", pq_bytes(table), mapping)
    keys = [r.record_key for r in outputs.customers.records]
    assert keys == ["M1", "M2"], keys


def test_parquet_nan_keys_do_not_collapse_different_members_into_one_record(tmp_path):
    """A float key column with NaN: _as_text(nan) is "nan", so every such row becomes source record "nan" (two
    different people are resolved as one record's updates) instead of missing_value:record_key."""
    mapping = {"source": "loyalty", "entity": "customers", "record_key": ["member_id"], "fields": {"email": "email"}}
    table = pa.table({"member_id": [1001.0, float("nan"), float("nan")],
                      "email": ["a@shopmail.net", "b@shopmail.net", "c@shopmail.net"]})
    report, outputs = ingest(tmp_path, "members.parquet", pq_bytes(table), mapping)
    assert [r.record_key for r in outputs.customers.records] == ["1001"], report
    assert report["quarantined"] == 2 and report["reasons"].get("missing_value:record_key") == 2, report


def test_a_repeated_header_line_is_not_accepted_as_a_customer(tmp_path):
    """Two exports concatenated (cat a.csv b.csv): the second header line is accepted as customer "id" named
    "first last" with email "email", and sent to identity resolution."""
    data = b"id,first,last,email\n1,Ann,Lee,ann@shopmail.net\nid,first,last,email\n2,Bo,Ray,bo@shopmail.net\n"
    report, outputs = ingest(tmp_path, "concat.csv", data, CUSTOMERS)
    assert [r.record_key for r in outputs.customers.records] == ["1", "2"], report
    assert report["quarantined"] == 1, report


# ------------------------------------------------------------------------------------------- PII


def test_headerless_file_does_not_put_customer_data_in_the_report(tmp_path):
    """A file without a header row whose first row repeats a value: the duplicate_columns message (report,
    GET /api/ingestions, failed/<path>.report.json) quotes the customer's email."""
    data = b"C1,Ann,ann.lee@shopmail.net,ann.lee@shopmail.net\nC2,Bo,bo@shopmail.net,bo@shopmail.net\n"
    report, _ = ingest(tmp_path, "noheader.csv", data, CUSTOMERS)
    assert report["status"] == "failed"
    assert "shopmail.net" not in json.dumps(report), report["error"]


# ------------------------------------------------------------------------------------------- the blob side


class _FakeBlobClient:
    def __init__(self, service: "_FakeBlobService", container: str, name: str):
        self.service, self.key = service, (container, name)
        self.container_name, self.blob_name = container, name

    def get_blob_properties(self):
        if self.key not in self.service.blobs:
            raise ResourceNotFoundError("gone")
        data, etag = self.service.blobs[self.key]
        return types.SimpleNamespace(etag=etag, size=len(data), last_modified=datetime.now(timezone.utc))

    def download_blob(self, etag=None, match_condition=None, max_concurrency=1):
        if self.key not in self.service.blobs:
            raise ResourceNotFoundError("gone")
        data, current = self.service.blobs[self.key]
        if etag is not None and etag != current:
            raise ResourceModifiedError("changed")
        return types.SimpleNamespace(chunks=lambda: iter([data]), readall=lambda: data)

    def upload_blob(self, data, overwrite=True, **kw):
        self.service.put(*self.key, data if isinstance(data, bytes) else b"".join(data))

    def stage_block(self, block_id, data):
        self.service.staged.setdefault(self.key, {})[block_id] = bytes(data)

    def commit_block_list(self, blocks, **kw):
        staged = self.service.staged.pop(self.key, {})
        self.service.put(*self.key, b"".join(staged[b.id] for b in blocks))


class _FakeBlobService:
    def __init__(self):
        self.blobs: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.staged: dict = {}
        self.n = 0

    def put(self, container: str, name: str, data: bytes) -> str:
        self.n += 1
        etag = f'"0x{self.n:04d}"'
        self.blobs[(container, name)] = (data, etag)
        return etag

    def get_blob_client(self, container: str, name: str) -> _FakeBlobClient:
        return _FakeBlobClient(self, container, name)

    def get_container_client(self, container: str):
        return types.SimpleNamespace(get_blob_client=lambda name: _FakeBlobClient(self, container, name))


GOOD_LINE = '{"messageId": "m%d", "type": "track", "event": "Page", "timestamp": "2024-01-01T10:00:00Z", ' \
            '"anonymousId": "a%d"}\n'


@pytest.fixture
def crashing_landing(monkeypatch):
    """The blob side with a fake service, where ingesting any blob named bad* raises (a code defect)."""
    import shared.storage
    from shared.ingest import landing, replay

    service = _FakeBlobService()
    monkeypatch.setattr(shared.storage, "blob_service", lambda settings=None, *a, **kw: service)
    monkeypatch.setattr(replay, "blob_service", lambda settings=None, *a, **kw: service)
    real_run = landing._run

    def run(client, name, *args, **kw):
        if name.rsplit("/", 1)[-1].startswith("bad"):
            raise RuntimeError("a defect in the code")
        return real_run(client, name, *args, **kw)

    monkeypatch.setattr(landing, "_run", run)
    settings = Settings()
    bad = "ecommerce/events/2024/bad.jsonl"
    service.put(settings.landing_container, bad, (GOOD_LINE % (1, 1)).encode())
    return types.SimpleNamespace(service=service, settings=settings, store=MemoryStore(), bad=bad)


def test_one_crashing_file_does_not_stop_the_timer_resuming_the_others(crashing_landing):
    """resume_stale_ingestions caught only IngestionBusy: the first stale file whose ingestion raised aborted the
    loop, and since the same file is first again every 5 minutes, a crashed worker's good file was never finished.
    (Deeply nested JSON, which used to trigger this, no longer crashes; the crash is injected.)"""
    from shared.ingest import ingest_blob, resume_stale_ingestions

    service, settings, store = crashing_landing.service, crashing_landing.settings, crashing_landing.store
    with pytest.raises(RuntimeError):  # the host retries, then gives up; the report stays `processing`
        ingest_blob(f"{settings.landing_container}/{crashing_landing.bad}", settings=settings, store=store)

    good = "ecommerce/events/2024/good.jsonl"  # a worker died on this one after the host's last retry
    etag = service.put(settings.landing_container, good, (GOOD_LINE % (2, 2) + GOOD_LINE % (3, 3)).encode())
    orphan = ledger.new_report(ingestion_id(f"{settings.landing_container}/{good}", etag), blob=good,
                               container=settings.landing_container, etag=etag)
    orphan["lease_until"] = "2000-01-01T00:00:00.000Z"
    store.container("ledger").create_item(orphan)

    resume_stale_ingestions(settings=settings, store=store)
    report = ledger.get_ingestion(store, orphan["id"])
    assert report["status"] == "completed" and report["accepted"] == 2, report


def test_a_file_that_keeps_crashing_is_closed_as_failed_and_kept_for_replay(crashing_landing):
    """Without a limit the crashing file stays `processing` forever, retried every run, its rows neither accepted
    nor quarantined; after MAX_ATTEMPTS it is closed as failed (crashed) and copied to failed/ like other failures."""
    from shared.ingest import ingest_blob, resume_stale_ingestions
    from shared.ingest.landing import MAX_ATTEMPTS

    service, settings, store = crashing_landing.service, crashing_landing.settings, crashing_landing.store
    path = f"{settings.landing_container}/{crashing_landing.bad}"
    with pytest.raises(RuntimeError):
        ingest_blob(path, settings=settings, store=store)
    doc_id = ingestion_id(path, service.blobs[(settings.landing_container, crashing_landing.bad)][1])
    for _ in range(MAX_ATTEMPTS - 1):  # each run takes the file over once more and crashes again
        assert resume_stale_ingestions(settings=settings, store=store) == []
        assert ledger.get_ingestion(store, doc_id)["status"] == "processing"
    [report] = resume_stale_ingestions(settings=settings, store=store)
    assert report["status"] == "failed" and report["error"]["code"] == "crashed", report
    assert "RuntimeError" in report["error"]["message"]
    assert report["failed_blob"] == f"{settings.failed_container}/{crashing_landing.bad}"
    assert (settings.failed_container, crashing_landing.bad) in service.blobs
    assert (settings.failed_container, crashing_landing.bad + ".report.json") in service.blobs
    assert resume_stale_ingestions(settings=settings, store=store) == []  # closed: not retried again
