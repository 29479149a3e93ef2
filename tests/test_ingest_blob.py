"""Ingestion through the blob-triggered function, against Azurite and the Cosmos emulator.

The function is taken from a FunctionApp built here with the ingestion blueprint and called with a real
azure.storage.blob.BlobClient, as the worker builds it for the SDK-type binding; it reads its settings from the
environment."""
from __future__ import annotations

import gzip
import io
import json
import time
import uuid
from pathlib import Path

import azure.functions as func
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared.activity import return_part
from shared.identity.survivorship import utc_text
from shared.ingest import IngestionBusy, decode_message, ledger
from shared.ingest.ledger import ingestion_id
from shared.settings import Settings, get_settings
from shared.storage import blob_service, bootstrap_storage, queue_client
from shared.store.cosmos import CosmosStore
from tests.conftest import settings_env, unique_suffix

FIXTURES = Path(__file__).parent / "fixtures" / "ingest"
HEADER = "customer_no,first,last,dob,mail,tel,addr1,addr2,town,zip,county,house_no,card_no,store_code\n"


def row(key: str, first: str = "Ann", dob: str = "19800214", **kw: str) -> str:
    values = {"last": "Smith", "mail": f"{key.lower()}@example.com", "tel": "07700 900123", "addr1": "High St",
              "addr2": "", "town": "Leeds", "zip": "LS1 4AB", "county": "W Yorks", "house_no": "1",
              "card_no": "", "store_code": "S1", **kw}
    cols = HEADER.strip().split(",")
    values.update(customer_no=key, first=first, dob=dob)
    return ",".join(values[c] for c in cols) + "\n"


@pytest.fixture(scope="module")
def env(local_stack):
    """One set of containers/queues for the module (tests use distinct blob paths), settings via environment."""
    sfx = unique_suffix()
    base = Settings()
    names = {f: f"{getattr(base, f)}-{sfx}" for f in (
        "landing_container", "quarantine_container", "failed_container", "models_container",
        "exports_container", "claims_container", "config_container", "resolve_queue", "activity_queue")}
    settings = base.model_copy(update={**names, "container_prefix": f"t{sfx}-", "max_decompressed_bytes": 2_000_000})
    bootstrap_storage(settings)
    store = CosmosStore(settings.cosmos_endpoint, settings.cosmos_key, settings.cosmos_database,
                        prefix=settings.container_prefix)
    store.bootstrap()
    with pytest.MonkeyPatch.context() as mp:
        for k, v in settings_env(settings).items():
            mp.setenv(k, v)
        get_settings.cache_clear()
        yield settings, store
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def functions():
    from functions.ingest import bp

    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
    app.register_functions(bp)
    return {f.get_function_name(): f.get_user_function() for f in app.get_functions()}


class Landing:
    def __init__(self, settings: Settings, store, functions):
        self.settings, self.store, self.functions = settings, store, functions
        self.service = blob_service(settings)
        self.run = uuid.uuid4().hex[:6]

    def upload(self, path: str, data: bytes) -> str:
        self.service.get_blob_client(self.settings.landing_container, path).upload_blob(data, overwrite=True)
        return path

    def trigger(self, path: str) -> None:
        """What the host does on the BlobCreated event (the bytes are not what the function reads)."""
        self.functions["ingest_blob"](client=self.service.get_blob_client(self.settings.landing_container, path))

    def report(self, path: str) -> dict:
        etag = self.service.get_blob_client(self.settings.landing_container, path).get_blob_properties().etag
        rid = ingestion_id(f"{self.settings.landing_container}/{path}", etag)
        return self.http("get_ingestion_report", route_params={"ingestion_id": rid})

    def land(self, path: str, data: bytes) -> dict:
        self.upload(path, data)
        self.trigger(path)
        return self.report(path)

    def http(self, name: str, route_params=None, params=None, status: int = 200):
        req = func.HttpRequest(method="GET", url="http://localhost/api/ingestions", body=b"",
                               route_params=route_params or {}, params=params or {})
        resp = self.functions[name](req)
        assert resp.status_code == status, resp.get_body()
        return json.loads(resp.get_body())

    def set_mapping(self, source: str, entity: str, mapping: dict) -> None:
        self.service.get_blob_client(self.settings.config_container, f"sources/{source}.{entity}.json").upload_blob(
            json.dumps(mapping).encode(), overwrite=True)

    def quarantine(self, report: dict) -> list[dict]:
        container, name = report["quarantine_blob"].split("/", 1)
        data = self.service.get_blob_client(container, name).download_blob().readall()
        return [json.loads(line) for line in data.decode().splitlines()]

    def queued(self, report: dict) -> list:
        """Customer records the ingestion put on the resolution queue (peeked, so other tests' stay)."""
        q = queue_client(self.settings.resolve_queue, self.settings)
        records = []
        for msg in q.peek_messages(max_messages=32):
            body = json.loads(msg.content)
            if body.get("ingestion_id") == report["id"] or body.get("claim", "").startswith(report["id"]):
                records += decode_message(msg.content, self.settings)
        return records


