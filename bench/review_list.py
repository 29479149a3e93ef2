"""What working the review list is worth: every open review decided by a reviewer who knows the ground truth.

The resolver leaves to a person what it must not decide alone (a score between the thresholds, or merge
protection in the way, such as a second loyalty card). This replays the reviewer's side through the same calls
the API makes (approve_review, reject_review): approve when the candidate profile holds a record of the person the
review's record belongs to, reject otherwise. The figures are the size of the list, the share of true matches in
it, and the pairwise scores before and after: an upper bound on what review adds, since a real reviewer errs.
The scores count every record of the truth, as the accuracy bench's headline does (a record without a profile,
quarantined, is a profile of its own: its true pairs stay misses).
"""
from __future__ import annotations

from collections import Counter
from typing import Any

from bench.metrics import cluster_scores


def work_review_list(store, truth: dict[str, Any], keys, *, settings=None,
                     bulk: dict[str, Any] | None = None) -> dict[str, Any]:
    """Decide every open review of `store` with the truth (record key -> person); the figures before and after.
    `bulk` (reason and/or min_score): first one steward's decision approving every open review that filter names
    (approve_reviews, as POST /api/reviews/approve), measured on its own; then the rest one by one."""
    from shared.identity.docs import Ctx
    from shared.identity.review import ReviewDecisionError, approve_review, approve_reviews, list_reviews, reject_review

    before = _scores(truth, store, keys)
    ctx = Ctx(store, settings)
    reviews = _all_open(store, list_reviews)
    true_match = {review["id"]: _is_true_match(ctx, truth, review) for review in reviews}
    by_reason: dict[str, Counter] = {}
    for review in reviews:
        counts = by_reason.setdefault(review["reason"].split(":")[0], Counter())
        counts["true_match" if true_match[review["id"]] else "not_a_match"] += 1
    figures: dict[str, Any] = {}
    if bulk:
        approved: list[str] = []
        token = None
        while True:
            done = approve_reviews(store, by="bench-bulk", limit=100, continuation=token, settings=settings, **bulk)
            approved += done["approved"]
            if not (token := done["continuation"]):
                break
        figures["bulk_first"] = {
            "filter": bulk, "approved": len(approved), "wrong": sum(not true_match[i] for i in approved),
            "reviews_left": len(_all_open(store, list_reviews)),
            "after": _pairwise(_scores(truth, store, keys))}
    decisions: Counter = Counter()
    for review in _all_open(store, list_reviews):
        same = _is_true_match(ctx, truth, review)  # as the profiles are now, after the decisions before it
        try:
            (approve_review if same else reject_review)(store, review["id"], by="bench", settings=settings)
            decisions["approved" if same else "rejected"] += 1
        except ReviewDecisionError:  # merged since, a profile gone, or split apart by a person
            decisions["no_longer_open"] += 1
    after = _scores(truth, store, keys)
    true_matches = sum(true_match.values())
    return {
        "reviews": len(reviews), "true_match_share": round(true_matches / len(reviews), 4) if reviews else None,
        "by_reason": {reason: dict(counts) for reason, counts in sorted(by_reason.items())},
        **figures,
        "decisions": dict(decisions),
        "reviews_per_1000_records": round(1000 * len(reviews) / max(1, len(keys)), 2),
        "before": _pairwise(before), "after": _pairwise(after),
    }


def _is_true_match(ctx, truth: dict[str, Any], review: dict[str, Any]) -> bool:
    """Whether the review's candidate profile holds a record of the person the review's record belongs to."""
    from shared.identity.merge import live_profile

    person = truth.get(review["record_key"])
    candidate = live_profile(ctx, review["candidate_profile_id"])
    return candidate is not None and any(truth.get(r["key"]) == person for r in candidate.get("records", []))


def _all_open(store, list_reviews) -> list[dict[str, Any]]:
    """Every open review, oldest first (the list is read whole before deciding: decisions change it)."""
    out, token = [], None
    while True:
        page, token = list_reviews(store, page_size=1000, continuation=token)
        out += page
        if not token:
            return out


def _scores(truth, store, keys) -> dict[str, Any]:
    from bench.identity import final_assignment

    return cluster_scores(truth, final_assignment(store, keys), missing="singleton")


def _pairwise(scores: dict[str, Any]) -> dict[str, float]:
    return {k: round(scores[k], 5) for k in ("pairwise_precision", "pairwise_recall", "pairwise_f1")}
