"""Ingesting a landed blob end to end: path layout, mapping lookup, ledger claim, streaming, report, failed/.

Layout of the landing container:
    <source>/<entity>/<any path>                                              upserts
    <source>/<entity>/IncrementalData/yyyy/mm/dd/hh/Upserts/<file>            upserts (Customer Insights)
    <source>/<entity>/IncrementalData/yyyy/mm/dd/hh/Deletes/<file>            deletes (Customer Insights)

The mapping of <source>.<entity> comes from the blob ``sources/<source>.<entity>.json`` (or .yaml) in the
config container when there is one, else from the repo's ``config/sources/``.
"""
from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..activity import activity_id, delete_activity
from ..models import ENTITIES
from ..store import Store
from . import ledger
from .mapping import Mapping, parse_mapping
from .pipeline import Outputs, Pipeline, empty_counts, finish_report
from .readers import FileError, stream_from_chunks
from .sinks import ActivityWriter, BlobQuarantine, QueueFanout

log = logging.getLogger("ucp.ingest")

REPO_SOURCES = Path(__file__).resolve().parents[2] / "config" / "sources"
MAPPING_SUFFIXES = (".json", ".yaml", ".yml")
_INCREMENTAL = re.compile(r"^IncrementalData/\d{4}/\d{2}/\d{2}/\d{2}/(Upserts|Deletes)/.+", re.IGNORECASE)
_NAME_PART = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
DOWNLOAD_CHUNK = 4 * 1024 * 1024
MAX_ATTEMPTS = 5  # claims of one file (each crashed) before the timer closes it as failed instead of retrying


@dataclass
class LandingPath:
    source: str
    entity: str
    mode: str  # upsert | delete


def parse_landing_path(name: str) -> LandingPath:
    """source, entity and mode from a blob name inside the landing container; FileError if it does not fit."""
    parts = name.split("/", 2)
    if len(parts) < 3 or not parts[2]:
        raise FileError("bad_path", f"blob {name!r} is not laid out as <source>/<entity>/<file>")
    source, entity, rest = parts
    if not _NAME_PART.match(source):
        raise FileError("bad_path", "the source folder name must be letters, digits, '_', '-' or '.'")
    if entity not in ENTITIES:
        raise FileError("unknown_entity", f"entity folder {entity!r} is not one of {', '.join(ENTITIES)}")
    mode = "upsert"
    if rest.lower().startswith("incrementaldata/"):
        match = _INCREMENTAL.match(rest)
        if not match:
            raise FileError("bad_path", "incremental data must be under IncrementalData/yyyy/mm/dd/hh/{Upserts,Deletes}/")
        mode = "delete" if match.group(1).lower() == "deletes" else "upsert"
    return LandingPath(source, entity, mode)


def resolve_mapping(source: str, entity: str, *, settings, config_dir: Path = REPO_SOURCES) -> tuple[Mapping, str]:
    """The mapping for source/entity and where it came from; FileError(unknown_source) when there is none."""
    from azure.core.exceptions import ResourceNotFoundError

    from ..storage import blob_service

    container = blob_service(settings).get_container_client(settings.config_container)
    text, origin = None, None
    for suffix in MAPPING_SUFFIXES:
        name = f"sources/{source}.{entity}{suffix}"
        try:
            text = container.get_blob_client(name).download_blob().readall()
            origin = f"blob:{settings.config_container}/{name}"
            break
        except ResourceNotFoundError:
            continue
    if text is None:
        for suffix in MAPPING_SUFFIXES:
            path = config_dir / f"{source}.{entity}{suffix}"
            if path.is_file():
                text, origin = path.read_bytes(), f"repo:config/sources/{path.name}"
                break
    if text is None:
        raise FileError("unknown_source", f"no mapping for source {source!r} entity {entity!r} "
                                          f"(config/sources/{source}.{entity}.json)")
    try:
        mapping = parse_mapping(text)
    except ValueError as err:
        raise FileError("invalid_mapping", f"{origin}: {err}") from None
    if mapping.source != source or mapping.entity != entity:
        raise FileError("invalid_mapping", f"{origin} describes {mapping.source}/{mapping.entity}, "
                                           f"not {source}/{entity}")
    return mapping, origin


def split_blob_path(path: str, settings) -> tuple[str, str]:
    """(container, blob name) from a trigger's ``<container>/<blob>`` name (or a bare blob name)."""
    container, _, name = path.partition("/")
    if not name:
        return settings.landing_container, path
    return container, name


