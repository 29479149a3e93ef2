"""The insights refresh: keeps each profile's measures, needs, journey stages and segments current.

For one profile (on demand: POST /insights/profiles/{id}/refresh, e.g. after it changed) or all live profiles
(the scheduled job, settings.insights_schedule): read its activity once, recompute

- ``measures`` (orders, spend, returns, first/last purchase) from transactions, never incremented, so a merge
  cannot double them;
- ``needs`` (category affinity and next likely categories);
- ``journey_stage``: the current stage in every defined journey the person started, keyed by journey id;
- ``segments``: the ids of the segments the updated profile belongs to;

and write them in one ETag-guarded replace (a concurrent identity update wins and the profile is re-read).
The overall category popularity the needs model blends in is taken from the previous run (state container),
so one pass suffices; a full run also stores each segment's size.
"""
from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from datetime import datetime
from typing import Any

from ..activity import iso_utc, list_activity, up_to
from ..measures import compute_measures
from ..store import Store
from .common import live_profiles, owners, update_profile
from .journeys import list_journeys, stages_for
from .needs import popularity_of, profile_needs, purchase_categories
from .rules import Combination, Comparison, RuleError, parse_rule, utc_now
from .segments import update_definition, is_member, list_segments, segment_size

log = logging.getLogger(__name__)
POPULARITY_ID = "insights:category-popularity"
FIELDS = ("measures", "needs", "journey_stage", "segments")


def load_popularity(store: Store) -> dict[str, float]:
    doc = store.container("state").read_item_or_none(POPULARITY_ID, POPULARITY_ID)
    return dict((doc or {}).get("popularity") or {})


def _save_popularity(store: Store, counts: Counter, now: datetime) -> None:
    store.container("state").upsert_item({"id": POPULARITY_ID, "popularity": popularity_of(counts),
                                          "purchased_items": sum(counts.values()), "computed_at": iso_utc(now)})


class _Context:
    """What every profile's refresh needs, read once per run."""

    def __init__(self, store: Store, now: datetime | None):
        self.now = now or utc_now()
        self.segments = []
        for s in list_segments(store):
            try:
                self.segments.append((s["id"], parse_rule(s.get("rule"))))
            except RuleError as err:  # a definition stored under older rules must not stop the whole job
                log.warning("segment %s skipped: its rule is no longer valid (%s)", s["id"], err)
        self.nested = any(_on_segments(rule) for _, rule in self.segments)  # membership may depend on membership
        self.journeys = list_journeys(store)
        self.popularity = load_popularity(store)


def _on_segments(rule: Any) -> bool:
    if isinstance(rule, Comparison):
        return rule.path == "segments"
    return isinstance(rule, Combination) and any(_on_segments(p) for p in rule.parts)


def _insights(store: Store, profile: dict[str, Any], ctx: _Context, counts: Counter | None) -> dict[str, Any]:
    # Read once; everything below works on it, as of ctx.now (a later-dated row is not yet known then).
    activity = up_to(list_activity(store, owners(profile)), ctx.now)
    transactions = [a for a in activity if a.get("kind") == "transaction"]
    events = [a for a in activity if a.get("kind") == "event"]
    if counts is not None:
        counts.update(purchase_categories(transactions))
    updated = {**profile,
               "measures": {**(profile.get("measures") or {}), **compute_measures(transactions)},
               "needs": profile_needs(activity, ctx.now, ctx.popularity),
               "journey_stage": stages_for(store, ctx.journeys, profile, events)}
    updated["segments"] = _memberships(store, ctx, updated, events)
    return {k: updated[k] for k in FIELDS}


def _memberships(store: Store, ctx: _Context, profile: dict[str, Any], events: list[dict[str, Any]]) -> list[str]:
    """The segments the profile belongs to. A rule on ``segments`` sees the memberships decided before it in
    this run (creation order), and passes repeat until nothing changes, so a segment built on a later one
    (or on one whose id sorts later) is current after one run too. A cycle stops after one pass per segment."""
    known = {sid for sid, _ in ctx.segments}
    current = set(profile.get("segments") or []) & known
    for _ in range(len(ctx.segments) if ctx.nested else 1):
        before = set(current)
        for sid, rule in ctx.segments:
            if is_member(store, rule, {**profile, "segments": sorted(current)}, ctx.now, events):
                current.add(sid)
            else:
                current.discard(sid)
        if current == before:
            break
    return sorted(current)


def _apply(fields: dict[str, Any]):
    def mutate(doc: dict[str, Any]) -> bool:
        same = all(doc.get(k) == v for k, v in fields.items() if k != "needs") and \
            {k: v for k, v in (doc.get("needs") or {}).items() if k != "computed_at"} == \
            {k: v for k, v in fields["needs"].items() if k != "computed_at"}
        if same:
            return False
        doc.update(fields)
        return True
    return mutate


def refresh_profile(store: Store, profile_id: str, *, now: datetime | None = None, _ctx: _Context | None = None,
                    _counts: Counter | None = None, _doc: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Recompute one profile's insights; returns what it now shows (None if no such live profile)."""
    ctx = _ctx or _Context(store, now)
    profile = _doc if _doc is not None else store.container("profiles").read_item_or_none(profile_id, profile_id)
    if profile is None or profile.get("doc_type") != "profile":
        return None
    fields = _insights(store, profile, ctx, _counts)
    # Membership depends only on the profile and its activity, so it is computed before the guarded write;
    # if identity changed the profile meanwhile, the next refresh (or this one re-run) catches up.
    update_profile(store, profile_id, _apply(fields), current=profile)
    return {"profile_id": profile_id, **fields}


def refresh_all(store: Store, *, now: datetime | None = None, workers: int = 8) -> dict[str, Any]:
    """The scheduled job: every live profile, then segment sizes and the category popularity.

    Profiles are refreshed by a small thread pool (the work is waiting on Cosmos), with at most 4 x workers
    in flight so memory stays flat however many profiles there are."""
    ctx = _Context(store, now)
    counts: Counter = Counter()
    stats = {"profiles": 0, "failed": 0}

    def one(doc: dict[str, Any]) -> Counter:
        mine: Counter = Counter()
        refresh_profile(store, doc["id"], _ctx=ctx, _counts=mine, _doc=doc)
        return mine

    def settle(future, pid: str) -> None:
        try:
            counts.update(future.result())
        except Exception as err:  # one bad profile must not stop the run; it is retried on the next run
            stats["failed"] += 1
            log.warning("insights refresh failed for profile %s: %s", pid, type(err).__name__)

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="insights") as pool:
        pending: dict[Any, str] = {}
        for doc in live_profiles(store):  # full documents, with their ETags: no second read per profile
            stats["profiles"] += 1
            pending[pool.submit(one, doc)] = doc["id"]
            if len(pending) >= 4 * max(1, workers):
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    settle(f, pending.pop(f))
        for f in list(pending):
            settle(f, pending.pop(f))
    for sid, _ in ctx.segments:
        size = segment_size(store, sid)
        update_definition(store, sid, lambda d, size=size: {**d, "size": size, "evaluated_at": iso_utc(ctx.now)})
    _save_popularity(store, counts, ctx.now)
    stats["segments"] = len(ctx.segments)
    stats["journeys"] = len(ctx.journeys)
    log.info("insights refresh: %s", stats)
    return stats
