"""Storage limits and errors as production meets them (from an independent review; each test failed first).
Every docstring says what goes wrong in production and why.

Scope: shared/store (contract, memory and Cosmos stores, query translation), the code that drives it, infra/main.bicep
and the devstack launcher. Where the local emulator cannot show a real Cosmos DB behaviour, the test either checks
the precondition Cosmos DB enforces (documented service limits) or puts a small gateway stand-in in front of the
emulator that answers as the real gateway does (see GatewayFront).
"""
from __future__ import annotations

import json
import logging

import pytest

from shared.store import MemoryStore, RequestTooLargeError, ThrottledError, UnavailableError


# =============================================================================================================
# 5. Throttling (429) as the API reports it
# =============================================================================================================

def _throttled(*args, **kwargs):
    raise ThrottledError("Cosmos DB 429")


def _review_list(store):
    from shared.api.reviews import list_reviews

    store.container("review").query_page = _throttled
    return lambda: list_reviews(store, {})


def _segment_members(store):
    from shared.insights import api, segments

    seg = segments.create_segment(store, segments.SegmentDefinition(
        name="Spenders", rule={"field": "measures.total_spend", "op": ">=", "value": 100}))
    store.container("profiles").query_page = _throttled
    return lambda: api.segment_members(store, seg["id"], {})


@pytest.mark.parametrize("endpoint", [_review_list, _segment_members],
                         ids=["GET /reviews", "GET /segments/{id}/members"])
def test_a_throttled_list_is_not_blamed_on_the_clients_continuation_token(endpoint):
    """Production: when Cosmos DB throttles (429 after the SDK's own retries) or fails, GET /reviews and
    GET /segments/{id}/members answer 400 "continuation is not a token this API returned" - even for a first page
    requested without any token. Clients and API gateways do not retry a 400, stewards are told their request is
    wrong, and the outage does not show up as server errors.

    Why: shared/api/reviews.py:20 and shared/insights/api.py:78 catch every StoreError (ThrottledError included,
    and any other Cosmos failure) together with the token-decoding errors and turn them into ApiError(400)."""
    from shared.api.errors import ApiError

    call = endpoint(MemoryStore())
    with pytest.raises((ApiError, ThrottledError)) as err:
        call()
    status = getattr(err.value, "status", None) or getattr(err.value, "status_code", None)
    assert status in (429, 503), f"answered {status}: {err.value}"


def test_a_throttled_request_is_answered_as_throttled_not_as_an_internal_error():
    """Production: every HTTP endpoint answers a throttled store (ThrottledError: 429 after the SDK's retries) with
    500 "internal error; quote incident ..." and logs a stack trace, instead of 429/503 with Retry-After. Clients
    and Azure API Management do not back off on a 500, so load is not shed, and alerts page for "bugs".

    Why: functions/_http.respond maps ApiError and BadRequestError and sends every other exception, ThrottledError
    included, to the generic 500 branch; nothing in shared/api maps ThrottledError."""
    import azure.functions as func

    from functions._http import respond

    req = func.HttpRequest(method="GET", url="http://localhost/api/profiles/p1", body=b"")

    def handler():
        raise ThrottledError("Cosmos DB 429")

    response = respond(req, handler)
    assert response.status_code in (429, 503), response.get_body()[:200]


@pytest.mark.parametrize("error, status, retry_after", [
    (ThrottledError("Cosmos DB 429", retry_after=2.5), 429, "3"),
    (ThrottledError("Cosmos DB 429"), 429, "1"),
    (UnavailableError("Cosmos DB did not answer (ServiceRequestError)"), 503, "5"),
    (UnavailableError("Cosmos DB 503", retry_after=0.01), 503, "1"),
], ids=["throttled, store says 2.5 s", "throttled", "unreachable", "unavailable, store says 10 ms"])
def test_a_busy_or_unreachable_store_is_answered_with_retry_after_and_logged_without_a_trace(caplog, error, status,
                                                                                             retry_after):
    """429 for throttling, 503 for a store that cannot be reached, each with Retry-After (the store's own wait
    when it gave one, in whole seconds, at least 1), logged as a warning without a stack trace."""
    import azure.functions as func

    from functions._http import respond

    def handler():
        raise error

    req = func.HttpRequest(method="GET", url="http://localhost/api/reviews?code=secret", body=b"")
    with caplog.at_level(logging.INFO, logger="ucp.http"):
        response = respond(req, handler)
    assert response.status_code == status
    assert response.headers.get("Retry-After") == retry_after
    assert json.loads(response.get_body())["status"] == status
    records = [r for r in caplog.records if r.name == "ucp.http"]
    assert len(records) == 1 and records[0].levelno == logging.WARNING and records[0].exc_info is None
    assert ("throttled" if status == 429 else "unavailable") in records[0].getMessage()
    assert "secret" not in records[0].getMessage()


class _FailingProxy:
    """A Cosmos container client whose every call fails with this error."""

    def __init__(self, error: Exception):
        self.error = error

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise self.error

        return fail


def _cosmos_error(status: int, headers: dict[str, str] | None = None):
    from azure.cosmos import exceptions

    err = exceptions.CosmosHttpResponseError(status_code=status, message=f"status {status}")
    err.headers = headers or {}
    return err


def _network_error(kind: str):
    from azure.core import exceptions

    return getattr(exceptions, kind)("connection refused")


@pytest.mark.parametrize("error, expected, retry_after", [
    (lambda: _network_error("ServiceRequestError"), UnavailableError, None),
    (lambda: _network_error("ServiceResponseError"), UnavailableError, None),
    (lambda: _cosmos_error(503), UnavailableError, None),
    (lambda: _cosmos_error(408), UnavailableError, None),
    (lambda: _cosmos_error(429, {"x-ms-retry-after-ms": "1500"}), ThrottledError, 1.5),
    (lambda: _cosmos_error(413), RequestTooLargeError, None),
], ids=["request failed", "response failed", "503", "408", "429", "413"])
def test_cosmos_failures_are_the_stores_own_errors(error, expected, retry_after):
    """Production: a network failure (azure-core ServiceRequestError/ServiceResponseError, after the SDK's retries)
    escaped the store as an azure-core exception, and 413/503 were a bare StoreError: the API answered 500 with a
    stack trace for an outage. Now every call maps them: UnavailableError (503 at the API), ThrottledError with
    the wait Cosmos DB asked for, RequestTooLargeError for 413."""
    from shared.store.cosmos import CosmosContainer

    container = CosmosContainer(_FailingProxy(error()), "profiles", "/id")
    calls = [
        lambda: container.read_item("p1", "p1"), lambda: container.read_items([("a", "a"), ("b", "b")]),
        lambda: container.create_item({"id": "p1"}), lambda: container.upsert_item({"id": "p1"}),
        lambda: container.replace_item({"id": "p1"}), lambda: container.delete_item("p1", "p1"),
        lambda: list(container.query_items(("a", "=", 1))), lambda: container.count_items(),
        lambda: container.query_page(page_size=2), lambda: container.query_page(order_by="created_at", page_size=2),
        lambda: container.execute_batch("p1", [("upsert", {"id": "p1"})]),
    ]
    for call in calls:
        with pytest.raises(expected) as err:
            call()
        assert err.value.retry_after == retry_after
