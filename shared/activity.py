"""Transactions, events and reviews, stored in the `activity` container partitioned by owner.

The owner is the source customer key ("<source>|<record key>", the same key as the customer's source record),
so activity can be stored before its customer is resolved and is found, once resolved, through the profile's
list of source records: one small partition query per record, never a scan.

Cosmos ids are unique per partition only, so the `activity_owners` container (partitioned by id) holds an owner
entry per stored id, {"id": <activity id>, "owner": <owner>}: a later file naming an order with another
customer, or an event posted to the events API again for another person, moves it instead of storing it twice
(write_activity, which file ingestion and the events API both write through). The entries hold customer keys, so
they are erased and exported with the person's activity (shared/privacy.py).
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Sequence

from .models import Event, Review, Transaction
from .sentiment import sentiment_score
from .store import ItemExistsError, ItemNotFoundError, PreconditionFailedError, RequestTooLargeError, Store
from .store.base import BATCH_BYTES_BUDGET, BATCH_OPERATION_BYTES, MAX_BATCH_OPERATIONS, document_json

KINDS = ("transaction", "event", "review")
OWNERS = "activity_owners"  # container: activity id -> the owner partition holding it
ENTRY_ATTEMPTS = 5  # owner entry writes racing another ingestion that moves the same id


# Track events whose text is the customer's own words, scored for sentiment like reviews.
FEEDBACK_EVENTS = ("Review Submitted", "Feedback Submitted", "Survey Answered")


def owner_key(source: str, customer_key: str) -> str:
    return f"{source}|{customer_key}"


def event_owner(event: Event) -> str:
    """Events of a known customer belong to that source record; anonymous ones to their anonymous id."""
    if event.customer_key:
        return owner_key(event.source, event.customer_key)
    if event.user_id:
        return owner_key(event.source, event.user_id)
    return anonymous_owner(event.anonymous_id or "")


def anonymous_owner(anonymous_id: str) -> str:
    return f"anon|{anonymous_id}"


def activity_doc(item: Transaction | Event | Review) -> dict[str, Any]:
    """The stored form: a stable id (re-ingesting the same row overwrites itself), owner, kind and fields."""
    data = item.model_dump(mode="json", exclude_none=True)
    if isinstance(item, Transaction):
        kind, natural = "transaction", item.order_id
        owner = owner_key(item.source, item.customer_key)
        data["amount"] = float(item.amount)
        # `kind` names the activity type on every doc; the transaction's own kind moves aside.
        data["transaction_kind"] = data.pop("kind")
    elif isinstance(item, Review):
        kind, natural = "review", item.review_id
        owner = owner_key(item.source, item.customer_key)
        data["sentiment"] = sentiment_score(item.text)
    else:
        kind, natural = "event", item.event_id
        owner = event_owner(item)
        feedback = item.properties.get("text") if item.event in FEEDBACK_EVENTS else None
        if isinstance(feedback, str):
            data["sentiment"] = sentiment_score(feedback)
    data["timestamp"] = iso_utc(item.timestamp)
    transaction_kind = item.kind if isinstance(item, Transaction) else None
    part = None
    if transaction_kind == "purchase":
        part = item.line_id  # a line of a line-level file; None for an order-level row (id unchanged)
    elif transaction_kind is not None:
        part = return_part(data)
    return {**data, "id": activity_id(kind, item.source, natural, transaction_kind, part), "owner": owner, "kind": kind}


def activity_id(kind: str, source: str, natural: str, transaction_kind: str | None = None,
                part: str | None = None) -> str:
    """``<kind>:<source>:<natural id>``. A return or refund usually reuses its sale's order id, and an order may
    have several: its own prefix keeps it from replacing the sale, its `part` (return_part) from replacing the
    order's other returns (``transaction-return:<source>:<order id>:<part>``). A purchase row of a line-level
    file (Transaction.line_id) has its line as part (``transaction:<source>:<order id>:<line id>``), so an
    order's lines are each kept; without a line id a purchase has no part. Every doc of an order starts with
    its id without part followed by ``:`` (how a delete row finds them, shared.ingest.landing)."""
    prefix = f"transaction-{transaction_kind}" if transaction_kind not in (None, "purchase") else kind
    return f"{prefix}:{source}:{natural}" + (f":{part}" if part is not None else "")


def return_part(doc: dict[str, Any]) -> str:
    """What tells a return or refund apart from its order's other ones, from its stored form: its mapped
    `return_id`, else a hash of its time, amount and returned lines (sku, quantity). The same row ingested again
    gets the same part (so it overwrites itself); two returns differing in any of these get two. A row with a
    line id (line-level files) adds it (``<return id or hash>:<line id>``): a return's lines share its number."""
    if doc.get("return_id"):
        part = str(doc["return_id"])
    else:
        lines = [[str(i.get("sku") or ""), str(i.get("quantity") or "")] for i in doc.get("items") or ()
                 if isinstance(i, dict)]
        content = json.dumps([doc.get("timestamp"), repr(float(doc.get("amount") or 0.0)), lines],
                             separators=(",", ":"))
        part = hashlib.sha256(content.encode()).hexdigest()[:16]
    return f"{part}:{doc['line_id']}" if doc.get("line_id") else part