@pytest.fixture
def landing(env, functions) -> Landing:
    settings, store = env
    landing = Landing(settings, store, functions)
    landing.set_mapping("pos", "customers", pos_mapping())
    queue_client(settings.resolve_queue, settings).clear_messages()  # peek sees at most 32: start empty
    return landing


def pos_mapping(**extra) -> dict:
    return {**json.loads((FIXTURES / "pos.customers.json").read_text()), **extra}


def check_accounting(report: dict) -> None:
    assert report["rows_read"] == report["accepted"] + report["quarantined"] + report["duplicates"]


# --------------------------------------------------------------------------------------------- happy path


def test_csv_is_ingested_with_exact_accounting_quarantine_and_fanout(landing):
    landing.set_mapping("pos", "customers", pos_mapping())
    path = f"pos/customers/{landing.run}/customers.csv"
    report = landing.land(path, (FIXTURES / "customers.csv").read_bytes())

    assert report["status"] == "completed" and report["mapping"] == f"blob:{landing.settings.config_container}/sources/pos.customers.json"
    assert (report["rows_read"], report["accepted"], report["quarantined"], report["duplicates"]) == (9, 3, 5, 1)
    assert report["reasons"] == {"date_out_of_range:birth_date": 2, "invalid_date:birth_date": 1,
                                 "missing_value:record_key": 1, "column_count": 1}
    quarantined = landing.quarantine(report)
    assert [q["row"] for q in quarantined] == [3, 4, 7, 8, 9]
    assert all(q["file"] == path and q["reasons"] for q in quarantined)
    assert quarantined[0]["raw"]["dob"] == "18950101"

    records = landing.queued(report)
    assert sorted(r.record_key for r in records) == ["C001", "C002", "C005"]
    bob = next(r for r in records if r.record_key == "C002")
    assert bob.address_line1 == "Flat 2\nMill Lane" and bob.phone_region == "GB" and bob.loyalty_id == "L0002"
    # CSV injection: kept as text, flagged in the report, never evaluated or dropped.
    eve = next(r for r in records if r.record_key == "C005")
    assert eve.given_name == '=HYPERLINK("http://x.example")' and eve.attributes == {"store_code": "@SUM(A1)"}
    assert report["flags"] == {"formula_like:given_name": 1, "formula_like:store_code": 1}
    assert report["records_queued"] == 3 and report["messages_sent"] == 1


def test_customer_records_fan_out_in_capped_messages_keeping_a_records_updates_together(landing):
    cap = landing.settings.resolve_batch_records
    keys = [f"F{i:03d}" for i in range(2 * cap + 10)]
    rows = [row(k) for k in keys]
    rows.insert(cap + 5, row(keys[cap - 1], first="Annabel"))  # an update of a record the first message holds
    path = f"pos/customers/{landing.run}/fanout.csv"
    report = landing.land(path, (HEADER + "".join(rows)).encode())
    assert report["accepted"] == len(keys) + 1 and report["messages_sent"] == 3
    q = queue_client(landing.settings.resolve_queue, landing.settings)
    messages = [decode_message(m.content, landing.settings) for m in q.peek_messages(max_messages=32)
                if json.loads(m.content).get("ingestion_id") == report["id"]]
    assert sorted(len(m) for m in messages) == sorted([cap + 1, cap, 10])
    holder = next(m for m in messages if any(r.record_key == keys[cap - 1] for r in m))
    assert [r.given_name for r in holder if r.record_key == keys[cap - 1]] == ["Ann", "Annabel"]  # file order
    assert sorted(r.record_key for m in messages for r in m) == sorted(keys + [keys[cap - 1]])
    # Each message says when its file landed (the blob's last-modified time), which orders versions of a record
    headers = [json.loads(m.content) for m in q.peek_messages(max_messages=32)]
    landed = {h.get("landed_at") for h in headers if h.get("ingestion_id") == report["id"]}
    modified = blob_service(landing.settings).get_blob_client(landing.settings.landing_container, path)
    assert landed == {report["landed_at"]} and report["landed_at"] == utc_text(
        modified.get_blob_properties().last_modified)


