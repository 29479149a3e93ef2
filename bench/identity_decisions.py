"""Every decision of in-process identity resolution, for checking that a speed change changed none.

Resolves a generated data set in file order (as `ucp resolve`, single writer) and writes, per record key, the
(profile id, action, reason) of its resolution and the profile it ends in, and per profile a digest of what it
shows (attributes, conflicts, identifiers, record keys). With --compare, prints how many records and profiles
differ from an earlier dump (the check of issue 5's speed work: none may).

    python -m bench.identity_decisions --data DIR --out after.json [--compare before.json] [--plain]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path


def dump(data_dir: Path, *, single_writer: bool = True) -> dict:
    from bench.identity import final_assignment, load_customer_records
    from shared.identity import Resolver
    from shared.identity.docs import ResolverConfig
    from shared.store import MemoryStore, with_frozen_heap

    records = load_customer_records(data_dir)
    store = MemoryStore(copy_documents=False)
    resolver = Resolver(store, config=ResolverConfig(single_writer=single_writer))
    results = {}
    cpu0 = time.process_time()
    for record in with_frozen_heap(records):
        result = resolver.resolve(record)
        results[result.record_key] = [result.profile_id, result.action, result.reason]
    cpu = time.process_time() - cpu0
    return {"records": len(records), "records_per_cpu_s": round(len(records) / cpu), "results": results,
            "final": final_assignment(store, records), "profiles": profile_digests(store)}


def profile_digests(store) -> dict[str, str]:
    """Per live profile, a digest of what it shows: attributes, conflicts, identifiers and its records' keys."""
    out = {}
    for doc in store.container("profiles").query_items(("doc_type", "=", "profile")):
        shown = [doc["attributes"], doc.get("conflicts"), doc["identifiers"], sorted(r["key"] for r in doc["records"])]
        out[doc["id"]] = hashlib.sha256(json.dumps(shown, sort_keys=True).encode()).hexdigest()[:16]
    return out


def differences(before: dict, after: dict) -> dict:
    out = {}
    for part in ("results", "final", "profiles"):
        if part not in before or part not in after:
            continue  # a dump from before profiles were digested
        keys = before[part].keys() | after[part].keys()
        differ = sorted(k for k in keys if before[part].get(k) != after[part].get(k))
        out[part] = {"records": len(keys), "differ": len(differ),
                     "examples": [[k, before[part].get(k), after[part].get(k)] for k in differ[:5]]}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a generated data set (ucp generate)")
    parser.add_argument("--out", required=True, help="where to write the decisions (JSON)")
    parser.add_argument("--compare", help="an earlier dump to compare with")
    parser.add_argument("--plain", action="store_true", help="resolve as a queue worker does (not single writer)")
    args = parser.parse_args(argv)
    decisions = dump(Path(args.data), single_writer=not args.plain)
    Path(args.out).write_text(json.dumps(decisions, sort_keys=True))
    summary = {"records": decisions["records"], "records_per_cpu_s": decisions["records_per_cpu_s"]}
    if args.compare:
        summary["differences"] = differences(json.loads(Path(args.compare).read_text()), decisions)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