TRANSACTION_KINDS = ("purchase", "return", "refund")


def iso_utc(ts: datetime) -> str:
    """One timestamp format for every stored activity, so string order is time order."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def up_to(activity: Iterable[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """The activity dated at or before `now`: what an "as of now" computation may use (stored timestamps are
    iso_utc strings, so string order is time order)."""
    cutoff = iso_utc(now)
    return [a for a in activity if (a.get("timestamp") or "") <= cutoff]


def save_activity(store: Store, items: Iterable[Transaction | Event | Review], *, chunk: int = 1000) -> int:
    """Store these items (the same id twice: the last wins) through write_activity; returns how many."""
    pending: dict[str, dict[str, Any]] = {}
    n = 0
    for item in items:
        doc = activity_doc(item)
        pending.pop(doc["id"], None)
        pending[doc["id"]] = doc
        if len(pending) >= chunk:
            n += len(pending)
            write_activity(store, list(pending.values()))
            pending = {}
    if pending:
        n += len(pending)
        write_activity(store, list(pending.values()))
    return n


def write_activity(store: Store, docs: Sequence[dict[str, Any]]) -> int:
    """Store activity docs (each id once in `docs`) so that every id lives under one owner; returns how many ids
    moved to another owner.

    One batched read (ReadMany) of the ids' owner entries, then: the copy under an owner that is no longer the
    id's is deleted, every doc is written (batched per owner partition), and last the entry of each new or moved
    id. A crash between two steps leaves the entry as it was (naming the old owner, or none), so the retry
    (ingestion is at least once) does the move again; an id stored under its entry's owner costs no entry write."""
    if not docs:
        return 0
    sizes = _sizes(docs)  # before anything is written: a doc Cosmos DB cannot store stops the whole call
    activity, owners = store.container("activity"), store.container(OWNERS)
    entries = owners.read_items([(doc["id"], doc["id"]) for doc in docs])
    changed = [(doc, e) for doc, e in zip(docs, entries) if e is None or e.get("owner") != doc["owner"]]
    for doc, entry in changed:
        if entry is not None:
            activity.delete_item(doc["id"], entry["owner"])  # already gone is fine (a retry, a delete row)
    by_owner: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_owner.setdefault(doc["owner"], []).append(doc)
    for owner, same in by_owner.items():
        if len(same) == 1:
            activity.upsert_item(same[0])
            continue
        for batch in _batches(same, sizes):
            if len(batch) == 1:  # a doc too large to share a batch
                activity.upsert_item(batch[0])
            else:
                activity.execute_batch(owner, [("upsert", d) for d in batch])
    for doc, entry in changed:
        _record_owner(activity, owners, doc, entry)
    return sum(entry is not None for _, entry in changed)