def test_redelivered_event_changes_nothing(landing):
    path = f"pos/customers/{landing.run}/again.csv"
    first = landing.land(path, (HEADER + row("R1") + row("R2")).encode())
    queued_before = len(landing.queued(first))
    landing.trigger(path)  # the same event again (same name, same ETag)
    landing.trigger(path)
    again = landing.report(path)
    assert again == first
    assert len(landing.queued(first)) == queued_before == 2


def test_formats_jsonl_json_array_parquet_and_gzip(landing):
    mapping = pos_mapping()
    mapping.pop("format", None)
    landing.set_mapping("pos", "customers", mapping)
    rows = [{"customer_no": f"J{i}", "first": "Ann", "last": "Lee", "dob": "19800101", "mail": f"j{i}@example.com",
             "tel": "07700900123", "store_code": "S1"} for i in range(5)]
    jsonl = "\n".join(json.dumps(r) for r in rows).encode()
    array = json.dumps(rows).encode()
    table = pa.Table.from_pylist(rows)
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=2)
    csv_gz = gzip.compress((HEADER + "".join(row(f"G{i}") for i in range(5))).encode())
    for name, data, fmt in (("c.jsonl", jsonl, "jsonl"), ("c.json", array, "json"),
                            ("c.parquet", buf.getvalue(), "parquet"), ("c.csv.gz", csv_gz, "csv")):
        report = landing.land(f"pos/customers/{landing.run}/{name}", data)
        assert (report["status"], report["format"], report["accepted"]) == ("completed", fmt, 5), name
    assert report["compression"] == "gzip"


def test_activity_rows_are_stored_and_bad_amounts_quarantined(landing):
    landing.set_mapping("shop", "transactions", {
        "source": "shop", "entity": "transactions",
        "fields": {"order_id": "order", "customer_key": "cust", "timestamp": {"column": "ts", "format": "%Y-%m-%d %H:%M"},
                   "amount": "total", "kind": "type", "currency": "cur"}})
    csv_text = ("order,cust,ts,total,type,cur\n"
                "O1,C1,2024-01-05 10:00,19.99,purchase,GBP\n"
                "O2,C1,2024-02-05 10:00,-5.00,purchase,GBP\n"
                "O3,C2,2024-02-06 11:00,abc,purchase,GBP\n"
                "O4,C2,2024-02-07 12:00,-7.50,return,GBP\n"
                "O5,C2,2124-02-07 12:00,7.50,purchase,GBP\n")
    report = landing.land(f"shop/transactions/{landing.run}/orders.csv", csv_text.encode())
    check_accounting(report)
    assert (report["accepted"], report["quarantined"]) == (2, 3)
    assert report["reasons"] == {"negative_amount:amount": 1, "invalid_number:amount": 1,
                                 "date_out_of_range:timestamp": 1}
    assert report["activity_saved"] == 2
    docs = list(landing.store.container("activity").query_items(partition_key="shop|C2"))
    assert [(d["id"], d["amount"]) for d in docs] == [("transaction-return:shop:O4:" + return_part(docs[0]), -7.5)]


# --------------------------------------------------------------------------------------------- bad input


