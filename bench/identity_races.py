"""Races of many workers resolving at once, in process: how often the store ends inconsistent.

    python -m bench.identity_races [--rounds 1000] [--seed 0] [--records 6] [--deliveries 2] [--switch 1e-5] [--die 0]
                                   [--removals 0] [--repairs 0]

Each round draws a few records from the random-operations pool of tests/test_identity_random_operations.py (a
handful of names, phones, emails and loyalty cards, so households, shared identifiers, new versions of one key and
merges meet often), starts one thread per delivery (each record `--deliveries` times: at-least-once) on one
MemoryStore, and releases them together; the interpreter switches threads every `--switch` seconds (Python's
default is 5e-3: a short interval makes them interleave between store calls, as scaled-out workers do). Once all
are done every record is delivered once more, one at a time (a queue draining), and the invariant audit
(shared/audit.py) checks the store. Figures: rounds with a violation or an exception, and their kinds. With `--die`,
workers also die at random writes (a process killed, a host recycled) while the others race them: the drain is
then their redelivery (dequeue count above 1), and the timers' sweeps of sagas cut off (finish_stale_merges,
finish_stale_splits) run after it; the store must then be consistent. A round's store the audit finds
inconsistent is then given to repair_index (`ucp repair-index`, shared/identity/repair.py) and audited again:
`rounds_repaired`, and `violations_after_repair_by_kind` (what the repair left; groupings other than the
sequential orders' are no state it mends). `--repair-window`: the repair runs over the documents written since
the round began, as the hourly timer does, in chunks of `--repair-chunk` documents (a chunk of 1 reads around each
document on its own).
`--removals N`: N deletes at the source of drawn records race the deliveries in each round (and die as they do);
the drain then delivers each delete once more, after the records. `--repairs N`: N runs of repair_index race them
too (the hourly timer meeting running workers, and the residue of dead ones not yet delivered again).
`--trace DIR`: every store call of a round is recorded (its thread, container, method, arguments and outcome, the
documents without their records' contents), and the calls of each round the audit finds inconsistent are written to
DIR/round-SEED.jsonl: the interleaving that left it so, to read (a worker that died stops calling).

Thread scheduling is not seeded: the same seed gives the same records, not the same interleavings, so figures vary
from run to run (the rate is the figure; compare code in runs of the same length).
"""
from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.harness import run_benchmark
from bench.identity import final_assignment


# A dying worker dies at one of its first writes, the nth drawn up to this: a new record makes 4 or 5 (records doc,
# profile, claims, blocking keys, commit), a link or a merge more, a delivery finding its record done none.
MAX_WRITES_BEFORE_DYING = 6
# A racing repair starts up to this long after the deliveries: a round's deliveries take a few milliseconds to tens.
REPAIR_DELAY_SECONDS = 0.02


class TracedStore:
    """A store recording every call of its containers, from any thread, in the order they returned (--trace)."""

    def __init__(self, store):
        self._store = store
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __getattr__(self, attr: str):
        return getattr(self._store, attr)

    def container(self, name: str):
        return _TracedContainer(self._store.container(name), name, self)

    def record(self, container: str, method: str, args: tuple, kwargs: dict, outcome: Any) -> None:
        call = {"thread": threading.current_thread().name, "container": container, "method": method,
                "args": _brief(args), **({"kwargs": _brief(kwargs)} if kwargs else {}), "outcome": outcome}
        with self._lock:
            self.calls.append(call)

    def write(self, path: Path, header: dict[str, Any]) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as out:
            for line in [header, *self.calls]:
                out.write(json.dumps(line, default=str) + "\n")
        return path


class _TracedContainer:
    def __init__(self, inner, name: str, store: TracedStore):
        self._inner, self._name, self._store = inner, name, store

    def __getattr__(self, attr: str):
        value = getattr(self._inner, attr)
        if not callable(value) or attr == "partition_key_of":
            return value

        def call(*args, **kwargs):
            try:
                result = value(*args, **kwargs)
                if attr == "query_items":  # a lazy iterable: recorded as it was read
                    result = list(result)
            except Exception as err:
                self._store.record(self._name, attr, args, kwargs, {"raised": type(err).__name__})
                raise
            self._store.record(self._name, attr, args, kwargs, _brief(result))
            return result
        return call


