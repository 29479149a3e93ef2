"""Repair of the identity index: the identifier, blocking and records documents made to agree with the profiles.

    repair_index(store, *, settings=None, idle_seconds=None, since=None) -> dict[str, int]

The profiles are the truth (each keeps every record it holds, with what that record gives: identifiers and
blocking keys); the identifiers, blocking and records containers index them, written one document at a time
around the profile. A worker dying between those writes leaves work its next attempt finishes, nearly always. A
few interleavings of two versions of one record with a death leave a document behind that no attempt comes back to
(a key naming a profile none of whose records gives it any more; an identifier pointing at a profile that does not
list it; a records doc naming a profile its record is not in; a record in a second profile, placed there by an
attempt of a version that died before its commit and was not delivered again, or still held once removed or
erased; an alias its profile does not list as merged into it, an id a profile lists as merged that is no alias of
it, an alias leading to no profile): the races bench counts them
(bench/identity_races.py --die) and `ucp audit` names them. This job finds and mends them through the writers' own
helpers (ETags, reads again after each change), so it is safe beside running workers. It first finishes the sagas
left idle (the timers' sweeps) and leaves alone a profile still in one (or that a split is moving a record into),
and the source identifier of a delete cut off before its tombstone (its retry's). It reads every profile, identifier,
blocking and records document (cross-partition queries): an admin job, like the audit, to run when the audit
reports findings of those. Idempotent; counts out, never values.

With `since` (epoch seconds) it reads only what was written since then and what it touches: the documents of that
time (queries on `_ts`, which Cosmos DB indexes), every profile or alias they name, and for each profile or alias
of that time the index documents it gives or lists (batched point reads) and those naming it (index-served
queries). A document and a profile disagree since the last write to one of them, so a run over the last hours
finds what the races of those hours left, at a cost that follows the writes, not the store's size. It works in
chunks of documents of the window (REPAIR_CHUNK), so memory is bounded by a chunk, and it starts no chunk after a
deadline: `repair_window`, the hourly `repair_recent_index` timer's run (UCP_REPAIR_WINDOW_SECONDS).
"""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Callable, Iterable, Iterator

from shared.settings import Settings, get_settings
from shared.store import Store

from .docs import (MAX_ALIAS_HOPS, Ctx, alias_targets, follow_aliases, is_device_link, source_identifier,
                   with_retries)
from .engine import point_record_doc_at
from .maintenance import (_forget_merged, _gives, _holds, _update_profile, drop_dead_key, entry_identifiers,
                          finish_unfinished_merges, finish_unfinished_splits, forget_deleted_profile,
                          forget_where_listed, hand_to_survivor, index_again, keys_given, list_while_given,
                          move_stranded_aliases, note_given_elsewhere, note_holder, release_again, release_identifier,
                          take_out, take_out_removed)
from .merge import _repoint, _set_profile_id, live_profile
from .protection import id_type_of

Profiles = dict[str, dict[str, Any]]  # live profile id -> its document, as the scan read it
Aliases = dict[str, "str | None"]  # alias id -> the id its chain ends at

# A windowed run by the timer starts no chunk after this many seconds: the host stops a function at 10 minutes.
REPAIR_BUDGET_SECONDS = 480
# Ids per batched read of a scope's documents (one request each on Cosmos DB), and per query for the documents
# naming profiles; documents written in a window per chunk of a windowed repair.
READ_BATCH = 500
NAMING_BATCH = 50
REPAIR_CHUNK = 200


