"""Landing a file again once the cause of its failure is fixed: from `failed/`, or from the blob trigger's poison
queue.

Ingestion runs once per blob name + ETag, so a replay needs a new version of the landed blob: a server-side copy
(of the failed copy, or of the blob onto itself) gives one, and, unlike a metadata change, raises the
BlobCreated event the Event Grid trigger listens to. Rows that were ingested before are recognised by key and
content hash, so replaying a file that partly went through changes nothing twice.
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any, Iterator

from ..storage import blob_service, queue_client

log = logging.getLogger("ucp.ingest")

BLOB_TRIGGER_POISON_QUEUE = "webjobs-blobtrigger-poison"  # the Functions host's name for it
REPORT_SUFFIX = ".report.json"


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
    for text in (content, _b64(content)):
        try:
            body = json.loads(text) if text else None
        except ValueError:
            continue
        if isinstance(body, dict):
            return body
    return None


def _b64(content: str) -> str | None:
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
