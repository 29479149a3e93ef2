"""The in-process speed paths of identity resolution decide exactly what the plain paths decide.

Fast: a MemoryStore that copies only the top level of documents, profile snapshots cached per profile version,
the model's probability memo, the heap frozen during the run, the single-writer mode (no concurrency re-reads),
records normalized a chunk ahead (resolve_many), as `ucp resolve` runs. Plain: deep-copying store, no snapshot
cache, explained scores, the garbage collector left alone, the re-reads of queue workers.
"""
from __future__ import annotations

import gc
import hashlib
import itertools
import json
import random

import pytest

from model_training.match_model import load_training_records
from shared.identity import Resolver
from shared.identity.docs import ResolverConfig
from shared.identity.matching import MatchModel
from shared.identity.snapshots import ProfileSnapshots
from shared.models import CustomerRecord, content_hash_of
from shared.normalize import normalize_record
from shared.store import MemoryStore, with_frozen_heap


@pytest.fixture(scope="module")
def records():
    found, _ = load_training_records(400, seed=23)
    random.Random(5).shuffle(found)
    return found


def _resolve_all(resolver, records):
    return {r.key: resolver.resolve(r) for r in records}


def _profiles(store):
    """Each live profile's content, without the timestamps of the run."""
    out = {}
    for doc in store.container("profiles").query_items(("doc_type", "=", "profile")):
        records = sorted(({k: v for k, v in r.items() if k != "added_at"} for r in doc["records"]), key=lambda r: r["key"])
        out[doc["id"]] = (records, doc["identifiers"], doc["attributes"], doc.get("conflicts"), doc["merge_count"])
    return out


def test_fast_and_plain_paths_place_every_record_alike(records):
    plain = Resolver(MemoryStore(copy_documents=True))
    plain.snapshots = ProfileSnapshots(max_profiles=0)  # rebuilt from the stored JSON at every comparison
    fast_store = MemoryStore(copy_documents=False)
    fast = Resolver(fast_store, config=ResolverConfig(single_writer=True))
    unusable = [CustomerRecord(source="pos", record_key=f"bare-{i}", given_name="Ann") for i in range(2)]
    records = records[:100] + unusable[:1] + records[100:300] + unusable[1:] + records[300:]  # across chunks
    expected = _resolve_all(plain, records)
    # resolve_many, as `ucp resolve` runs: records normalized a chunk ahead, results in record order
    got = dict(zip((r.key for r in records), fast.resolve_many(with_frozen_heap(records, every=50))))
    assert got == expected
    assert [got[r.key].action for r in unusable] == ["quarantined"] * 2
    assert _profiles(fast_store) == _profiles(plain.ctx.store)  # same records, attributes and conflicts
    rebuilt = ProfileSnapshots(max_profiles=0)
    for doc in fast_store.container("profiles").query_items(("doc_type", "=", "profile")):
        assert fast.snapshots.of(doc) == rebuilt.of(doc)  # kept up to date by the resolver's own writes
    actions = {r.action for r in got.values()}
    assert {"created", "linked"} <= actions  # the set exercises links, not only new profiles
    assert gc.get_freeze_count() == 0  # the collector got the heap back


def test_probability_memo_equals_the_explained_score(records):
    model = MatchModel.default()
    normalized = [normalize_record(r) for r in records[:120]]
    pairs = list(itertools.combinations(normalized, 2))
    for _ in range(2):  # the second round is answered from the memo
        for a, b in pairs:
            assert model.probability(a, b) == model.score(a, b).probability


def test_profile_snapshots_follow_the_profile_version():
    store = MemoryStore()
    profiles = store.container("profiles")
    entry = {"key": "pos|1", "hash": "h1", "match": {"key": "pos|1", "source": "pos", "given_name": "ann"}}
    doc = profiles.create_item({"id": "p_1", "records": [entry]})
    snapshots = ProfileSnapshots()
    first = snapshots.of(doc)
    assert [(k, n.given_name) for k, n in first] == [("pos|1", "ann")]
    assert snapshots.of(profiles.read_item("p_1", "p_1")) is first  # same version: not rebuilt
    changed = {**entry, "hash": "h2", "match": {**entry["match"], "given_name": "anne"}}
    doc = profiles.replace_item({**doc, "records": [changed]}, etag=doc["_etag"])
    assert [(k, n.given_name) for k, n in snapshots.of(doc)] == [("pos|1", "anne")]


def test_frozen_heap_is_released_when_the_run_stops_early():
    thresholds = gc.get_threshold()
    items = with_frozen_heap(range(10), every=2)
    assert list(itertools.islice(items, 5)) == [0, 1, 2, 3, 4]
    assert gc.get_threshold()[0] > thresholds[0]  # young collections wait for the next freeze
    items.close()
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == thresholds



