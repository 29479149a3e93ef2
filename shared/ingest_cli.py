"""`ucp ingest FILE --mapping M [--out DIR]`: the ingestion pipeline on a local file, in memory; prints the report."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("ingest", help="ingest a local file with a source mapping and print the ingestion report",
                       description="Runs the same read/map/validate/dedupe pipeline as the blob trigger, with the "
                                   "in-memory store. With --out: DIR/customers.jsonl (accepted customer records), "
                                   "DIR/activity.jsonl, DIR/quarantine/<id>.jsonl and DIR/report.json.")
    p.add_argument("file", type=Path, help="CSV, JSON Lines, JSON array or Parquet file, optionally gzip-compressed")
    p.add_argument("--mapping", "-m", type=Path, required=True, help="source mapping (config/sources/*.json)")
    p.add_argument("--out", type=Path, default=None, help="directory for records, quarantine and report")
    p.add_argument("--deletes", action="store_true", help="the file lists records to delete (CI 'Deletes')")
    p.set_defaults(func=run)


def run(args) -> int:
    from .ingest import ingest_file, load_mapping_file
    from .store import MemoryStore

    if not args.file.is_file():
        raise FileNotFoundError(f"no such file: {args.file}")
    mapping = load_mapping_file(args.mapping)
    store = MemoryStore()
    report, outputs = ingest_file(args.file, mapping, store=store, out_dir=args.out,
                                  mode="delete" if args.deletes else "upsert")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        if outputs.activity is not None:
            with (args.out / "activity.jsonl").open("w", encoding="utf-8") as f:
                for doc in store.container("activity").query_items():
                    f.write(json.dumps({k: v for k, v in doc.items() if not k.startswith("_")}) + "\n")
        (args.out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    elif getattr(outputs.quarantine, "entries", None):
        report["quarantine_sample"] = outputs.quarantine.entries[:20]
    json.dump(report, sys.stdout, indent=2, default=str)
    print()
    return 0 if report["status"] == "completed" else 1
