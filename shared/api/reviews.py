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
    try:
        items, next_token = review.list_reviews(store, status=status, page_size=size, continuation=token)
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


def _decided(fn: Callable[[], dict[str, Any]]) -> ApiResponse:
    try:
        return ApiResponse(fn())
    except ItemNotFoundError:
        raise ApiError(404, "no review with this id") from None
    except review.ReviewDecisionError as err:
        raise ApiError(409, str(err)) from None