# Left out of a traced document: what survivorship made of its records, and its timestamp (_brief cuts its records
# down to their keys).
_UNTRACED_FIELDS = ("attributes", "conflicts", "_ts")


def _brief(value: Any) -> Any:
    if isinstance(value, dict):
        brief = {k: _brief(v) for k, v in value.items() if k not in _UNTRACED_FIELDS and k != "records"}
        if "records" in value:
            brief["records"] = [r.get("key") if isinstance(r, dict) else r for r in value["records"]]
        return brief
    if isinstance(value, (list, tuple)):
        return [_brief(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def one_round(seed: int, records: int, deliveries: int, *, store=None, die: float = 0.0, orders: int = 0,
              removals: int = 0, repairs: int = 0) -> tuple[dict[str, int], list[str], int, int]:
    """(audit violations, exceptions, workers that died, sagas the timers finished) of one round, on `store`
    (default: a new MemoryStore). `die`: the chance that a delivery's worker dies at one of its writes (a random
    one; its record is delivered again when the queue drains, as every record is, and the timers' sweeps run then,
    as if idle long enough). A death is not an exception of the round. `orders`: also resolve the records one at
    a time in that many random orders, each on a new store, and count as violations the pairs of records the
    concurrent run grouped otherwise than every one of those orders did (`split_from_sequential`: together in each
    order, apart here; `joined_against_sequential`: the reverse; confirmed against every order of a few records).
    Only for rounds whose records have distinct keys
    (with two versions of one key, which version lands last decides), and without removals. `removals`: that many
    deletes at the source of drawn records' keys race the deliveries (dying as they do); the drain delivers each
    again after the records, so those keys end removed. `repairs`: that many runs of repair_index race the deliveries
    (each starting after a random delay of up to REPAIR_DELAY_SECONDS), as the hourly timer meets running workers
    and the residue of workers that died and have not been delivered again: its exceptions count."""
    from shared.audit import audit_store
    from shared.identity import (Resolver, finish_unfinished_merges, finish_unfinished_splits, remove_record,
                                 repair_index)
    from shared.identity.docs import ConcurrencyConflict
    from shared.store import MemoryStore
    from tests.store_faults import Died, crashing
    from tests.test_identity_random_operations import SETTINGS, random_record

    rng = random.Random(seed)
    store = MemoryStore() if store is None else store
    drawn = [random_record(rng) for _ in range(records)]
    work = [record for record in drawn for _ in range(deliveries)]
    rng.shuffle(work)
    stores = [crashing(store, None, None, nth=rng.randint(1, MAX_WRITES_BEFORE_DYING))
              if rng.random() < die else store for _ in work]
    # Drawn after the round's other draws, so a seed gives the same records and deaths with or without removals.
    removed = [rng.choice(drawn) for _ in range(removals)]
    jobs = [*zip(work, stores, [False] * len(work)),
            *((record, crashing(store, None, None, nth=rng.randint(1, MAX_WRITES_BEFORE_DYING))
               if rng.random() < die else store, True) for record in removed)]
    # Drawn after all the others, so a seed gives the same records, deaths and deletes with or without repairs.
    repair_delays = [rng.random() * REPAIR_DELAY_SECONDS for _ in range(repairs)]
    start = threading.Barrier(len(jobs) + repairs)
    errors: list[str] = []

    def remove(record, worker_store) -> None:
        remove_record(worker_store, record.source, record.record_key, settings=SETTINGS)

    def deliver(record, worker_store, removal: bool) -> None:
        try:
            start.wait()
            if removal:
                remove(record, worker_store)
            else:
                Resolver(worker_store, settings=SETTINGS).resolve(record)
        except Died:
            pass
        except ConcurrencyConflict:
            if not removal:  # a removal waiting for a version being resolved is retried (the drain)
                errors.append("ConcurrencyConflict")
        except Exception as err:  # noqa: BLE001 - counted: a worker's exception is a finding
            errors.append(type(err).__name__)

    def repair(delay: float) -> None:
        try:
            start.wait()
            time.sleep(delay)
            repair_index(store, settings=SETTINGS)  # nothing idle yet: the sagas of the round are left to the sweeps
        except Exception as err:  # noqa: BLE001 - counted: the repair must be safe beside running workers
            errors.append(f"repair: {type(err).__name__}")

    threads = [threading.Thread(target=deliver, args=job) for job in jobs]
    threads += [threading.Thread(target=repair, args=(delay,)) for delay in repair_delays]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # The queue drains: each record once more, one at a time; the message of a delivery whose worker died comes back
    # with its dequeue count above 1.
    dead = [(record, removal) for record, worker_store, removal in jobs
            if worker_store is not store and worker_store.intercepted]
    redelivered = {id(record) for record, removal in dead if not removal}
    for record in drawn:
        try:
            Resolver(store, settings=SETTINGS).resolve(record, redelivered=id(record) in redelivered)
        except Exception as err:  # noqa: BLE001
            errors.append(f"redelivery: {type(err).__name__}")
    for record in removed:  # then each delete
        try:
            remove(record, store)
        except Exception as err:  # noqa: BLE001
            errors.append(f"removal redelivered: {type(err).__name__}")
    died = len(dead)
    swept = 0
    if died:  # with no death, a saga left unfinished is a finding of the races alone
        swept = len(finish_unfinished_merges(store, settings=SETTINGS, idle_seconds=0)) + len(
            finish_unfinished_splits(store, settings=SETTINGS, idle_seconds=0))
    violations = audit_store(store).as_dict()["violations"]
    keys = [record.key for record in drawn]
    if orders and len(set(keys)) == len(keys) and not removals:
        violations.update(_against_sequential(drawn, final_assignment(store, keys), orders, rng))
    return violations, errors, died, swept


def _against_sequential(drawn: list, concurrent: dict[str, str], orders: int, rng: random.Random) -> dict[str, int]:
    """The pairs of records grouped otherwise by the concurrent run than by every one of `orders` sequential runs. A
    round found so is then checked against every order when there are few (EVERY_ORDER_UP_TO records or fewer: 720
    orders of 6), as the sample may have missed the order that groups them so; the figure then counts only groupings
    no order gives."""
    here = _pairs(concurrent)
    found = _otherwise(here, [_grouped(drawn, rng.sample(drawn, len(drawn))) for _ in range(orders)])
    if found and len(drawn) <= EVERY_ORDER_UP_TO:
        found = _otherwise(here, [_grouped(drawn, order) for order in itertools.permutations(drawn)])
    return found


EVERY_ORDER_UP_TO = 6


def _grouped(drawn: list, order) -> set[frozenset[str]]:
    """The pairs of `drawn` in one profile once resolved one at a time in `order`, on a new store."""
    from shared.identity import Resolver
    from shared.store import MemoryStore
    from tests.test_identity_random_operations import SETTINGS

    store = MemoryStore()
    resolver = Resolver(store, settings=SETTINGS)
    for record in order:
        resolver.resolve(record)
    return _pairs(final_assignment(store, [r.key for r in drawn]))


def _otherwise(here: set[frozenset[str]], together: list[set[frozenset[str]]]) -> dict[str, int]:
    if not together:
        return {}
    always, ever = set.intersection(*together), set.union(*together)
    found = {"split_from_sequential": len(always - here), "joined_against_sequential": len(here - ever)}
    return {kind: count for kind, count in found.items() if count}


def _pairs(assignment: dict[str, str]) -> set[frozenset[str]]:
    """The pairs of record keys in one profile."""
    keys = sorted(assignment)
    return {frozenset((a, b)) for i, a in enumerate(keys) for b in keys[i + 1:] if assignment[a] == assignment[b]}


SEQUENTIAL_KINDS = {"split_from_sequential", "joined_against_sequential"}  # groupings, not the store's state


def measure(args) -> dict[str, Any]:
    from shared.audit import audit_store
    from shared.identity import repair_index
    from shared.store import MemoryStore
    from tests.test_identity_random_operations import SETTINGS

    before = sys.getswitchinterval()
    sys.setswitchinterval(args.switch)
    try:
        kinds, exceptions, bad, examples, deaths, swept = Counter(), Counter(), 0, [], 0, 0
        trace, traces = (Path(args.trace) if getattr(args, "trace", None) else None), []
        repaired, left_after_repair = 0, Counter()
        for seed in range(args.seed, args.seed + args.rounds):
            store = MemoryStore()
            traced = TracedStore(store) if trace else None
            began = int(time.time())
            violations, errors, died, finished = one_round(seed, args.records, args.deliveries,
                                                           store=traced or store, die=args.die,
                                                           orders=args.sequential_orders, removals=args.removals,
                                                           repairs=args.repairs)
            if traced is not None and (violations or errors):
                header = {"seed": seed, "violations": violations, "exceptions": errors}
                traces.append(str(traced.write(trace / f"round-{seed}.jsonl", header)))
            deaths, swept = deaths + died, swept + finished
            if set(violations) - SEQUENTIAL_KINDS:  # the store's own findings: what `ucp repair-index` is for
                repaired += 1
                window = {"since": began, "chunk": args.repair_chunk} if args.repair_window else {}
                repair_index(store, settings=SETTINGS, idle_seconds=0, **window)  # idle long enough, as the sweeps
                left_after_repair.update(audit_store(store).as_dict()["violations"].keys())
            if violations or errors:
                bad += 1
                kinds.update(violations.keys())
                exceptions.update(errors)
                if len(examples) < 10:
                    examples.append({"seed": seed, "violations": violations, "exceptions": errors})
    finally:
        sys.setswitchinterval(before)
    return {"rounds": args.rounds, "rounds_inconsistent": bad, "rate": round(bad / max(1, args.rounds), 4),
            "violations_by_kind": dict(kinds.most_common()), "exceptions": dict(exceptions.most_common()),
            "workers_died": deaths, "sagas_finished_by_timers": swept,
            # Rounds whose store the audit found inconsistent, then repair_index run on it, and what it left.
            "rounds_repaired": repaired, "violations_after_repair_by_kind": dict(left_after_repair.most_common()),
            "examples": examples, **({"traces": traces} if trace else {})}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--records", type=int, default=6, help="records drawn per round")
    parser.add_argument("--deliveries", type=int, default=2, help="deliveries of each record, at once")
    parser.add_argument("--switch", type=float, default=1e-5, help="the interpreter's thread switch interval (s)")
    parser.add_argument("--die", type=float, default=0.0,
                        help="chance that a delivery's worker dies at a random write of its own (0 to 1)")
    parser.add_argument("--removals", type=int, default=0,
                        help="deletes at the source of drawn records racing the deliveries, per round")
    parser.add_argument("--repairs", type=int, default=0,
                        help="runs of repair_index racing the deliveries, per round (as the hourly timer meets them)")
    parser.add_argument("--sequential-orders", type=int, default=0,
                        help="compare each round's grouping with that many one-at-a-time orders (0: do not); a "
                             "round grouped otherwise is checked against every order of up to 6 records")
    parser.add_argument("--repair-window", action="store_true",
                        help="repair over the documents written since the round began, as the hourly timer does")
    parser.add_argument("--repair-chunk", type=int, default=200, help="documents per chunk of a windowed repair")
    parser.add_argument("--trace", metavar="DIR",
                        help="write the store calls of each inconsistent round to DIR/round-SEED.jsonl")
    args = parser.parse_args(argv)
    run_benchmark("identity_races", lambda: measure(args), params=vars(args))


if __name__ == "__main__":
    main()