def repair_index(store: Store, *, settings: Settings | None = None, idle_seconds: int | None = None,
                 since: int | None = None, deadline: float | None = None, chunk: int = REPAIR_CHUNK
                 ) -> dict[str, int]:
    """Make the identifier, blocking and records documents agree with the profiles; returns what it found (and
    mended). `idle_seconds`: how long a saga's profile, or a records doc, must not have been written to be taken as
    cut off (default: the merge_idle_seconds setting, split_idle_seconds for a split; a worker moving a record names
    its new profile first). `since`: only the documents written since then (epoch seconds), and what they name, in
    chunks of `chunk` documents of that time (memory bounded by a chunk, not by the window). `deadline` (epoch
    seconds): no chunk is started after it (`cut_short`: 1)."""
    ctx = Ctx(store, settings)
    idle = ctx.settings.merge_idle_seconds if idle_seconds is None else idle_seconds
    counts = {"profiles": 0, "in_saga": 0,
              "merges_finished": len(finish_unfinished_merges(store, settings=settings, idle_seconds=idle)),
              "splits_finished": len(finish_unfinished_splits(store, settings=settings, idle_seconds=idle_seconds)),
              "claimed": 0, MISDIRECTED: 0, IN_TWO_PROFILES: 0, HELD_WHEN_GONE: 0, ALIASES_UNLISTED: 0,
              STALE_MERGED_IDS: 0, ORPHAN_ALIASES: 0, **_Findings().counts(),
              REMOVALS_IN_FLIGHT: 0, "cut_short": 0}
    for scope in [_Scope.everything(ctx)] if since is None else _Scope.written_since(ctx, since, chunk):
        if deadline is not None and time.time() > deadline:
            counts["cut_short"] = 1
            break
        for kind, count in _repair_scope(ctx, scope, idle).items():
            counts[kind] += count
    return counts


def repair_window(store: Store, *, settings: Settings | None = None, budget_seconds: int = REPAIR_BUDGET_SECONDS
                  ) -> dict[str, int] | None:
    """repair_index over the last `repair_window_seconds` (setting UCP_REPAIR_WINDOW_SECONDS; None when it is 0),
    starting no chunk after `budget_seconds`: the hourly timer's run, which must end within the host's
    functionTimeout (host.json: 10 minutes)."""
    settings = settings or get_settings()
    if not settings.repair_window_seconds:
        return None
    start = time.time()
    return repair_index(store, settings=settings, since=int(start) - settings.repair_window_seconds,
                        deadline=start + budget_seconds)


def mended_anything(counts: dict[str, int]) -> bool:
    """True when a repair's counts say it mended something (not only what it read, or that it was cut short)."""
    return any(count for kind, count in counts.items()
               if kind not in ("profiles", "in_saga", REMOVALS_IN_FLIGHT, "cut_short"))


def _repair_scope(ctx: Ctx, scope: _Scope, idle: int) -> dict[str, int]:
    in_saga = {pid for pid, p in scope.profiles.items() if _in_saga(p)}
    # And the profile a split is moving a record into: created listing the record's identifiers, it is not marked,
    # and those lead to the profile being split until the split points them at it.
    in_saga |= {p["splitting"]["into"] for p in scope.profiles.values() if p.get("splitting")} & scope.profiles.keys()
    found = _Findings()
    _scan_blocking(scope, found)
    _scan_identifiers(scope, found)
    found.leave_to_their_sagas(in_saga)
    removals = found.leave_to_removals(ctx)
    _mend_dead_pointers(ctx, scope, found)
    mended = {pid: p for pid, p in scope.profiles.items() if pid not in in_saga}
    _mend_profiles(ctx, mended, found)
    # Given by a record, held by no profile or by another: claimed, or the profile noted as one of its holders (no
    # request when its records give none it does not hold). Counted: the claims (a household's phone held by
    # another member is no finding).
    claimed = sum(note_given_elsewhere(ctx, mended[pid])[1] for pid in sorted(scope.givers & mended.keys()))
    for iid, stale in sorted(found.stale_holders.items()):
        with_retries(ctx, lambda iid=iid, stale=stale: _prune_holders(ctx, iid, stale))
    misplaced = _misplaced_records(scope.records(), mended, int(time.time()) - idle)
    for kind, key, pids in misplaced:
        with_retries(ctx, lambda kind=kind, key=key, pids=pids: _place_record(ctx, kind, key, pids))
    kinds = Counter(kind for kind, _, _ in misplaced)
    unlisted = _unlisted_aliases(scope, mended, int(time.time()) - idle)
    for alias in unlisted:
        with_retries(ctx, lambda alias=alias: _list_alias(ctx, alias))
    stale_merged = _stale_merged_ids(scope, mended, int(time.time()) - idle, listed_now=set(unlisted))
    for pid, merged in stale_merged:
        with_retries(ctx, lambda pid=pid, merged=merged: _forget_stale_merged_id(ctx, pid, merged))
    orphans = _orphan_aliases(scope, int(time.time()) - idle)
    for alias in orphans:
        with_retries(ctx, lambda alias=alias: _drop_orphan_alias(ctx, alias))
    return {"profiles": len(scope.givers), "in_saga": len(in_saga & scope.givers), "claimed": claimed,
            **{kind: kinds[kind] for kind in (MISDIRECTED, IN_TWO_PROFILES, HELD_WHEN_GONE)},
            ALIASES_UNLISTED: len(unlisted), STALE_MERGED_IDS: len(stale_merged), ORPHAN_ALIASES: len(orphans),
            **found.counts(), REMOVALS_IN_FLIGHT: removals}


