"""`ucp` commands on bad input: a clear one-line error and exit 2, never a traceback; paths holding ":"."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from shared.cli import main

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "config" / "sources"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from shared.generate import GeneratorConfig, generate

    out = tmp_path_factory.mktemp("gen") / "data"
    generate(out, GeneratorConfig(customers=30, seed=1), progress=False)
    return out


@pytest.fixture(scope="module")
def pos_customers(data) -> Path:
    return next((data / "landing" / "pos" / "customers").glob("*.csv"))


@pytest.fixture(scope="module")
def pos_transactions(data) -> Path:
    return next((data / "landing" / "pos" / "transactions").glob("*.csv"))


@pytest.fixture(scope="module")
def events(data) -> Path:
    return next((data / "landing" / "ecommerce" / "events").glob("*.jsonl*"))


def run_cli(argv, capsys) -> tuple[int, str]:
    """main(argv) must return an exit code, not raise (a raise is a traceback for the user)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit:
        raise
    except BaseException as err:  # noqa: BLE001
        command = " ".join(map(str, argv[:2]))
        pytest.fail(f"ucp {command} raised {type(err).__name__}: {err} (a traceback, not an error)")
    return code, capsys.readouterr().err


def assert_clear_error(code: int, err: str) -> None:
    assert code == 2, f"exit code {code}, stderr {err!r}"
    assert "error:" in err and "Traceback" not in err