def _sizes(docs: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Each doc's size as sent (by id); RequestTooLargeError naming the first doc over Cosmos DB's item limit."""
    sizes = {}
    for doc in docs:
        try:
            sizes[doc["id"]] = len(document_json(doc))
        except RequestTooLargeError as err:
            raise RequestTooLargeError(f"activity {doc['id']}: {err}") from None
    return sizes


def _batches(docs: list[dict[str, Any]], sizes: dict[str, int]) -> Iterator[list[dict[str, Any]]]:
    """The docs in order, cut into transactional batches of at most MAX_BATCH_OPERATIONS operations and
    BATCH_BYTES_BUDGET bytes (Cosmos DB refuses a batch request over 2 MB); a doc over the budget goes alone."""
    batch: list[dict[str, Any]] = []
    total = 0
    for doc in docs:
        size = sizes[doc["id"]] + BATCH_OPERATION_BYTES
        if batch and (len(batch) == MAX_BATCH_OPERATIONS or total + size > BATCH_BYTES_BUDGET):
            yield batch
            batch, total = [], 0
        batch.append(doc)
        total += size
    if batch:
        yield batch


def _record_owner(activity, owners, doc: dict[str, Any], entry: dict[str, Any] | None) -> None:
    """Point the id's entry at doc's owner (doc is written). The entry is created, or replaced with the ETag it was
    read with: when another ingestion moved the id meanwhile, its copy is deleted, ours written again (it may
    have deleted ours) and the entry taken over from what it says now, so one copy is left either way."""
    body = {"id": doc["id"], "owner": doc["owner"]}
    for attempt in range(ENTRY_ATTEMPTS):
        try:
            if entry is None:
                owners.create_item(body)
            else:
                owners.replace_item(body, etag=entry["_etag"])
            return
        except (ItemExistsError, PreconditionFailedError, ItemNotFoundError):
            if attempt == ENTRY_ATTEMPTS - 1:
                raise
        entry = owners.read_item_or_none(doc["id"], doc["id"])
        if entry is not None and entry.get("owner") == doc["owner"]:
            return  # another writer of the same owner (a retry of this file) wrote the doc and the entry
        if entry is not None:
            activity.delete_item(doc["id"], entry["owner"])
        activity.upsert_item(doc)


def delete_activity(store: Store, doc_id: str, owner: str) -> None:
    """Delete one activity doc under this owner, and first its owner entry if it names this owner (so an entry
    never outlives its doc unnoticed: a retry after a crash in between finds the entry again)."""
    owners = store.container(OWNERS)
    entry = owners.read_item_or_none(doc_id, doc_id)
    if entry is not None and entry.get("owner") == owner:
        forget_owner(owners, entry)
    store.container("activity").delete_item(doc_id, owner)


def owner_entries(store: Store, owners: Sequence[str]) -> list[dict[str, Any]]:
    """The owner entries naming these owners (a person's source record keys): a cross-partition query, for the
    rare erase and export."""
    if not owners:
        return []
    return list(store.container(OWNERS).query_items(("owner", "in", list(owners))))


def forget_owner(container, entry: dict[str, Any]) -> bool:
    """Delete an owner entry as it was read; False when it changed meanwhile (it now names another owner's copy)."""
    try:
        container.delete_item(entry["id"], entry["id"], etag=entry["_etag"])
        return True
    except PreconditionFailedError:
        return False


def forget_entries(store: Store, owner: str, ids: Sequence[str]) -> None:
    """Before the activity docs `ids` of `owner` are deleted (an erase): their owner entries go first, when they
    name this owner or an owner that does not hold the id (left behind by a move that did not update it)."""
    if not ids:
        return
    container, activity = store.container(OWNERS), store.container("activity")
    for entry in container.read_items([(i, i) for i in ids]):
        if entry is not None and (entry.get("owner") == owner
                                  or activity.read_item_or_none(entry["id"], entry["owner"]) is None):
            forget_owner(container, entry)


def follow_move(store: Store, entry: dict[str, Any] | None, old: str, new: str) -> None:
    """After a doc was copied from owner `old` to `new` (a device link, shared/events), and before the old copy
    is deleted: its owner entry (as read before), if it named `old`, names `new`."""
    if entry is None or entry.get("owner") != old:
        return
    try:
        store.container(OWNERS).replace_item({"id": entry["id"], "owner": new}, etag=entry["_etag"])
    except (PreconditionFailedError, ItemNotFoundError):
        pass  # changed meanwhile: the ingestion that changed it settles where the id lives


def is_purchase(tx: dict[str, Any]) -> bool:
    return tx.get("transaction_kind", "purchase") == "purchase" and float(tx.get("amount") or 0) >= 0


def list_activity(store: Store, owners: Iterable[str], kind: str | None = None) -> Iterator[dict[str, Any]]:
    """All activity of these owners (e.g. a profile's source record keys), oldest first within each owner."""
    container = store.container("activity")
    flt = ("kind", "=", kind) if kind else None
    for owner in owners:
        yield from container.query_items(flt, partition_key=owner, order_by="timestamp")
