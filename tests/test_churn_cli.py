"""`ucp churn train|score` on CSV files, embedded (no services)."""
from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from model_training.churn_synth import simulate
from shared.churn.features import to_epoch
from shared.churn.registry import local_registry
from shared.churn_cli import read_transactions
from shared.cli import main
from tests.test_churn_training import END, FAST

AS_OF = END.date().isoformat()


def write_transactions(path: Path, *, n: int = 650, future: bool = False) -> dict[str, list[dict]]:
    """Renamed columns (needs --mapping), a few bad rows, and optionally rows after the as-of date."""
    data, _ = simulate(n, seed=21, end=END)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["client", "when", "value", "channel", "kind", "note"])
        for cid, acts in data.items():
            for t in acts["transactions"]:
                w.writerow([cid, t["timestamp"], t["amount"], t["channel"], t["kind"], "x"])
        w.writerow(["c-bad", "31/02/2026", "10", "", "", ""])  # bad date
        w.writerow(["c000001", "2026-01-01T00:00:00Z", "ten", "", "", ""])  # bad amount
        w.writerow(["only-returns", "2026-01-01T00:00:00Z", "-5", "store", "return", ""])
        if future:
            w.writerow(["c000001", "2026-07-01T00:00:00Z", "999", "web", "purchase", ""])  # the day after as-of
            w.writerow(["only-future", "2026-08-15T10:00:00Z", "50", "web", "purchase", ""])
    return data


@pytest.fixture
def mapping(tmp_path) -> Path:
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps({"customer_id": "client", "timestamp": "when", "amount": "value"}))
    return path


