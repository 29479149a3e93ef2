"""Store errors, the same for every backend. Each carries the HTTP status Cosmos DB would answer."""
from __future__ import annotations


class StoreError(Exception):
    status_code = 500

    def __init__(self, *args: object, retry_after: float | None = None):
        super().__init__(*args)
        self.retry_after = retry_after  # seconds the store asked us to wait, when it said


class BadRequestError(StoreError, ValueError):
    """The store refused the request as malformed, e.g. a continuation token it never issued (Cosmos 400)."""

    status_code = 400


class InvalidDocumentError(StoreError, ValueError):
    """A document Cosmos DB cannot store: not JSON (NaN or Infinity, which Cosmos DB refuses with 400; a datetime
    or other object, which the SDK cannot serialize). The writer's bug, not a client's bad request."""

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


class RequestTooLargeError(StoreError, ValueError):
    """A document or a transactional batch over Cosmos DB's size limits (2 MB of JSON per item, 2 MB per batch
    request) (Cosmos 413). Retrying the same write cannot help."""

    status_code = 413


class ThrottledError(StoreError):
    """The store asked us to slow down and its own retries ran out (Cosmos 429); retry_after when it said."""

    status_code = 429


class UnavailableError(StoreError):
    """The store could not be reached or did not answer (network failure, timeout, Cosmos 503/408): the request
    may be retried later."""

    status_code = 503
