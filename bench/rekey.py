"""Re-keying after a change of normalization (shared/identity/rekey.py, `ucp rekey`): generated records resolved
under one setting of `normalization.email_provider_rules`, re-keyed under the other, against the same records
resolved under the second from the start.

    python -m bench.rekey [--customers 5000] [--seed 1] [--data DIR]

Figures per direction (rules off then on, on then off), in process: records re-keyed and the run's CPU seconds;
its requests (counted as the emulator counts them: point reads, batched reads, queries, writes) in total, per
record and per record re-keyed; pairwise precision, recall and F1 before the re-key, after it, and resolving under
the second setting from the start; what a second run re-keys (nothing) and its requests; `ucp audit`'s violations.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import run_benchmark
from bench.metrics import cluster_scores

SCORES = ("pairwise_precision", "pairwise_recall", "pairwise_f1")


def measure(data: Path) -> dict[str, Any]:
    from bench.identity import load_customer_records
    from shared.generate import load_truth_records
    from shared.settings import Settings

    records = load_customer_records(data)
    rows = load_truth_records(data)
    truth = {r.key: rows[r.key] for r in records if r.key in rows}
    folder = Path(tempfile.mkdtemp(prefix="ucp-bench-rekey-"))
    try:
        (folder / "off.json").write_text(json.dumps({"normalization": {"email_provider_rules": False}}))
        off, on = Settings(identity_config=str(folder / "off.json")), Settings()
        return {"records": len(records),
                "rules_turned_on": rekeyed(records, truth, first=off, then=on),
                "rules_turned_off": rekeyed(records, truth, first=on, then=off)}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def rekeyed(records, truth, *, first, then) -> dict[str, Any]:
    """Resolve `records` under `first`, re-key under `then`; the figures, and those of resolving under `then`."""
    from bench.identity import CountingStore
    from shared.audit import audit_store
    from shared.identity import rekey

    store = resolved(records, first)
    before = scores(truth, store)
    counting = CountingStore(store)
    cpu = time.process_time()
    counts = rekey(counting, settings=then)
    cpu = time.process_time() - cpu
    requests = sum(counting.stats["requests"].values())
    counting.reset()
    again = rekey(counting, settings=then)
    return {"counts": counts, "cpu_s": round(cpu, 2), "requests": requests,
            "requests_per_record": round(requests / max(1, counts["records"]), 2),
            "requests_per_rekeyed": round(requests / max(1, counts["rekeyed"]), 2),
            "second_run_rekeyed": again["rekeyed"], "second_run_requests": sum(counting.stats["requests"].values()),
            "audit_violations": audit_store(store).as_dict()["violations"],
            "before": before, "after": scores(truth, store),
            "resolved_so_from_the_start": scores(truth, resolved(records, then))}


def resolved(records, settings):
    from shared.identity import Resolver
    from shared.store import MemoryStore

    store = MemoryStore()
    for _ in Resolver(store, settings=settings).resolve_many(records):
        pass
    return store


def scores(truth, store) -> dict[str, float]:
    from bench.identity import final_assignment

    figures = cluster_scores(truth, final_assignment(store, list(truth)), missing="singleton")
    return {k: round(figures[k], 5) for k in SCORES}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", help="a generated data set (ucp generate); generated here when missing")
    args = parser.parse_args(argv)

    def run() -> dict[str, Any]:
        from shared.generate import GeneratorConfig, generate

        data = Path(args.data) if args.data else Path(tempfile.mkdtemp(prefix="ucp-bench-rekey-data-"))
        try:
            if not (data / "truth").exists():
                generate(data, GeneratorConfig(customers=args.customers, seed=args.seed), progress=False)
            return measure(data)
        finally:
            if not args.data:
                shutil.rmtree(data, ignore_errors=True)

    run_benchmark("rekey", run, params=vars(args))


if __name__ == "__main__":
    main()
