"""Transactions, events and reviews, stored in the `activity` container partitioned by owner.

The owner is the source customer key ("<source>|<record key>", the same key as the customer's source record),
so activity can be stored before its customer is resolved and is found, once resolved, through the profile's
list of source records: one small partition query per record, never a scan.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable, Iterator

from .models import Event, Review, Transaction
from .sentiment import sentiment_score
from .store import Store

KINDS = ("transaction", "event", "review")


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
    return {**data, "id": activity_id(kind, item.source, natural, transaction_kind), "owner": owner, "kind": kind}


def activity_id(kind: str, source: str, natural: str, transaction_kind: str | None = None) -> str:
    # A return or refund usually reuses its sale's order id: its own prefix keeps it from replacing the sale.
    prefix = f"transaction-{transaction_kind}" if transaction_kind not in (None, "purchase") else kind
    return f"{prefix}:{source}:{natural}"


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


def save_activity(store: Store, items: Iterable[Transaction | Event | Review]) -> int:
    container = store.container("activity")
    n = 0
    for item in items:
        container.upsert_item(activity_doc(item))
        n += 1
    return n


def is_purchase(tx: dict[str, Any]) -> bool:
    return tx.get("transaction_kind", "purchase") == "purchase" and float(tx.get("amount") or 0) >= 0


def list_activity(store: Store, owners: Iterable[str], kind: str | None = None) -> Iterator[dict[str, Any]]:
    """All activity of these owners (e.g. a profile's source record keys), oldest first within each owner."""
    container = store.container("activity")
    flt = ("kind", "=", kind) if kind else None
    for owner in owners:
        yield from container.query_items(flt, partition_key=owner, order_by="timestamp")
