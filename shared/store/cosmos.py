"""Cosmos DB store (azure-cosmos), the production backend. Same contract as MemoryStore."""
from __future__ import annotations

import math
import os
import re
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from itertools import islice
from typing import Any, Iterator, Sequence
from urllib.parse import urlparse

from azure.core import MatchConditions
from azure.core.exceptions import IncompleteReadError, ServiceRequestError, ServiceResponseError
from azure.core.utils import CaseInsensitiveDict
from azure.cosmos import CosmosClient, PartitionKey, exceptions

from . import paging
from .base import BatchOperation, check_batch_size, clean_body, document_json, public_item
from .cosmos_transport import HttpClientTransport
from .errors import (
    BadRequestError, ItemExistsError, ItemNotFoundError, PreconditionFailedError, RequestTooLargeError, StoreError,
    ThrottledError, UnavailableError,
)
from .query import Filter, sql_path, to_sql
from .schema import CONTAINERS

LOCAL_HOSTS = ("127.0.0.1", "localhost")
# The SDK skips TLS verification for the local emulator on its own and warns on every request; say it once here.
warnings.filterwarnings("ignore", message="Unverified HTTPS request")


_ERRORS: dict[int, type[StoreError]] = {
    400: BadRequestError, 404: ItemNotFoundError, 408: UnavailableError, 409: ItemExistsError,
    412: PreconditionFailedError, 413: RequestTooLargeError, 429: ThrottledError, 503: UnavailableError,
}
# Failures to reach Cosmos DB or to get its whole answer (the SDK retried what it retries): worth a retry later.
_UNREACHABLE = (ServiceRequestError, ServiceResponseError, IncompleteReadError, exceptions.CosmosClientTimeoutError)


def _retry_after(err: exceptions.CosmosHttpResponseError) -> float | None:
    """Seconds Cosmos DB asked us to wait (x-ms-retry-after-ms), when it said."""
    try:
        ms = float((getattr(err, "headers", None) or {}).get("x-ms-retry-after-ms"))
    except (TypeError, ValueError):
        return None
    return ms / 1000 if math.isfinite(ms) and ms >= 0 else None


def _translate(err: exceptions.CosmosHttpResponseError) -> StoreError:
    status = getattr(err, "status_code", None)
    kind = _ERRORS.get(status)  # type: ignore[arg-type]
    if kind is None:
        return StoreError(f"Cosmos DB error {status}: {err.message if hasattr(err, 'message') else err}")
    return kind(f"Cosmos DB {status}", retry_after=_retry_after(err))


@contextmanager
def _store_errors() -> Iterator[None]:
    """Cosmos DB's answers and network failures as the store's own errors (shared/store/errors.py)."""
    try:
        yield
    except exceptions.CosmosHttpResponseError as err:
        raise _translate(err) from None
    except _UNREACHABLE as err:
        raise UnavailableError(f"Cosmos DB did not answer ({type(err).__name__})") from err


# Cosmos DB ids may not hold / \\ ? # tab CR LF nor end with a space; ids made of user data (an email may
# legally contain # / ?, a message id anything) are stored with those characters escaped as ~XX and handed back
# decoded, so callers never see the difference. Not %XX: the service URL-decodes a "%XX" in an id once more than
# the SDK encodes it when it checks a point operation's signature, so a read, replace or delete of such an id
# fails with 401 on a real account (azure-sdk-for-python#24327; the local emulator checks no signature). "%" and
# "~" themselves are escaped too, so no stored id holds a "%" and every escape decodes back.
_ESCAPE_CHAR = "~"
_ID_ESCAPES = {c: f"~{ord(c):02X}" for c in ("~", "%", "/", "\\", "?", "#", "\t", "\r", "\n")}
_ID_UNESCAPE = re.compile("~(7E|25|2F|5C|3F|23|09|0D|0A|20)")


