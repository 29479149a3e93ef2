"""The index repair over a window of time (shared/identity/repair.py: the hourly repair_recent_index timer, `ucp
repair-index --since-seconds`) against a full run, on the Cosmos emulator: what each reads, and in how many requests.

    python -m bench.identity_repair [--customers 300] [--seed 5] [--before 550] [--in-window 82] [--memory]

Whole people of generated data, in a random order (bench.identity's cosmos_sample), are resolved: `--before` records
first, then, once the clock has passed a whole second (`_ts` counts seconds), the next `--in-window` records. Figures:
the requests that resolving the window's records made; for a run over the window and for a full run, the requests
(point reads, batched reads, queries, writes, counted as bench.identity counts them) in all and by kind, and what
each found; the documents the window's scopes hold (read around its profiles and index documents), and the
documents of the store and of the window per container. `--memory`: on a MemoryStore, no emulator.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import run_benchmark

CONTAINERS = ("profiles", "identifiers", "blocking", "records")


def measure(store, records: list, before: int, settings) -> dict[str, Any]:
    """Resolve records[:before], then the rest in a window of their own; repair over the window, then in full."""
    from bench.identity import CountingStore
    from shared.identity import Resolver, repair_index

    resolver = Resolver(store, settings=settings)
    for record in records[:before]:
        resolver.resolve(record)
    since = int(time.time()) + 1
    time.sleep(max(0.0, since - time.time()))
    counting = CountingStore(store)
    windowed = Resolver(counting, settings=settings)
    for record in records[before:]:
        windowed.resolve(record)
    figures: dict[str, Any] = {"records_before": before, "records_in_window": len(records) - before,
                               "requests_resolving_the_window": sum(counting.stats["requests"].values())}
    for name, since_arg in (("window_run", since), ("full_run", None)):
        counting.reset()
        found = repair_index(counting, settings=settings, since=since_arg)
        requests = counting.stats["requests"]
        figures[name] = {"requests": sum(requests.values()), "requests_by_kind": dict(requests.most_common()),
                         "found": {kind: count for kind, count in found.items() if count}}
    figures["window_scopes"] = _scope_sizes(store, settings, since)
    figures["documents_in_window"] = {c: _count(store, c, ("_ts", ">=", since)) for c in CONTAINERS}
    figures["documents_in_store"] = {c: _count(store, c, None) for c in CONTAINERS}
    return figures


def _scope_sizes(store, settings, since: int) -> dict[str, int]:
    """What the window's scopes hold, summed over its chunks (read again here, outside the counted run)."""
    from shared.identity.docs import Ctx
    from shared.identity.repair import _Scope

    sizes = dict.fromkeys(("chunks", "profiles_and_aliases", "blocking", "identifiers", "records"), 0)
    for scope in _Scope.written_since(Ctx(store, settings), since):
        sizes["chunks"] += 1
        sizes["profiles_and_aliases"] += len(scope.profiles) + len(scope.aliases)
        for container in ("blocking", "identifiers", "records"):
            sizes[container] += sum(1 for _ in getattr(scope, container)())
    return sizes


def _count(store, container: str, filter_) -> int:
    return sum(1 for _ in store.container(container).query_items(filter_))


def run(args) -> dict[str, Any]:
    from bench.identity import cosmos_sample, emulator_store, load_customer_records
    from shared.generate import GeneratorConfig, generate, load_truth_records
    from shared.settings import Settings
    from shared.store import MemoryStore

    data = Path(tempfile.mkdtemp(prefix="ucp-bench-identity-repair-"))
    try:
        generate(data, GeneratorConfig(customers=args.customers, seed=args.seed), progress=False)
        records = load_customer_records(data)
        rows = load_truth_records(data)
        truth = {r.key: rows[r.key] for r in records if r.key in rows}
    finally:
        shutil.rmtree(data, ignore_errors=True)
    sample = cosmos_sample(records, truth, args.before + args.in_window, seed=1)
    if args.memory:
        return {"store": "memory", **measure(MemoryStore(), sample, args.before, Settings())}
    with emulator_store() as (store, settings):
        return {"store": "cosmos emulator", **measure(store, sample, args.before, settings)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--before", type=int, default=550, help="records resolved before the window")
    parser.add_argument("--in-window", type=int, default=82, help="records resolved in the window")
    parser.add_argument("--memory", action="store_true", help="on a MemoryStore instead of the Cosmos emulator")
    args = parser.parse_args(argv)
    run_benchmark("identity_repair", lambda: run(args), params=vars(args))


if __name__ == "__main__":
    main()
