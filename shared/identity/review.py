"""The review list: records the resolver would not join on its own (a score between the thresholds, or merge
protection in the way), decided by a person.

Approving merges the two profiles (as they are now, after any merges since) with the decision in the merge log;
rejecting remembers the two as never-match, so they are not proposed or joined again. The decision is taken on
the review first, with its ETag ("deciding"), and carried out after: two people deciding one review at once get
one decision and one 409, and a decision whose worker died half-way is finished by taking it again.
"""
from __future__ import annotations

from typing import Any, Callable

from shared.settings import Settings
from shared.store import ItemNotFoundError, PreconditionFailedError, Store

from .docs import ConcurrencyConflict, Ctx, follow_aliases, now_iso, with_retries
from .merge import live_profile, merge_profiles, survivor_order
from .protection import Side

STATUSES = ("open", "deciding", "approved", "rejected", "obsolete")


class ReviewDecisionError(Exception):
    """The review cannot take this decision (already decided, or a profile is gone); the message says why."""


def list_reviews(store: Store, *, status: str = "open", reason: str | None = None, min_score: float | None = None,
                 page_size: int = 100, continuation: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """Reviews with this status, oldest first, a page at a time. `reason`: only those opened for it, whole
    ("limit:loyalty_id") or by its kind ("limit"); `min_score`: only those scoring at least this."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}")
    conditions: list = [("status", "=", status)]
    if reason is not None:
        conditions.append(("or", [("reason", "=", reason), ("reason", "startswith", reason + ":")]))
    if min_score is not None:
        conditions.append(("score", ">=", min_score))
    filter_ = conditions[0] if len(conditions) == 1 else ("and", conditions)
    items, token = store.container("review").query_page(filter_, order_by="created_at", page_size=page_size,
                                                          continuation=continuation)
    return [_public(i) for i in items], token


def approve_reviews(store: Store, *, by: str, reason: str | None = None, min_score: float | None = None,
                    limit: int = 100, dry_run: bool = False, continuation: str | None = None,
                    settings: Settings | None = None) -> dict[str, Any]:
    """A person's decision for many reviews at once: approve up to `limit` open reviews opened for `reason`
    and scoring at least `min_score` (at least one of the two), oldest first, each as approve_review does (logged
    with the review and the merge, with `by` as who decided and the filter). A review that cannot be approved (a
    merge answered it meanwhile, or the two would pass the records cap) is listed with why. With dry_run, only
    lists what would be approved. Call again with the returned continuation until it is None: it goes on after
    this page, past the reviews left open, so every call moves on."""
    if reason is None and min_score is None:
        raise ValueError("name a reason or a min_score: approving every review at once is not a decision")
    page, token = list_reviews(store, reason=reason, min_score=min_score, page_size=limit, continuation=continuation)
    bulk_filter = {key: value for key, value in (("reason", reason), ("min_score", min_score)) if value is not None}
    approved, not_approved = [], []
    for review in page:
        if dry_run:
            approved.append(review["id"])
            continue
        try:
            approve_review(store, review["id"], by=by, bulk_filter=bulk_filter, settings=settings)
            approved.append(review["id"])
        except ReviewDecisionError as err:
            not_approved.append({"id": review["id"], "why": str(err)})
    return {"approved": approved, "not_approved": not_approved, "dry_run": dry_run, "continuation": token}


def get_review(store: Store, review_id: str) -> dict[str, Any]:
    """One review; raises ItemNotFoundError when there is none."""
    return _public(store.container("review").read_item(review_id, review_id))


def get_review_to_decide(store: Store, review_id: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """One review with what a person needs to decide it, side by side: the record under review (its values as
    its source sent them) and the candidate profile as it is now (its surviving attributes, and the values of the
    record it was compared with). Read only; raises ItemNotFoundError when there is no such review."""
    ctx = Ctx(store, settings)
    doc = get_review(store, review_id)
    current, candidate = _sides(ctx, doc, lambda profile_id: follow_aliases(ctx, profile_id)[0])
    return {**doc,
            "record": _entry_view(current, doc["record_key"]),
            "candidate": None if candidate is None else {
                "profile_id": candidate["id"],
                "attributes": {name: a.get("value") for name, a in candidate.get("attributes", {}).items()},
                "records": [r["key"] for r in candidate.get("records", [])],
                "compared_record": _entry_view(candidate, doc.get("compared_record"))}}


def _sides(ctx: Ctx, review: dict[str, Any], find: Callable[[str], dict[str, Any] | None]):
    """The review's two profiles now, found by `find` (a profile id to its profile, or None). A review is about
    its record and the record it was compared with: a split, or a change of a record, may have moved either since
    the review opened, so each side is the profile holding that record now. The record under review in no profile
    (erased) leaves no side; a compared record in none leaves the candidate profile as it was named."""
    current = _holder(ctx, review["profile_id"], review["record_key"], find)
    compared = review.get("compared_record")
    candidate = _holder(ctx, review["candidate_profile_id"], compared, find) if compared else None
    return current, candidate or find(review["candidate_profile_id"])


def _holder(ctx: Ctx, profile_id: str, key: str, find) -> dict[str, Any] | None:
    """The profile holding the record `key`: the one named if it still does, else the one its records doc names."""
    profile = find(profile_id)
    if profile is None or not any(r["key"] == key for r in profile.get("records", [])):
        record_doc = ctx.records.read_item_or_none(key, key)
        if record_doc is None or not record_doc.get("profile_id"):  # gone, or erased or removed (a tombstone)
            return None
        profile = find(record_doc["profile_id"])
    return profile if profile is not None and any(r["key"] == key for r in profile.get("records", [])) else None


def _entry_view(profile: dict[str, Any] | None, record_key: str | None) -> dict[str, Any] | None:
    """A source record of a profile as a person reads it; None when the profile no longer holds it."""
    entry = next((r for r in (profile or {}).get("records", []) if r["key"] == record_key), None)
    if entry is None:
        return None
    return {"key": entry["key"], "source": entry.get("source"), "profile_id": profile["id"],
            "values": entry.get("values", {})}


def approve_review(store: Store, review_id: str, *, by: str | None = None, bulk_filter: dict[str, Any] | None = None,
                   settings: Settings | None = None) -> dict[str, Any]:
    """Merge the review's two profiles (the older survives, ids stay stable); returns the closed review.
    `bulk_filter`: the filter of the bulk decision this approval is part of, kept with it and in the merge log."""
    ctx = Ctx(store, settings)
    review, _, _ = _open(ctx, review_id, "approved", by)
    why = {"reason": "review", "rule": "approved by a person", "review_id": review["id"],
           "score": review.get("score"), "contributions": review.get("contributions", {}),
           "model_version": review.get("model_version"), "via_record": review.get("record_key"),
           **({"bulk_filter": bulk_filter} if bulk_filter else {})}
    # Each attempt reads the two sides again: a merge may have moved either since (see _merge_sides).
    current = with_retries(ctx, lambda: _merge_sides(ctx, review, why, *_live_sides(ctx, review)))
    return _close(ctx, review, "approved", by, profile_id=current["id"],
                  **({"bulk_filter": bulk_filter} if bulk_filter else {}))


def _live_sides(ctx: Ctx, review: dict[str, Any]):
    """The review's two live profiles now; a review whose record or candidate is gone is closed as obsolete."""
    current, candidate = _sides(ctx, review, lambda profile_id: live_profile(ctx, profile_id))
    if current is None or candidate is None:
        _close(ctx, review, "obsolete", None)
        raise ReviewDecisionError("the record or the candidate profile of this review is gone (erased or removed)")
    return current, candidate


def _merge_sides(ctx: Ctx, review: dict[str, Any], why: dict[str, Any], current: dict[str, Any],
                 candidate: dict[str, Any]) -> dict[str, Any]:
    """Merge the review's two profiles; returns the live survivor. A side merged into a third profile meanwhile
    makes merge_profiles raise ConcurrencyConflict: the retry merges the two as they are then, checked again."""
    if current["id"] == candidate["id"]:
        return current
    if Side.of_profile(current).never_match & Side.of_profile(candidate).names or \
            Side.of_profile(candidate).never_match & Side.of_profile(current).names:
        _reopen(ctx, review)
        raise ReviewDecisionError("these profiles were split apart by a person; reject the review instead")
    cap = ctx.config.protection.max_records
    if len(current.get("records", [])) + len(candidate.get("records", [])) > cap:
        # Not a matter of judgement: a profile document holds at most this many records (bounds.py).
        _reopen(ctx, review)
        raise ReviewDecisionError(f"together the two profiles hold more than {cap} records, the most one profile "
                                  "may hold; reject the review, or split records out first")
    survivor, absorbed = sorted([current, candidate], key=survivor_order)
    return merge_profiles(ctx, survivor["id"], absorbed["id"], why)


def reject_review(store: Store, review_id: str, *, by: str | None = None,
                  settings: Settings | None = None) -> dict[str, Any]:
    """Remember the two profiles as never-match; returns the closed review."""
    ctx = Ctx(store, settings)
    review, current, candidate = _open(ctx, review_id, "rejected", by)
    if current["id"] == candidate["id"]:
        _reopen(ctx, review)
        raise ReviewDecisionError("the two profiles were merged since; split the record out instead")
    for profile, other in ((current, candidate), (candidate, current)):
        with_retries(ctx, lambda: _never_match(ctx, profile["id"], other["id"]))
    return _close(ctx, review, "rejected", by, profile_id=current["id"])


def _open(ctx: Ctx, review_id: str, decision: str, by: str | None):
    """(review, its two live profiles) once the decision is taken on the review ("deciding", with its ETag), or
    the same decision of an earlier attempt that died before carrying it out."""
    review = ctx.review.read_item(review_id, review_id)
    status = review.get("status")
    if status == "deciding" and review.get("decision") != decision:
        raise ReviewDecisionError(f"the review is being decided ({review.get('decision')}) by someone else")
    if status not in ("open", "deciding"):
        raise ReviewDecisionError(f"the review is {status} already")
    current, candidate = _live_sides(ctx, review)
    if status == "open":
        body = {**review, "status": "deciding", "decision": decision, "decided_by": by}
        try:
            review = ctx.review.replace_item(body, etag=review["_etag"])
        except PreconditionFailedError:
            raise ReviewDecisionError("the review was decided by someone else meanwhile") from None
    return review, current, candidate


def _reopen(ctx: Ctx, review: dict[str, Any]) -> None:
    """Back to open: the decision could not be carried out (nothing was changed)."""
    body = {k: v for k, v in review.items() if k not in ("decision", "decided_by")}
    try:
        ctx.review.replace_item({**body, "status": "open"}, etag=review["_etag"])
    except PreconditionFailedError:
        pass


def _never_match(ctx: Ctx, profile_id: str, other_id: str) -> None:
    profile = live_profile(ctx, profile_id)
    if profile is None:
        raise ItemNotFoundError(f"profile {profile_id} is gone")
    if other_id in profile.get("never_match", []):
        return
    body = {**profile, "never_match": sorted({*profile.get("never_match", []), other_id}), "updated_at": now_iso()}
    try:
        ctx.profiles.replace_item(body, etag=profile["_etag"])
    except PreconditionFailedError:
        raise ConcurrencyConflict("profile changed while recording a never-match") from None


def _close(ctx: Ctx, review: dict[str, Any], status: str, by: str | None, **extra: Any) -> dict[str, Any]:
    body = {k: v for k, v in review.items() if k != "decision"}
    body = {**body, "status": status, "decided_at": now_iso(), "decided_by": by, **extra}
    try:
        return _public(ctx.review.replace_item(body, etag=review["_etag"]))
    except PreconditionFailedError:
        current = ctx.review.read_item(review["id"], review["id"])
        if current.get("status") == status and status != "obsolete":
            return _public(current)  # the same decision, finished by a retry meanwhile
        raise ReviewDecisionError("the review was decided by someone else meanwhile") from None


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if not k.startswith("_")}