def test_empty_file_fails_with_reason_and_goes_to_failed(landing):
    path = f"pos/customers/{landing.run}/empty.csv"
    report = landing.land(path, b"")
    assert report["status"] == "failed" and report["error"]["code"] == "empty_file"
    assert report["failed_blob"] == f"{landing.settings.failed_container}/{path}"
    failed = landing.service.get_blob_client(landing.settings.failed_container, path)
    assert failed.get_blob_properties().metadata["reason"] == "empty_file"
    sidecar = landing.service.get_blob_client(landing.settings.failed_container, f"{path}.report.json")
    assert json.loads(sidecar.download_blob().readall())["error"]["code"] == "empty_file"


def test_header_only_completes_with_zero_rows_and_a_warning(landing):
    report = landing.land(f"pos/customers/{landing.run}/header.csv", HEADER.encode())
    assert report["status"] == "completed" and report["rows_read"] == 0
    assert any("header only" in w for w in report["warnings"])
    assert report["quarantine_blob"] is None


def test_wrong_delimiter_fails_naming_the_likely_delimiter(landing):
    landing.set_mapping("semi", "customers", {**pos_mapping(), "source": "semi", "delimiter": ","})
    text = (HEADER + row("S1")).replace(",", ";")
    report = landing.land(f"semi/customers/{landing.run}/semi.csv", text.encode())
    assert report["status"] == "failed" and report["error"]["code"] == "missing_columns"
    assert "';'" in report["error"]["message"]


def test_missing_required_column_fails_the_file(landing):
    text = HEADER.replace("customer_no,", "") + row("X1").split(",", 1)[1]
    report = landing.land(f"pos/customers/{landing.run}/nokey.csv", text.encode())
    assert report["status"] == "failed" and report["error"]["code"] == "missing_columns"
    assert "customer_no" in report["error"]["message"]


def test_extra_columns_are_reported_not_fatal(landing):
    text = HEADER.strip() + ",shoe_size,notes\n" + row("E1").strip() + ",42,hello\n"
    report = landing.land(f"pos/customers/{landing.run}/extra.csv", text.encode())
    assert report["status"] == "completed" and report["accepted"] == 1
    assert report["unmapped_columns"] == ["notes", "shoe_size"]


def test_invalid_utf8_row_is_quarantined_others_accepted(landing):
    data = (HEADER + row("U1", first="José")).encode() + row("U2", first="Jos\xe9").encode("latin-1") \
        + (row("U3", first="Zoë")).encode()
    report = landing.land(f"pos/customers/{landing.run}/utf8.csv", data)
    check_accounting(report)
    assert (report["accepted"], report["quarantined"]) == (2, 1)
    assert report["reasons"] == {"invalid_encoding:given_name": 1}
    assert landing.quarantine(report)[0]["raw"]["first"] == "Jos\\xe9"


def test_ten_megabyte_field_is_quarantined(landing):
    data = (HEADER + row("B1") + row("B2", first="x" * 10_000_000) + row("B3")).encode()
    report = landing.land(f"pos/customers/{landing.run}/big.csv", data)
    check_accounting(report)
    assert (report["accepted"], report["quarantined"]) == (2, 1)
    assert list(report["reasons"]) == ["row_too_large"]
    entry = landing.quarantine(report)[0]
    assert entry["row"] == 2 and len(json.dumps(entry)) < 20_000


def test_gzip_bomb_is_capped_and_reported(landing):
    rows = "".join(row(f"Z{i}") for i in range(40_000))  # ~4 MB of text, the cap is 2 MB
    path = f"pos/customers/{landing.run}/bomb.csv.gz"
    report = landing.land(path, gzip.compress((HEADER + rows).encode(), 9))
    assert report["status"] == "failed" and report["error"]["code"] == "decompressed_size_exceeded"
    check_accounting(report)
    assert 0 < report["rows_read"] < 40_000 and report["error"]["after_row"] == report["rows_read"]
    assert report["failed_blob"].endswith(path)


def test_dates_in_future_or_before_1900_are_reasons(landing):
    data = HEADER + row("D1", dob="18991231") + row("D2", dob="20990101") + row("D3", dob="19000101")
    report = landing.land(f"pos/customers/{landing.run}/dates.csv", data.encode())
    assert report["reasons"] == {"date_out_of_range:birth_date": 2} and report["accepted"] == 1


