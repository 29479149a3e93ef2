"""Invariant checks over a store: what must hold after any run, whatever faults the infrastructure threw at it.

    report = audit_store(store)                              # ingestion accounting, records, identifiers, merges
    clusters = truth_clusters(store, read_truth(path))       # profiles per true person (generated data)
    diff = compare_clusters(clusters, baseline_clusters)     # against a run without faults

Every check reads whole containers (cross-partition queries), so it is for test, bench and staging sizes, not
for a 100 M-profile account (there, run it per partition range or on an export). Findings name ids only (record
keys, profile ids, identifier types), never identifier values, so a report can be logged and shared.

Checks (name: what must hold):
- ingestion_accounting: every ingestion report's rows_read = accepted + quarantined + duplicates.
- ingestion_unfinished: no report is still `processing`.
- ingestion_rows: rows read per blob = the expected rows (a generator's manifest), when given.
- record_twice_in_profile / record_in_two_profiles: a source record is held by exactly one profile, once.
- record_doc_missing / record_doc_orphan / record_doc_points_elsewhere: the records container and the profiles'
  record lists agree, both ways.
- identifier_dangling / identifier_points_to_alias / identifier_not_held: every identifier doc points to a live
  profile that lists it; profile_identifier_unindexed / profile_identifier_claimed_elsewhere: every identifier a
  profile lists has its doc pointing back; record_identifier_unindexed: every strong identifier a profile's record
  gives leads to a profile (this one, or another that holds it: a household's phone). Device links
  (`anonymous_id:<id>` docs in the identifiers container, shared/events/devices.py) are not identifiers (no
  profile lists them) and are checked apart:
- device_link_owner_unknown / device_link_without_owner: every record a device link names (its segments' owners)
  is held by a live profile (an erase takes the person's records out of their links), and a link names one at
  least (a link with no one left is deleted).
- orphan_alias / alias_not_in_merged_from: every alias leads to a live profile that records the merge;
  merged_id_not_alias: every id a profile lists as merged into it is an alias leading to it (a live profile or an
  alias of another that a profile lists would be taken off the blocking keys its records write, and read as this
  person's merge log in an export or an erase).
- unfinished_merge / pending_merge_doc: no profile is frozen by or in the middle of a merge saga (cut off: the next
  reader of either profile, or the finish_stale_merges timer, completes it); no merge doc is left pending.
  unfinished_split: no profile is marked by a split that did not finish (cut off: calling the
  split again, a new version or a removal of the record, or the finish_stale_splits timer finishes it).
- blocking_points_to_dead_profile: blocking entries name live profiles (or aliases of live ones) only;
  blocking_names_non_giver: a live profile a blocking entry names has a record that gives the key (else it is read
  and scored for nothing, and names a dead profile once that one is deleted); profile_blocking_unindexed: every
  blocking key a profile's records give finds the profile (or is capped).
"""
from __future__ import annotations

import csv
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .identity.docs import DEVICE_LINK, alias_targets, is_device_link
from .identity.maintenance import ID_FOLLOWED, entry_identifiers
from .store import Store

MAX_SAMPLES = 10


@dataclass
class Findings:
    """Violations per check (with a few sample ids each) and the figures the checks counted."""

    figures: dict[str, Any] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)
    samples: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))

    def fail(self, check: str, sample: Any) -> None:
        self.counts[check] += 1
        if len(self.samples[check]) < MAX_SAMPLES:
            self.samples[check].append(sample)

    @property
    def ok(self) -> bool:
        return not self.counts

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "violations": dict(sorted(self.counts.items())),
                "samples": {k: v for k, v in sorted(self.samples.items()) if v}, "figures": self.figures}


def _all(store: Store, container: str, filter_=None) -> list[dict[str, Any]]:
    return list(store.container(container).query_items(filter_))


def id_type(identifier: str) -> str:
    return identifier.split(":", 1)[0]


# ------------------------------------------------------------------------------------------------ ingestion


def check_ingestion(reports: Iterable[dict[str, Any]], findings: Findings,
                    expected_rows: dict[str, int] | None = None) -> None:
    """Accounting of each ingestion report; rows per blob against expected_rows ({blob name: rows}) if given."""
    reports = list(reports)
    totals = Counter()
    rows_by_blob: dict[str, int] = {}
    for r in reports:
        status = r.get("status")
        totals[f"reports_{status}"] += 1
        for k in ("rows_read", "accepted", "quarantined", "duplicates", "messages_sent", "records_queued"):
            totals[k] += int(r.get(k) or 0)
        if int(r.get("rows_read") or 0) != sum(int(r.get(k) or 0) for k in ("accepted", "quarantined", "duplicates")):
            findings.fail("ingestion_accounting", r["id"])
        if status == "processing":
            findings.fail("ingestion_unfinished", r["id"])
        if status == "completed":
            # A blob version has one report (the ledger id is derived from name + ETag); keep the completed one.
            rows_by_blob[r.get("blob")] = int(r.get("rows_read") or 0)
    if expected_rows is not None:
        for blob, rows in sorted(expected_rows.items()):
            got = rows_by_blob.get(blob)
            if got != rows:
                findings.fail("ingestion_rows", {"blob": blob, "expected": rows, "read": got})
        totals["expected_rows"] = sum(expected_rows.values())
    findings.figures["ingestion"] = {"reports": len(reports), **dict(sorted(totals.items()))}


