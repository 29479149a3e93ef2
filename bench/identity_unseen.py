"""`ucp resolve` as shipped on labelled data from another generator than the one its match model learned from.

Issue #5: `ucp resolve` "needs no labels and no other configuration: the default match configuration must do well
on data it has never seen". The shipped match model learned its weights from ucp's own UK-centric generator
(shared/generate); bench/unseen_data.py makes five datasets without it, with other countries' names, addresses
and phones and another author's noise: us (US customers), eu (German and French), sparse (Spanish, few emails, no
phones), lowlands (Dutch, Belgian, Swedish, Danish: initials, van der, house letters) and iberia (Spanish and
Portuguese families: inherited surnames, children named after a parent, mobile-only sign-ups), each with households,
twins or families, namesakes, typos and people who moved (see that module).
bench/febrl.py does the same on public data (FEBRL) that has no households to tell apart.

For each dataset the bench writes its files, runs the one real path of `ucp resolve INPUT:MAPPING ... --out OUT`
(shared.cli.main in this process; nothing tuned: the shipped model, thresholds and config/identity.json), reads back
source,record_id,profile_id and scores every record against the truth (bench.metrics.cluster_scores,
missing="singleton": a record without a profile is a profile of its own, its true pairs misses). It reports records,
people, records without a profile, pairwise precision, recall and F1, B-cubed F1, over-merged profiles, split people,
seconds and records per second (reading, resolving and writing the files), and, to show where the errors are, the
over-merged profiles and split people by the kind of household of the people concerned.

    python -m bench.identity_unseen [--seed 7] [--people 1500] [--datasets us eu sparse lowlands iberia] [--data DIR]

`--people` is per dataset (whole households: a few more); `--data DIR` keeps the datasets (and each one's
profiles.csv) in DIR instead of a temporary folder.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from bench.febrl import read_output
from bench.harness import run_benchmark
from bench.metrics import cluster_scores
from bench.unseen_data import DATASETS, Dataset, read_truth, write_dataset

SUMMARY_KEYS = ("records", "people", "pairwise_precision", "pairwise_recall", "pairwise_f1", "bcubed_f1",
                "over_merged_profiles", "split_people", "records_per_s")
CLUSTER_KEYS = ("pairwise_precision", "pairwise_recall", "pairwise_f1", "bcubed_precision", "bcubed_recall",
                "bcubed_f1", "true_pairs", "predicted_pairs", "true_positive_pairs", "profiles",
                "over_merged_profiles", "split_people")


def resolve(dataset: Dataset, out: Path) -> dict[str, Any]:
    """`ucp resolve CSV:MAPPING ... --out OUT --no-progress` in this process; its summary line (records, profiles,
    actions), which the CLI prints on stderr. (bench.febrl's resolve_cli reads every file with FEBRL's one
    mapping; each source here has its own.)"""
    from shared import cli

    captured = io.StringIO()
    with contextlib.redirect_stderr(captured):
        code = cli.main(["resolve", *(f"{data}:{mapping}" for data, mapping in dataset.inputs), "--out", str(out),
                         "--no-progress"])
    lines = captured.getvalue().strip().splitlines()
    if code != 0 or not lines:
        raise RuntimeError(f"ucp resolve exited {code}: {captured.getvalue().strip()}")
    for line in lines[:-1]:  # anything else the run said (warnings)
        print(line, file=sys.stderr)
    return json.loads(lines[-1])


def errors_by_household(truth_rows: list[dict[str, str]], assignment: dict) -> dict[str, dict[str, int]]:
    """Over-merged profiles by the households of the people they hold ("couple+twin" when a couple's member and a
    twin met; "alone" for people living alone), and split people by their household: which of the generator's hard
    cases the errors come from. A record without a profile is on its own, as in the scores."""
    people_of_profile: dict[Any, set[str]] = defaultdict(set)
    profiles_of_person: dict[str, set[Any]] = defaultdict(set)
    household_of = {}
    for row in truth_rows:
        key = (row["source"], row["record_id"])
        profile = assignment.get(key, ("no profile", key))
        people_of_profile[profile].add(row["person_id"])
        profiles_of_person[row["person_id"]].add(profile)
        household_of[row["person_id"]] = row["household"]
    over_merged = Counter("+".join(sorted({household_of[p] for p in people}))
                          for people in people_of_profile.values() if len(people) > 1)
    split = Counter(household_of[person] for person, profiles in profiles_of_person.items() if len(profiles) > 1)
    return {"over_merged_profiles_by_household": dict(over_merged.most_common()),
            "split_people_by_household": dict(split.most_common())}


def measure_dataset(dataset: Dataset) -> dict[str, Any]:
    truth_rows = read_truth(dataset)
    truth = {(row["source"], row["record_id"]): row["person_id"] for row in truth_rows}
    out = dataset.folder / "profiles.csv"
    t0 = time.perf_counter()
    summary = resolve(dataset, out)
    seconds = time.perf_counter() - t0
    assignment, records = read_output(out)
    if sorted(records) != sorted(truth):
        raise ValueError(f"{dataset.name}: the output's records are not the truth's")
    scores = cluster_scores(truth, assignment, missing="singleton")  # no profile: a profile of its own
    return {
        "files": [data.name for data, _ in dataset.inputs], "records": len(records), "people": scores["people"],
        "records_without_profile": len(records) - len(assignment), "actions": summary["actions"],
        **{k: round(v, 5) if isinstance(v, float) else v for k, v in scores.items() if k in CLUSTER_KEYS},
        **errors_by_household(truth_rows, assignment),
        "seconds": round(seconds, 3), "records_per_s": round(len(records) / seconds) if seconds else None,
    }


def measure(folder: Path, names: list[str], *, seed: int, people: int) -> dict[str, Any]:
    for module in ("shared.cli", "shared.identity_cli", "shared.identity", "shared.ingest.pipeline"):
        importlib.import_module(module)  # imported once before the clock runs, not inside the first dataset's seconds
    figures: dict[str, Any] = {"people_per_dataset": people, "datasets": {}}
    for name in names:
        dataset = write_dataset(name, folder / name, seed=seed, people=people)
        figures["datasets"][name] = measure_dataset(dataset)
    figures["summary"] = {name: {k: d[k] for k in SUMMARY_KEYS} for name, d in figures["datasets"].items()}
    return figures


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated data")
    parser.add_argument("--people", type=int, default=1500, help="people per dataset (whole households)")
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--data", metavar="DIR", help="write (and keep) the datasets in DIR instead of a "
                                                      "temporary folder")
    args = parser.parse_args(argv)
    names = list(dict.fromkeys(args.datasets))

    def run() -> dict[str, Any]:
        if args.data:
            return measure(Path(args.data), names, seed=args.seed, people=args.people)
        with tempfile.TemporaryDirectory(prefix="ucp-unseen-") as work:
            return measure(Path(work), names, seed=args.seed, people=args.people)

    return run_benchmark("identity_unseen", run, params=vars(args), seed=args.seed)


if __name__ == "__main__":
    main()
