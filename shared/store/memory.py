"""In-memory store with Cosmos DB semantics: the embedded backend of the `ucp` CLI and of fast tests.

With copy_documents (the default, as tests and the API use it) a write stores the document's JSON round trip, so a
document Cosmos DB would refuse is refused here too (not JSON, over the item or batch size limit: base.py) and
what is stored is what Cosmos DB would store (tuples become lists, keys strings). Without it (`ucp resolve`, the
in-process identity bench: thousands of records a second), writes are neither serialized nor checked; the same
code runs with copies in its tests, which catch what Cosmos DB would refuse.
"""
from __future__ import annotations

import base64
import copy
import gc
import itertools
import json
import pickle
import threading
import time
import uuid
from typing import Any, Iterable, Iterator, Sequence, TypeVar

from . import paging
from .base import BatchOperation, check_batch_size, clean_body, document_json, public_item, system_keys
from .errors import BadRequestError, ItemExistsError, ItemNotFoundError, PreconditionFailedError
from .query import Filter, get_path, matches, sort_key, validate
from .schema import CONTAINERS


# ETags only need to differ on every write; a process-wide counter is much cheaper than uuid4 per write, and
# formatting it inside the iterator (in C) cheaper than an f-string per write.
_RUN = uuid.uuid4().hex[:8]
_ETAG_TEXTS = map(('"{:x}-' + _RUN + '"').format, itertools.count(1))
_STAMP_KEYS = ("_etag", "_ts")


def _copy(value: Any) -> Any:
    """Deep copy of a JSON document. A pickle round trip runs in C: about half the time of copy.deepcopy or a
    Python-level walk, and copying dominated the identity engine's in-process profile."""
    try:
        return pickle.loads(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))
    except (pickle.PicklingError, TypeError, AttributeError):
        return copy.deepcopy(value)


T = TypeVar("T")


def with_frozen_heap(items: Iterable[T], every: int = 100) -> Iterator[T]:
    """Yield the items of a bulk run on a MemoryStore; every `every` items, what survived so far leaves the
    garbage collector's generations (gc.freeze). The store keeps millions of documents alive and each full
    collection walked all of them: a quarter of `ucp resolve`'s time at 100k records. Documents hold no
    reference cycles (reference counting frees a replaced one), so nothing is kept longer; the collector gets
    them back (gc.unfreeze, for the whole process) when the iteration ends. Freezing is cheap (it moves a list),
    so it happens often, and the young generation's threshold is raised meanwhile: what survives a few records is
    frozen before a young collection would walk it (those collections took 3-5% of a run, and found nothing)."""
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], YOUNG_THRESHOLD), *thresholds[1:])
    try:
        for count, item in enumerate(items, 1):
            yield item
            if count % every == 0:
                gc.freeze()
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


YOUNG_THRESHOLD = 20_000  # allocations between young collections during with_frozen_heap (Python's default: 700)