def _delete_record(store: Store, settings, landed_at: str | None = None):
    try:
        from ..identity import remove_record
    except ImportError:
        remove_record = None

    def delete(source: str, record_key: str) -> Any:
        if remove_record is None:
            raise FileError("deletes_unavailable", "identity resolution (shared.identity.remove_record) is not "
                                                   "installed: deletes cannot be applied; replay the file later")
        return remove_record(store, source, record_key, settings=settings, landed_at=landed_at)

    return delete


def _delete_activity(store: Store):
    """Deletes an activity doc by id (and its owner entry). For an order's sale, return or refund id (what a
    delete row names), also the order's docs stored under a part (shared.activity.activity_id): its lines
    (line-level files) and its returns or refunds, found in the owner's partition by their id prefix and kept
    only if they are this order's."""
    container = store.container("activity")

    def delete(doc_id: str, owner: str) -> None:
        delete_activity(store, doc_id, owner)
        if not doc_id.startswith(("transaction:", "transaction-return:", "transaction-refund:")):
            return
        for doc in list(container.query_items(("id", "startswith", f"{doc_id}:"), partition_key=owner)):
            order = activity_id("transaction", doc.get("source"), doc.get("order_id"), doc.get("transaction_kind"))
            if order == doc_id:  # not order "O1:x" when deleting O1
                delete_activity(store, doc["id"], owner)

    return delete


def copy_to_failed(settings, container: str, name: str, report: dict[str, Any]) -> str | None:
    """failed/<same path> (a server-side copy) plus <same path>.report.json with the reason."""
    from ..storage import blob_service
    from .replay import REPORT_SUFFIX, copy_blob

    metadata = {"ingestion_id": report["id"],
                "reason": ((report.get("error") or {}).get("code") or "unknown")[:200]}
    try:
        copy_blob(settings, (container, name), (settings.failed_container, name), metadata=metadata)
    except Exception:
        log.exception("ingestion %s: could not copy the file to %s", report["id"], settings.failed_container)
        return None
    blob_service(settings).get_blob_client(settings.failed_container, f"{name}{REPORT_SUFFIX}").upload_blob(
        json.dumps(ledger.public_report(report), indent=2, default=str).encode(), overwrite=True)
    return f"{settings.failed_container}/{name}"


def ingest_blob(blob_path: str, *, settings, store: Store) -> dict[str, Any] | None:
    """Ingest one landed blob exactly once per (name, ETag); returns its report (None if the blob is gone).

    Raises IngestionBusy while another attempt holds the file (the caller lets the host retry), and lets
    unexpected errors (store or storage outages) propagate after releasing the lease, so the retry takes over.
    """
    from azure.core.exceptions import ResourceNotFoundError

    from ..identity.survivorship import utc_text
    from ..storage import blob_service

    started_wall = time.time()
    container, name = split_blob_path(blob_path, settings)
    client = blob_service(settings).get_blob_client(container, name)
    try:
        props = client.get_blob_properties()
    except ResourceNotFoundError:
        log.warning("blob %s/%s is gone before ingestion; nothing to do", container, name)
        return None
    etag = props.etag
    report = ledger.new_report(ledger.ingestion_id(f"{container}/{name}", etag), blob=name, container=container,
                               etag=etag, size=props.size, landed_at=utc_text(props.last_modified))
    state, doc = ledger.claim(store, report)
    if state == "done":
        log.info("ingestion %s already %s; skipping the redelivered event", doc["id"], doc["status"])
        return ledger.public_report(doc)
    report = {**report, **empty_counts(), "attempt": doc.get("attempt", 1), "created_at": doc["created_at"]}
    holder = {"doc": doc, "renewed": time.time()}

    def heartbeat(progress: dict[str, Any]) -> None:
        if time.time() - holder["renewed"] > ledger.RENEW_EVERY_SECONDS:
            holder["doc"] = ledger.renew(store, holder["doc"], {k: progress[k] for k in (
                "rows_read", "accepted", "quarantined", "duplicates")})
            holder["renewed"] = time.time()

    try:
        report = _run(client, name, etag, report, settings, store, heartbeat)
        if report["status"] == "failed" and report["error"]["code"] != "blob_changed":
            report["failed_blob"] = copy_to_failed(settings, container, name, report)
        finish_report(report, started_wall)
        final = ledger.finish(store, holder["doc"], report)
    except ledger.LeaseLost:
        log.warning("ingestion %s: lease lost to another attempt; stopping", report["id"])
        raise
    except Exception as err:
        ledger.release(store, holder["doc"], f"{type(err).__name__}")
        raise
    log.info("ingestion %s %s: read=%d accepted=%d quarantined=%d duplicates=%d", final["id"], final["status"],
             final["rows_read"], final["accepted"], final["quarantined"], final["duplicates"])
    return ledger.public_report(final)


