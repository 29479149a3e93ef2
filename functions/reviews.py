"""Review list API: records the resolver left for a person to decide."""
import azure.functions as func

from functions._http import json_body, respond
from shared.api import reviews as api
from shared.api.openapi import operation, path_param, query_param, register_paths
from shared.settings import get_settings
from shared.store import open_store

bp = func.Blueprint()


@bp.route(route="reviews", methods=["GET"])
def list_reviews(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, lambda: api.list_reviews(open_store(), dict(req.params)))


@bp.route(route="reviews/approve", methods=["POST"])
def approve_reviews(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, lambda: api.approve_many(open_store(), json_body(req), get_settings()))


@bp.route(route="reviews/{review_id}", methods=["GET"])
def get_review(req: func.HttpRequest) -> func.HttpResponse:
    return respond(req, lambda: api.get_review(open_store(), req.route_params["review_id"], get_settings()))


@bp.route(route="reviews/{review_id}/approve", methods=["POST"])
def approve_review(req: func.HttpRequest) -> func.HttpResponse:
    return _decide(req, "approve")


@bp.route(route="reviews/{review_id}/reject", methods=["POST"])
def reject_review(req: func.HttpRequest) -> func.HttpResponse:
    return _decide(req, "reject")


def _decide(req: func.HttpRequest, decision: str) -> func.HttpResponse:
    return respond(req, lambda: api.decide(open_store(), req.route_params["review_id"], decision,
                                           json_body(req) if req.get_body() else None, get_settings()))


RID = path_param("review_id")
DECISION = {"type": "object", "properties": {"by": {"type": "string", "minLength": 1, "maxLength": 64}}}
BULK = {"type": "object", "required": ["by"], "additionalProperties": False, "properties": {
    "by": {"type": "string", "minLength": 1, "maxLength": 64}, "reason": {"type": "string", "minLength": 1},
    "min_score": {"type": "number", "minimum": 0, "maximum": 1},
    "limit": {"type": "integer", "minimum": 1, "maximum": 100}, "dry_run": {"type": "boolean"},
    "continuation": {"type": "string"}}}
register_paths({
    "/reviews": {"get": operation("Reviews (default: open), oldest first, paginated", errors=("400", "401"), params=[
        query_param("status", "open, deciding, approved, rejected or obsolete"),
        query_param("reason", 'only reviews opened for this reason, whole ("limit:loyalty_id") or its kind ("limit")'),
        query_param("min_score", "only reviews scoring at least this (0 to 1)"),
        query_param("page_size", "1 to 1000, default 50"),
        query_param("continuation", "token from the previous page")])},
    "/reviews/{review_id}": {"get": operation(
        "One review to decide: the score with each comparison's level and contribution, and side by side the "
        "record under review and the candidate profile (its attributes, the record it was compared with)",
        params=[RID])},
    "/reviews/approve": {"post": operation(
        "Approve the open reviews a filter names (reason and/or min_score), up to limit (1-100), as one person's "
        "decision; dry_run lists them; call again with the returned continuation until it is null", body=BULK,
        errors=("400", "401"))},
    "/reviews/{review_id}/approve": {"post": operation("Merge the two profiles (the older id survives)", params=[RID],
                                                       body=DECISION, errors=("400", "401", "404", "409"))},
    "/reviews/{review_id}/reject": {"post": operation("Keep the two profiles apart for good (never-match)", params=[RID],
                                                      body=DECISION, errors=("400", "401", "404", "409"))},
})