def run(argv, capsys) -> tuple[int, dict, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip().startswith("{") else {}, err


def train_args(tx: Path, mapping: Path, out: Path) -> list[str]:
    return ["churn", "train", "--transactions", str(tx), "--as-of", AS_OF, "--window-days", "90",
            "--out", str(out), "--mapping", str(mapping), "--cv-folds", "3", "--models", ",".join(FAST["candidates"]),
            "--snapshots", str(FAST["snapshots"])]


def test_train_then_score_on_files(tmp_path, mapping, capsys, monkeypatch):
    tx = tmp_path / "tx.csv"
    data = write_transactions(tx, future=True)
    code, report, _ = run(train_args(tx, mapping, tmp_path / "models"), capsys)
    assert code == 0 and report["status"] == "published"
    assert report["input"]["rejected"] == 2 and report["input"]["after_as_of"] == 2
    assert report["as_of"].startswith("2026-07-01T00:00:00")  # the end of the as-of day
    pointer = local_registry(tmp_path / "models").latest()[0]
    assert pointer["version"] == report["challenger"]["version"]

    scores_csv = tmp_path / "out" / "scores.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "shared.cli", "churn", "score", "--transactions", str(tx), "--model",
         str(tmp_path / "models"), "--as-of", AS_OF, "--out", str(scores_csv), "--mapping", str(mapping)],
        capture_output=True, text=True, check=True)
    summary = json.loads(proc.stdout)
    with open(scores_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["customer_id", "churn_score", "churn_risk"]
    ids = [r["customer_id"] for r in rows]
    assert ids == sorted(data)  # every customer with a purchase on or before the as-of date, and nobody else
    assert summary["scored"] == len(rows) and summary["model_version"] == pointer["version"]
    for r in rows:
        score = float(r["churn_score"])
        assert 0 < score < 1
        assert r["churn_risk"] == ("high" if score >= 0.7 else "medium" if score >= 0.4 else "low")


def test_training_ignores_rows_after_the_as_of_date(tmp_path, mapping, capsys):
    with_future, without = tmp_path / "a.csv", tmp_path / "b.csv"
    write_transactions(with_future, future=True)
    write_transactions(without, future=False)
    _, a, _ = run(train_args(with_future, mapping, tmp_path / "ma"), capsys)
    _, b, _ = run(train_args(without, mapping, tmp_path / "mb"), capsys)
    assert a["status"] == b["status"] == "published"
    assert a["challenger"]["roc_auc"] == b["challenger"]["roc_auc"] and a["data"] == b["data"]


def test_too_little_data_is_refused_with_a_reason(tmp_path, mapping, capsys):
    tx = tmp_path / "small.csv"
    write_transactions(tx, n=60)
    code, report, err = run(train_args(tx, mapping, tmp_path / "models"), capsys)
    assert code == 1 and report["status"] == "refused" and "at least 500" in err
    assert local_registry(tmp_path / "models").read_run(report["run_id"])["status"] == "refused"


def test_missing_columns_and_missing_model_are_clear_errors(tmp_path, capsys):
    tx = tmp_path / "tx.csv"
    tx.write_text("id,ts\n1,2026-01-01\n")
    assert main(["churn", "score", "--transactions", str(tx), "--model", str(tmp_path / "none"),
                 "--as-of", AS_OF, "--out", str(tmp_path / "s.csv")]) == 2
    assert "no model.onnx" in capsys.readouterr().err
    assert main(["churn", "train", "--transactions", str(tx), "--as-of", AS_OF, "--out", str(tmp_path / "m")]) == 2
    assert "missing column(s) customer_id, timestamp, amount" in capsys.readouterr().err


def test_an_ingestion_mappings_timestamp_format_is_used(tmp_path):
    """`--mapping` accepts an ingestion mapping: the timestamp field's own format (pos.transactions.json:
    {"column": "txn_time", "format": "%d/%m/%Y %H:%M"}) parses the POS file, instead of rejecting every row."""
    tx = tmp_path / "receipts.csv"
    tx.write_text("receipt_no,customer_no,txn_time,total,currency,type,channel,store_id,category\n"
                  "R1,42,30/09/2026 14:05,10.00,EUR,purchase,store,S1,shoes\n"
                  "R2,42,01/10/2026 09:00,-4.00,EUR,return,store,S1,shoes\n")
    mapping = Path(__file__).resolve().parents[1] / "config" / "sources" / "pos.transactions.json"
    assert json.loads(mapping.read_text())["fields"]["timestamp"]["format"] == "%d/%m/%Y %H:%M"
    per_customer, stats = read_transactions(tx, mapping, as_of=to_epoch("2026-12-31T00:00:00Z"))
    assert stats["rejected"] == 0 and stats["used"] == 2, stats
    assert [t["timestamp"] for t in per_customer["42"]] == [to_epoch("2026-09-30T14:05:00Z"),
                                                            to_epoch("2026-10-01T09:00:00Z")]
    assert [t["kind"] for t in per_customer["42"]] == ["purchase", "return"]


@pytest.mark.parametrize("spec, extra, raw, expected", [
    ({"column": "t", "format": "%Y-%m-%d %H:%M%z"}, {}, "2026-03-01 12:00+0200", "2026-03-01T10:00:00Z"),
    ({"column": "t", "format": "%Y-%m-%d %H:%M"}, {"timezone": "Europe/Berlin"}, "2026-03-01 12:00",
     "2026-03-01T11:00:00Z"),
    ({"column": "t", "format": ["%d/%m/%Y", "epoch_ms"]}, {}, "1772366400000", "2026-03-01T12:00:00Z"),
    ("t", {"timestamp_format": "%d.%m.%Y %H:%M"}, "01.03.2026 12:00", "2026-03-01T12:00:00Z"),
    ("t", {}, "2026-03-01T12:00:00+01:00", "2026-03-01T11:00:00Z"),
])
def test_timestamps_keep_their_offset_and_naive_ones_take_the_mappings_zone(tmp_path, spec, extra, raw, expected):
    tx = tmp_path / "tx.csv"
    tx.write_text(f"c,t,a\nx,{raw},10\n")
    mapping = tmp_path / "m.json"
    mapping.write_text(json.dumps({"fields": {"customer_key": "c", "timestamp": spec, "amount": "a"}, **extra}))
    per_customer, stats = read_transactions(tx, mapping, as_of=to_epoch("2027-01-01T00:00:00Z"))
    assert stats["used"] == 1, stats
    assert per_customer["x"][0]["timestamp"] == to_epoch(expected)


POS_MAPPING = Path(__file__).resolve().parents[1] / "config" / "sources" / "pos.transactions.json"
POS_HEADER = "receipt_no,customer_no,txn_time,total,currency,type,channel,store_id,category\n"


def test_undecodable_rows_are_counted_and_skipped_not_fatal(tmp_path):
    """Latin-1 bytes in a UTF-8 file (the generator's bad_encoding rows) reject their row, as ingestion does;
    the file is read on, and the row numbers are reported."""
    tx = tmp_path / "receipts.csv"
    tx.write_bytes(POS_HEADER.encode() + b"R1,42,30/09/2026 14:05,10.00,EUR,purchase,store,S1,shoes\n"
                   + b"R2,43,30/09/2026 15:05,12.00,EUR,purchase,store,S1,Fran\xe7ois\n"
                   + b"R3,42,01/10/2026 09:00,-4.00,EUR,return,store,S1,shoes\n")
    with pytest.raises(UnicodeDecodeError):
        tx.read_text(encoding="utf-8")
    per_customer, stats = read_transactions(tx, POS_MAPPING, as_of=to_epoch("2026-12-31T00:00:00Z"))
    assert stats["rows"] == 3 and stats["used"] == 2 and stats["rejected"] == 1, stats
    assert stats["rejected_rows"] == [2] and list(per_customer) == ["42"]


def test_the_mappings_encoding_and_delimiter_are_honoured(tmp_path):
    tx = tmp_path / "tx.csv.gz"
    with gzip.open(tx, "wb") as fh:
        fh.write("c;t;a;category\nx;2026-03-01T12:00:00Z;10;Caf\u00e9\n".encode("cp1252"))
    mapping = tmp_path / "m.json"
    mapping.write_text(json.dumps({"encoding": "cp1252", "delimiter": ";",
                                   "fields": {"customer_key": "c", "timestamp": "t", "amount": "a"}}))
    per_customer, stats = read_transactions(tx, mapping, as_of=to_epoch("2027-01-01T00:00:00Z"))
    assert stats["used"] == 1 and stats["rejected"] == 0, stats
    assert per_customer["x"][0]["category"] == "Caf\u00e9"


def test_the_generators_pos_file_is_read_with_its_mapping(tmp_path):
    """README's churn example: `ucp generate` output plus config/sources/pos.transactions.json. Every injected
    bad_encoding row is rejected (not a crash), and good rows are used."""
    generate = pytest.importorskip("shared.generate")
    manifest = generate.generate(tmp_path, generate.GeneratorConfig(customers=200, seed=3, malformed_rate=0.03),
                                 progress=False)
    spec = next(f for f in manifest["files"] if f["path"].startswith("landing/pos/transactions/"))
    assert spec["malformed_kinds"].get("bad_encoding", 0) > 0, spec
    _, stats = read_transactions(tmp_path / spec["path"], POS_MAPPING, as_of=to_epoch("2026-10-01T00:00:00Z"))
    assert stats["rows"] == spec["rows"]
    assert spec["malformed_kinds"]["bad_encoding"] <= stats["rejected"] <= spec["malformed"], stats
    assert stats["used"] + stats["rejected"] + stats["after_as_of"] == stats["rows"]


def test_json_lines_with_the_ecommerce_mapping(tmp_path):
    tx = tmp_path / "orders.jsonl"
    tx.write_text('{"order_id":"O1","customer_id":"10459601247","created_at":"2025-02-11T19:05:59Z","kind":"purchase",'
                  '"source_name":"web","total_price":"12.09","currency":"GBP","main_category":"grocery"}\n'
                  '{"order_id":"O2","customer_id":"10459601247","created_at":"2025-02-12T19:05:59Z",'
                  '"total_price":12.5}\n{"order_id":"O3", broken\n')
    mapping = Path(__file__).resolve().parents[1] / "config" / "sources" / "ecommerce.transactions.json"
    per_customer, stats = read_transactions(tx, mapping, as_of=to_epoch("2026-01-01T00:00:00Z"))
    assert stats["used"] == 2 and stats["rejected"] == 1 and stats["rejected_rows"] == [3], stats
    assert [t["amount"] for t in per_customer["10459601247"]] == [12.09, 12.5]
    assert per_customer["10459601247"][0]["channel"] == "web"


def test_a_line_level_files_lines_of_one_order_are_one_purchase(tmp_path):
    """A POS export with one row per order line: with order_id read, the three lines of O1 are one purchase of
    their total, as the nightly job counts them from stored activity; without it, three purchases."""
    from shared.churn.features import History

    tx = tmp_path / "lines.csv"
    tx.write_text("customer_id,timestamp,amount,order_id\n"
                  "42,2026-09-01T10:00:00Z,10.00,O1\n42,2026-09-01T10:00:00Z,5.50,O1\n"
                  "42,2026-09-01T10:00:00Z,4.50,O1\n42,2026-09-20T10:00:00Z,7.00,O2\n")
    as_of = to_epoch("2026-10-01T00:00:00Z")
    per_customer, stats = read_transactions(tx, None, as_of=as_of)
    assert stats["used"] == 4
    by_order = History.from_docs(per_customer["42"])
    plain = tmp_path / "plain.csv"
    plain.write_text("customer_id,timestamp,amount\n42,2026-09-01T10:00:00Z,20.00\n42,2026-09-20T10:00:00Z,7.00\n")
    whole = History.from_docs(read_transactions(plain, None, as_of=as_of)[0]["42"])
    assert by_order.purchases_before(as_of) == 2
    assert by_order.features(as_of).tolist() == whole.features(as_of).tolist()
