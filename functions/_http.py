"""Glue between azure.functions HTTP objects and shared.api handlers: JSON out, problem+json errors."""
from __future__ import annotations

import json
import logging
import math
import uuid
from typing import Any, Callable

import azure.functions as func

from shared.api import ApiError, ApiResponse
from shared.store import BadRequestError, StoreError, ThrottledError, UnavailableError

log = logging.getLogger("ucp.http")


def _json_default(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def problem(err: ApiError, req: func.HttpRequest, headers: dict[str, str] | None = None) -> func.HttpResponse:
    path = req.url.split("?", 1)[0]
    return func.HttpResponse(json.dumps(err.problem(instance=path.split("/api", 1)[-1] or path)),
                             status_code=err.status, mimetype="application/problem+json", headers=headers)


# Seconds a client is asked to wait when the store did not say: Cosmos DB's throttling lasts milliseconds to
# seconds; an unreachable store longer.
DEFAULT_RETRY_AFTER = {429: 1, 503: 5}


def _store_busy(err: StoreError, req: func.HttpRequest) -> func.HttpResponse:
    """429 (throttled) or 503 (unreachable) with Retry-After: clients and gateways back off and retry, and the
    log shows the load, not a crash (a warning, no stack trace)."""
    status = 429 if isinstance(err, ThrottledError) else 503
    retry = err.retry_after
    seconds = max(1, math.ceil(retry)) if retry is not None and math.isfinite(retry) else DEFAULT_RETRY_AFTER[status]
    what = "throttled (Cosmos DB 429)" if status == 429 else f"unavailable ({err})"
    log.warning("store %s in %s %s; answered %d, retry after %ss", what, req.method, req.url.split("?", 1)[0],
                status, seconds)
    detail = ("the data store is busy; retry after the time in Retry-After" if status == 429 else
              "the data store cannot be reached; retry after the time in Retry-After")
    return problem(ApiError(status, detail), req, headers={"Retry-After": str(seconds)})


def respond(req: func.HttpRequest, handler: Callable[[], ApiResponse]) -> func.HttpResponse:
    """Run a handler; ApiError becomes problem+json, a throttled or unreachable store 429/503 with Retry-After,
    anything unexpected a 500 without internals."""
    try:
        result = handler()
    except ApiError as err:
        return problem(err, req)
    except BadRequestError as err:  # e.g. a continuation token the store never issued
        return problem(ApiError(400, str(err) or "the store refused this request as malformed"), req)
    except (ThrottledError, UnavailableError) as err:
        return _store_busy(err, req)
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
