"""Storage limits and errors as production meets them (from an independent review; each test failed first).
Every docstring says what goes wrong in production and why.

Scope: shared/store (contract, memory and Cosmos stores, query translation), the code that drives it, infra/main.bicep
and the devstack launcher. Where the local emulator cannot show a real Cosmos DB behaviour, the test either checks
the precondition Cosmos DB enforces (documented service limits) or puts a small gateway stand-in in front of the
emulator that answers as the real gateway does (see GatewayFront).
"""
from __future__ import annotations

import http.client
import json
import logging
import re
import ssl
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shared.store import BadRequestError, MemoryStore, RequestTooLargeError, ThrottledError, UnavailableError

# Cosmos DB service limits (learn.microsoft.com/azure/cosmos-db/concepts-limits, "Per-item limits" and
# "Transactional batch"): an item is at most 2 MB of JSON, and a transactional batch request at most 2 MB
# (besides 100 operations).
MAX_ITEM_BYTES = 2 * 1024 * 1024
MAX_BATCH_REQUEST_BYTES = 2 * 1024 * 1024


def _json_bytes(doc) -> int:
    return len(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode())


# =============================================================================================================
# 1. Paging a cross-partition ORDER BY query (review list, ingestion list) on a real Cosmos DB gateway
# =============================================================================================================

_ORDER_BY_QUERY = re.compile(
    r"^SELECT \* FROM c(?: WHERE (?P<where>.*?))? ORDER BY (?P<expr>\S+) (?P<dir>ASC|DESC)$", re.S)