# --- ucp resolve -------------------------------------------------------------------------------------
def test_resolve_empty_input_file_is_a_clear_error(tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    code, err = run_cli(["resolve", f"{empty}:{SOURCES / 'pos.customers.json'}", "--out", tmp_path / "o.csv",
                         "--no-progress"], capsys)
    assert_clear_error(code, err)


def test_resolve_mapping_that_does_not_match_the_file_is_a_clear_error(tmp_path, pos_customers, capsys):
    # the crm mapping expects gzip: the reader raises FileError("corrupt_compression"), which the CLI lets through
    code, err = run_cli(["resolve", f"{pos_customers}:{SOURCES / 'crm.customers.json'}", "--out",
                         tmp_path / "o.csv", "--no-progress"], capsys)
    assert_clear_error(code, err)


def test_resolve_names_the_input_that_failed_and_leaves_no_partial_rejects(tmp_path, pos_customers, capsys):
    """With several inputs, the error says which file; a failed run leaves no rejects file that reads as "none"."""
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    rejects = tmp_path / "rejects.csv"
    code, err = run_cli(["resolve", f"{pos_customers}:{SOURCES / 'pos.customers.json'}",
                         f"{empty}:{SOURCES / 'pos.customers.json'}", "--out", tmp_path / "o.csv",
                         "--rejects", rejects, "--no-progress"], capsys)
    assert_clear_error(code, err)
    assert "empty.csv (source pos)" in err and pos_customers.name not in err
    assert not rejects.exists()


def test_resolve_checks_every_mapping_before_reading_any_file(tmp_path, pos_customers, capsys):
    code, err = run_cli(["resolve", f"{pos_customers}:{SOURCES / 'pos.customers.json'}",
                         f"{pos_customers}:{SOURCES / 'pos.transactions.json'}", "--out", tmp_path / "o.csv",
                         "--no-progress"], capsys)
    assert_clear_error(code, err)
    assert "pos.transactions.json: a customers mapping is needed" in err


def test_resolve_creates_the_folders_of_every_output(tmp_path, pos_customers, capsys):
    outputs = {name: tmp_path / name / "out" for name in ("out.csv", "merges.jsonl", "reviews.jsonl", "rejects.csv")}
    code, err = run_cli(["resolve", f"{pos_customers}:{SOURCES / 'pos.customers.json'}",
                         "--out", outputs["out.csv"], "--merge-log", outputs["merges.jsonl"],
                         "--reviews", outputs["reviews.jsonl"], "--rejects", outputs["rejects.csv"],
                         "--no-progress"], capsys)
    assert code == 0, err
    assert all(path.is_file() for path in outputs.values())


def test_resolve_out_is_a_directory_is_a_clear_error(tmp_path, pos_customers, capsys):
    code, err = run_cli(["resolve", f"{pos_customers}:{SOURCES / 'pos.customers.json'}", "--out", tmp_path,
                         "--no-progress"], capsys)
    assert_clear_error(code, err)


def test_resolve_accepts_a_mapping_path_containing_a_colon(tmp_path, pos_customers, capsys):
    folder = tmp_path / "a:b"
    folder.mkdir()
    mapping = folder / "map.json"
    shutil.copy(SOURCES / "pos.customers.json", mapping)
    out = tmp_path / "o.csv"
    code, err = run_cli(["resolve", f"{pos_customers}:{mapping}", "--out", out, "--no-progress"], capsys)
    assert code == 0, err  # today: "no such file: <data>:<tmp>/a" (split at the last ':')
    assert len(out.read_text(encoding="utf-8").splitlines()) > 1


# --- a directory where a file is expected ------------------------------------------------------------
@pytest.mark.parametrize("case", ["ingest-mapping", "churn-transactions", "journey-events", "journey-definition",
                                  "segment-check-rule", "segment-members-profiles"])
def test_a_directory_instead_of_a_file_is_a_clear_error(case, tmp_path, pos_customers, events, capsys):
    folder = tmp_path / "folder"
    folder.mkdir()
    journey = tmp_path / "journey.json"
    journey.write_text(json.dumps({"name": "Shop", "steps": [{"name": "V", "event": "Product Viewed"},
                                                                {"name": "B", "event": "Order Completed"}]}))
    rule = tmp_path / "rule.json"
    rule.write_text(json.dumps({"field": "churn.risk", "op": "=", "value": "high"}))
    argv = {
        "ingest-mapping": ["ingest", pos_customers, "--mapping", folder],
        "churn-transactions": ["churn", "train", "--transactions", folder, "--as-of", "2026-09-30",
                               "--out", tmp_path / "m"],
        "journey-events": ["journey", "funnel", "--events", folder, "--definition", journey],
        "journey-definition": ["journey", "funnel", "--events", events, "--definition", folder],
        "segment-check-rule": ["segment", "check", "--rule", folder],
        "segment-members-profiles": ["segment", "members", "--rule", rule, "--profiles", folder],
    }[case]
    assert_clear_error(*run_cli(argv, capsys))


# --- an output path that is an existing file ---------------------------------------------------------
def test_ingest_out_that_is_an_existing_file_is_a_clear_error(tmp_path, pos_customers, capsys):
    out = tmp_path / "out.json"
    out.write_text("{}")
    code, err = run_cli(["ingest", pos_customers, "--mapping", SOURCES / "pos.customers.json", "--out", out], capsys)
    assert_clear_error(code, err)


def test_generate_out_that_is_an_existing_file_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "data"
    out.write_text("not a folder")
    code, err = run_cli(["generate", "--customers", "3", "--out", out, "--no-progress"], capsys)
    assert_clear_error(code, err)


# --- ucp churn: a malformed --mapping ----------------------------------------------------------------
@pytest.mark.parametrize("mapping", [
    {"timezone": "Mars/Olympus"},                 # ZoneInfoNotFoundError (a KeyError)
    {"customer_id": {"col": "customer_no"}},      # KeyError: 'column'
    {"fields": ["customer_no", "txn_time"]},      # AttributeError: 'list' object has no attribute 'items'
], ids=["unknown-timezone", "field-without-column", "fields-not-an-object"])
def test_churn_malformed_mapping_is_a_clear_error(mapping, tmp_path, pos_transactions, capsys):
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(mapping))
    code, err = run_cli(["churn", "train", "--transactions", pos_transactions, "--as-of", "2026-09-30",
                         "--out", tmp_path / "m", "--mapping", path], capsys)
    assert_clear_error(code, err)
