"""Storage behind one contract: Cosmos DB in production, memory for the CLI and fast tests."""
from __future__ import annotations

from .base import Container, Store
from .errors import (
    BadRequestError, InvalidDocumentError, ItemExistsError, ItemNotFoundError, PreconditionFailedError,
    RequestTooLargeError, StoreError, ThrottledError, UnavailableError,
)
from .memory import MemoryStore, with_frozen_heap
from .query import Filter, where

__all__ = [
    "Container", "Store", "MemoryStore", "with_frozen_heap", "open_store", "Filter", "where",
    "StoreError", "BadRequestError", "ItemExistsError", "ItemNotFoundError", "PreconditionFailedError", "ThrottledError",
    "InvalidDocumentError", "RequestTooLargeError", "UnavailableError",
]


_OPEN: dict[tuple, Store] = {}


def open_store(settings=None) -> Store:
    """The Cosmos store described by settings; one per process and configuration (clients pool connections)."""
    from ..settings import get_settings
    from .cosmos import CosmosStore

    s = settings or get_settings()
    key = (s.cosmos_endpoint, s.cosmos_key, s.cosmos_database, s.container_prefix)
    if key not in _OPEN:
        _OPEN[key] = CosmosStore(s.cosmos_endpoint, s.cosmos_key, s.cosmos_database, prefix=s.container_prefix)
    return _OPEN[key]
