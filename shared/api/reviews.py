"""The review list over HTTP: list and read reviews, approve (merge) or reject (never-match) them."""
from __future__ import annotations

from typing import Any, Callable

from ..identity import review
from ..settings import Settings
from ..store import BadRequestError, ItemNotFoundError, Store
from .errors import ApiError, ApiResponse
from .paging import decode_token, encode_token, page_size


def list_reviews(store: Store, params: dict[str, str]) -> ApiResponse:
    status = params.get("status") or "open"
    if status not in review.STATUSES:
        raise ApiError(400, f"status must be one of {', '.join(review.STATUSES)}")
    size, token = page_size(params, default=50), decode_token(params.get("continuation"))
    reason, min_score = params.get("reason") or None, _score(params.get("min_score"))
    try:
        items, next_token = review.list_reviews(store, status=status, reason=reason, min_score=min_score,
                                                page_size=size, continuation=token)
    except BadRequestError:  # a token from elsewhere or tampered with; a throttled or failing store is not 400
        raise ApiError(400, "continuation is not a token this API returned") from None
    return ApiResponse({"status": status, "reviews": items, "continuation": encode_token(next_token)})


def get_review(store: Store, review_id: str, settings: Settings | None = None) -> ApiResponse:
    """The review with the record and the candidate profile side by side, as a person decides it."""
    return _decided(lambda: review.get_review_to_decide(store, review_id, settings=settings))


def decide(store: Store, review_id: str, decision: str, body: Any, settings: Settings) -> ApiResponse:
    """approve | reject; the body may name who decided: {"by": "<steward id>"} (an id, not a name)."""
    body = body if body is not None else {}
    by = body.get("by") if isinstance(body, dict) else None
    if not isinstance(body, dict) or (by is not None and (not isinstance(by, str) or not 0 < len(by) <= 64)):
        raise ApiError(400, 'body must be empty or JSON {"by": "<who decided, 1-64 characters>"}')
    action = {"approve": review.approve_review, "reject": review.reject_review}[decision]
    return _decided(lambda: action(store, review_id, by=by, settings=settings))


BULK_LIMIT = 100  # reviews one call approves at most: each is a merge, and an HTTP call must end in minutes
_BULK_MEMBERS = {"by", "reason", "min_score", "limit", "dry_run", "continuation"}


def approve_many(store: Store, body: Any, settings: Settings) -> ApiResponse:
    """Approve the open reviews a filter names, as one person's decision: {"by", "reason" and/or "min_score",
    "limit" (1-100), "dry_run", "continuation"}. Call again with the same filter and the returned continuation
    until it is null."""
    if not isinstance(body, dict) or set(body) - _BULK_MEMBERS:
        raise ApiError(400, f"body must be a JSON object with members among {', '.join(sorted(_BULK_MEMBERS))}")
    by, reason, limit = body.get("by"), body.get("reason"), body.get("limit", BULK_LIMIT)
    if not isinstance(by, str) or not 0 < len(by) <= 64:
        raise ApiError(400, '"by" is required: who decides, 1-64 characters')
    if reason is not None and (not isinstance(reason, str) or not reason):
        raise ApiError(400, '"reason" must be a review reason, such as "limit:loyalty_id" or "score"')
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= BULK_LIMIT:
        raise ApiError(400, f'"limit" must be an integer from 1 to {BULK_LIMIT}')
    if not isinstance(body.get("dry_run", False), bool):
        raise ApiError(400, '"dry_run" must be true or false')
    min_score = _score(body.get("min_score"))
    if reason is None and min_score is None:
        raise ApiError(400, 'name a "reason" or a "min_score": approving every review at once is not a decision')
    token = body.get("continuation")
    if token is not None and not isinstance(token, str):
        raise ApiError(400, '"continuation" must be the token the previous call returned')
    try:
        done = review.approve_reviews(store, by=by, reason=reason, min_score=min_score, limit=limit,
                                      dry_run=body.get("dry_run", False), continuation=decode_token(token),
                                      settings=settings)
    except BadRequestError:
        raise ApiError(400, "continuation is not a token this API returned") from None
    return ApiResponse({**done, "continuation": encode_token(done["continuation"])})


def _score(value: Any) -> float | None:
    """A min_score from a query string or a JSON body: a number from 0 to 1, or None."""
    if value is None or value == "":
        return None
    try:
        score = float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        score = None
    if score is None or not 0 <= score <= 1:
        raise ApiError(400, "min_score must be a number from 0 to 1")
    return score


def _decided(fn: Callable[[], dict[str, Any]]) -> ApiResponse:
    try:
        return ApiResponse(fn())
    except ItemNotFoundError:
        raise ApiError(404, "no review with this id") from None
    except review.ReviewDecisionError as err:
        raise ApiError(409, str(err)) from None
