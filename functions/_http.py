"""Glue between azure.functions HTTP objects and shared.api handlers: JSON out, problem+json errors."""
from __future__ import annotations

import json
import logging
import uuid
from typing import Any, Callable

import azure.functions as func

from shared.api import ApiError, ApiResponse
from shared.store import BadRequestError

log = logging.getLogger("ucp.http")


def _json_default(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def problem(err: ApiError, req: func.HttpRequest) -> func.HttpResponse:
    path = req.url.split("?", 1)[0]
    return func.HttpResponse(json.dumps(err.problem(instance=path.split("/api", 1)[-1] or path)),
                             status_code=err.status, mimetype="application/problem+json")


def respond(req: func.HttpRequest, handler: Callable[[], ApiResponse]) -> func.HttpResponse:
    """Run a handler; ApiError becomes problem+json, anything unexpected a 500 without internals."""
    try:
        result = handler()
    except ApiError as err:
        return problem(err, req)
    except BadRequestError as err:  # e.g. a continuation token the store never issued
        return problem(ApiError(400, str(err) or "the store refused this request as malformed"), req)
    except Exception:  # the client gets an id to quote; the log gets the trace (no payloads: no PII)
        incident = uuid.uuid4().hex[:12]
        log.exception("unhandled error in %s %s (incident %s)", req.method, req.url.split("?", 1)[0], incident)
        return problem(ApiError(500, f"internal error; quote incident {incident}"), req)
    body = result.body
    if result.mimetype.endswith("json") and not isinstance(body, (str, bytes)):
        body = json.dumps(body, default=_json_default)
    return func.HttpResponse(body, status_code=result.status, mimetype=result.mimetype, headers=result.headers)


def json_body(req: func.HttpRequest) -> Any:
    try:
        return req.get_json()
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
        raise ApiError(400, "the request body must be valid JSON") from None
