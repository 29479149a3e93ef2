"""Identity resolution benchmark on generated data with ground truth.

Figures: pairwise precision/recall/F1 and cluster metrics (split people, over-merged profiles, B-cubed) per
random arrival order and their F1 spread, over every record given to the resolver (a record it could not place,
quarantined, counts as a profile of its own: its true pairs are misses, as a retailer sees them; the figures over
the placed records alone are `resolved_records_only`); records/s in process (MemoryStore, one thread, records
streaming in as `ucp resolve` reads them) per second of process CPU time (the one-core figure of the issue) and of wall time, with
the load average during the run and the share spent in normalization; records/s and Cosmos requests per new
record on the local stack (Cosmos emulator), against the issue's minimum: one read per identifier looked up (point
or batched), one write per document changed (a write that failed or left the content as it was read changes
nothing). Queries and batches count as requests too. The records sent to the emulator are whole people drawn at
random (seeded) until --cosmos-records, resolved in a random order: the data's mix of sources, and of new
profiles, links and merges (the files' first records are one source's, almost all new profiles); the figures are
given per action (created, linked, review, merged) next to the total.

    python -m bench.identity [--customers 5000] [--seed 1] [--orders 3] [--cosmos-records 400] [--data DIR]

The issue's set of 100k records from 4 sources is about 48,000 generated customers (--customers 48000).
"""
from __future__ import annotations

import argparse
import os
import pickle
import random
import shutil
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from bench.harness import run_benchmark
from bench.metrics import cluster_scores

ROOT = Path(__file__).resolve().parent.parent
SOURCES_DIR = ROOT / "config" / "sources"
TARGETS = {"pairwise_f1": 0.98, "pairwise_precision": 0.995, "records_per_cpu_s_in_process": 5000,
           "f1_spread_across_orders": 0.002, "cosmos_requests_vs_minimum": 1.5}


def load_customer_records(data_dir: Path) -> list:
    """Every valid customer record of the landing files, read and mapped like ingestion does."""
    from shared.ingest import load_mapping_file
    from shared.ingest.pipeline import iter_mapped

    records = []
    for folder in sorted((data_dir / "landing").glob("*/customers")):
        mapping = load_mapping_file(SOURCES_DIR / f"{folder.parent.name}.customers.json")
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            with path.open("rb") as stream:
                records += [row.item for row in iter_mapped(stream, path.name, mapping) if row.item is not None]
    return records


def final_assignment(store, records) -> dict[str, str]:
    """record key -> the profile it ends in (after every merge of the run); `records` or their keys."""
    from shared.identity.docs import Ctx, follow_aliases

    ctx = Ctx(store)
    out = {}
    for record in records:
        key = record if isinstance(record, str) else record.key
        doc = ctx.records.read_item_or_none(key, key)
        if doc is not None:
            profile, _ = follow_aliases(ctx, doc["profile_id"])
            if profile is not None:
                out[key] = profile["id"]
    return out


def run_in_process(packed: list[bytes], keys: list[str], truth, model, order_seed: int | None) -> dict[str, Any]:
    """One thread resolving every record, as `ucp resolve` runs it: records stream in (here from their pickles,
    `packed`), so the process holds the store and not every input record too (holding them all, 2.7 KB each, made
    resolution about 8% slower through the larger heap). records_per_cpu_s is records per second of process CPU
    time, without the time spent unpickling (measured chunk by chunk, as `ucp resolve` would be reading and mapping
    its files): the one-core figure. records_per_s (wall time) is lower when other work shares the machine (see
    load_average)."""
    from shared.identity import Resolver
    from shared.identity.docs import ResolverConfig
    from shared.store import MemoryStore, with_frozen_heap

    ordered = list(packed)
    if order_seed is not None:
        random.Random(order_seed).shuffle(ordered)
    store = MemoryStore(copy_documents=False)  # as `ucp resolve` runs it
    resolver = Resolver(store, model=cold_caches(model), config=ResolverConfig(single_writer=True))
    load_before = _load_average()
    unpickling = [0.0, 0.0]  # CPU and wall seconds spent unpickling records
    t0, cpu0 = time.perf_counter(), time.process_time()
    streamed = with_frozen_heap(_unpacked(ordered, unpickling))
    actions = Counter(result.action for result in resolver.resolve_many(streamed))
    wall, cpu = time.perf_counter() - t0 - unpickling[1], time.process_time() - cpu0 - unpickling[0]
    assignment = final_assignment(store, keys)
    return {"order_seed": order_seed, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "records_per_s": round(len(ordered) / wall), "records_per_cpu_s": round(len(ordered) / cpu),
            "unpickling_cpu_s": round(unpickling[0], 2), "load_average": [load_before, _load_average()],
            "actions": dict(actions), **scored(truth, assignment)}


