"""Transactions, events and reviews, stored in the `activity` container partitioned by owner.

The owner is the source customer key ("<source>|<record key>", the same key as the customer's source record),
so activity can be stored before its customer is resolved and is found, once resolved, through the profile's
list of source records: one small partition query per record, never a scan.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator

from .models import Event, Review, Transaction
from .store import Store

KINDS = ("transaction", "event", "review")


def owner_key(source: str, customer_key: str) -> str:
    return f"{source}|{customer_key}"


def activity_doc(item: Transaction | Event | Review) -> dict[str, Any]:
    """The stored form: a stable id (re-ingesting the same row overwrites itself), owner, kind and fields."""
    data = item.model_dump(mode="json", exclude_none=True)
    if isinstance(item, Transaction):
        kind, natural = "transaction", item.order_id
        owner = owner_key(item.source, item.customer_key)
        data["amount"] = float(item.amount)
    elif isinstance(item, Review):
        kind, natural = "review", item.review_id
        owner = owner_key(item.source, item.customer_key)
    else:
        kind, natural = "event", item.event_id
        owner = owner_key(item.source, item.customer_key) if item.customer_key else f"anon|{item.anonymous_id}"
    return {**data, "id": f"{kind}:{item.source}:{natural}", "owner": owner, "kind": kind}


def save_activity(store: Store, items: Iterable[Transaction | Event | Review]) -> int:
    container = store.container("activity")
    n = 0
    for item in items:
        container.upsert_item(activity_doc(item))
        n += 1
    return n


def list_activity(store: Store, owners: Iterable[str], kind: str | None = None) -> Iterator[dict[str, Any]]:
    """All activity of these owners (e.g. a profile's source record keys), oldest first within each owner."""
    container = store.container("activity")
    flt = ("kind", "=", kind) if kind else None
    for owner in owners:
        yield from container.query_items(flt, partition_key=owner, order_by="timestamp")
