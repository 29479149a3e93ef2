"""Resolving the records of one queue message side by side, with the outcome of resolving them in order.

A record meets other records' profiles only through shared keys: its source record, its strong identifiers and
its blocking keys. Records of a message that share a key, directly or through a chain, form a lane and are
resolved in message order; lanes share nothing, so they run concurrently on a pool of threads. Time per record is
mostly waiting for Cosmos DB round trips (the GIL is released meanwhile), so a 100-record file resolves several
times faster than one record after another, without changing which profiles records end in. Lanes may still
meet in a profile that existed before (two records linking to one customer through different identifiers);
the engine's ETag and claim protocol settles that exactly as it does between two workers.
"""
from __future__ import annotations

import logging
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, wait
from functools import lru_cache
from typing import Sequence

from shared.models import CustomerRecord
from shared.normalize import NormalizedRecord
from shared.settings import Settings
from shared.store import Store

from .docs import ResolverConfig, record_identifiers
from .engine import Resolver, ResolveResult, normalize_for_resolution
from .matching import blocking_keys

log = logging.getLogger(__name__)


def record_keys(record: CustomerRecord, normalized: NormalizedRecord | ResolveResult | None = None) -> list[str]:
    """The keys through which this record can meet another: source record, strong identifiers, blocking keys.
    `normalized`: what the resolver's normalize(record) returned (without the values its configuration blocks),
    when the caller has it already; else the record normalized without configured blocked values."""
    keys = [f"record:{record.key}"]
    n = normalize_for_resolution(record) if normalized is None else normalized
    if isinstance(n, ResolveResult):
        return keys  # it will be quarantined; it meets nothing
    return keys + record_identifiers(n) + blocking_keys(n)


def lanes(records: Sequence[CustomerRecord], normalized: Sequence[NormalizedRecord | ResolveResult] | None = None
          ) -> list[list[int]]:
    """Indexes of the records, grouped so that records sharing a key (even through others) are in one lane,
    in message order within a lane; the longest lanes first."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, record in enumerate(records):
        here = root(f"#{i}")
        for key in record_keys(record, normalized[i] if normalized is not None else None):
            parent[root(key)] = here  # here stays a root: others join under it
    groups: dict[str, list[int]] = {}
    for i in range(len(records)):
        groups.setdefault(root(f"#{i}"), []).append(i)
    return sorted(groups.values(), key=len, reverse=True)


@lru_cache(maxsize=4)
def _pool(workers: int, pid: int) -> ThreadPoolExecutor:
    # One pool per process (a forked child cannot use its parent's threads): messages resolved at the same time
    # share it, so threads stay bounded.
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="resolve-lane")


def resolve_in_lanes(store: Store, records: Sequence[CustomerRecord], *, settings: Settings, model=None,
                     config: ResolverConfig | None = None, workers: int | None = None,
                     landed_at: str | None = None, redelivered: bool = False) -> list[ResolveResult]:
    """Resolve each record into a profile, lanes concurrently; one result per record, in order. If any record
    fails, the others still finish before the first error is raised (the message is retried as a whole).
    `landed_at`: when the file of these records landed; `redelivered`: their message is delivered again
    (Resolver.resolve)."""
    resolver = Resolver(store, settings=settings, model=model, config=config)
    workers = settings.resolve_concurrency if workers is None else workers
    results: list[ResolveResult] = [None] * len(records)  # type: ignore[list-item]  # each set by its lane

    normalized = [resolver.normalize(record) for record in records]  # once, for the lanes and resolving

    def run(lane: list[int]) -> None:
        for i in lane:
            results[i] = resolver.resolve(records[i], normalized=normalized[i], landed_at=landed_at,
                                          redelivered=redelivered)

    groups = lanes(records, normalized)
    if workers <= 1 or len(groups) <= 1:
        for lane in groups:
            run(lane)
    else:
        futures = [_pool(workers, os.getpid()).submit(run, lane) for lane in groups]
        wait(futures)
        for future in futures:
            future.result()  # raises the first failure
    log.info("resolved %d records in %d lanes: %s", len(results), len(groups), dict(Counter(r.action for r in results)))
    return results