@dataclass
class _Scope:
    """What a repair reads: live profiles by id (`profiles`), the ids of those whose every index document it reads
    (`givers`: their own findings are looked for), aliases to where their chains end, and the index documents (each
    container's read once, in a scan: `blocking`, `identifiers`, `records`). `lister_of(iid)`: a live profile
    listing the identifier that the scope does not hold, looked for when its document leads nowhere."""

    profiles: Profiles
    givers: set[str]
    aliases: Aliases
    blocking: Callable[[], Iterable[dict[str, Any]]]
    identifiers: Callable[[], Iterable[dict[str, Any]]]
    records: Callable[[], Iterable[dict[str, Any]]]
    lister_of: Callable[[str], "str | None"] = field(default=lambda _iid: None)
    alias_written: dict[str, int] = field(default_factory=dict)  # alias id -> its document's _ts

    @classmethod
    def everything(cls, ctx: Ctx) -> _Scope:
        docs = list(ctx.profiles.query_items())
        profiles = {d["id"]: d for d in docs if d.get("doc_type") == "profile"}
        return cls(profiles, set(profiles), alias_targets(docs), ctx.blocking.query_items,
                   ctx.identifiers.query_items, ctx.records.query_items, alias_written=_alias_written(docs))

    @classmethod
    def written_since(cls, ctx: Ctx, since: int, chunk: int = REPAIR_CHUNK) -> Iterator[_Scope]:
        """Scopes over the documents written since `since`, `chunk` at a time: first the profiles and aliases
        (with every index document each gives, lists or is named by), then each index container's documents; with
        every profile or alias they name (an alias's chain to its end)."""
        recent = ("_ts", ">=", since)
        scanned: dict[str, set[str]] = {"blocking": set(), "identifiers": set(), "records": set()}

        def new(docs: Iterable[dict[str, Any]], container: str) -> Iterator[dict[str, Any]]:
            return (d for d in docs if d["id"] not in scanned[container] and not is_device_link(d))

        # Each chunk is read again as it is taken up (one batched read): a query's pages, read ahead, may be older
        # than the documents the chunk then reads around them, and would disagree with them for nothing. An index
        # document scanned around a profile already is not taken up again.
        for docs in _chunks(ctx.profiles.query_items(recent), chunk):
            scope = cls._around(ctx, _fresh(ctx.profiles, docs), {}, {}, {})
            for container, read in (("blocking", scope.blocking), ("identifiers", scope.identifiers),
                                    ("records", scope.records)):
                scanned[container].update(d["id"] for d in read())
            yield scope
        for docs in _chunks(new(ctx.blocking.query_items(recent), "blocking"), chunk):
            yield cls._around(ctx, {}, _fresh(ctx.blocking, docs), {}, {})
        for docs in _chunks(new(ctx.identifiers.query_items(recent), "identifiers"), chunk):
            yield cls._around(ctx, {}, {}, _fresh(ctx.identifiers, docs), {})
        for docs in _chunks(new(ctx.records.query_items(recent), "records"), chunk):
            yield cls._around(ctx, {}, {}, {}, _fresh(ctx.records, docs))

    @classmethod
    def _around(cls, ctx: Ctx, docs: dict[str, dict[str, Any]], blocking: dict[str, dict[str, Any]],
                identifiers: dict[str, dict[str, Any]], records: dict[str, dict[str, Any]]) -> _Scope:
        """These documents (profiles and aliases in `docs`), the index documents each profile among them gives or
        lists and those naming each profile or alias, and every profile or alias all of those name."""
        givers = {pid for pid, d in docs.items() if d.get("doc_type") == "profile"}
        own = [docs[pid] for pid in sorted(givers)]
        _read_more(ctx.blocking, blocking, {k for p in own for k in keys_given(p)})
        _read_more(ctx.identifiers, identifiers, {i for p in own for i in _listed_or_given(p)})
        _read_more(ctx.records, records, {entry["key"] for p in own for entry in p["records"]})
        # ... and the documents naming a profile or alias of that time (a record that left took its keys' names
        # along only if its worker lived to release them).
        _read_naming(ctx, sorted(docs), blocking, identifiers, records)
        named = ({pid for d in blocking.values() for pid in d.get("profile_ids", [])}
                 | {pid for d in identifiers.values() for pid in [d.get("profile_id"), *d.get("holders", [])]}
                 | {d.get("profile_id") for d in records.values()})
        _read_chains(ctx, docs, named | {d.get("merged_into") for d in docs.values() if d.get("doc_type") == "alias"}
                     | {merged for p in own for merged in p.get("merged_from", ())})
        profiles = {pid: d for pid, d in docs.items() if d.get("doc_type") == "profile"}
        return cls(profiles, givers, alias_targets(docs.values()), blocking.values, identifiers.values,
                   records.values, lambda iid: _lister(ctx, iid), _alias_written(docs.values()))