def test_duplicated_rows_within_a_file_are_counted(landing):
    data = HEADER + row("P1") + row("P1") + row("P1") + row("P1", first="Anne")
    report = landing.land(f"pos/customers/{landing.run}/dupes.csv", data.encode())
    assert (report["rows_read"], report["accepted"], report["duplicates"]) == (4, 2, 2)


def test_unknown_source_goes_to_failed(landing):
    report = landing.land(f"nosuch/customers/{landing.run}/x.csv", (HEADER + row("N1")).encode())
    assert report["status"] == "failed" and report["error"]["code"] == "unknown_source"
    assert "nosuch" in report["error"]["message"] and report["failed_blob"]


def test_bad_path_and_entity_go_to_failed(landing):
    report = landing.land(f"pos/widgets/{landing.run}/x.csv", b"a\n1\n")
    assert report["error"]["code"] == "unknown_entity"


# --------------------------------------------------------------------------------------------- fan-out, deletes


def test_oversize_record_goes_through_a_claim_check_blob(landing):
    big = "y" * 50_000  # under max_field_bytes (64 KB), over one queue message
    data = HEADER + row("K1") + row("K2", store_code=big)
    report = landing.land(f"pos/customers/{landing.run}/claim.csv", data.encode())
    assert report["accepted"] == 2 and report["claim_blobs"] == 1 and report["messages_sent"] == 2
    records = landing.queued(report)
    assert sorted(r.record_key for r in records) == ["K1", "K2"]
    assert next(r for r in records if r.record_key == "K2").attributes["store_code"] == big
    q = queue_client(landing.settings.resolve_queue, landing.settings)
    assert all(len(m.content.encode()) < 48_000 for m in q.peek_messages(max_messages=32))


def test_incremental_deletes_remove_the_record_from_its_profile(landing):
    from shared.identity import resolve_records
    from shared.models import CustomerRecord

    key = f"DEL{landing.run}"
    records = [CustomerRecord(source="pos", record_key=k, given_name="Ann", family_name="Smith",
                              email=f"{key.lower()}@mailbox.co.uk", city="Leeds", postcode="LS1 4AB")
               for k in (key, f"{key}b")]
    profile_id = resolve_records(landing.store, records, settings=landing.settings)[0].profile_id
    profiles = landing.store.container("profiles")

    def keys() -> list[str]:
        return sorted(r["key"] for r in profiles.read_item(profile_id, profile_id)["records"])

    assert keys() == [f"pos|{key}", f"pos|{key}b"]
    path = f"pos/customers/IncrementalData/2024/05/01/10/Deletes/{landing.run}.csv"
    report = landing.land(path, f"customer_no\n{key}\n{key}\n".encode())
    assert report["mode"] == "delete" and report["status"] == "completed"
    assert (report["rows_read"], report["deleted"], report["duplicates"]) == (2, 1, 1)
    assert keys() == [f"pos|{key}b"]


def test_a_delete_overtaking_its_records_queued_upsert_keeps_it_deleted(landing):
    """An upserts file is still queued for resolution when a deletes file naming its record lands (deletes are
    applied as their file is read): the queued message, resolved after the delete, does not bring the record back.
    A file that lands after the delete does."""
    from shared.identity.worker import handle_resolve_message

    key, folder = f"Q{landing.run}", "pos/customers/IncrementalData/2024/05/01/10"
    records = landing.store.container("records")

    def resolve_queued(report: dict) -> dict:
        q = queue_client(landing.settings.resolve_queue, landing.settings)
        message, = [m for m in q.peek_messages(max_messages=32)
                    if json.loads(m.content)["ingestion_id"] == report["id"]]
        return handle_resolve_message(message.content, store=landing.store, settings=landing.settings)

    upserts = landing.land(f"{folder}/Upserts/{landing.run}.csv", (HEADER + row(key)).encode())
    deletes = landing.land(f"{folder}/Deletes/{landing.run}.csv", f"customer_no\n{key}\n".encode())
    assert (upserts["messages_sent"], deletes["deleted"]) == (1, 1)
    assert resolve_queued(upserts) == {"unchanged": 1}
    tombstone = records.read_item(f"pos|{key}", f"pos|{key}")
    assert tombstone["profile_id"] is None and tombstone["landed_at"] == deletes["landed_at"]

    time.sleep(1.1)  # a blob's last-modified time counts whole seconds
    again = landing.land(f"{folder}/Upserts/{landing.run}-again.csv", (HEADER + row(key)).encode())
    assert again["landed_at"] > deletes["landed_at"] and resolve_queued(again) in ({"created": 1}, {"linked": 1})
    assert records.read_item(f"pos|{key}", f"pos|{key}")["profile_id"]


