"""The ingestion ledger: one document per (blob name, ETag), which is at once the idempotency claim and the report.

Claiming is a Cosmos ``create_item`` on a deterministic id (409 = someone got there first). The claim carries a
lease that the running worker renews; a worker that crashed stops renewing, and the next delivery of the same
event takes the claim over (a replace conditioned on the ETag it read, so two retries cannot both win) and
redoes the file from the start. Redoing is safe: activity ids, quarantine blob and record keys are stable, and
the counts of a new attempt replace those of the crashed one, they are never added.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from typing import Any

from ..store import ItemExistsError, PreconditionFailedError, Store, where

CONTAINER = "ledger"
DOC_TYPE = "ingestion"
LEASE_SECONDS = 180
RENEW_EVERY_SECONDS = 60
INTERNAL_FIELDS = ("lease_until", "doc_type")


class IngestionBusy(Exception):
    """Another attempt holds a live lease on this file: retry later (the host redelivers the event)."""


class LeaseLost(Exception):
    """This attempt's lease was taken over (it was presumed dead): stop without writing the report."""


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ingestion_id(blob_name: str, etag: str | None) -> str:
    digest = hashlib.sha256(f"{blob_name}\n{(etag or '').strip(chr(34))}".encode()).hexdigest()
    return f"ing_{digest[:24]}"


def new_report(ingestion: str, *, blob: str, container: str, etag: str | None, size: int | None = None,
               landed_at: str | None = None) -> dict[str, Any]:
    """`landed_at`: the blob's last-modified time (this version of the file), which orders the versions of a record
    that come without an updated_at (shared/identity/engine.py)."""
    now = utc_now()
    return {
        "id": ingestion, "doc_type": DOC_TYPE, "blob": blob, "container": container, "etag": etag, "size": size,
        "landed_at": landed_at,
        "source": None, "entity": None, "mode": "upsert", "mapping": None, "status": "processing", "error": None,
        "format": None, "compression": None, "encoding": None, "delimiter": None,
        "rows_read": 0, "accepted": 0, "quarantined": 0, "duplicates": 0,
        "reasons": {}, "flags": {}, "warnings": [], "unmapped_columns": [],
        "records_queued": 0, "messages_sent": 0, "claim_blobs": 0, "activity_saved": 0, "activity_moved": 0,
        "deleted": 0, "quarantine_blob": None, "failed_blob": None,
        "created_at": iso(now), "started_at": iso(now), "finished_at": None, "timings": {},
        "attempt": 1, "lease_until": iso(now + timedelta(seconds=LEASE_SECONDS)),
    }


def claim(store: Store, report: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """("claimed", doc) when this attempt owns the file; ("done", doc) when it was already ingested.

    Raises IngestionBusy when another attempt holds a live lease."""
    ledger = store.container(CONTAINER)
    try:
        return "claimed", ledger.create_item(report)
    except ItemExistsError:
        pass
    current = ledger.read_item_or_none(report["id"], report["id"])
    if current is None:  # deleted between our create and read: try once more
        return "claimed", ledger.create_item(report)
    if current["status"] != "processing":
        return "done", current
    now = utc_now()
    if current.get("lease_until") and current["lease_until"] > iso(now):
        raise IngestionBusy(f"ingestion {report['id']} is in progress (attempt {current.get('attempt', 1)})")
    takeover = {**report, "attempt": int(current.get("attempt", 1)) + 1, "created_at": current["created_at"],
                "previous_error": current.get("last_error")}
    try:
        return "claimed", ledger.replace_item(takeover, etag=current["_etag"])
    except PreconditionFailedError:
        raise IngestionBusy(f"ingestion {report['id']} was taken over by another attempt") from None


def renew(store: Store, doc: dict[str, Any], progress: dict[str, Any] | None = None) -> dict[str, Any]:
    """Extend the lease (and record progress so far); LeaseLost if another attempt took over."""
    body = {**doc, **(progress or {}), "lease_until": iso(utc_now() + timedelta(seconds=LEASE_SECONDS))}
    try:
        return store.container(CONTAINER).replace_item(body, etag=doc["_etag"])
    except PreconditionFailedError:
        raise LeaseLost(f"ingestion {doc['id']} was taken over") from None


def release(store: Store, doc: dict[str, Any], error: str) -> None:
    """After an unexpected error: give the lease up at once so the host's retry can take over."""
    body = {**doc, "lease_until": iso(utc_now() - timedelta(seconds=1)), "last_error": error[:500]}
    try:
        store.container(CONTAINER).replace_item(body, etag=doc["_etag"])
    except Exception:  # best effort: the lease expires on its own anyway
        pass


def finish(store: Store, doc: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in report.items() if not k.startswith("_")} | {"lease_until": None}
    try:
        return store.container(CONTAINER).replace_item(body, etag=doc["_etag"])
    except PreconditionFailedError:
        raise LeaseLost(f"ingestion {doc['id']} was taken over") from None


def public_report(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if not k.startswith("_") and k not in INTERNAL_FIELDS}


def get_ingestion(store: Store, ingestion: str) -> dict[str, Any] | None:
    doc = store.container(CONTAINER).read_item_or_none(ingestion, ingestion)
    return public_report(doc) if doc and doc.get("doc_type") == DOC_TYPE else None


def list_ingestions(store: Store, *, page_size: int = 50, continuation: str | None = None,
                    status: str | None = None, source: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """Reports, newest first, one page at a time (continuation token from the previous page)."""
    conditions = {"doc_type": DOC_TYPE}
    if status:
        conditions["status"] = status
    if source:
        conditions["source"] = source
    items, token = store.container(CONTAINER).query_page(
        where(**conditions), order_by="created_at", descending=True, page_size=page_size, continuation=continuation)
    return [public_report(d) for d in items], token