def encode_id(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if any(c in value for c in _ID_ESCAPES):
        value = "".join(_ID_ESCAPES.get(c, c) for c in value)
    return value[:-1] + "~20" if value.endswith(" ") else value


def decode_id(value: Any) -> Any:
    if not isinstance(value, str) or _ESCAPE_CHAR not in value:
        return value
    return _ID_UNESCAPE.sub(lambda m: bytes.fromhex(m.group(1)).decode(), value)


def _encode_filter(filter_: Filter) -> Filter:
    """Conditions on the id compare with the stored (encoded) form."""
    if filter_ is None:
        return None
    if isinstance(filter_, tuple) and len(filter_) == 2 and filter_[0] in ("and", "or", "not"):
        kind, parts = filter_
        if kind == "not":
            return (kind, _encode_filter(parts))
        return (kind, [_encode_filter(p) for p in parts]) if isinstance(parts, (list, tuple)) else filter_
    if not (isinstance(filter_, tuple) and len(filter_) == 3) or filter_[0] != "id":
        return filter_  # to_sql validates (and rejects) malformed filters
    path, op, value = filter_
    if op == "in" and not isinstance(value, (list, tuple)):
        return filter_
    return (path, op, [encode_id(v) for v in value] if op == "in" else encode_id(value))


def _etag_kwargs(etag: str | None) -> dict[str, Any]:
    return {"etag": etag, "match_condition": MatchConditions.IfNotModified} if etag else {}


class CosmosContainer:
    def __init__(self, proxy, name: str, partition_key_path: str):
        self._proxy = proxy
        self.name = name
        self.partition_key_path = partition_key_path
        self._fields = partition_key_path.lstrip("/").split("/")

    def _out(self, body: dict[str, Any], *, check: bool = True) -> dict[str, Any]:
        doc = clean_body(body)
        if "id" in doc:
            doc["id"] = encode_id(doc["id"])
        if check:  # refused here, with a clear error, as Cosmos DB would refuse it (base.document_json)
            document_json(doc)
        return doc

    @staticmethod
    def _in(item: dict[str, Any]) -> dict[str, Any]:
        doc = public_item(item)
        if "id" in doc:
            doc["id"] = decode_id(doc["id"])
        return doc

    def _pk(self, value: Any) -> Any:
        return encode_id(value) if self._fields == ["id"] else value

    def partition_key_of(self, body: dict[str, Any]) -> Any:
        value: Any = body
        for f in self._fields:
            value = value.get(f) if isinstance(value, dict) else None
        if not isinstance(value, (str, int, float, bool)):
            raise ValueError(f"item has no partition key {self.partition_key_path}")
        return value

    def create_item(self, body: dict[str, Any]) -> dict[str, Any]:
        doc = self._out(body)
        with _store_errors():
            return self._in(self._proxy.create_item(doc))

    def upsert_item(self, body: dict[str, Any], *, etag: str | None = None) -> dict[str, Any]:
        doc = self._out(body)
        with _store_errors():
            return self._in(self._proxy.upsert_item(doc, **_etag_kwargs(etag)))

    def replace_item(self, body: dict[str, Any], *, etag: str | None = None) -> dict[str, Any]:
        doc = self._out(body)
        with _store_errors():
            return self._in(self._proxy.replace_item(doc["id"], doc, **_etag_kwargs(etag)))

    def read_item(self, item_id: str, partition_key: Any) -> dict[str, Any]:
        with _store_errors():
            return self._in(self._proxy.read_item(encode_id(item_id), partition_key=self._pk(partition_key)))

    def read_item_or_none(self, item_id: str, partition_key: Any) -> dict[str, Any] | None:
        try:
            return self.read_item(item_id, partition_key)
        except ItemNotFoundError:
            return None

    def read_items(self, keys: Sequence[tuple[str, Any]]) -> list[dict[str, Any] | None]:
        wanted = [(encode_id(item_id), self._pk(pk)) for item_id, pk in keys]
        if len(keys) <= 1:  # the SDK would make one a point read anyway, through its thread pool
            return [self.read_item_or_none(*key) for key in keys]
        unique = list(dict.fromkeys(wanted))
        with _store_errors():
            items = self._proxy.read_items(unique, executor=_read_many_pool())
        found = {(item["id"], self.partition_key_of(item)): item for item in items}
        return [self._in(found[key]) if key in found else None for key in wanted]

    def delete_item(self, item_id: str, partition_key: Any, *, etag: str | None = None) -> None:
        try:
            with _store_errors():
                self._proxy.delete_item(encode_id(item_id), partition_key=self._pk(partition_key),
                                        **_etag_kwargs(etag))
        except ItemNotFoundError:
            if etag is not None:
                raise PreconditionFailedError(f"{self.name}: item changed (it is gone)") from None

    def _sql(self, filter_: Filter, order_by: str | None, descending: bool, limit: int | None,
             select: str = "*") -> tuple[str, list[dict[str, Any]]]:
        where_sql, params = to_sql(_encode_filter(filter_))
        top = f"TOP {int(limit)} " if limit is not None else ""
        sql = f"SELECT {top}{select} FROM c"
        if where_sql:
            sql += f" WHERE {where_sql}"
        if order_by:
            to_sql((order_by, "defined", None))  # validates the path
            sql += f" ORDER BY {sql_path(order_by)} {'DESC' if descending else 'ASC'}"
        return sql, params

    def _query(self, sql: str, params: list[dict[str, Any]], partition_key: Any, **kwargs: Any):
        if partition_key is not None:
            kwargs["partition_key"] = self._pk(partition_key)
        else:
            kwargs["enable_cross_partition_query"] = True
        return self._proxy.query_items(sql, parameters=params, **kwargs)

    def query_items(self, filter_: Filter = None, *, partition_key: Any = None, order_by: str | None = None,
                    descending: bool = False, limit: int | None = None) -> Iterator[dict[str, Any]]:
        sql, params = self._sql(filter_, order_by, descending, limit)
        with _store_errors():
            for item in self._query(sql, params, partition_key):
                yield self._in(item)

    def query_page(self, filter_: Filter = None, *, partition_key: Any = None, order_by: str | None = None,
                   descending: bool = False, page_size: int = 100,
                   continuation: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        if order_by:
            return self._keyset_page(filter_, partition_key, order_by, descending, page_size, continuation)
        # Without ORDER BY the gateway serves a cross-partition query itself, and its continuation tokens work.
        if continuation is not None and not (continuation.isascii() and continuation.isprintable()
                                             and continuation.strip() == continuation and continuation):
            raise BadRequestError("invalid continuation token")  # would not even fit in an HTTP header
        sql, params = self._sql(filter_, order_by, descending, None)
        with _store_errors():
            pager = self._query(sql, params, partition_key, max_item_count=page_size).by_page(continuation)
            page = [self._in(it) for it in next(pager, [])]
            return page, pager.continuation_token

    def _first(self, filter_: Filter, partition_key: Any, order_by: str, descending: bool,
               count: int) -> list[dict[str, Any]]:
        """The first `count` items of a query, which is run afresh: no continuation token is ever sent."""
        sql, params = self._sql(filter_, order_by, descending, None)
        with _store_errors():
            return [self._in(it) for it in islice(self._query(sql, params, partition_key, max_item_count=count), count)]

    def _keyset_page(self, filter_: Filter, partition_key: Any, order_by: str, descending: bool, page_size: int,
                     continuation: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """The page_size items after the token's position in the order (value, id) (shared/store/paging.py).

        Ordering by two properties would need a composite index per list, so each query orders by one: the
        next items by value (one more than needed, to know whether there are more). The items of all but the
        last value returned are complete; the last value's group may go on beyond them, so it is read on its
        own, ordered by id. A page is one query, and one more for each group of ties it ends or starts in.
        The token says when the page ends with its last value's group (id null): the next page starts after it."""
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        fp = paging.fingerprint(self.name, filter_, partition_key, order_by, descending)
        position = paging.decode(continuation, fp) if continuation is not None else None
        in_group = position is not None and position.item_id is not None  # its group may go on after its id
        from_id = True  # in the group: only the ids after position's (False: the whole group)
        page: list[dict[str, Any]] = []

        def key(item: dict[str, Any]) -> tuple:  # the order Cosmos DB gives: stored (encoded) ids
            return paging.item_key(item, order_by, encode_id(item["id"]))

        while True:
            need = page_size - len(page)
            if in_group:
                assert position is not None
                group = paging.both(filter_, paging.group_filter(order_by, position),
                                    paging.id_after(position, descending) if from_id else None)
                rows = self._first(group, partition_key, "id", descending, need + 1)
                if len(rows) > need:
                    page += rows[:need]
                    group_ends = False
                    break
                page += rows
                in_group = False
                continue
            after = paging.after_filter(order_by, position, descending) if position is not None else None
            if position is not None and after is None:  # nothing sorts after this value
                return page, None
            rows = sorted(self._first(paging.both(filter_, after), partition_key, order_by, descending, need + 1),
                          key=key, reverse=descending)
            if len(rows) <= need:
                return page + rows, None
            last = key(rows[-1])[0]
            complete = [row for row in rows if key(row)[0] != last]
            if len(complete) >= need:
                page += complete[:need]
                following = complete[need] if len(complete) > need else rows[-1]
                group_ends = not page or key(following)[0] != key(page[-1])[0]
                break
            page += complete  # then the last value's group, whole, by id
            position, in_group, from_id = paging.Position.of(rows[-1], order_by), True, False
        last = paging.Position.of(page[-1], order_by)
        return page, paging.encode(fp, paging.Position(last.kind, last.value, None) if group_ends else last)

    def count_items(self, filter_: Filter = None, *, partition_key: Any = None) -> int:
        sql, params = self._sql(filter_, None, False, None, select="VALUE COUNT(1)")
        with _store_errors():
            return int(sum(self._query(sql, params, partition_key)))

    def execute_batch(self, partition_key: Any, operations: Sequence[BatchOperation]) -> list[dict[str, Any] | None]:
        check_batch_size(operations)  # counted and measured: Cosmos DB answers 413 to a request over 2 MB
        if not operations:
            return []  # Cosmos DB rejects an empty batch; nothing to do is not an error here
        ops = []
        for op in operations:
            kind, payload = op[0], op[1]
            if kind != "delete" and self.partition_key_of(payload) != partition_key:
                raise ValueError("batch operations must stay in the batch's partition")
            if kind == "create":  # the bodies were checked with the batch's size
                ops.append(("create", (self._out(payload, check=False),)))
            elif kind == "upsert":
                ops.append(("upsert", (self._out(payload, check=False),)))
            elif kind == "replace":
                etag = op[2] if len(op) > 2 else None
                # Batch operations take the etag as if_match_etag (etag/match_condition would be silently ignored).
                doc = self._out(payload, check=False)
                ops.append(("replace", (doc["id"], doc), {"if_match_etag": etag} if etag else {}))
            elif kind == "delete":
                ops.append(("delete", (encode_id(payload),)))
            else:
                raise ValueError(f"unknown batch operation {kind!r}")
        try:
            with _store_errors():
                results = self._proxy.execute_item_batch(ops, partition_key=self._pk(partition_key))
        except exceptions.CosmosBatchOperationError as err:
            failed = err.operation_responses[err.error_index] if err.operation_responses else {}
            status = failed.get("statusCode") if isinstance(failed, dict) else None
            kind_ = _ERRORS.get(status, StoreError)  # type: ignore[arg-type]
            raise kind_(f"{self.name}: batch operation {err.error_index} failed with {status}") from None
        return [self._in(r["resourceBody"]) if r.get("resourceBody") else None for r in results]


def _read_many_pool() -> ThreadPoolExecutor:
    """ReadMany runs its per-partition queries on an executor: one per process instead of a new one per call,
    with a thread for each resolve lane (settings.resolve_concurrency) and more, so lanes never queue for it."""
    return _process_pool(os.getpid())


@lru_cache(maxsize=1)
def _process_pool(pid: int) -> ThreadPoolExecutor:
    # Keyed by process: a forked child cannot use its parent's threads, so it gets a pool of its own.
    return ThreadPoolExecutor(max_workers=16, thread_name_prefix="cosmos-read-many")


# What requests reads from the environment when its session trusts it: proxies and .netrc, and CA bundles.
_PROXY_ENV = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "netrc")
_CA_BUNDLE_ENV = ("requests_ca_bundle", "curl_ca_bundle")


def _transport(endpoint: str) -> HttpClientTransport | None:
    """http.client straight, unless the environment asks for what only requests does: requests' session honours
    proxy variables and ~/.netrc (and a CA bundle variable, which matters only where TLS is verified: the SDK
    skips verification for the local emulator), so there the SDK's default RequestsTransport stays.
    UCP_COSMOS_TRANSPORT=requests keeps the SDK's default everywhere (a fallback for operators)."""
    if os.environ.get("UCP_COSMOS_TRANSPORT", "http.client").lower() == "requests":
        return None
    env = {name.lower() for name in os.environ}
    local = urlparse(endpoint).hostname in LOCAL_HOSTS
    if env & set(_PROXY_ENV) or (env & set(_CA_BUNDLE_ENV) and not local) or os.path.exists(os.path.expanduser("~/.netrc")):
        return None
    return HttpClientTransport()


class _HeadersPerThread:
    """`last_response_headers` of the SDK's client connection, one per thread.

    azure-cosmos keeps the last response's headers on the connection every thread shares, and after each request
    its retry loop adds two entries to whatever dict is there, in place. A query copying its own page's headers,
    which another thread has just made the shared ones, then fails with "dictionary changed size during iteration"
    (a worker's parallel lanes hit it under `make run`); a query's paging also reads its continuation there."""

    def __get__(self, connection, owner=None):
        if connection is None:
            return self
        mine = connection.__dict__["_headers_by_thread"]
        if not hasattr(mine, "headers"):
            mine.headers = CaseInsensitiveDict()
        return mine.headers

    def __set__(self, connection, headers) -> None:
        connection.__dict__["_headers_by_thread"].headers = headers


def _headers_per_thread(client: CosmosClient) -> CosmosClient:
    connection = client.client_connection
    connection.__dict__.pop("last_response_headers", None)
    connection.__dict__["_headers_by_thread"] = threading.local()
    base = type(connection)
    connection.__class__ = type(base.__name__, (base,), {"last_response_headers": _HeadersPerThread()})
    return client


@lru_cache(maxsize=8)
def _client(endpoint: str, key: str | None) -> CosmosClient:
    """One CosmosClient per process and endpoint (it pools connections), safe to share between threads."""
    kwargs: dict[str, Any] = {}
    transport = _transport(endpoint)
    if transport is not None:
        kwargs["transport"] = transport
    host = urlparse(endpoint).hostname
    if host in LOCAL_HOSTS and endpoint.startswith("http://"):
        # cosmosdb-server advertises https locations; keep talking to the endpoint we were given.
        kwargs["enable_endpoint_discovery"] = False
    if key:
        return _headers_per_thread(CosmosClient(endpoint, credential=key, **kwargs))
    from azure.identity import DefaultAzureCredential

    return _headers_per_thread(CosmosClient(endpoint, credential=DefaultAzureCredential(), **kwargs))


class CosmosStore:
    def __init__(self, endpoint: str, key: str | None, database: str, *, prefix: str = "",
                 containers: dict[str, str] | None = None):
        self._client = _client(endpoint, key)
        self._db = self._client.get_database_client(database)
        self._schema = containers or CONTAINERS
        self._prefix = prefix
        self._containers: dict[str, CosmosContainer] = {}

    def container(self, name: str) -> CosmosContainer:
        if name not in self._containers:
            proxy = self._db.get_container_client(self._prefix + name)
            self._containers[name] = CosmosContainer(proxy, name, self._schema[name])
        return self._containers[name]

    def bootstrap(self) -> list[str]:
        """Create the database and every container with its partition key; safe to run again."""
        self._client.create_database_if_not_exists(self._db.id)
        names = []
        for name, path in self._schema.items():
            self._db.create_container_if_not_exists(id=self._prefix + name, partition_key=PartitionKey(path=path))
            names.append(self._prefix + name)
        return names