def test_incremental_upserts_are_ingested(landing):
    path = f"pos/customers/IncrementalData/2024/05/01/10/Upserts/{landing.run}.csv"
    report = landing.land(path, (HEADER + row("I1")).encode())
    assert report["mode"] == "upsert" and report["accepted"] == 1


# --------------------------------------------------------------------------------------------- ledger


def test_crashed_attempt_is_taken_over_and_live_lease_is_respected(landing):
    path = f"pos/customers/{landing.run}/crash.csv"
    landing.upload(path, (HEADER + row("W1") + row("W2")).encode())
    client = landing.service.get_blob_client(landing.settings.landing_container, path)
    name = f"{landing.settings.landing_container}/{path}"
    etag = client.get_blob_properties().etag
    doc = ledger.new_report(ingestion_id(name, etag), blob=path, container=landing.settings.landing_container,
                            etag=etag)
    doc["rows_read"] = 1  # what the crashed attempt had counted
    landing.store.container("ledger").create_item(doc)
    with pytest.raises(IngestionBusy):  # its lease is still live: the host must retry later
        landing.trigger(path)
    stale = landing.store.container("ledger").read_item(doc["id"], doc["id"])
    stale["lease_until"] = "2000-01-01T00:00:00.000Z"
    landing.store.container("ledger").replace_item(stale)
    landing.trigger(path)
    report = landing.report(path)
    assert report["status"] == "completed" and report["attempt"] == 2
    assert (report["rows_read"], report["accepted"]) == (2, 2)  # recounted, not added to the crashed counts


def test_list_is_newest_first_and_paginates(landing):
    ids = [landing.land(f"pos/customers/{landing.run}/list{i}.csv", (HEADER + row(f"L{i}")).encode())["id"]
           for i in range(3)]
    seen, token = [], None
    for _ in range(50):
        page = landing.http("list_ingestion_reports", params={"limit": "2", **({"continuation": token} if token else {})})
        assert len(page["items"]) <= 2
        seen += [r["id"] for r in page["items"]]
        token = page["continuation"]
        if not token:
            break
    assert len(seen) == len(set(seen))
    positions = [seen.index(i) for i in ids]
    assert positions == sorted(positions, reverse=True)  # newest first
    landing.http("get_ingestion_report", route_params={"ingestion_id": "ing_nope"}, status=404)
    landing.http("list_ingestion_reports", params={"limit": "0"}, status=400)


def test_timer_resumes_a_crashed_ingestion_whose_retries_ran_out(landing):
    from azure.functions.timer import TimerRequest

    def stale_claim(path: str, etag: str) -> dict:
        name = f"{landing.settings.landing_container}/{path}"
        doc = ledger.new_report(ingestion_id(name, etag), blob=path, container=landing.settings.landing_container,
                                etag=etag)
        doc["lease_until"] = "2000-01-01T00:00:00.000Z"
        return landing.store.container("ledger").create_item(doc)

    path = f"pos/customers/{landing.run}/orphan.csv"
    landing.upload(path, (HEADER + row("O1")).encode())
    etag = landing.service.get_blob_client(landing.settings.landing_container, path).get_blob_properties().etag
    orphan = stale_claim(path, etag)
    changed = stale_claim(f"pos/customers/{landing.run}/changed.csv", '"0xOLD"')
    landing.upload(f"pos/customers/{landing.run}/changed.csv", (HEADER + row("O2")).encode())

    landing.functions["resume_stale_ingestion"](TimerRequest(past_due=False))
    report = landing.report(path)
    assert report["id"] == orphan["id"] and report["status"] == "completed" and report["accepted"] == 1
    assert report["attempt"] == 2
    closed = landing.http("get_ingestion_report", route_params={"ingestion_id": changed["id"]})
    assert closed["status"] == "failed" and closed["error"]["code"] == "blob_changed"