def scored(truth, assignment) -> dict[str, Any]:
    """The cluster figures over every record of `truth` (a record without a profile, quarantined, is a profile of
    its own: its pairs are misses; `records_missing` counts them), and the pairwise ones over the records that got
    a profile, named as such."""
    everything = cluster_scores(truth, assignment, missing="singleton")
    resolved = cluster_scores(truth, assignment, missing="ignore")
    return {**{k: (round(v, 5) if isinstance(v, float) else v) for k, v in everything.items()},
            "resolved_records_only": {k: (round(resolved[k], 5) if isinstance(resolved[k], float) else resolved[k])
                                      for k in RESOLVED_ONLY_KEYS}}


RESOLVED_ONLY_KEYS = ("records", "people", "true_pairs", "true_positive_pairs", "pairwise_precision",
                      "pairwise_recall", "pairwise_f1")


def _unpacked(packed: list[bytes], spent: list[float], chunk: int = 256):
    """The records of their pickles, a chunk at a time; adds the CPU and wall seconds spent to `spent`."""
    for start in range(0, len(packed), chunk):
        cpu0, t0 = time.process_time(), time.perf_counter()
        records = [pickle.loads(blob) for blob in packed[start:start + chunk]]
        spent[0] += time.process_time() - cpu0
        spent[1] += time.perf_counter() - t0
        yield from records


def _load_average() -> float | None:
    """The 1-minute load average: above ~1 other processes competed for the cores during the run."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def clear_caches() -> None:
    """Empty the normalization and blocking caches, so a measurement does not profit from the one before it
    (a fresh `ucp resolve` starts without them)."""
    import shared.identity.matching
    import shared.normalize

    for module in (shared.normalize, shared.identity.matching):
        for value in vars(module).values():
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()


def cold_caches(model):
    """clear_caches(), and a copy of the model without the probabilities it memoized in an earlier run."""
    from shared.identity.matching import MatchModel

    clear_caches()
    return MatchModel.from_dict(model.to_dict())


def normalization_cost(records) -> float:
    from shared.normalize import normalize_record

    clear_caches()
    t0 = time.process_time()
    for r in records:
        normalize_record(r)
    return (time.process_time() - t0) / max(1, len(records))


class CountingContainer:
    """Counts requests, the identifiers looked up and the documents a write changed, for the issue's minimum."""

    READS = ("read_item", "read_item_or_none", "read_items")
    WRITES = ("create_item", "upsert_item", "replace_item", "delete_item")
    QUERIES = ("query_items", "query_page", "count_items", "execute_batch")

    def __init__(self, inner, stats):
        self._inner, self._stats = inner, stats

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if name not in self.READS + self.WRITES + self.QUERIES:
            return attr
        stats, container = self._stats, self._inner.name

        def counted(*args, **kwargs):
            if not (name == "read_items" and not args[0]):  # reading nothing sends nothing
                stats["requests"][f"{container}.{name}"] += 1
            result = attr(*args, **kwargs)  # a write that fails (409, 412) changed nothing
            if name in self.READS:
                keys = args[0] if name == "read_items" else [args[:2]]
                docs = result if name == "read_items" else [result]
                for (item_id, _), doc in zip(keys, docs):
                    stats["read"].add((container, item_id))
                    stats["seen"][(container, item_id)] = _content(doc)
            elif name in self.WRITES:
                doc_id = args[0]["id"] if isinstance(args[0], dict) else args[0]
                after = _content(result) if name != "delete_item" else None
                if after != stats["seen"].get((container, doc_id), ()):  # () = not read: assume it changed
                    stats["changed"].add((container, doc_id))
                stats["seen"][(container, doc_id)] = after
            return result

        return counted


