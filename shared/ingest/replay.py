"""Landing a file again once the cause of its failure is fixed: from `failed/`, or from the blob trigger's poison
queue; and resolving again the customer records the resolver quarantined (`resolve/` of the quarantine container).

Ingestion runs once per blob name + ETag, so a replay needs a new version of the landed blob: a server-side copy
(of the failed copy, or of the blob onto itself) gives one, and, unlike a metadata change, raises the
BlobCreated event the Event Grid trigger listens to. Rows that were ingested before are recognised by key and
content hash, so replaying a file that partly went through changes nothing twice.

Quarantined records go back on the resolve queue in the messages ingestion sends (QueueFanout, with its
claim-check), each (record key, record content) once however many blobs hold it, and their blobs are deleted once
they are queued: a record the resolver still cannot resolve is quarantined again in the blob named after it (and
the other records of its message), so the quarantine never holds it twice because of a replay.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
from collections import Counter
from datetime import timezone
from typing import Any, Iterator

from pydantic import ValidationError

from ..models import CustomerRecord
from .messages import QUARANTINED_RECORDS_PREFIX, invalid_fields
from ..storage import blob_service, queue_client

log = logging.getLogger("ucp.ingest")

BLOB_TRIGGER_POISON_QUEUE = "webjobs-blobtrigger-poison"  # the Functions host's name for it
REPORT_SUFFIX = ".report.json"
REASON_CHARS = 200


def copy_blob(settings, source: tuple[str, str], target: tuple[str, str], *,
              metadata: dict[str, str] | None = None) -> None:
    """Server-side copy of a blob (container, name) to another (or onto itself); streamed across when the
    credential cannot authorize a copy from URL (e.g. a managed identity without copy rights)."""
    service = blob_service(settings)
    source_client = service.get_blob_client(*source)
    target_client = service.get_blob_client(*target)
    try:
        target_client.start_copy_from_url(source_client.url, metadata=metadata)
    except Exception:
        target_client.upload_blob(source_client.download_blob().chunks(), overwrite=True, metadata=metadata)


def replay_failed_files(settings, *, prefix: str = "", dry_run: bool = False) -> Iterator[dict[str, Any]]:
    """Land every file of `failed/` (under prefix) again at its landing path, then remove it and its report from
    `failed/`; yields one report per file, with the reason it had failed."""
    failed = blob_service(settings).get_container_client(settings.failed_container)
    for blob in failed.list_blobs(name_starts_with=prefix or None, include=["metadata"]):
        if blob.name.endswith(REPORT_SUFFIX):
            continue
        reason = (blob.metadata or {}).get("reason")
        if not dry_run:
            copy_blob(settings, (settings.failed_container, blob.name), (settings.landing_container, blob.name))
            failed.delete_blob(blob.name)
            try:
                failed.delete_blob(blob.name + REPORT_SUFFIX)
            except Exception:  # no report (copied by hand): nothing to remove
                pass
            log.info("replayed a failed file (%d bytes) to %s", blob.size, settings.landing_container)
        yield {"file": blob.name, "reason": reason, "replayed": not dry_run}


def replay_blob_trigger_poison(settings, *, dry_run: bool = False) -> Iterator[dict[str, Any]]:
    """Land again each blob the host gave up on (its poison message names it), then delete the message.
    A message that names no blob, or a blob that is gone, stays in the queue and is reported. The host creates
    the queue at its first give-up, so on a healthy system it does not exist: nothing to replay."""
    from azure.core.exceptions import ResourceNotFoundError

    poison = queue_client(BLOB_TRIGGER_POISON_QUEUE, settings, base64=False)  # the host may or may not encode
    seen: set[str] = set()
    while True:
        try:
            received = list(poison.receive_messages(messages_per_page=32, visibility_timeout=2 if dry_run else 30,
                                                    max_messages=32))
        except ResourceNotFoundError:  # QueueNotFound: the blob trigger never gave up on a blob
            return
        batch = [m for m in received if m.id not in seen]
        for msg in received:
            if msg.id in seen and not dry_run:  # a message kept earlier in this run: let it show again
                poison.update_message(msg, visibility_timeout=0)
        if not batch:
            return
        for msg in batch:
            seen.add(msg.id)
            target = _poisoned_blob(msg.content)
            report = {"id": msg.id, "blob": "/".join(target) if target else None,
                      "reason": _poison_reason(msg.content), "replayed": False}
            if target is None:
                report["error"] = "the message names no blob (ContainerName, BlobName)"
            elif not dry_run:
                try:
                    copy_blob(settings, target, target)
                except Exception as err:  # the blob is gone or unreadable: keep the message
                    report["error"] = f"could not land the blob again: {type(err).__name__}"
                else:
                    poison.delete_message(msg)
                    report["replayed"] = True
            if not report["replayed"] and not dry_run:
                poison.update_message(msg, visibility_timeout=0)  # it stays, visible to the next look at once
            yield report


def _poison_body(content: str) -> dict[str, Any] | None:
    for text in (content, base64_text(content)):
        try:
            body = json.loads(text) if text else None
        except ValueError:
            continue
        if isinstance(body, dict):
            return body
    return None


def base64_text(content: str) -> str | None:
    """The UTF-8 text a queue message's Base64 content encodes; None when it is not Base64 of UTF-8 text."""
    try:
        return base64.b64decode(content, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _poisoned_blob(content: str) -> tuple[str, str] | None:
    body = _poison_body(content) or {}
    container, name = body.get("ContainerName"), body.get("BlobName")
    return (container, name) if isinstance(container, str) and isinstance(name, str) and container and name else None


def _poison_reason(content: str) -> str | None:
    reason = (_poison_body(content) or {}).get("Reason")
    return str(reason)[:500] if reason else None


def record_digest(record: Any) -> str:
    """Content hash of a record as sent (canonical JSON): with its key, what tells quarantine entries apart."""
    text = json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def quarantined_records_prefix(prefix: str = "") -> str:
    """The blob name prefix to replay: PREFIX under resolve/ ("resolve/2026/11/", or "2026/11/" for short)."""
    prefix = (prefix or "").lstrip("/")
    if prefix.startswith(QUARANTINED_RECORDS_PREFIX) or QUARANTINED_RECORDS_PREFIX.startswith(prefix):
        return max(prefix, QUARANTINED_RECORDS_PREFIX, key=len)
    return QUARANTINED_RECORDS_PREFIX + prefix


def replay_quarantined_records(settings, *, prefix: str = "", dry_run: bool = False) -> Iterator[dict[str, Any]]:
    """Put the records of each quarantine blob under resolve/ (and prefix) back on the resolve queue, then delete
    the blob; yields one report per blob: records queued, why they had been quarantined, and the lines left in
    the blob with the reason each could not be read (line numbers and reasons only, never record values). A record
    (key and content) that several blobs hold is queued once, from the first (`duplicates` counts the others).

    A line that is not a valid CustomerRecord stays: the blob is rewritten with only those lines. Records are
    queued before the blob is deleted or rewritten, and only if it is unchanged since it was read (its ETag): a
    crash in between, or a re-run, queues them again, which the resolver answers by key and content hash."""
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

    container = blob_service(settings).get_container_client(settings.quarantine_container)
    try:  # the listing first: blobs the resolver quarantines again during the run wait for the next one
        names = _quarantine_blobs(container, quarantined_records_prefix(prefix))
    except ResourceNotFoundError:  # no quarantine container yet: nothing was ever quarantined
        return
    queued: set[tuple[str, str]] = set()  # (record key, content hash) queued by this run (dry run: counted)
    for name in names:
        try:
            downloader = container.download_blob(name)
            data, etag = downloader.readall(), downloader.properties.etag
        except ResourceNotFoundError:  # gone since the listing (another replay took it): nothing left to replay
            continue
        records, reasons, left = _read_quarantined(data)
        # Each record once: the same record quarantined from several messages (copies of a file, a file changed
        # elsewhere) sits in several blobs; the copies of it in later blobs are deleted with them, not queued.
        fresh: dict[tuple[str, str], CustomerRecord] = {}
        for record in records:
            key = (record.key, record_digest(record.model_dump(mode="json", exclude_none=True)))
            if key not in queued:
                fresh.setdefault(key, record)
        report = {"blob": name, "records": len(fresh), "reasons": dict(reasons),
                  "left": [{"line": number, "reason": why} for number, why, _ in left], "replayed": False}
        if len(fresh) < len(records):
            report["duplicates"] = len(records) - len(fresh)  # already queued from another blob, or twice here
        if dry_run:
            queued.update(fresh)
            yield report
            continue
        if fresh:
            try:
                _enqueue(settings, list(fresh.values()), ingestion=_replay_id(name, etag))
            except Exception as err:  # the queue is unreachable: the blob stays as it is
                report["error"] = f"could not queue the records: {type(err).__name__}"
                yield report
                continue
            queued.update(fresh)
        if records or not left:
            try:
                if left:
                    container.upload_blob(name, b"".join(raw + b"\n" for _, _, raw in left), overwrite=True,
                                          etag=etag, match_condition=MatchConditions.IfNotModified)
                else:
                    container.delete_blob(name, etag=etag, match_condition=MatchConditions.IfNotModified)
            except ResourceNotFoundError:  # deleted meanwhile by another replay of the same version: done
                pass
            except ResourceModifiedError:
                # Changed since it was read (edited, or a redelivered message quarantined again): its records are
                # queued, and it stays for the next replay, which queues them again (no-ops by content hash).
                report["error"] = "the blob changed while being replayed: it stays; replay again"
                yield report
                continue
            report["replayed"] = True
        log.info("replayed %d quarantined record(s) of %s; %d line(s) left", len(fresh), name, len(left))
        yield report


_DAYS = re.compile(r"\d{4}(/[\d/]*)?")  # 2026, 2026/11/, 2026/11/05/ ...


def _quarantine_blobs(container, prefix: str) -> list[str]:
    """The quarantine blobs under prefix. The resolver names its blobs after their records, with no day in the name
    (the same records quarantined on another day go to the same blob): a day prefix (resolve/2026/11/) selects
    those last written on those days, and the blobs named under that day by earlier releases."""
    days = prefix[len(QUARANTINED_RECORDS_PREFIX):]
    if not _DAYS.fullmatch(days):
        return [b.name for b in container.list_blobs(name_starts_with=prefix)]
    return [b.name for b in container.list_blobs(name_starts_with=QUARANTINED_RECORDS_PREFIX)
            if (b.name.startswith(prefix) if "/" in b.name[len(QUARANTINED_RECORDS_PREFIX):] else
                b.last_modified.astimezone(timezone.utc).strftime("%Y/%m/%d/").startswith(days))]


def _read_quarantined(data: bytes) -> tuple[list[CustomerRecord], Counter, list[tuple[int, str, bytes]]]:
    """(records, their quarantine reasons counted, [(line number, why it cannot be replayed, the line)])."""
    records: list[CustomerRecord] = []
    reasons: Counter = Counter()
    left: list[tuple[int, str, bytes]] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        try:
            line = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            left.append((number, "line is not UTF-8 text", raw))
            continue
        except (ValueError, RecursionError):
            left.append((number, "line is not JSON", raw))
            continue
        if not isinstance(line, dict) or not isinstance(line.get("record"), dict):
            left.append((number, "line has no record object", raw))
            continue
        try:
            records.append(CustomerRecord.model_validate(line["record"]))
        except (ValidationError, RecursionError) as err:  # field names only, as decode_message reports them
            left.append((number, f"record is not a valid CustomerRecord ({invalid_fields(err)})", raw))
            continue
        reasons[str(line.get("reason") or "")[:REASON_CHARS]] += 1
    return records, reasons, left


def _replay_id(name: str, etag: str | None) -> str:
    """The ingestion id of a blob's replay messages, which also names their claim-check blobs: the same for the
    same blob version, so a re-run after a crash overwrites its own claim blobs."""
    digest = hashlib.sha256(f"{name}\n{(etag or '').strip(chr(34))}".encode()).hexdigest()[:24]
    return f"replay-quarantine/{digest}"


def _enqueue(settings, records: list[CustomerRecord], *, ingestion: str) -> None:
    """Send the records to the resolve queue exactly as ingestion does (messages, batch size, claim-check)."""
    from .sinks import QueueFanout

    fanout = QueueFanout(settings, ingestion)
    try:
        for record in records:
            fanout.add(record)
        fanout.flush()
    finally:
        fanout.close()