def _run(client, name: str, etag: str, report: dict[str, Any], settings, store: Store, heartbeat) -> dict[str, Any]:
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError

    try:
        layout = parse_landing_path(name)
        report.update(source=layout.source, entity=layout.entity, mode=layout.mode)
        mapping, origin = resolve_mapping(layout.source, layout.entity, settings=settings)
        report["mapping"] = origin
    except FileError as err:
        report.update(status="failed", error={"code": err.code, "message": err.message, "after_row": 0})
        return report
    quarantine = BlobQuarantine(settings, report["id"])
    outputs = Outputs(quarantine=quarantine)
    if layout.mode == "delete":
        outputs.delete_record = _delete_record(store, settings, report.get("landed_at"))
        outputs.delete_activity = _delete_activity(store)
    elif layout.entity == "customers":
        outputs.customers = QueueFanout(settings, report["id"], report.get("landed_at"))
    else:
        outputs.activity = ActivityWriter(store)
    pipeline = Pipeline(mapping, report, outputs, settings=settings, mode=layout.mode, heartbeat=heartbeat)
    changed = FileError("blob_changed", "the blob was overwritten while it was read; the new version is "
                                        "ingested on its own event")
    try:
        download = client.download_blob(etag=etag, match_condition=MatchConditions.IfNotModified, max_concurrency=1)
    except ResourceModifiedError:
        download = None
    if download is None:
        report.update(status="failed", error={"code": changed.code, "message": changed.message, "after_row": 0})
    else:
        try:
            report = pipeline.run(stream_from_chunks(download.chunks()), name,
                                  stop_on={ResourceModifiedError: changed})
        finally:
            if isinstance(outputs.customers, QueueFanout):
                outputs.customers.close()
    report["quarantine_blob"] = quarantine.close()
    return report


def resume_stale_ingestions(*, settings, store: Store, limit: int = 20) -> list[dict[str, Any]]:
    """Finish ingestions whose worker died and whose event will not come again (the host's retries ran out
    while the lease was live): every `processing` report with an expired lease is run again from the start.
    A blob that changed since is closed as failed (blob_changed): its new version has its own event. A file
    whose ingestion crashed MAX_ATTEMPTS times is closed as failed (crashed) and copied to failed/ for replay.
    One file failing here never stops the others (it would be first again on every run)."""
    now = ledger.iso(ledger.utc_now())
    stale = list(store.container(ledger.CONTAINER).query_items(
        ("and", [("doc_type", "=", ledger.DOC_TYPE), ("status", "=", "processing"), ("lease_until", "<", now)]),
        limit=limit))
    done = []
    for doc in stale:
        try:
            report = _resume(doc, settings=settings, store=store)
        except (ledger.IngestionBusy, ledger.LeaseLost):
            continue
        except Exception:
            log.exception("ingestion %s (attempt %s): resuming failed; retried on the next run",
                          doc["id"], doc.get("attempt", 1))
            continue
        if report is not None:
            done.append(report)
    return done


def _resume(doc: dict[str, Any], *, settings, store: Store) -> dict[str, Any] | None:
    from azure.core.exceptions import ResourceNotFoundError

    from ..storage import blob_service

    client = blob_service(settings).get_blob_client(doc["container"], doc["blob"])
    try:
        etag = client.get_blob_properties().etag
    except ResourceNotFoundError:
        etag = None
    error = None
    if etag != doc["etag"]:
        error = {"code": "blob_changed", "after_row": doc.get("rows_read", 0),
                 "message": "the blob changed or was deleted before a crashed ingestion could be resumed"}
    elif int(doc.get("attempt", 1)) >= MAX_ATTEMPTS:
        error = {"code": "crashed", "after_row": doc.get("rows_read", 0),
                 "message": f"the ingestion crashed in {doc.get('attempt')} attempts (last error: "
                            f"{doc.get('last_error') or 'the worker died'}); the file is in failed/ for replay"}
    if error is None:
        return ingest_blob(f"{doc['container']}/{doc['blob']}", settings=settings, store=store)
    report = {**doc, "status": "failed", "error": error}
    if error["code"] == "crashed":
        report["failed_blob"] = copy_to_failed(settings, doc["container"], doc["blob"], report)
    return ledger.public_report(ledger.finish(store, doc, finish_report(report, time.time())))