class GatewayFront:
    """A plain-HTTP front for the local emulator that answers ORDER BY queries the way the Cosmos DB gateway does.

    The emulator runs any query whole, so the SDK never takes the path it takes against Azure. The real gateway:
    - refuses a cross-partition query with ORDER BY with 400 / substatus 1004 ("can not be directly served by the
      gateway"); the SDK then asks for a query plan (x-ms-cosmos-is-query-plan-request) and runs the plan's
      rewritten query per partition key range (x-ms-documentdb-partitionkeyrangeid), merging the results itself;
    - answers 400 "Invalid Continuation Token" when such a query comes back with a continuation token that was
      issued for one partition range's rewritten query (github.com/Azure/azure-sdk-for-python/issues/41434; the
      SDK hands that per-range token out as the page's continuation: issue #37230).
    Everything else is forwarded unchanged to the emulator (range queries with the cross-partition header, which
    the launcher needs when no partition key is sent)."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.seen: list[str] = []
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _any(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                front._handle(self, body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def _reply(handler, status: int, payload, headers=()) -> None:
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(data)))
        for k, v in headers:
            handler.send_header(k, v)
        handler.end_headers()
        handler.wfile.write(data)

    def _handle(self, handler, body: bytes) -> None:
        h = {k.lower(): v for k, v in handler.headers.items()}
        post = handler.command == "POST"
        is_query = post and h.get("x-ms-documentdb-isquery", "").lower() == "true"
        is_plan = post and h.get("x-ms-cosmos-is-query-plan-request", "").lower() == "true"
        cross = "x-ms-documentdb-partitionkey" not in h and "x-ms-documentdb-partitionkeyrangeid" not in h
        if (is_query or is_plan) and cross:
            m = _ORDER_BY_QUERY.match(json.loads(body)["query"].strip())
            if m and is_plan:
                self.seen.append("query plan")
                where = f"({m['where']}) AND " if m["where"] else ""
                rewritten = (f'SELECT c._rid, [{{"item": {m["expr"]}}}] AS orderByItems, c AS payload FROM c WHERE '
                             f'{where}({{documentdb-formattableorderbyquery-filter}}) ORDER BY {m["expr"]} {m["dir"]}')
                return self._reply(handler, 200, {
                    "partitionedQueryExecutionInfoVersion": 2,
                    "queryInfo": {"distinctType": "None", "top": None, "offset": None, "limit": None,
                                  "orderBy": ["Descending" if m["dir"] == "DESC" else "Ascending"],
                                  "orderByExpressions": [m["expr"]], "groupByExpressions": [], "groupByAliases": [],
                                  "aggregates": [], "groupByAliasToAggregateType": {}, "rewrittenQuery": rewritten,
                                  "hasSelectValue": False, "dCountInfo": None, "hasNonStreamingOrderBy": False},
                    "queryRanges": [{"min": "", "max": "FF", "isMinInclusive": True, "isMaxInclusive": False}]})
            if m:
                if h.get("x-ms-continuation"):
                    self.seen.append("continuation refused")
                    return self._reply(handler, 400, {"code": "BadRequest", "message": "Invalid Continuation Token"})
                self.seen.append("1004")
                return self._reply(handler, 400, {"code": "BadRequest", "message": (
                    "The provided cross partition query can not be directly served by the gateway.")},
                    [("x-ms-substatus", "1004")])
        headers = {k: v for k, v in handler.headers.items()
                   if k.lower() not in ("host", "connection", "content-length")}
        if is_query and "x-ms-documentdb-partitionkeyrangeid" in h:
            headers["x-ms-documentdb-query-enablecrosspartition"] = "true"
            self.seen.append("range query")
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection("127.0.0.1", self.upstream_port, context=context, timeout=30)
        try:
            conn.request(handler.command, handler.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        handler.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length", "keep-alive"):
                handler.send_header(k, v)
        handler.send_header("content-length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


@pytest.fixture
def gateway_store(local_stack, cosmos_store, stack_settings):
    """A CosmosStore that reaches the emulator through GatewayFront (the containers exist: cosmos_store made them)."""
    from shared.store.cosmos import CosmosStore

    front = GatewayFront(local_stack.cosmos_port)
    s = stack_settings
    try:
        yield CosmosStore(f"http://127.0.0.1:{front.port}/", s.cosmos_key, s.cosmos_database,
                          prefix=s.container_prefix), front
    finally:
        front.close()


def _drain(page_fn, limit: int = 20) -> list[str]:
    seen, token = [], None
    for _ in range(limit):
        items, token = page_fn(token)
        seen += [i["id"] for i in items]
        if token is None:
            return seen
    raise AssertionError(f"paging did not end after {limit} pages: {seen}")


def _reviews(store):
    from shared.identity import review

    for i in range(5):
        store.container("review").create_item(
            {"id": f"rev{i}", "status": "open", "created_at": f"2026-01-0{i + 1}T00:00:00Z"})
    expected = [f"rev{i}" for i in range(5)]  # oldest first
    whole = lambda: store.container("review").query_items(("status", "=", "open"), order_by="created_at")  # noqa: E731
    return expected, whole, lambda token: review.list_reviews(store, status="open", page_size=2, continuation=token)


def _ingestions(store):
    from shared.ingest import ledger

    for i in range(5):
        store.container("ledger").create_item(
            {"id": f"ing{i}", "doc_type": ledger.DOC_TYPE, "status": "completed", "blob": f"landing/f{i}.csv",
             "created_at": f"2026-01-0{i + 1}T00:00:00.000Z"})
    expected = [f"ing{i}" for i in reversed(range(5))]  # newest first
    whole = lambda: store.container("ledger").query_items(  # noqa: E731
        ("doc_type", "=", ledger.DOC_TYPE), order_by="created_at", descending=True)
    return expected, whole, lambda token: ledger.list_ingestions(store, page_size=2, continuation=token)


@pytest.mark.parametrize("listing", [_reviews, _ingestions], ids=["GET /reviews", "GET /ingestions"])
def test_ordered_lists_page_past_the_first_page_on_a_real_cosmos_gateway(gateway_store, listing):
    """Production: the review list (GET /reviews, shared/identity/review.list_reviews) and the ingestion list
    (GET /ingestions, shared/ingest/ledger.list_ingestions) never get past their first page: page 2 is refused
    (400; the review API words it "continuation is not a token this API returned"). Even a gateway that took the
    token would resume in the wrong place: it is a per-range token (TRC counts what the SDK buffered, not what it
    returned), so items would be skipped.

    Why: CosmosContainer.query_page (shared/store/cosmos.py:188-200) pages with the SDK's by_page(continuation) and
    returns pager.continuation_token. Both containers are partitioned by /id, so these ORDER BY created_at lists
    are cross-partition ORDER BY queries. Against Azure the SDK runs them from a query plan, merging the partition
    ranges client-side; the azure-cosmos Python SDK has no continuation support for such queries (its pipelined
    execution context ignores options['continuation']; the token it exposes is the last per-range server token,
    which the gateway refuses: azure-sdk-for-python #37230, #41434). The local emulator runs every query whole,
    so the contract suite (test_query_page_covers_everything_exactly_once) cannot see it."""
    store, front = gateway_store
    expected, whole, page = listing(store)
    assert [d["id"] for d in whole()] == expected  # read whole, the same query is fine through the same gateway
    assert "query plan" in front.seen  # ... and took the path the SDK takes against Azure
    try:
        seen = _drain(page)
    except BadRequestError as err:
        pytest.fail(f"a page after the first was refused ({err}); gateway requests: {front.seen}")

    assert seen == expected, front.seen


def test_ordered_pages_end_inside_groups_of_ties_on_a_real_cosmos_gateway(gateway_store):
    """Reviews created in the same instant tie on created_at. Pages are ordered by (created_at, id) without a
    composite index: a page that ends inside a group of ties is followed by a query for the rest of the group
    ordered by id, which goes through the gateway's query plan like the others. Reviews written between pages are
    neither skipped nor repeated: one that sorts after the position is on a later page."""
    from shared.identity import review

    store, front = gateway_store
    reviews = store.container("review")
    stamps = ["2026-01-01T00:00:00Z"] * 3 + ["2026-01-02T00:00:00Z"] * 4 + ["2026-01-03T00:00:00Z"]
    for i, stamp in enumerate(stamps):
        reviews.create_item({"id": f"rev{i}", "status": "open", "created_at": stamp})
    page, token = review.list_reviews(store, status="open", page_size=2)
    seen = [r["id"] for r in page]
    assert seen == ["rev0", "rev1"] and token
    reviews.create_item({"id": "rev00", "status": "open", "created_at": stamps[0]})  # ties, sorts before rev1
    reviews.create_item({"id": "rev1a", "status": "open", "created_at": stamps[0]})  # ties, sorts after rev1
    front.seen.clear()
    for _ in range(10):
        page, token = review.list_reviews(store, status="open", page_size=2, continuation=token)
        seen += [r["id"] for r in page]
        if token is None:
            break
    assert seen == ["rev0", "rev1", "rev1a", "rev2", "rev3", "rev4", "rev5", "rev6", "rev7"], front.seen
    assert "query plan" in front.seen and "continuation refused" not in front.seen


# =============================================================================================================
# 4. Transactional batches over the 2 MB request limit
# =============================================================================================================

def test_activity_batches_stay_under_the_cosmos_batch_request_limit():
    """Production: ingesting an order history where one customer has many large orders (a trade account, a
    backfill) fails the whole file: Cosmos DB answers 413 to a transactional batch over 2 MB, the store raises a
    StoreError, the ingestion is retried from the start and fails the same way every time.

    Why: write_activity (shared/activity.py:133-137) cuts each owner's docs into batches by operation count only
    (MAX_BATCH_OPERATIONS = 100); base.check_batch_size checks only the count. Cosmos DB also limits a batch
    request to 2 MB. MemoryStore and the emulator launcher enforce only the 100 operations."""
    from shared.activity import save_activity

    store, activity, sizes = _measured_batches()
    save_activity(store, [_order(f"SO-{i}", 150, i) for i in range(100)])

    assert activity.count_items(partition_key="erp|TRADE-001") == 100
    assert sizes and max(sizes) <= MAX_BATCH_REQUEST_BYTES, \
        f"a batch of {max(sizes):,} bytes: Cosmos DB refuses batches over {MAX_BATCH_REQUEST_BYTES:,}"


def _measured_batches():
    """A MemoryStore whose activity container records the JSON size of every transactional batch sent to it."""
    store = MemoryStore()
    activity = store.container("activity")
    sizes: list[int] = []
    original = activity.execute_batch

    def measured(partition_key, operations):
        sizes.append(_json_bytes([op[1] for op in operations]))
        return original(partition_key, operations)

    activity.execute_batch = measured  # type: ignore[method-assign]
    return store, activity, sizes


def _order(order_id: str, lines: int, day: int = 0):
    from shared.models import Transaction

    items = [{"sku": f"SKU-{n:06d}", "category": "Home & Garden > Lighting > Outdoor", "quantity": 2,
              "price": 12.99, "name": "Solar path light, warm white, pack of 4"} for n in range(lines)]
    return Transaction(source="erp", order_id=order_id, customer_key="TRADE-001", amount="1948.50", items=items,
                       timestamp=datetime(2025, 1, 1, tzinfo=timezone.utc) + timedelta(days=day))


def test_an_activity_doc_too_large_to_share_a_batch_is_written_alone():
    """An order of about 1.7 MB fits Cosmos DB's item limit but not a batch with its customer's other orders:
    it is written on its own, the others in batches under the limit."""
    from shared.activity import save_activity

    store, activity, sizes = _measured_batches()
    orders = [_order(f"SO-{i}", 3, i) for i in range(5)] + [_order("SO-BIG", 13_000, 9)]
    save_activity(store, orders)
    assert activity.count_items(partition_key="erp|TRADE-001") == 6
    assert sizes and max(sizes) <= MAX_BATCH_REQUEST_BYTES


def test_an_activity_doc_over_the_item_limit_is_a_clear_error_before_anything_is_written():
    """Production: an order with tens of thousands of lines is more than the 2 MB Cosmos DB stores per item. The
    upsert failed with a bare StoreError ("Cosmos DB error 413") after the rest of the buffer was written (and
    moved between owners), and every retry of the file did the same. Now write_activity measures every doc first
    and raises RequestTooLargeError naming the order's activity id and size, before anything is written."""
    from shared.activity import save_activity

    store = MemoryStore()
    with pytest.raises(RequestTooLargeError, match="SO-HUGE") as err:
        save_activity(store, [_order("SO-1", 3), _order("SO-HUGE", 20_000, 1)])
    assert f"at most {MAX_ITEM_BYTES:,} per item" in str(err.value)
    assert store.container("activity").count_items() == 0
    assert store.container("activity_owners").count_items() == 0


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


# =============================================================================================================
# 8. MemoryStore accepts documents Cosmos DB refuses
# =============================================================================================================

@pytest.mark.parametrize("value", [float("nan"), float("inf"), datetime(2026, 1, 1, tzinfo=timezone.utc)],
                         ids=["NaN", "Infinity", "datetime"])
def test_memory_store_refuses_what_cosmos_refuses(cosmos_store, value):
    """Production: code that writes a NaN score, an infinite ratio or a datetime object into a document works on
    MemoryStore - the backend of the fast tests and of `ucp resolve` - and fails only in production: the SDK cannot
    serialize a datetime (TypeError) and Cosmos DB refuses NaN/Infinity (not JSON). The profile update, the churn
    or insights job then fails for that document, in production only.

    Why: MemoryContainer._stamp (shared/store/memory.py:128-135) copies the body with pickle, which keeps any
    Python object; nothing checks that a document is JSON. The module promises "Cosmos DB semantics"."""
    from shared.store import StoreError

    body = {"id": "p1", "churn": {"score": value}}
    with pytest.raises((TypeError, ValueError, StoreError)):
        cosmos_store.container("profiles").create_item(body)  # Cosmos: refused (this part holds today)
    memory = MemoryStore().container("profiles")
    with pytest.raises((TypeError, ValueError, StoreError)):
        memory.create_item(body)
    assert memory.read_item_or_none("p1", "p1") is None
