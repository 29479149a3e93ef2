"""Store errors, the same for every backend. Each carries the HTTP status Cosmos DB would answer."""
from __future__ import annotations


class StoreError(Exception):
    status_code = 500


class BadRequestError(StoreError, ValueError):
    """The store refused the request as malformed, e.g. a continuation token it never issued (Cosmos 400)."""

    status_code = 400


class ItemExistsError(StoreError):
    """create_item on an id that is already there (Cosmos 409 Conflict)."""

    status_code = 409


class ItemNotFoundError(StoreError):
    """read/replace of an id that is not there (Cosmos 404)."""

    status_code = 404


class PreconditionFailedError(StoreError):
    """A write with a stale ETag: someone else changed the item first (Cosmos 412)."""

    status_code = 412


class ThrottledError(StoreError):
    """The store asked us to slow down and its own retries ran out (Cosmos 429)."""

    status_code = 429