def _content(doc):
    return {k: v for k, v in doc.items() if not k.startswith("_")} if doc is not None else None


class CountingStore:
    def __init__(self, inner):
        self._inner = inner
        self.stats = {"requests": Counter(), "read": set(), "changed": set(), "seen": {}}

    def container(self, name):
        return CountingContainer(self._inner.container(name), self.stats)

    def reset(self):
        for value in self.stats.values():
            value.clear()

    def minimum(self, record_key: str) -> tuple[int, int]:
        """The issue's minimum for the record just resolved: (identifiers looked up, documents changed). The lookup
        of the record's own source key (was it seen?) is not counted, although it is an identifier: the minimum
        stays what it was when that question cost a read of the records doc."""
        from shared.identity.docs import source_identifier

        own = source_identifier(record_key)
        looked_up = sum(1 for container, item_id in self.stats["read"] if container == "identifiers" and item_id != own)
        return looked_up, len(self.stats["changed"])


ACTIONS_SHOWN = ("created", "linked", "review", "merged")  # the order of run_on_cosmos's by_action


def cosmos_sample(records, truth, limit: int, seed: int = 1) -> list:
    """At most `limit` records for the emulator, with the data's mix: whole people drawn at random (seeded), all
    their records, until the next person would pass `limit` (every record when `limit` covers them all), in a random
    order as the in-process runs resolve them. The files' first records are one source's (crm), almost all new
    profiles: a count over them says little about links and merges."""
    rng = random.Random(seed)
    by_person: dict[Any, list] = defaultdict(list)
    for record in records:
        by_person[truth.get(record.key, ("no truth", record.key))].append(record)
    people = sorted(by_person, key=str)
    rng.shuffle(people)
    sample: list = []
    for person in people:
        if len(sample) + len(by_person[person]) <= limit:
            sample += by_person[person]
    rng.shuffle(sample)
    return sample


def run_on_cosmos(records, model, limit: int) -> dict[str, Any]:
    """Resolve `records` (at most `limit`: cosmos_sample) on the Cosmos emulator, counting requests per new record
    against the issue's minimum: one read per identifier looked up, one write per document changed; in total and
    per action."""
    from shared.identity import Resolver

    with emulator_store() as (store, settings):
        counting = CountingStore(store)
        resolver = Resolver(counting, settings=settings, model=model)
        per_action: dict[str, list[tuple[int, int, int]]] = defaultdict(list)  # (requests, looked up, changed)
        kinds: Counter[str] = Counter()
        seen_keys: set[str] = set()
        t0 = time.perf_counter()
        for record in records[:limit]:
            counting.reset()
            action = resolver.resolve(record).action
            if record.key in seen_keys or action == "quarantined":
                continue  # a new record is one the store has not seen; quarantine writes no document
            seen_keys.add(record.key)
            per_action[action].append((sum(counting.stats["requests"].values()), *counting.minimum(record.key)))
            kinds.update(counting.stats["requests"])
        wall = time.perf_counter() - t0
        rows = [row for rows in per_action.values() for row in rows]
        n = max(1, len(rows))
        requests, looked_up, changed = (sum(row[i] for row in rows) for i in range(3))

        def summary(rows):
            requests, minimum = sum(r[0] for r in rows), sum(r[1] + r[2] for r in rows)
            return {"records": len(rows), "requests_per_record": round(requests / len(rows), 2),
                    "minimum_per_record": round(minimum / len(rows), 2),
                    "requests_vs_minimum": round(requests / max(1, minimum), 3)}

        resolved = min(limit, len(records))
        return {"records": resolved, "sources": dict(Counter(r.source for r in records[:limit]).most_common()),
                "new_records": len(rows), "seconds": round(wall, 2), "records_per_s": round(resolved / wall, 1),
                "requests_per_new_record": round(requests / n, 2),
                "minimum_per_new_record": {"identifiers_looked_up": round(looked_up / n, 2),
                                           "documents_changed": round(changed / n, 2),
                                           "total": round((looked_up + changed) / n, 2)},
                # the figure: all requests of the new records over the sum of their minimums
                "requests_vs_minimum": round(requests / max(1, looked_up + changed), 3),
                "requests_by_kind_per_new_record": {k: round(v / n, 2) for k, v in kinds.most_common()},
                "by_action": {a: summary(per_action[a]) for a in ACTIONS_SHOWN if a in per_action}
                | {a: summary(v) for a, v in per_action.items() if a not in ACTIONS_SHOWN}}


