"""Races of many workers resolving at once, in process: how often the store ends inconsistent.

    python -m bench.identity_races [--rounds 1000] [--seed 0] [--records 6] [--deliveries 2] [--switch 1e-5]

Each round draws a few records from the random-operations pool of tests/test_identity_random_operations.py (a
handful of names, phones, emails and loyalty cards, so households, shared identifiers, new versions of one key and
merges meet often), starts one thread per delivery (each record `--deliveries` times: at-least-once) on one
MemoryStore, and releases them together; the interpreter switches threads every `--switch` seconds (Python's
default is 5e-3: a short interval makes them interleave between store calls, as scaled-out workers do). Once all
are done every record is delivered once more, one at a time (a queue draining), and the invariant audit
(shared/audit.py) checks the store. Figures: rounds with a violation or an exception, and their kinds.

Thread scheduling is not seeded: the same seed gives the same records, not the same interleavings, so figures vary
from run to run (the rate is the figure; compare code in runs of the same length).
"""
from __future__ import annotations

import argparse
import random
import sys
import threading
from collections import Counter
from typing import Any

from bench.harness import run_benchmark


def one_round(seed: int, records: int, deliveries: int, *, store=None) -> tuple[dict[str, int], list[str]]:
    """(audit violations, exceptions) of one round, on `store` (default: a new MemoryStore)."""
    from shared.audit import audit_store
    from shared.identity import Resolver
    from shared.store import MemoryStore
    from tests.test_identity_random_operations import SETTINGS, random_record

    rng = random.Random(seed)
    store = MemoryStore() if store is None else store
    drawn = [random_record(rng) for _ in range(records)]
    work = [record for record in drawn for _ in range(deliveries)]
    rng.shuffle(work)
    start = threading.Barrier(len(work))
    errors: list[str] = []

    def deliver(record) -> None:
        try:
            start.wait()
            Resolver(store, settings=SETTINGS).resolve(record)
        except Exception as err:  # noqa: BLE001 - counted: a worker's exception is a finding
            errors.append(type(err).__name__)

    threads = [threading.Thread(target=deliver, args=(record,)) for record in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for record in drawn:  # the queue drains: each record once more, one at a time
        try:
            Resolver(store, settings=SETTINGS).resolve(record)
        except Exception as err:  # noqa: BLE001
            errors.append(f"redelivery: {type(err).__name__}")
    return audit_store(store).as_dict()["violations"], errors


def measure(args) -> dict[str, Any]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(args.switch)
    try:
        kinds, exceptions, bad, examples = Counter(), Counter(), 0, []
        for seed in range(args.seed, args.seed + args.rounds):
            violations, errors = one_round(seed, args.records, args.deliveries)
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
            "examples": examples}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--records", type=int, default=6, help="records drawn per round")
    parser.add_argument("--deliveries", type=int, default=2, help="deliveries of each record, at once")
    parser.add_argument("--switch", type=float, default=1e-5, help="the interpreter's thread switch interval (s)")
    args = parser.parse_args(argv)
    run_benchmark("identity_races", lambda: measure(args), params=vars(args))


if __name__ == "__main__":
    main()
