"""The unseen-data bench (bench/identity_unseen.py) and its generator (bench/unseen_data.py): the datasets are the
same for a seed however they are made, every row is read by its mapping with what it holds, the truth names every
record, and the bench resolves and scores the five datasets."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from bench import identity_unseen
from bench.unseen_data import DATASETS, IberianCustomers, read_truth, write_dataset, write_datasets
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
    for name in ("sparse", "lowlands", "iberia"):
        alone = write_dataset(name, tmp_path / "alone" / name, seed=3, people=PEOPLE)
        assert files_of(alone.folder) == files_of(again[name].folder)
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
                                  ("nacimiento", normalized.birth_date), ("geboortedatum", normalized.birth_date),
                                  ("phone", normalized.phone), ("telefon", normalized.phone),
                                  ("telefoon", normalized.phone), ("movil", normalized.phone),
                                  ("email", normalized.email)):
                if row.get(column):
                    assert value, (column, row)
            mapped_keys.append((result.item.source, result.item.record_key))
    assert sorted(mapped_keys) == sorted(truth)  # the truth covers every record, and only those
    households = {row["household"] for row in truth.values()}
    assert "alone" in households and "namesake" in households and len(households) >= 3
    people = {row["person_id"] for row in truth.values()}
    assert PEOPLE <= len(people) <= PEOPLE + 3  # whole households: the last may add a few


def test_iberian_children_inherit_their_parents_surnames():
    """A Spanish child carries the father's first and the mother's first surname, a Portuguese child the mother's
    last and the father's last; a child named after a parent makes both a family_samename household."""
    generator = IberianCustomers(5)
    generator.draw_people(200)
    families = [person for person in generator.people if person.household.startswith("family")]
    checked = 0
    for i, person in enumerate(families):
        if i + 1 < len(families) and person.birth_date < "1966" and families[i + 1].birth_date < "1966" \
                and person.address is families[i + 1].address:
            father, mother = person, families[i + 1]
            children = [child for child in families[i + 2:i + 4]
                        if child.address is father.address and child.birth_date >= "1970"]
            for child in children:
                fathers, mothers = father.family.split(" "), mother.family.split(" ")
                spanish = father.address["country"] == "ES"
                assert child.family == (f"{fathers[0]} {mothers[0]}" if spanish else f"{mothers[1]} {fathers[1]}")
                if child.given in (father.given, mother.given):
                    assert child.household == "family_samename"
                checked += 1
    assert checked > 20


def test_bench_resolves_and_scores_the_five_datasets(capsys):
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
