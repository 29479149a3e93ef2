"""The unseen-data bench (bench/identity_unseen.py) and its generator (bench/unseen_data.py): the datasets are the
same for a seed however they are made, every row is read by its mapping with what it holds, the truth names every
record, and the bench resolves and scores the three datasets."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from bench import identity_unseen
from bench.unseen_data import DATASETS, read_truth, write_dataset, write_datasets
from shared.ingest import load_mapping_file
from shared.ingest.pipeline import iter_mapped
from shared.normalize import normalize_record

PEOPLE = 60


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    return write_datasets(tmp_path_factory.mktemp("unseen"), seed=3, people=PEOPLE)


def test_same_seed_same_files_however_made(datasets, tmp_path):
    folder = next(iter(datasets.values())).folder.parent
    again = write_datasets(tmp_path / "again", seed=3, people=PEOPLE)
    assert files_of(tmp_path / "again") == files_of(folder)  # no state kept between calls
    # one dataset made alone is the same as made with the others: each draws from its own stream
    alone = write_dataset("sparse", tmp_path / "alone", seed=3, people=PEOPLE)
    assert files_of(alone.folder) == files_of(again["sparse"].folder)
    other = write_datasets(tmp_path / "other", seed=4, people=PEOPLE)
    assert all(files_of(other[name].folder) != files_of(again[name].folder) for name in DATASETS)


@pytest.mark.parametrize("name", DATASETS)
def test_every_row_is_mapped_with_what_it_holds_and_in_the_truth(datasets, name):
    dataset = datasets[name]
    truth = {(row["source"], row["record_id"]): row for row in read_truth(dataset)}
    mapped_keys = []
    for data, mapping_path in dataset.inputs:
        mapping = load_mapping_file(mapping_path)
        delimiter = json.loads(mapping_path.read_text(encoding="utf-8")).get("delimiter", ",")
        with data.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter=delimiter))
        with data.open("rb") as stream:
            mapped = list(iter_mapped(stream, data.name, mapping))
        assert len(mapped) == len(rows) > 0
        for row, result in zip(rows, mapped):
            assert result.item is not None and not result.reasons and not result.flags, (row, result.reasons)
            normalized = normalize_record(result.item)
            # what the row holds reaches the resolver: a birth date, a valid phone, an email
            for column, value in (("dob", normalized.birth_date), ("geburtsdatum", normalized.birth_date),
                                  ("nacimiento", normalized.birth_date), ("phone", normalized.phone),
                                  ("telefon", normalized.phone), ("email", normalized.email)):
                if row.get(column):
                    assert value, (column, row)
            mapped_keys.append((result.item.source, result.item.record_key))
    assert sorted(mapped_keys) == sorted(truth)  # the truth covers every record, and only those
    households = {row["household"] for row in truth.values()}
    assert "alone" in households and "namesake" in households and len(households) >= 3
    people = {row["person_id"] for row in truth.values()}
    assert PEOPLE <= len(people) <= PEOPLE + 3  # whole households: the last may add a few


def test_bench_resolves_and_scores_the_three_datasets(capsys):
    report = identity_unseen.main(["--people", str(PEOPLE), "--seed", "3"])
    figures = report["figures"]
    assert report["ok"] and report["benchmark"] == "identity_unseen" and report["seed"] == 3
    assert set(figures["summary"]) == set(DATASETS)
    for name, summary in figures["summary"].items():
        assert set(summary) == set(identity_unseen.SUMMARY_KEYS)
        assert summary["records"] > summary["people"] >= PEOPLE
        assert 0.5 < summary["pairwise_f1"] <= 1 and 0.5 < summary["bcubed_f1"] <= 1, (name, summary)
        assert summary["records_per_s"] > 0
        details = figures["datasets"][name]
        assert sum(details["over_merged_profiles_by_household"].values()) == summary["over_merged_profiles"]
        assert sum(details["split_people_by_household"].values()) == summary["split_people"]
    assert '"benchmark": "identity_unseen"' in capsys.readouterr().out  # the one JSON report on stdout
