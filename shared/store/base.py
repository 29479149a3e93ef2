"""The document-store contract every backend honours (Cosmos DB semantics).

- ``create_item`` fails with ItemExistsError (409) when the id is taken in that partition.
- ``replace_item``/``upsert_item``/``delete_item`` with ``etag=`` fail with PreconditionFailedError (412)
  when the item changed since it was read; ``replace_item`` of a missing item is ItemNotFoundError (404).
- ``read_item`` raises ItemNotFoundError; ``read_item_or_none`` returns None instead.
- ``read_items`` reads many (id, partition key) pairs in one round trip (Cosmos DB ReadMany): one result per
  pair, in order, None where missing. It is as consistent as point reads, so ETag protocols can rely on it.
- ``delete_item`` succeeds when the item is already gone (without an etag).
- Items come back with ``_etag`` and ``_ts``; other system properties are dropped.
"""
from __future__ import annotations

from typing import Any, Iterator, Protocol, Sequence

from .query import Filter

SYSTEM_KEEP = ("_etag", "_ts")


def clean_body(body: dict[str, Any], into: type[dict] = dict) -> dict[str, Any]:
    """The user part of a document (a new `into`): drops system properties so a read item can be written back."""
    item = into(body)  # copying in C and deleting the few system keys is faster than filtering every key
    for key in [k for k in item if k[:1] == "_"]:
        dict.__delitem__(item, key)
    return item


def public_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if not k.startswith("_") or k in SYSTEM_KEEP}


# A transactional batch operation: ("create", body) | ("upsert", body) | ("replace", body, etag|None) | ("delete", id)
BatchOperation = tuple
MAX_BATCH_OPERATIONS = 100  # Cosmos DB's limit for one transactional batch


def check_batch_size(operations: Sequence[BatchOperation]) -> None:
    if len(operations) > MAX_BATCH_OPERATIONS:
        raise ValueError(f"a transactional batch holds at most {MAX_BATCH_OPERATIONS} operations, got {len(operations)}")


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