@contextmanager
def emulator_store() -> Iterator[tuple[Any, Any]]:
    """(a CosmosStore of fresh containers, its Settings) on a local stack started for the bench, stopped after."""
    from devstack.stack import LocalStack
    from shared.settings import Settings
    from shared.store.cosmos import CosmosStore

    stack = LocalStack()
    env = stack.start()
    try:
        settings = Settings(cosmos_endpoint=env["COSMOS_ENDPOINT"])
        store = CosmosStore(settings.cosmos_endpoint, settings.cosmos_key, settings.cosmos_database,
                            prefix=f"bench{uuid.uuid4().hex[:6]}-")
        store.bootstrap()
        yield store, settings
    finally:
        stack.stop()


def measure(args) -> dict[str, Any]:
    from shared.generate import GeneratorConfig, generate, load_truth_records
    from shared.identity.engine import default_model

    tmp = None
    data = Path(args.data) if args.data else None
    if data is None or not (data / "truth").exists():
        data = data or Path(tmp := tempfile.mkdtemp(prefix="ucp-bench-identity-"))
        generate(data, GeneratorConfig(customers=args.customers, seed=args.seed), progress=False)
    try:
        records = load_customer_records(data)
        rows = load_truth_records(data)  # every row written, malformed ones too (ingestion rejects those)
        truth = {r.key: rows[r.key] for r in records if r.key in rows}  # the records given to the resolver
        model = default_model()
        norm = normalization_cost(records)
        sources, count = sorted({r.source for r in records}), len(records)
        on_cosmos = cosmos_sample(records, truth, args.cosmos_records, seed=1)
        source_mix = dict(Counter(r.source for r in records).most_common())
        # The in-process runs stream the records as `ucp resolve` does: only their pickles stay in memory.
        packed, keys = [pickle.dumps(r, pickle.HIGHEST_PROTOCOL) for r in records], [r.key for r in records]
        del records
        runs = [run_in_process(packed, keys, truth, model, seed) for seed in range(1, args.orders + 1)]
        f1s = [r["pairwise_f1"] for r in runs]
        best = max(runs, key=lambda r: r["records_per_cpu_s"])
        figures: dict[str, Any] = {
            "customers": args.customers, "records": count, "sources": sources,
            "people": runs[0]["people"], "rows_not_ingested": len(rows) - count,
            "model_version": getattr(model, "version", None),
            # worst of the orders, over every record (quarantined ones: misses)
            "pairwise_precision": min(r["pairwise_precision"] for r in runs),
            "pairwise_recall": min(r["pairwise_recall"] for r in runs),
            "pairwise_f1": min(f1s), "f1_spread_across_orders": round(max(f1s) - min(f1s), 5),
            "resolved_records_only": {k: min(r["resolved_records_only"][k] for r in runs)
                                      for k in ("pairwise_precision", "pairwise_recall", "pairwise_f1")},
            # one core: records per second of process CPU time (one thread), and per second of wall time
            "records_per_cpu_s_in_process": best["records_per_cpu_s"], "records_per_s_in_process": best["records_per_s"],
            "normalization_us_per_record": round(norm * 1e6, 1),
            "normalization_share_of_cpu": round(norm * best["records_per_cpu_s"], 3),
            "orders": runs, "targets": TARGETS,
        }
        if args.cosmos_records > 0:
            try:
                figures["cosmos"] = run_on_cosmos(on_cosmos, model, args.cosmos_records)
                figures["cosmos"]["sources_in_data"] = source_mix
            except Exception as err:  # keep the in-process figures; say why the stack part is missing
                figures["cosmos"] = {"error": f"{type(err).__name__}: {err}"}
        return figures
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--orders", type=int, default=3, help="random arrival orders to compare")
    parser.add_argument("--cosmos-records", type=int, default=400, help="records resolved on the emulator (0: skip)")
    parser.add_argument("--data", default=None, help="an existing generated data set (default: generate one)")
    args = parser.parse_args(argv)
    run_benchmark("identity", lambda: measure(args), params=vars(args))


if __name__ == "__main__":
    main()