# ------------------------------------------------------------------------------------------------ identity


def check_identity(store: Store, findings: Findings) -> dict[str, str]:
    """The identity containers agree with each other; returns {record key: holding profile id}."""
    docs = _all(store, "profiles")
    profiles = {d["id"]: d for d in docs if d.get("doc_type") == "profile"}
    aliases = {d["id"]: d for d in docs if d.get("doc_type") == "alias"}
    targets = alias_targets(docs)
    holder: dict[str, str] = {}
    record_entries = 0
    for pid, p in profiles.items():
        keys = [r["key"] for r in p.get("records", [])]
        record_entries += len(keys)
        for key, n in Counter(keys).items():
            if n > 1:
                findings.fail("record_twice_in_profile", {"profile": pid, "record": key})
        for key in set(keys):
            if key in holder:
                findings.fail("record_in_two_profiles", {"record": key, "profiles": sorted([holder[key], pid])})
            holder[key] = pid
        if p.get("pending_merge") or p.get("merging"):
            findings.fail("unfinished_merge", pid)
        if p.get("splitting"):
            findings.fail("unfinished_split", pid)
        if not keys:
            findings.fail("profile_without_records", pid)

    records = _all(store, "records")
    seen_docs = set()
    for doc in records:
        if doc.get("erased_at") or doc.get("removed_at"):
            continue  # an erased or deleted record's tombstone (shared/privacy.py, remove_record): no profile holds it
        seen_docs.add(doc["id"])
        owner = holder.get(doc["id"])
        if owner is None:
            findings.fail("record_doc_orphan", {"record": doc["id"], "profile": doc.get("profile_id")})
        elif doc.get("profile_id") != owner:
            findings.fail("record_doc_points_elsewhere", {"record": doc["id"], "doc": doc.get("profile_id"),
                                                          "holder": owner})
    for key, pid in holder.items():
        if key not in seen_docs:
            findings.fail("record_doc_missing", {"record": key, "profile": pid})

    identifiers, device_links = [], []
    for doc in _all(store, "identifiers"):
        (device_links if is_device_link(doc) else identifiers).append(doc)
    index = {}
    for doc in identifiers:
        index[doc["id"]] = doc.get("profile_id")
        pid = doc.get("profile_id")
        if pid in aliases:
            findings.fail("identifier_points_to_alias", {"type": id_type(doc["id"]), "profile": pid})
        elif pid not in profiles:
            findings.fail("identifier_dangling", {"type": id_type(doc["id"]), "profile": pid})
        elif doc["id"] not in profiles[pid].get("identifiers", []):
            findings.fail("identifier_not_held", {"type": id_type(doc["id"]), "profile": pid})
    profile_identifiers = 0
    for pid, p in profiles.items():
        for iid in p.get("identifiers", []):
            profile_identifiers += 1
            if iid not in index:
                findings.fail("profile_identifier_unindexed", {"type": id_type(iid), "profile": pid})
            elif index[iid] != pid:
                findings.fail("profile_identifier_claimed_elsewhere", {"type": id_type(iid), "profile": pid,
                                                                        "claimed_by": index[iid]})
        for entry in p.get("records", []):
            given = entry_identifiers(entry) if entry.get("match") else set()  # a snapshot gives the strong ones
            for iid in sorted(given - index.keys()):
                if id_type(iid) != "source":  # record_doc_missing tells those apart
                    findings.fail("record_identifier_unindexed", {"type": id_type(iid), "profile": pid})

    check_device_links(device_links, holder, findings)

    for aid in aliases:
        target = targets[aid]
        if target not in profiles:
            findings.fail("orphan_alias", {"alias": aid, "ends_at": target})
        elif aid not in profiles[target].get("merged_from", []):
            findings.fail("alias_not_in_merged_from", {"alias": aid, "profile": target})
    for pid, p in profiles.items():
        for merged in p.get("merged_from", []):
            if targets.get(merged) != pid:
                findings.fail("merged_id_not_alias", {"profile": pid, "merged": merged,
                                                      "leads_to": targets.get(merged)})

    merges = _all(store, "merges")
    for m in merges:
        if m.get("status") == "pending":
            findings.fail("pending_merge_doc", {"merge": m["id"], "profile": m.get("profile_id")})

    alias_blocks = 0
    blocking = _all(store, "blocking")
    found_under: dict[str, set[str]] = {}  # blocking key -> the live profiles it finds (through aliases too)
    for doc in blocking:
        found = found_under[doc["id"]] = {"*"} if doc.get("capped") else set()  # a capped key finds no one
        for pid in doc.get("profile_ids", []):
            if pid in aliases:
                alias_blocks += 1  # harmless: candidates are read through their aliases
                found.add(targets[pid])
            elif pid not in profiles:
                findings.fail("blocking_points_to_dead_profile", {"key_type": doc["id"].split(":", 1)[0],
                                                                  "profile": pid})
            else:
                found.add(pid)
    given_keys = {pid: {k for r in p.get("records", []) for k in r.get("blocking_keys", [])}
                  for pid, p in profiles.items()}
    for doc in blocking:
        for pid in doc.get("profile_ids", []):
            if pid in profiles and doc["id"] not in given_keys[pid]:
                findings.fail("blocking_names_non_giver", {"key_type": doc["id"].split(":", 1)[0], "profile": pid})
    for pid, keys in given_keys.items():
        for key in sorted(keys):
            found = found_under.get(key, set())
            if pid not in found and "*" not in found:
                findings.fail("profile_blocking_unindexed", {"key_type": key.split(":", 1)[0], "profile": pid})

    findings.figures["identity"] = {
        "profiles": len(profiles), "aliases": len(aliases), "record_entries": record_entries,
        "records_docs": len(records), "identifier_docs": len(identifiers), "device_links": len(device_links),
        "profile_identifiers": profile_identifiers,
        "merges": sum(1 for m in merges if m.get("absorbed_id") and m.get("reason") != ID_FOLLOWED),
        "merge_docs": len(merges),
        "reviews": store.container("review").count_items(), "blocking_keys": len(blocking),
        "blocking_alias_ids": alias_blocks,
    }
    return holder


