"""Readers for the ground truth a generated data set carries (benchmarks use these; ucp's pipeline never does)."""
from __future__ import annotations

import csv
from pathlib import Path


def load_truth_records(data_dir: str | Path, *, include_malformed: bool = True) -> dict[str, str]:
    """{"<source>|<record key>": person_id} for every customer record written (the key ucp's records use)."""
    out = {}
    with open(Path(data_dir) / "truth" / "records.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if include_malformed or row["malformed"] == "0":
                out[f"{row['source']}|{row['record_key']}"] = row["person_id"]
    return out


def load_churn(data_dir: str | Path) -> dict[str, dict]:
    """{person_id: {"churned": 0/1, "last_purchase": date string or "", "as_of", "window_days"}}."""
    with open(Path(data_dir) / "truth" / "churn.csv", newline="", encoding="utf-8") as f:
        return {row.pop("person_id"): {**row, "churned": int(row["churned"]), "window_days": int(row["window_days"])}
                for row in csv.DictReader(f)}


def load_people(data_dir: str | Path) -> dict[str, dict]:
    with open(Path(data_dir) / "truth" / "people.csv", newline="", encoding="utf-8") as f:
        return {row["person_id"]: row for row in csv.DictReader(f)}