def test_failed_file_is_replayed_once_its_mapping_exists(landing, capsys):
    """A file of a source nobody mapped yet fails to failed/; once the mapping is there, `ucp replay
    --failed-files` lands it again (a new version, so a new ingestion) and clears it from failed/."""
    from shared.cli import main as ucp

    source = f"shop{landing.run}"
    path = landing.upload(f"{source}/customers/day1.csv", (HEADER + row("R1") + row("R2")).encode())
    landing.trigger(path)
    first = landing.report(path)
    assert first["status"] == "failed" and first["error"]["code"] == "unknown_source"
    assert ucp(["replay", "--failed-files", f"{source}/", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0]) == {"file": path, "reason": "unknown_source",
                                                                    "replayed": False}
    landing.set_mapping(source, "customers", pos_mapping(source=source))
    assert ucp(["replay", "--failed-files", f"{source}/"]) == 0
    landing.trigger(path)
    second = landing.report(path)
    assert second["id"] != first["id"] and second["status"] == "completed" and second["accepted"] == 2
    failed = blob_service(landing.settings).get_container_client(landing.settings.failed_container)
    assert not list(failed.list_blobs(name_starts_with=f"{source}/"))


def test_blob_poison_replay_without_the_queue_is_nothing_to_replay(landing, capsys):
    """The host creates webjobs-blobtrigger-poison at its first give-up, so a healthy system has none:
    `ucp replay --blob-poison` (and --dry-run) then replays 0 blobs, exit 0, no traceback."""
    from azure.core.exceptions import ResourceNotFoundError

    from shared.cli import main as ucp
    from shared.ingest.replay import BLOB_TRIGGER_POISON_QUEUE

    poison = queue_client(BLOB_TRIGGER_POISON_QUEUE, landing.settings, base64=False)
    try:
        poison.delete_queue()
    except ResourceNotFoundError:
        pass
    for dry_run in ([], ["--dry-run"]):
        assert ucp(["replay", "--blob-poison", *dry_run]) == 0
        out, err = capsys.readouterr()
        assert out == "" and err.endswith(" 0 blob(s) the blob trigger gave up on\n"), err
    with pytest.raises(ResourceNotFoundError):  # replay did not create it either
        poison.get_queue_properties()


def test_blob_trigger_poison_is_replayed_and_unreadable_messages_stay(landing, capsys):
    """Messages of webjobs-blobtrigger-poison (JSON, Base64 or not, as hosts write them) name a blob: replay
    lands it again (new ETag, so the trigger fires anew); a message naming no blob stays, reported."""
    import base64

    from shared.cli import main as ucp
    from shared.ingest.replay import BLOB_TRIGGER_POISON_QUEUE

    container = landing.settings.landing_container
    paths = [landing.upload(f"pos/customers/poison-{landing.run}-{i}.csv", (HEADER + row(f"P{i}")).encode())
             for i in range(2)]
    etags = {p: landing.service.get_blob_client(container, p).get_blob_properties().etag for p in paths}
    poison = queue_client(BLOB_TRIGGER_POISON_QUEUE, landing.settings, base64=False)
    try:
        poison.create_queue()
    except Exception:
        pass
    poison.clear_messages()
    bodies = [json.dumps({"Type": "BlobTrigger", "ContainerName": container, "BlobName": p, "Reason": "boom"})
              for p in paths]
    poison.send_message(base64.b64encode(bodies[0].encode()).decode())
    poison.send_message(bodies[1])
    poison.send_message("not json at all")
    assert ucp(["replay", "--blob-poison"]) == 1
    reports = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["blob"] for r in reports if r["replayed"]) == sorted(f"{container}/{p}" for p in paths)
    assert [r["error"] for r in reports if not r["replayed"]] == ["the message names no blob (ContainerName, BlobName)"]
    for p in paths:
        assert landing.service.get_blob_client(container, p).get_blob_properties().etag != etags[p]
        landing.trigger(p)
        assert landing.report(p)["accepted"] == 1
    left = [m.content for m in poison.receive_messages(visibility_timeout=1, max_messages=32)]
    assert left == ["not json at all"]