def check_device_links(links: Iterable[dict[str, Any]], holder: dict[str, str], findings: Findings) -> None:
    """Every record a device link names is held by a live profile. Findings name the record key, never the
    anonymous id. (The link's cached profile ids are not checked: a merge or split since the identify leaves
    them behind, and the owner is what stitching follows.)"""
    from .events.devices import held_owners

    for link in links:
        owners = held_owners(link)
        if not owners:
            findings.fail("device_link_without_owner", {"type": DEVICE_LINK})
        for owner in owners:
            if owner not in holder:
                findings.fail("device_link_owner_unknown", {"record": owner})


def audit_store(store: Store, *, expected_rows: dict[str, int] | None = None) -> Findings:
    """Every check that needs only the store (and, optionally, the rows expected per landed blob)."""
    findings = Findings()
    reports = _all(store, "ledger", ("doc_type", "=", "ingestion"))
    check_ingestion(reports, findings, expected_rows)
    check_identity(store, findings)
    return findings


# ------------------------------------------------------------------------------------------------ ground truth


@dataclass(frozen=True)
class TruthRecord:
    key: str  # "source|record_key", as CustomerRecord.key
    person: str
    malformed: bool


def manifest_rows(generated: str | Path, *, uploaded: Iterable[str] | None = None) -> dict[str, int]:
    """{blob name in the landing container: rows} from a generator's manifest.json (only the uploaded blobs)."""
    import json

    manifest = json.loads((Path(generated) / "manifest.json").read_text(encoding="utf-8"))
    rows = {f["path"].removeprefix("landing/"): int(f["rows"]) for f in manifest["files"]}
    if uploaded is not None:
        rows = {name: rows[name] for name in uploaded}
    return rows


def read_truth(path: str | Path) -> list[TruthRecord]:
    """Customer records of a generator's truth/records.csv (a run folder or the file itself)."""
    path = Path(path)
    if path.is_dir():
        path = path / "truth" / "records.csv" if (path / "truth").is_dir() else path / "records.csv"
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row.get("entity", "customers") != "customers":
                continue
            out.append(TruthRecord(f"{row['source']}|{row['record_key']}", row["person_id"],
                                   str(row.get("malformed", "0")).strip() not in ("", "0", "false", "False")))
    return out


def resolver_quarantined_keys(settings) -> set[str]:
    """Record keys the resolver put aside (no usable field): in the quarantine container under resolve/, with
    their reason. They are accounted for, not lost."""
    import json

    from .ingest.messages import QUARANTINED_RECORDS_PREFIX
    from .storage import blob_service

    container = blob_service(settings).get_container_client(settings.quarantine_container)
    keys = set()
    for blob in container.list_blobs(name_starts_with=QUARANTINED_RECORDS_PREFIX):
        for line in container.download_blob(blob.name).readall().decode("utf-8", "replace").splitlines():
            try:
                row = json.loads(line) if line.strip() else None
            except ValueError:  # a line damaged by hand (replay leaves it in place): its record is not excused
                continue
            if isinstance(row, dict) and isinstance(row.get("record_key"), str):
                keys.add(row["record_key"])
    return keys