def _alias_written(docs: Iterable[dict[str, Any]]) -> dict[str, int]:
    return {d["id"]: d.get("_ts", 0) for d in docs if d.get("doc_type") == "alias"}


def _chunks(docs: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    """`size` documents at a time, read as the query streams them."""
    docs = iter(docs)
    while chunk := list(islice(docs, size)):
        yield chunk


def _fresh(container, docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """These documents as they are now, by id (those still there)."""
    fresh: dict[str, dict[str, Any]] = {}
    _read_more(container, fresh, {d["id"] for d in docs})
    return fresh


def _by_id(docs: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["id"]: d for d in docs}


def _listed_or_given(profile: dict[str, Any]) -> set[str]:
    return set(profile.get("identifiers", [])).union(*(entry_identifiers(r) for r in profile["records"]))


def _read_more(container, have: dict[str, dict[str, Any]], ids: set[str]) -> None:
    """Add to `have` the documents of these ids it lacks (those that exist), in batched reads."""
    wanted = sorted(i for i in ids if i and i not in have)
    for start in range(0, len(wanted), READ_BATCH):
        for doc in container.read_items([(i, i) for i in wanted[start:start + READ_BATCH]]):
            if doc is not None:
                have[doc["id"]] = doc


def _read_naming(ctx: Ctx, ids: list[str], blocking: dict[str, dict[str, Any]],
                 identifiers: dict[str, dict[str, Any]], records: dict[str, dict[str, Any]]) -> None:
    """Add the blocking, identifier and records documents that name one of these profile or alias ids (index-served
    queries, NAMING_BATCH ids each)."""
    for start in range(0, len(ids), NAMING_BATCH):
        batch = ids[start:start + NAMING_BATCH]
        blocking.update(_by_id(ctx.blocking.query_items(("or", [("profile_ids", "contains", p) for p in batch]))))
        named = ("or", [("profile_id", "in", batch), *(("holders", "contains", p) for p in batch)])
        identifiers.update(_by_id(d for d in ctx.identifiers.query_items(named) if not is_device_link(d)))
        records.update(_by_id(ctx.records.query_items(("profile_id", "in", batch))))


def _read_chains(ctx: Ctx, docs: dict[str, dict[str, Any]], named: set[str]) -> None:
    """Add to `docs` each named profile or alias, and the profiles and aliases each alias's chain passes."""
    tried: set[str] = set()
    for _ in range(MAX_ALIAS_HOPS + 1):
        wanted = {pid for pid in named if pid and pid not in docs and pid not in tried}
        if not wanted:
            return
        tried |= wanted
        _read_more(ctx.profiles, docs, wanted)
        named = {docs[pid].get("merged_into") for pid in wanted if pid in docs}


def _lister(ctx: Ctx, iid: str) -> str | None:
    """A live profile listing the identifier (an index-served query: for an identifier whose document leads to a
    profile gone, when no profile in the scope lists it)."""
    listing = ("and", [("doc_type", "=", "profile"), ("identifiers", "contains", iid)])
    return next((p["id"] for p in ctx.profiles.query_items(listing, limit=1)), None)


def _mend_profiles(ctx: Ctx, profiles: Profiles, found: _Findings) -> None:
    """Releases first, so a value another profile lists is free for it when that profile is indexed again."""
    for pid in sorted(found.stale_ids.keys() | found.stale_keys.keys()):
        with_retries(ctx, lambda pid=pid: release_again(ctx, profiles[pid], found.stale_ids.get(pid, set()),
                                                        found.stale_keys.get(pid, set())))
    for pid, iids in sorted(found.unlisted_ids.items()):
        for iid in sorted(iids):
            with_retries(ctx, lambda pid=pid, iid=iid: list_while_given(ctx, pid, iid))
    for pid in sorted(found.unindexed_ids.keys() | found.missing_keys.keys()):
        with_retries(ctx, lambda pid=pid: index_again(ctx, live_profile(ctx, pid) or profiles[pid],
                                                      found.unindexed_ids.get(pid, set()),
                                                      found.missing_keys.get(pid, set())))


def _mend_dead_pointers(ctx: Ctx, scope: _Scope, found: _Findings) -> None:
    """Keys naming a profile that is gone lose it; an identifier leading to one goes to the live profile listing
    it, else is handed on to a holder or deleted (release_identifier); one leading to an alias goes to its
    survivor if that lists it, else is let go the same way (hand_to_survivor)."""
    for key, pid in found.dead_keys:
        with_retries(ctx, lambda key=key, pid=pid: drop_dead_key(ctx, key, pid))
    for iid, pid in found.dead_ids:
        live = live_profile(ctx, pid) if pid else None
        lister = found.listed_by.get(iid) or (scope.lister_of(iid) if live is None else None)
        if live is None and lister is not None:
            with_retries(ctx, lambda iid=iid, pid=pid, lister=lister: _repoint(
                ctx.identifiers, iid, pid, lister, _set_profile_id))
        elif live is None:
            with_retries(ctx, lambda iid=iid, pid=pid: release_identifier(ctx, iid, {pid}))
        elif live["id"] != pid:
            with_retries(ctx, lambda iid=iid, pid=pid, live=live: hand_to_survivor(ctx, pid, live, set(), {iid}))


class _Findings:
    """What the scans found, per profile: stale pointers to release, missing ones to index."""

    def __init__(self) -> None:
        self.stale_keys: dict[str, set[str]] = defaultdict(set)  # keys naming a profile that does not give them
        self.missing_keys: dict[str, set[str]] = defaultdict(set)  # keys a profile gives that do not find it
        self.stale_ids: dict[str, set[str]] = defaultdict(set)  # identifiers leading to a profile not giving them
        self.unlisted_ids: dict[str, set[str]] = defaultdict(set)  # leading to a profile that gives, not lists them
        self.unindexed_ids: dict[str, set[str]] = defaultdict(set)  # listed, but leading elsewhere or nowhere
        self.dead_keys: list[tuple[str, str]] = []  # (key, id of no profile nor alias)
        self.dead_ids: list[tuple[str, str]] = []  # (identifier, id of an alias or of no profile)
        self.listed_by: dict[str, str] = {}  # identifier -> a live profile listing it
        # identifier -> {holder id: what it stands for now (an alias: its survivor; None: not a holder any more)}
        self.stale_holders: dict[str, dict[str, str | None]] = {}

    def leave_to_their_sagas(self, in_saga: set[str]) -> None:
        """Forget what was found on profiles in a merge, split or erase: their saga, or its sweep, settles them."""
        for per_profile in (self.stale_keys, self.missing_keys, self.stale_ids, self.unlisted_ids,
                            self.unindexed_ids):
            for pid in in_saga & per_profile.keys():
                del per_profile[pid]

    def leave_to_removals(self, ctx: Ctx) -> int:
        """Forget the source identifiers of records a delete at the source took out of their profile, whose worker
        died before writing the tombstone: the records doc and the source identifier still name the profile (or
        the profile's id, the profile deleted with its last record). The delete's retry finishes from there; this
        identifier deleted, the retry would take the records doc for a version being resolved and wait for it for
        good. Returns how many (one index-served query per NAMING_BATCH profiles, on this rare path only)."""
        named = {iid: pid for pid, iids in self.stale_ids.items() for iid in iids if id_type_of(iid) == "source"}
        named.update((iid, pid) for iid, pid in self.dead_ids if id_type_of(iid) == "source" and pid)
        pids = sorted(set(named.values()))
        cut_off: set[str] = set()
        for start in range(0, len(pids), NAMING_BATCH):
            for doc in ctx.records.query_items(("profile_id", "in", pids[start:start + NAMING_BATCH])):
                iid = source_identifier(doc["id"])
                if named.get(iid) == doc["profile_id"] and not doc.get("removed_at") and not doc.get("erased_at"):
                    cut_off.add(iid)
        for pid in set(self.stale_ids):
            self.stale_ids[pid] -= cut_off
            if not self.stale_ids[pid]:
                del self.stale_ids[pid]
        self.dead_ids = [(iid, pid) for iid, pid in self.dead_ids if iid not in cut_off]
        return len(cut_off)

    def counts(self) -> dict[str, int]:
        total = lambda per_profile: sum(map(len, per_profile.values()))  # noqa: E731
        return {"stale_keys": total(self.stale_keys), "missing_keys": total(self.missing_keys),
                "dead_keys": len(self.dead_keys), "stale_identifiers": total(self.stale_ids),
                "unlisted_identifiers": total(self.unlisted_ids), "unindexed_identifiers": total(self.unindexed_ids),
                "dead_identifiers": len(self.dead_ids), "stale_holders": total(self.stale_holders)}


def _scan_holders(iid: str, holder: str | None, holders: list[str], profiles: Profiles, aliases: Aliases,
                  found: _Findings) -> None:
    """Holders that are not live profiles giving the identifier (beside the one holding it): an alias stands for its
    survivor, the others are no holders. They cost a profile read each time a record gives the value."""
    stale = {}
    for noted in holders:
        now = aliases.get(noted, noted)
        now = now if now in profiles and now != holder and _gives(profiles[now], iid) else None
        if now != noted:
            stale[noted] = now
    if stale:
        found.stale_holders[iid] = stale


def _prune_holders(ctx: Ctx, iid: str, stale: dict[str, str | None]) -> None:
    def change(doc: dict[str, Any], _old: Any, _new: Any) -> dict[str, Any] | None:
        now = [stale.get(h, h) for h in doc.get("holders", [])]
        holders = list(dict.fromkeys(h for h in now if h is not None and h != doc.get("profile_id")))
        return {**doc, "holders": holders} if holders != doc.get("holders", []) else None

    _repoint(ctx.identifiers, iid, None, None, change)
    # A holder dropped because its records did not give the value may give it again now (a record linked meanwhile,
    # whose note found it listed already): noted again.
    for dropped in [h for h, now in stale.items() if now is None]:
        live = live_profile(ctx, dropped)
        if live is not None and live["id"] == dropped and _gives(live, iid):
            note_holder(ctx, iid, dropped)


# What a records doc and the profiles holding its record can disagree on (_misplaced_records), as repair_index
# counts it.
MISDIRECTED, IN_TWO_PROFILES = "misdirected_records", "records_in_two_profiles"
HELD_WHEN_GONE = "records_held_when_gone"
# Source identifiers left to the retry of a delete cut off before its tombstone (_Findings.leave_to_removals): a
# count of what the repair did not touch, as in_saga is.
REMOVALS_IN_FLIGHT = "removals_in_flight"


def _misplaced_records(records: Iterable[dict[str, Any]], profiles: Profiles, idle_since: int
                       ) -> list[tuple[str, str, list[str]]]:
    """(kind, record key, the profiles holding it) of each records doc naming another profile than its record's
    (MISDIRECTED), whose record two profiles hold (IN_TWO_PROFILES), or that is a removal's or an erasure's tombstone
    while a profile holds the record (HELD_WHEN_GONE); not written since `idle_since` (a worker moving a record names
    its new profile first: that is its pointer to go on from), nor, but for a misdirected doc, those profiles."""
    holders: dict[str, list[str]] = defaultdict(list)
    for pid, profile in profiles.items():
        for entry in profile.get("records", []):
            holders[entry["key"]].append(pid)
    found = []
    for doc in records:
        pids = sorted(holders.get(doc["id"], ()))
        if not pids or doc.get("_ts", 0) > idle_since:
            continue
        if doc.get("removed_at") or doc.get("erased_at"):
            kind = HELD_WHEN_GONE
        elif len(pids) > 1:
            kind = IN_TWO_PROFILES
        elif doc.get("profile_id") != pids[0]:
            kind = MISDIRECTED
        else:
            continue
        if kind == MISDIRECTED or all(profiles[pid].get("_ts", 0) <= idle_since for pid in pids):
            found.append((kind, doc["id"], pids))
    return found


def _place_record(ctx: Ctx, kind: str, key: str, holders: list[str]) -> None:
    """The records doc follows the profile holding its record. A record two profiles hold stays only where its
    commit (its source identifier) is: an attempt of another version than the committed one died after placing it
    elsewhere, and no delivery of that version came back (not settled here when the commit names neither). A record
    deleted at its source or erased leaves every profile still holding it (such an attempt's, when the removal or
    the erase ran before the maintenance that takes it out: maintenance.leave_named_before)."""
    if kind == MISDIRECTED:
        point_record_doc_at(ctx, key, holders[0])
        return
    if kind == HELD_WHEN_GONE:
        doc = ctx.records.read_item_or_none(key, key)
        if doc is not None and (doc.get("removed_at") or doc.get("erased_at")):
            for pid in holders:
                profile = live_profile(ctx, pid)
                if profile is not None and _holds(profile, key) and not _in_saga(profile):
                    take_out_removed(ctx, profile, key, logged=bool(doc.get("removed_at")))
            # A removed or erased record has no source identifier (a removal deletes it once its tombstone is
            # written): one leading to a profile that held it (indexed by this repair, as that profile listed it)
            # goes with it.
            release_identifier(ctx, source_identifier(key), set(holders))
        return
    commit = ctx.identifiers.read_item_or_none(source_identifier(key), source_identifier(key))
    committed = live_profile(ctx, commit["profile_id"]) if commit else None
    if committed is None or not _holds(committed, key):
        return
    for pid in holders:
        profile = live_profile(ctx, pid)
        if profile is None or profile["id"] == committed["id"] or not _holds(profile, key) or _in_saga(profile):
            continue
        # As the record's own worker leaves it (engine._leave_if_committed_elsewhere): the ids that came with it
        # follow it, then its entry is taken out under the profile's ETag.
        move_stranded_aliases(ctx, profile["id"], key, committed["id"])
        take_out(ctx, live_profile(ctx, profile["id"]) or profile, key)
    point_record_doc_at(ctx, key, committed["id"])


ALIASES_UNLISTED = "aliases_unlisted"  # as repair_index counts them (_unlisted_aliases)


def _unlisted_aliases(scope: _Scope, profiles: Profiles, idle_since: int) -> list[str]:
    """The aliases whose chain ends at a live profile that does not list them as merged into it; neither written
    since `idle_since` (a worker moving the ids of a record that left repoints each alias before its new profile
    lists it: maintenance.move_stranded_aliases)."""
    return sorted(alias for alias, end in scope.aliases.items()
                  if end in profiles and alias not in profiles[end].get("merged_from", ())
                  and scope.alias_written.get(alias, 0) <= idle_since and profiles[end].get("_ts", 0) <= idle_since)


def _list_alias(ctx: Ctx, alias: str) -> None:
    """The profile the alias leads to lists it as merged into it, and no other profile does: the steps a worker
    moving the ids of a record that left its profile takes after repointing them (move_stranded_aliases), for one
    that died before them and was not delivered again."""
    doc = ctx.profiles.read_item_or_none(alias, alias)
    profile = live_profile(ctx, doc["merged_into"]) if doc is not None and doc.get("doc_type") == "alias" else None
    if profile is None or _in_saga(profile):
        return
    _update_profile(ctx, profile["id"], lambda p: None if alias in p.get("merged_from", ()) else {
        **p, "merged_from": [*p.get("merged_from", []), alias],
        "never_match": [i for i in p.get("never_match", []) if i != alias]})
    forget_where_listed(ctx, alias, keep=profile["id"])


STALE_MERGED_IDS = "stale_merged_ids"  # as repair_index counts them (_stale_merged_ids)


def _stale_merged_ids(scope: _Scope, profiles: Profiles, idle_since: int, *, listed_now: set[str]
                      ) -> list[tuple[str, str]]:
    """(profile id, merged id) of each id a live profile of the scope's lists as merged into it that is no alias
    leading to it, the profile not written since `idle_since`: a removal deletes the alias of an id stranded by its
    record, then the profile forgets it, and one that died between and was never delivered again left it listed.
    Not an alias `listed_now` by the profile it leads to (_list_alias: the others forgot it then)."""
    return [(pid, merged) for pid in sorted(scope.givers & profiles.keys())
            if profiles[pid].get("_ts", 0) <= idle_since
            for merged in profiles[pid].get("merged_from", ())
            if scope.aliases.get(merged) != pid and merged not in listed_now]


def _forget_stale_merged_id(ctx: Ctx, pid: str, merged: str) -> None:
    """The profile forgets an id merged into it that no longer leads to it (its alias deleted or leading elsewhere, or
    a profile founded again under it): the blocking keys its records write would drop that id, and its export and
    erase would read the id's merge log as this person's."""
    profile = live_profile(ctx, pid)
    if profile is None or profile["id"] != pid or _in_saga(profile) or merged not in profile.get("merged_from", ()):
        return
    ends_at, passed = follow_aliases(ctx, merged)
    if not passed or ends_at is None or ends_at["id"] != pid:
        _forget_merged(ctx, pid, [merged])


ORPHAN_ALIASES = "orphan_aliases"  # as repair_index counts them (_orphan_aliases)


def _orphan_aliases(scope: _Scope, idle_since: int) -> list[str]:
    """The aliases whose chain ends at no profile, not written since `idle_since`: a removal deletes a profile with
    its last record, then the aliases of the ids merged into it (maintenance._forget_deleted_profile), and one that
    died between and was never delivered again left them naming no one."""
    return sorted(alias for alias, end in scope.aliases.items()
                  if end not in scope.profiles and end not in scope.aliases
                  and scope.alias_written.get(alias, 0) <= idle_since)


def _drop_orphan_alias(ctx: Ctx, alias: str) -> None:
    """The alias, its history and the keys naming it go, as the removal that took its profile down lets them go."""
    doc = ctx.profiles.read_item_or_none(alias, alias)
    if doc is None or doc.get("doc_type") != "alias":
        return
    end, _ = follow_aliases(ctx, alias)
    if end is None or end.get("doc_type") not in ("profile", "alias"):
        forget_deleted_profile(ctx, doc["merged_into"])


def _scan_blocking(scope: _Scope, found: _Findings) -> None:
    profiles, aliases = scope.profiles, scope.aliases
    given = {pid: keys_given(p) for pid, p in profiles.items()}
    finds: dict[str, set[str]] = {}  # key -> the ids it names ("*": capped, it finds no one)
    for doc in scope.blocking():
        ids = finds[doc["id"]] = set(doc.get("profile_ids", [])) | ({"*"} if doc.get("capped") else set())
        for pid in ids - {"*"}:
            if pid in profiles:
                if doc["id"] not in given[pid]:
                    found.stale_keys[pid].add(doc["id"])
            elif pid not in aliases:
                found.dead_keys.append((doc["id"], pid))
    for pid in scope.givers:
        for key in given[pid]:
            named = finds.get(key, set())
            # Named under an alias of the profile finds it too (candidates are read through aliases).
            if pid not in named and "*" not in named and pid not in {aliases.get(a) for a in named}:
                found.missing_keys[pid].add(key)


def _scan_identifiers(scope: _Scope, found: _Findings) -> None:
    profiles, aliases = scope.profiles, scope.aliases
    leads: dict[str, str] = {}  # identifier -> the profile id its document names
    for doc in scope.identifiers():
        if is_device_link(doc):
            continue
        iid, pid = doc["id"], doc.get("profile_id")
        leads[iid] = pid
        if doc.get("holders"):
            _scan_holders(iid, aliases.get(pid, pid), doc["holders"], profiles, aliases, found)
        profile = profiles.get(pid)
        if profile is None:
            found.dead_ids.append((iid, pid))  # an alias's (followed when mended) or a gone profile's
        elif iid not in profile.get("identifiers", []):
            (found.unlisted_ids if _gives(profile, iid) else found.stale_ids)[pid].add(iid)
    for pid in sorted(scope.givers):
        for iid in profiles[pid].get("identifiers", []):
            found.listed_by.setdefault(iid, pid)
            lead = leads.get(iid)
            dead = lead is not None and lead not in profiles and lead not in aliases  # mended as a dead pointer
            if not dead and pid not in (lead, aliases.get(lead)):
                found.unindexed_ids[pid].add(iid)


def _in_saga(profile: dict[str, Any]) -> bool:
    """A merge, split or erase under way (or cut off and not yet idle long enough for the sweeps): its own steps,
    or the sweeps, bring its documents into line."""
    return any(profile.get(mark) for mark in ("pending_merge", "merging", "splitting", "erasing_at"))
