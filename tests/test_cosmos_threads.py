"""Threads sharing the one CosmosClient of a process (a worker's parallel lanes, the host's invocation threads).

azure-cosmos keeps the last response's headers on the connection all threads share, adds to that dict in place after
each request, and reads a query's continuation from it: with threads, listings came back short, continuations
belonged to other responses (400) and queries failed with "dictionary changed size during iteration"."""
from __future__ import annotations

import sys
import threading
import time
from collections import Counter

from bench.identity import load_customer_records
from shared.audit import audit_store
from shared.generate import GeneratorConfig, generate
from shared.identity.lanes import resolve_in_lanes
from shared.settings import Settings

PROFILES = [f"p{i:03}" for i in range(120)]


def test_each_thread_sees_the_headers_of_its_own_last_response(cosmos_store):
    profiles = cosmos_store.container("profiles")
    etags = {name: profiles.upsert_item({"id": name})["_etag"] for name in ("a", "b")}
    connection = cosmos_store._client.client_connection
    read_a, read_b = threading.Event(), threading.Event()
    seen = {}

    def reader_of_a():
        profiles.read_item("a", partition_key="a")
        read_a.set()
        read_b.wait(30)
        seen["a"] = connection.last_response_headers.get("etag")

    thread = threading.Thread(target=reader_of_a)
    thread.start()
    read_a.wait(30)
    profiles.read_item("b", partition_key="b")
    read_b.set()
    thread.join(30)
    assert seen["a"] == etags["a"] and connection.last_response_headers.get("etag") == etags["b"]


def _switching_finely(run):
    """run() with the interpreter switching threads every microsecond: threads interleave inside the SDK as they
    would, more rarely, in production."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        return run()
    finally:
        sys.setswitchinterval(interval)


def test_paged_listings_stay_whole_while_other_threads_use_the_client(cosmos_store):
    """Four threads page through 120 profiles while four read: every listing is whole, nothing fails."""
    profiles = cosmos_store.container("profiles")
    for name in PROFILES:
        profiles.upsert_item({"id": name})
    wrong, errors, listings = [], [], [0]
    stop = time.monotonic() + 8

    def lister():
        while time.monotonic() < stop:
            seen, token = [], None
            try:
                while True:
                    page, token = profiles.query_page(None, page_size=25, continuation=token)
                    seen += [doc["id"] for doc in page]
                    if token is None or len(seen) > 2 * len(PROFILES):
                        break
            except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
                errors.append(repr(exc)[:200])
            listings[0] += 1
            if sorted(seen) != PROFILES:
                wrong.append(len(seen))

    def reader(i):
        while time.monotonic() < stop:
            try:
                profiles.read_item(PROFILES[i], partition_key=PROFILES[i])
            except Exception as exc:  # noqa: BLE001
                errors.append(repr(exc)[:200])

    threads = [threading.Thread(target=lister) for _ in range(4)]
    threads += [threading.Thread(target=reader, args=(i,)) for i in range(4)]

    def run():
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

    _switching_finely(run)
    assert listings[0] > 20
    assert errors == [] and wrong == [], (sorted(set(errors))[:3], wrong[:10])


def test_messages_resolved_in_parallel_lanes_all_succeed_and_leave_a_consistent_store(cosmos_store, tmp_path):
    """The worker's case (its one failed run under `make run`): 12 messages of 25 generated customers, each resolved
    in lanes on 8 threads. Without each thread's own headers most of the messages failed, and a run of the same
    kind left an identifier its profile listed unindexed (until the messages' redelivery)."""
    generate(tmp_path, GeneratorConfig(customers=150, seed=9), progress=False)
    records = load_customer_records(tmp_path)[:300]
    failures, actions = [], Counter()

    def run():
        for start in range(0, len(records), 25):
            try:
                results = resolve_in_lanes(cosmos_store, records[start:start + 25], settings=Settings(), workers=8)
                actions.update(result.action for result in results)
            except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
                failures.append(repr(exc)[:200])

    _switching_finely(run)
    assert failures == [] and sum(actions.values()) == len(records) == 300
    assert audit_store(cosmos_store).as_dict()["violations"] == {}