def truth_clusters(store: Store, truth: list[TruthRecord], *, excused: Iterable[str] = ()) -> dict[str, Any]:
    """Which profile holds each true record, and per person the profiles their records ended in.

    A well-formed true record missing from every profile is `lost`, unless its key is in `excused` (e.g. the
    resolver quarantined it for having no usable field, or the caller knows it was not uploaded)."""
    holder: dict[str, str] = {}
    for p in store.container("profiles").query_items(("doc_type", "=", "profile")):
        for r in p.get("records", []):
            holder[r["key"]] = p["id"]
    excused = set(excused)
    person_of = {t.key: t.person for t in truth}
    lost = sorted(t.key for t in truth if not t.malformed and t.key not in holder and t.key not in excused)
    unknown = sorted(k for k in holder if k not in person_of)
    profiles_of: dict[str, set[str]] = defaultdict(set)
    people_of: dict[str, set[str]] = defaultdict(set)
    for key, pid in holder.items():
        if key in person_of:
            profiles_of[person_of[key]].add(pid)
            people_of[pid].add(person_of[key])
    per_person = {person: len(pids) for person, pids in sorted(profiles_of.items())}
    return {
        "records_held": {k: holder[k] for k in sorted(holder) if k in person_of},
        "per_person": per_person,
        "lost": lost,
        "unknown": unknown,
        "figures": {
            "true_records": len(truth), "held": sum(1 for k in holder if k in person_of), "lost": len(lost),
            "unknown_records": len(unknown), "people": len(per_person),
            "profiles_per_person": dict(sorted(Counter(per_person.values()).items())),
            "people_split": sum(1 for n in per_person.values() if n > 1),
            "profiles_mixing_people": sum(1 for people in people_of.values() if len(people) > 1),
        },
    }


def compare_clusters(run: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    """Differences between a run's clusters and a baseline's: records held by one and not the other, and people
    whose number of profiles differs. Profile ids may differ between runs; the partition of records may not."""
    run_keys, base_keys = set(run["records_held"]), set(baseline["records_held"])
    people = sorted(set(run["per_person"]) | set(baseline["per_person"]))
    differ = [{"person": p, "run": run["per_person"].get(p, 0), "baseline": baseline["per_person"].get(p, 0)}
              for p in people if run["per_person"].get(p, 0) != baseline["per_person"].get(p, 0)]
    return {
        "same_profile_counts": not differ,
        "same_records": run_keys == base_keys,
        "same_partition": _partition(run) == _partition(baseline),
        "records_only_in_run": sorted(run_keys - base_keys)[:MAX_SAMPLES],
        "records_only_in_baseline": sorted(base_keys - run_keys)[:MAX_SAMPLES],
        "people_with_other_profile_count": len(differ),
        "samples": differ[:MAX_SAMPLES],
    }


def _partition(clusters: dict[str, Any]) -> set[frozenset[str]]:
    """The grouping of record keys into profiles, independent of profile ids."""
    groups: dict[str, set[str]] = defaultdict(set)
    for key, pid in clusters["records_held"].items():
        groups[pid].add(key)
    return {frozenset(g) for g in groups.values()}


def compare_to_envelope(run: dict[str, Any], references: list[dict[str, Any]]) -> dict[str, Any]:
    """People whose number of profiles in `run` lies outside what fault-free runs gave them.

    Incremental resolution depends on arrival order (a record linked by a score may join different profiles
    depending on which records came first), and concurrent workers make the order differ from run to run even
    without faults. So a faulty run is compared with the range each person had over several fault-free runs
    (other arrival orders), not with one of them."""
    people = set(run["per_person"])
    for ref in references:
        people |= set(ref["per_person"])
    outside = []
    for person in sorted(people):
        seen = [ref["per_person"].get(person, 0) for ref in references]
        got = run["per_person"].get(person, 0)
        if not min(seen) <= got <= max(seen):
            outside.append({"person": person, "run": got, "fault_free": sorted(set(seen))})
    mixing = [ref["figures"]["profiles_mixing_people"] for ref in references]
    split = [ref["figures"]["people_split"] for ref in references]
    return {
        "references": len(references),
        "people_outside": len(outside),
        "samples": outside[:MAX_SAMPLES],
        "people_split": {"run": run["figures"]["people_split"], "fault_free": [min(split), max(split)]},
        "profiles_mixing_people": {"run": run["figures"]["profiles_mixing_people"],
                                   "fault_free": [min(mixing), max(mixing)]},
    }
