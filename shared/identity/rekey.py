"""Re-keying a store after a change of normalization.

What the resolver keeps of a record (its match snapshot, and the identifiers and blocking keys made from it) depends
on the deployment's normalization: `normalization.email_provider_rules` and `protection.blocked_values` of the
identity configuration. A record is resolved once per content, so a change of either leaves the records resolved
before under the old forms: turning provider rules on, "ann.lee@gmail.com" still names only its own profile, and
lookups of "annlee@gmail.com" miss it. `rekey` resolves again every record whose entry is not what the resolver
makes of it now, as a new version of the record would be: it claims the new forms and releases the old ones, and
joins the profiles its new identifiers lead to (under merge protection, as on arrival). Re-keying never splits a
profile: two people that a folded email joined stay joined until a person splits them.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Iterator

from shared.models import CustomerRecord
from shared.settings import Settings
from shared.store import Store

from .docs import REKEYING, Ctx, ResolverConfig, source_identifier, with_retries
from .engine import Resolver, ResolveResult

MAX_PASSES = 5  # a pass's merges move records into profiles it may have read already: the next pass sees them


def rekey(store: Store, *, settings: Settings | None = None, config: ResolverConfig | None = None,
          model: Any = None) -> dict[str, int]:
    """Resolve again each record of a live profile whose entry is not what the resolver makes of it now. Reads every
    profile (a cross-partition query) and each record's records doc (its stored content: the entry keeps only what
    normalization made of it), and the source identifier of each record to re-key; then, when it re-keyed any,
    passes again over the profiles for the records a merge moved into one read already, until a pass re-keys none:
    an admin job, run once after the change. A record is marked on its source identifier before it is resolved
    again, and its commit takes the mark off: a run that died midway leaves the mark, and the next run (or the
    record's next delivery) finishes it. Idempotent, safe beside running workers of the new configuration (a record
    re-keyed is resolved as a new version of it would be, under the same concurrency control).

    Returns counts, no values: `records` checked, `rekeyed` and the action of each (`rekeyed_linked`: it stayed in
    its profile; `rekeyed_merged`: its new identifiers joined another), `passes`, and `unusable`: records with
    nothing usable under the new normalization (their only email blocked now, say), left in their profile as they
    were; remove them (`remove_record`) if they should go."""
    resolver = Resolver(store, settings=settings, config=config, model=model)
    counts: Counter[str] = Counter()
    checked: set[str] = set()
    # First the records a run that died left marked: one may be in no profile (it was leaving its profile for
    # another when the run died), where no pass over the profiles would find it.
    marked = resolver.ctx.identifiers.query_items((REKEYING, "defined", None))
    _rekey_records(resolver, [(doc[REKEYING], None) for doc in marked if isinstance(doc[REKEYING], str)], checked,
                   counts)
    for passes in range(1, MAX_PASSES + 1):
        counts["passes"] = passes
        if not _rekey_records(resolver, _entries(resolver), checked, counts):
            break
    return dict(counts)


def _entries(resolver: Resolver) -> Iterator[tuple[str, dict[str, Any]]]:
    """(key, entry) of each record of each live profile."""
    for profile in resolver.ctx.profiles.query_items(("doc_type", "=", "profile")):
        for entry in profile.get("records", []):
            yield entry["key"], entry


def _rekey_records(resolver: Resolver, records: Iterable[tuple[str, dict[str, Any] | None]], checked: set[str],
                   counts: Counter[str]) -> int:
    """Check the records (key, profile entry) not checked yet, re-keying those not current; the number re-keyed."""
    rekeyed = 0
    for key, entry in records:
        if key in checked:
            continue
        checked.add(key)
        counts["records"] += 1
        action = with_retries(resolver.ctx, lambda: _rekey_record(resolver, key, entry))
        if action is not None:
            counts[action] += 1
            rekeyed += action.startswith("rekeyed_")
    counts["rekeyed"] = sum(v for k, v in counts.items() if k.startswith("rekeyed_"))
    return rekeyed


def _rekey_record(resolver: Resolver, key: str, entry: dict[str, Any] | None) -> str | None:
    """Resolve the record again if its entry is not current, or it was marked by a run that died (entry None: found
    by its mark): the count it adds to (None: current, or gone meanwhile)."""
    ctx = resolver.ctx
    doc = ctx.records.read_item_or_none(key, key)
    if doc is None or not doc.get("record") or doc.get("erased_at") or doc.get("removed_at"):
        return None  # gone meanwhile: its removal or erase takes it out of the profile
    record = CustomerRecord.model_validate(doc["record"])
    n = resolver.normalize(record)
    if isinstance(n, ResolveResult):  # nothing to re-key it to: it stays as it is
        _unmark(ctx, key)  # if a run that died marked it: a removal of a marked record waits for its mark to go
        return "unusable"
    if entry is not None:
        if entry.get("hash") != doc.get("content_hash"):
            return None  # another version since: its worker resolves it as configured now
        if resolver.snapshot_of(record, n) == entry.get("match"):
            return None  # current (one marked by a run that died was taken first, by its mark)
    iid = source_identifier(key)
    source_doc = ctx.identifiers.read_item_or_none(iid, iid)
    if source_doc is None or source_doc.get("content_hash") != doc.get("content_hash"):
        return None  # not committed: its worker resolves it as configured now
    if not source_doc.get(REKEYING):
        if entry is None:
            return None  # found by its mark, committed since
        # Written under its ETag: a version committed meanwhile makes the caller (with_retries) check it again.
        ctx.identifiers.replace_item({**source_doc, REKEYING: key}, etag=source_doc["_etag"])
    return f"rekeyed_{resolver.resolve(record, normalized=n, landed_at=doc.get('landed_at')).action}"


def _unmark(ctx: Ctx, key: str) -> None:
    iid = source_identifier(key)
    source_doc = ctx.identifiers.read_item_or_none(iid, iid)
    if source_doc is not None and source_doc.get(REKEYING):
        body = {k: v for k, v in source_doc.items() if k != REKEYING}
        ctx.identifiers.replace_item(body, etag=source_doc["_etag"])  # 412: with_retries checks the record again