class ReadOnlyDocument(dict):
    """A stored document handed out as it is stored, without a copy (MemoryStore(copy_documents=False)).
    Changing it in place raises: a caller that changes a document builds a new one ({**doc, ...}) and writes
    that, so a returned document can never change the store behind its back. Copies (dict(doc), copy,
    pickle) are plain dicts."""

    __slots__ = ()

    def _read_only(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("a stored document is read-only: write a changed copy ({**doc, ...}) instead")

    __setitem__ = __delitem__ = __ior__ = update = pop = popitem = setdefault = clear = _read_only  # type: ignore[assignment]

    def __reduce__(self) -> tuple:
        return dict, (dict(self),)

    def __copy__(self) -> dict[str, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict) -> dict[str, Any]:
        return copy.deepcopy(dict(self), memo)


def _as_stored(value: Any) -> Any:
    return value


def _offset(continuation: str) -> int:
    try:
        offset = json.loads(base64.urlsafe_b64decode(continuation.encode()))["offset"]
    except (ValueError, KeyError, TypeError, UnicodeError):
        raise BadRequestError("invalid continuation token") from None
    if not isinstance(offset, int) or offset < 0:
        raise BadRequestError("invalid continuation token")
    return offset


class MemoryContainer:
    def __init__(self, name: str, partition_key_path: str, *, copy_documents: bool = True):
        # Without copy_documents, documents are stored and handed out as ReadOnlyDocuments, never copied: for
        # in-process callers (the `ucp resolve` CLI, benchmarks) that treat documents as values. The top level
        # refuses changes; nested lists and dicts are shared, and such callers never change them in place.
        self._copy = _copy if copy_documents else _as_stored
        self._copies = copy_documents
        self.name = name
        self.partition_key_path = partition_key_path
        self._field = partition_key_path.lstrip("/").replace("/", ".")
        self._top_field = None if "." in self._field else self._field  # a top-level key: one dict lookup
        # Where the partition key is the id (most containers), an item is keyed by its id alone: a string caches
        # its hash, a (partition key, id) tuple hashes both at every lookup. Elsewhere by the pair.
        self._by_id = self._field == "id"
        self._items: dict[Any, dict[str, Any]] = {}
        self._lock = threading.RLock()

    def partition_key_of(self, body: dict[str, Any]) -> Any:
        value = body.get(self._top_field) if self._top_field else get_path(body, self._field)
        if not isinstance(value, (str, int, float, bool)):
            raise ValueError(f"item has no partition key {self.partition_key_path}")
        return value

    def _stamped(self, body: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """(key in self._items, the document as stored) of a body written."""
        item_id = body.get("id")
        if not isinstance(item_id, str) or not item_id:
            raise ValueError("item needs a non-empty string id")
        if self._copies:  # what Cosmos DB would store, and refuse (not JSON, too large) as it would
            item = json.loads(document_json(clean_body(body)))
            item["_etag"], item["_ts"] = next(_ETAG_TEXTS), int(time.time())
        else:
            system, last = system_keys(body)
            if not system or (last and system == _STAMP_KEYS):
                # A new body, or a stored document copied with changes: its two system keys, new values in place
                # (in one construction: adding them afterwards may grow the dict once more).
                item = ReadOnlyDocument(body, _etag=next(_ETAG_TEXTS), _ts=int(time.time()))
            else:
                item = clean_body(body, into=ReadOnlyDocument)
                dict.__setitem__(item, "_etag", next(_ETAG_TEXTS))  # a ReadOnlyDocument refuses item["_etag"] =
                dict.__setitem__(item, "_ts", int(time.time()))
        return (item_id if self._by_id else (self.partition_key_of(item), item_id)), item

    def _key(self, item_id: str, partition_key: Any) -> Any:
        """The key of (id, partition key) in self._items. In a container keyed by ids, a partition key other than
        the id gives the pair, which no item there has: it finds nothing, as in Cosmos DB."""
        return item_id if self._by_id and partition_key == item_id else (partition_key, item_id)

    def create_item(self, body: dict[str, Any]) -> dict[str, Any]:
        key, item = self._stamped(body)
        with self._lock:
            if key in self._items:
                raise ItemExistsError(f"{self.name}: id already exists")
            self._items[key] = item
        return _copy(item) if self._copies else item

    def _check_etag(self, key: Any, etag: str | None, *, must_exist: bool) -> None:
        current = self._items.get(key)
        if current is None:
            if must_exist:
                raise ItemNotFoundError(f"{self.name}: item not found")
            if etag is not None:
                raise PreconditionFailedError(f"{self.name}: item changed (it is gone)")
            return
        if etag is not None and current["_etag"] != etag:
            raise PreconditionFailedError(f"{self.name}: item changed since it was read")

    def upsert_item(self, body: dict[str, Any], *, etag: str | None = None) -> dict[str, Any]:
        key, item = self._stamped(body)
        with self._lock:
            if key in self._items:  # Cosmos DB: upsert with an etag of a missing item creates it
                self._check_etag(key, etag, must_exist=False)
            self._items[key] = item
        return _copy(item) if self._copies else item

    def replace_item(self, body: dict[str, Any], *, etag: str | None = None) -> dict[str, Any]:
        key, item = self._stamped(body)
        with self._lock:
            self._check_etag(key, etag, must_exist=True)
            self._items[key] = item
        return _copy(item) if self._copies else item

    def read_item(self, item_id: str, partition_key: Any) -> dict[str, Any]:
        item = self.read_item_or_none(item_id, partition_key)
        if item is None:
            raise ItemNotFoundError(f"{self.name}: item not found")
        return item

    def read_item_or_none(self, item_id: str, partition_key: Any) -> dict[str, Any] | None:
        # No lock: one dict lookup is atomic, and a stored item is never changed in place (writes replace it).
        item = self._items.get(self._key(item_id, partition_key))
        return _copy(item) if item is not None and self._copies else item

    def read_items(self, keys: Sequence[tuple[str, Any]]) -> list[dict[str, Any] | None]:
        items, by_id = self._items, self._by_id
        with self._lock:
            # self._key, inlined: a batch reads many keys
            found = [items.get(item_id if by_id and pk == item_id else (pk, item_id)) for item_id, pk in keys]
        return [_copy(item) if item is not None else None for item in found] if self._copies else found

    def delete_item(self, item_id: str, partition_key: Any, *, etag: str | None = None) -> None:
        key = self._key(item_id, partition_key)
        with self._lock:
            if etag is not None:
                self._check_etag(key, etag, must_exist=False)
            self._items.pop(key, None)

    def _select(self, filter_: Filter, partition_key: Any, order_by: str | None, descending: bool) -> list[dict[str, Any]]:
        validate(filter_, order_by)
        by_id = self._by_id
        with self._lock:
            items = [
                it for key, it in self._items.items()
                if (partition_key is None or (key if by_id else key[0]) == partition_key) and matches(it, filter_)
            ]
        if order_by:
            items.sort(key=lambda it: sort_key(get_path(it, order_by)), reverse=descending)
        return items

    def query_items(self, filter_: Filter = None, *, partition_key: Any = None, order_by: str | None = None,
                    descending: bool = False, limit: int | None = None) -> Iterator[dict[str, Any]]:
        items = self._select(filter_, partition_key, order_by, descending)
        for item in items[:limit] if limit is not None else items:
            yield public_item(self._copy(item))

    def query_page(self, filter_: Filter = None, *, partition_key: Any = None, order_by: str | None = None,
                   descending: bool = False, page_size: int = 100,
                   continuation: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        if order_by:
            return self._keyset_page(filter_, partition_key, order_by, descending, page_size, continuation)
        start = _offset(continuation) if continuation is not None else 0
        items = self._select(filter_, partition_key, order_by, descending)
        page = [public_item(self._copy(it)) for it in items[start:start + page_size]]
        end = start + page_size
        token = base64.urlsafe_b64encode(json.dumps({"offset": end}).encode()).decode() if end < len(items) else None
        return page, token

    def _keyset_page(self, filter_: Filter, partition_key: Any, order_by: str, descending: bool, page_size: int,
                     continuation: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """The page_size items after the token's position in the order (value, id) (shared/store/paging.py)."""
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        fp = paging.fingerprint(self.name, filter_, partition_key, order_by, descending)
        position = paging.decode(continuation, fp) if continuation is not None else None
        items = self._select(filter_, partition_key, None, False)
        items.sort(key=lambda it: paging.item_key(it, order_by), reverse=descending)
        start = 0
        if position is not None:  # the first item after the position: by (value, id), or by value without an id
            after = (position.sort_key(), position.item_id) if position.item_id is not None else (position.sort_key(),)
            keys = [paging.item_key(it, order_by)[:len(after)] for it in items]
            start = next((i for i, key in enumerate(keys) if (key < after if descending else key > after)), len(keys))
        chosen = items[start:start + page_size]
        page = [public_item(self._copy(it)) for it in chosen]
        more = start + page_size < len(items)
        token = paging.encode(fp, paging.Position.of(chosen[-1], order_by)) if more and chosen else None
        return page, token

    def count_items(self, filter_: Filter = None, *, partition_key: Any = None) -> int:
        return len(self._select(filter_, partition_key, None, False))

    def execute_batch(self, partition_key: Any, operations: Sequence[BatchOperation]) -> list[dict[str, Any] | None]:
        check_batch_size(operations, measure=self._copies)
        with self._lock:
            # Undo log of the keys this batch touches: rollback costs O(operations), not O(container).
            undo: list[tuple[Any, dict[str, Any] | None]] = []
            try:
                results: list[dict[str, Any] | None] = []
                for op in operations:
                    kind, payload = op[0], op[1]
                    if kind != "delete" and self.partition_key_of(payload) != partition_key:
                        raise ValueError("batch operations must stay in the batch's partition")
                    key = self._key(payload if kind == "delete" else payload.get("id"), partition_key)
                    undo.append((key, self._items.get(key)))
                    if kind == "create":
                        results.append(self.create_item(payload))
                    elif kind == "upsert":
                        results.append(self.upsert_item(payload))
                    elif kind == "replace":
                        results.append(self.replace_item(payload, etag=op[2] if len(op) > 2 else None))
                    elif kind == "delete":
                        if key not in self._items:
                            raise ItemNotFoundError(f"{self.name}: item not found")
                        self.delete_item(payload, partition_key)
                        results.append(None)
                    else:
                        raise ValueError(f"unknown batch operation {kind!r}")
                return results
            except Exception:
                for key, previous in reversed(undo):
                    if previous is None:
                        self._items.pop(key, None)
                    else:
                        self._items[key] = previous
                raise


class MemoryStore:
    """All containers of CONTAINERS, in this process's memory."""

    def __init__(self, containers: dict[str, str] | None = None, *, copy_documents: bool = True):
        self._containers = {
            name: MemoryContainer(name, path, copy_documents=copy_documents)
            for name, path in (containers or CONTAINERS).items()
        }

    def container(self, name: str) -> MemoryContainer:
        return self._containers[name]
