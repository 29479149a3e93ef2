"""The document-store contract every backend honours (Cosmos DB semantics).

- ``create_item`` fails with ItemExistsError (409) when the id is taken in that partition.
- ``replace_item``/``upsert_item``/``delete_item`` with ``etag=`` fail with PreconditionFailedError (412)
  when the item changed since it was read; ``replace_item`` of a missing item is ItemNotFoundError (404).
- ``read_item`` raises ItemNotFoundError; ``read_item_or_none`` returns None instead.
- ``read_items`` reads many (id, partition key) pairs in one round trip (Cosmos DB ReadMany): one result per
  pair, in order, None where missing. It is as consistent as point reads, so ETag protocols can rely on it.
- ``delete_item`` succeeds when the item is already gone (without an etag).
- Items come back with ``_etag`` and ``_ts``; other system properties are dropped.
- A document must be JSON (no NaN, Infinity, datetime or other objects: InvalidDocumentError) of at most
  MAX_ITEM_BYTES, and a transactional batch at most MAX_BATCH_OPERATIONS operations (ValueError) and
  MAX_BATCH_REQUEST_BYTES (RequestTooLargeError); what Cosmos DB refuses is refused before it is sent.
- ``query_page`` with ``order_by`` orders by (value, id) and pages by position (shared/store/paging.py).
"""
from __future__ import annotations

import json
from typing import Any, Iterator, Protocol, Sequence

from .errors import InvalidDocumentError, RequestTooLargeError
from .query import Filter

SYSTEM_KEEP = ("_etag", "_ts")


def clean_body(body: dict[str, Any], into: type[dict] = dict) -> dict[str, Any]:
    """The user part of a document (a new `into`): drops system properties so a read item can be written back."""
    item = into(body)  # copying in C and deleting the few system keys is faster than filtering every key
    for key in system_keys(body)[0]:
        dict.__delitem__(item, key)
    return item


def system_keys(body: dict[str, Any]) -> tuple[tuple[str, ...], bool]:
    """The keys of the document's system properties, in order, and whether they are its last keys (as in a
    document read from a store and copied with changed values: {**doc, ...})."""
    shape = tuple(body)
    found = _SYSTEM_KEYS_BY_SHAPE.get(shape)
    if found is None:
        system = tuple(k for k in shape if k[:1] == "_")
        found = system, shape[len(shape) - len(system):] == system
        if len(_SYSTEM_KEYS_BY_SHAPE) >= 4096:
            _SYSTEM_KEYS_BY_SHAPE.clear()
        _SYSTEM_KEYS_BY_SHAPE[shape] = found
    return found


# A container's documents come in a few shapes (their keys, in order): the system keys of each are found once.
# Looking a shape up runs in C; testing every key of every document written was most of a write's cost in process.
_SYSTEM_KEYS_BY_SHAPE: dict[tuple[str, ...], tuple[tuple[str, ...], bool]] = {}


def public_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if not k.startswith("_") or k in SYSTEM_KEEP}


# A transactional batch operation: ("create", body) | ("upsert", body) | ("replace", body, etag|None) | ("delete", id)
BatchOperation = tuple
# Cosmos DB's service limits (learn.microsoft.com/azure/cosmos-db/concepts-limits): an item is at most 2 MB of
# JSON; a transactional batch holds at most 100 operations in a request of at most 2 MB.
MAX_ITEM_BYTES = 2 * 1024 * 1024
MAX_BATCH_OPERATIONS = 100
MAX_BATCH_REQUEST_BYTES = 2 * 1024 * 1024
BATCH_BYTES_BUDGET = 3 * 512 * 1024  # what a writer puts in one batch (1.5 MiB): a margin for the SDK's envelope
BATCH_OPERATION_BYTES = 160  # each operation's envelope around its body: type, id, ETag, JSON punctuation


def document_json(body: Any) -> str:
    """The document as the SDK sends it: compact JSON with non-ASCII escaped, so its length is its size in
    bytes. InvalidDocumentError when it is not JSON (Cosmos DB refuses NaN and Infinity, the SDK cannot serialize a
    datetime or other object), RequestTooLargeError over MAX_ITEM_BYTES. Messages carry no document content."""
    try:
        text = json.dumps(body, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError) as err:
        raise InvalidDocumentError(f"the document is not JSON: {str(err)[:120]}") from None
    if len(text) > MAX_ITEM_BYTES:
        raise RequestTooLargeError(f"the document is {len(text):,} bytes of JSON; Cosmos DB stores at most "
                                   f"{MAX_ITEM_BYTES:,} per item")
    return text


def operation_bytes(operation: BatchOperation) -> int:
    """About what one batch operation adds to the request: its body (validated by document_json) and envelope."""
    kind, payload = operation[0], operation[1]
    if kind == "delete":
        return BATCH_OPERATION_BYTES + len(json.dumps(payload))
    size = BATCH_OPERATION_BYTES + len(document_json(payload))
    if kind == "replace" and isinstance(payload, dict):  # the id again, and the ETag
        size += len(json.dumps(payload.get("id"))) + len(str(operation[2] if len(operation) > 2 else ""))
    return size


def check_batch_size(operations: Sequence[BatchOperation], *, measure: bool = True) -> None:
    """ValueError over MAX_BATCH_OPERATIONS; with measure, RequestTooLargeError over MAX_BATCH_REQUEST_BYTES
    (and InvalidDocumentError for a body that is not JSON)."""
    if len(operations) > MAX_BATCH_OPERATIONS:
        raise ValueError(f"a transactional batch holds at most {MAX_BATCH_OPERATIONS} operations, got {len(operations)}")
    if measure:
        total = sum(operation_bytes(op) for op in operations)
        if total > MAX_BATCH_REQUEST_BYTES:
            raise RequestTooLargeError(f"a transactional batch of {total:,} bytes; Cosmos DB takes at most "
                                       f"{MAX_BATCH_REQUEST_BYTES:,} per batch request")


class Container(Protocol):
    name: str
    partition_key_path: str

    def partition_key_of(self, body: dict[str, Any]) -> Any: ...

    def create_item(self, body: dict[str, Any]) -> dict[str, Any]: ...

    def upsert_item(self, body: dict[str, Any], *, etag: str | None = None) -> dict[str, Any]: ...

    def replace_item(self, body: dict[str, Any], *, etag: str | None = None) -> dict[str, Any]: ...

    def read_item(self, item_id: str, partition_key: Any) -> dict[str, Any]: ...

    def read_item_or_none(self, item_id: str, partition_key: Any) -> dict[str, Any] | None: ...

    def read_items(self, keys: Sequence[tuple[str, Any]]) -> list[dict[str, Any] | None]: ...

    def delete_item(self, item_id: str, partition_key: Any, *, etag: str | None = None) -> None: ...

    def query_items(
        self,
        filter_: Filter = None,
        *,
        partition_key: Any = None,
        order_by: str | None = None,
        descending: bool = False,
        limit: int | None = None,
    ) -> Iterator[dict[str, Any]]: ...

    def query_page(
        self,
        filter_: Filter = None,
        *,
        partition_key: Any = None,
        order_by: str | None = None,
        descending: bool = False,
        page_size: int = 100,
        continuation: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]: ...

    def count_items(self, filter_: Filter = None, *, partition_key: Any = None) -> int: ...

    def execute_batch(self, partition_key: Any, operations: Sequence[BatchOperation]) -> list[dict[str, Any] | None]: ...


class Store(Protocol):
    def container(self, name: str) -> Container: ...