def test_content_hash_stays_the_one_stored_by_earlier_versions(records):
    """Stored content hashes decide whether a record re-sent later is unchanged: the hash must not drift."""
    extra = CustomerRecord(source="crm", record_key="é-1", given_name="José", family_name="Ñúñez",
                           attributes={"Note": "naïve ✓", "n": 1.5, "b": True})
    for record in [*records[:200], extra]:
        data = record.model_dump(mode="json", exclude_none=True)
        payload = json.dumps(data, sort_keys=True, separators=(",", ":"))
        assert content_hash_of(data) == hashlib.sha256(payload.encode()).hexdigest()[:32]


def test_timestamps_keep_their_format_across_seconds(monkeypatch):
    """now_iso formats the date and time once per second: each second still gets its own, as datetime says."""
    import time
    from datetime import datetime, timezone

    from shared.identity import docs

    for ns in (1_767_225_599_999_999_000, 1_767_225_600_000_001_000, 1_767_225_599_000_000_000, 951_782_400_123_456_789):
        monkeypatch.setattr(time, "time_ns", lambda ns=ns: ns)
        expected = datetime.fromtimestamp(ns // 1000 / 1e6, timezone.utc).isoformat(timespec="microseconds")[:-6] + "Z"
        assert docs.now_iso() == expected


def _survive_by_definition(entries, policy):
    """Survivorship as docs/identity.md defines it: per attribute, every record's value ranked by the rule's
    criteria, then the other criteria (recency, source priority, length), then the record key."""
    from shared.identity.survivorship import _comparable, _descending, _time_key

    def order(value, entry, rule):
        updated = _time_key(entry.get("updated_at"))  # one UTC form, whichever form the entry holds
        recent = (0 if updated else 1, _descending(updated),
                  _descending(entry.get("seen_at") or entry.get("added_at")))
        sources = policy.source_priority
        priority = sources.index(entry["source"]) if entry["source"] in sources else len(sources)
        length = -len(str(value))
        parts = {"most_recent": (recent, priority, length), "source_priority": (priority, recent, length),
                 "most_complete": (length, priority, recent)}[rule]
        return (*parts, entry["key"])

    attributes, conflicts = {}, {}
    names = sorted({name for entry in entries for name in entry.get("values") or {}})
    for name in names:
        rule = policy.rules.get(name, policy.default_rule)
        ranked = sorted(((e["values"][name], e) for e in entries if name in (e.get("values") or {})),
                        key=lambda ve: order(*ve, rule))
        value, entry = ranked[0]
        attributes[name] = {"value": value, "source": entry["source"], "record": entry["key"], "rule": rule}
        seen, others = {_comparable(value)}, []
        for other, other_entry in ranked[1:]:
            if _comparable(other) not in seen:
                seen.add(_comparable(other))
                others.append({"value": other, "source": other_entry["source"], "record": other_entry["key"]})
        if others:
            conflicts[name] = others
    return attributes, conflicts


@pytest.mark.parametrize("default_rule", ["most_recent", "source_priority", "most_complete"])
def test_survivorship_ranks_as_defined_with_ties(default_rule):
    """The survivorship shortcuts (records ranked once, values compared only when they differ) choose exactly
    what ranking every attribute's values by the definition chooses, ties on time and source included."""
    from shared.identity.survivorship import SurvivorshipPolicy, survive

    rng = random.Random(7)
    policy = SurvivorshipPolicy(default_rule=default_rule, source_priority=("crm", "pos"),
                                rules={"email": "most_complete", "city": "source_priority", "phone": "most_recent"})
    values = {"given_name": ["Ann", "ann", "Anne", "A"], "email": ["a@x.com", "A@X.com", "ann.lee@x.com"],
              "city": ["Leeds", "leeds ", "York"], "phone": ["0113 496 0000", "+44 113 496 0000"], "n": [1, 1.0, True, 2]}
    for _ in range(400):
        entries = []
        for i in range(rng.randint(2, 5)):
            picked = {name: rng.choice(options) for name, options in values.items() if rng.random() < 0.8}
            entries.append({"key": f"{rng.choice(['crm', 'pos', 'web'])}|{i}", "source": rng.choice(["crm", "pos", "web"]),
                            "updated_at": rng.choice([None, "2025-01-01T00:00:00", "2025-02-01T00:00:00",
                                                      "2025-01-01T05:00:00+05:00", "2025-01-01T00:00:00.000000Z"]),
                            "added_at": rng.choice(["2026-01-01T00:00:00.000001Z", "2026-01-01T00:00:00.000002Z"]),
                            "values": picked})
            if rng.random() < 0.3:  # a new version replaced it later
                entries[-1]["seen_at"] = rng.choice(["2026-01-01T00:00:00.000002Z", "2026-01-02T00:00:00.000000Z"])
        assert survive(entries, policy) == _survive_by_definition(entries, policy)
