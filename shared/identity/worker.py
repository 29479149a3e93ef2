"""The resolve-queue worker: one message of customer records in, profiles out; bad input out of the way.

- A message that can never succeed (not JSON, wrong schema, missing claim blob) goes straight to
  `<queue>-poison` wrapped as {"reason", "message"} ("message_base64" when it is not UTF-8), instead of burning
  the host's five retries. A wrapper too big for a queue message keeps the message in a claim-check blob (like
  ingestion's oversize batches), and "message" is then the claim message pointing at it, which `ucp replay`
  re-enqueues as it is.
- Records with no usable field, and records that are not valid CustomerRecords (the others of their message are
  resolved), go to the quarantine container as JSON lines with the reason (`ucp replay --quarantined-records`
  puts them back on the queue once fixed: shared/ingest/replay.py).
- Anything else that fails (store unavailable, a lost race beyond the retries) raises, so the host retries the
  message; reprocessing is idempotent.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections import Counter
from typing import Any, Iterator

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from shared.ingest.messages import (MAX_MESSAGE_JSON_BYTES, QUARANTINED_RECORDS_PREFIX, claim_message,
                                    decode_message)
from shared.ingest.replay import base64_text, record_digest
from shared.settings import Settings
from shared.storage import blob_service, queue_client
from shared.store import Store

from .lanes import resolve_in_lanes

log = logging.getLogger(__name__)
POISON_SUFFIX = "-poison"
POISON_CLAIM_PREFIX = "poison/"  # claim-check blobs of poisoned messages, in settings.claims_container


def handle_resolve_message(text: str | bytes, *, store: Store, settings: Settings, model=None,
                           dequeue_count: int = 1) -> dict[str, Any]:
    """Resolve the records of one queue message; returns counts per action (or the poison reason). A record that
    is not a valid CustomerRecord is quarantined with the fields it failed on, and the others are resolved.
    `dequeue_count`: the message's, from the trigger; above 1 it is delivered again (Resolver.resolve)."""
    raw = _as_text(text)
    invalid: list[dict[str, Any]] = []
    header: dict[str, Any] = {}
    try:
        records = decode_message(text, settings, invalid=invalid, header=header)
    except ValueError as err:
        send_to_poison(settings.resolve_queue, raw, str(err), settings)
        log.warning("resolve message sent to poison: %s", err)
        return {"poisoned": str(err)}
    results = resolve_in_lanes(store, records, settings=settings, model=model, landed_at=header["landed_at"],
                               redelivered=dequeue_count > 1)
    bad = invalid + [{"reason": res.reason, "record_key": res.record_key,
                      "record": rec.model_dump(mode="json", exclude_none=True)}
                     for rec, res in zip(records, results) if res.action == "quarantined"]
    if bad:
        name, bad = quarantine_blob_name(bad)
        write_quarantined(name, bad, settings)
        log.warning("quarantined %d of %d records to %s", len(bad), len(records) + len(invalid), name)
    counts = dict(Counter(r.action for r in results))
    return {**counts, "invalid": len(invalid)} if invalid else counts


def _as_text(message: str | bytes) -> str | bytes:
    """The message as text, or as the bytes it is when they are not UTF-8 (kept intact for poison and replay)."""
    if isinstance(message, str):
        return message
    try:
        return message.decode("utf-8")
    except UnicodeDecodeError:
        return message


def quarantine_blob_name(entries: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The quarantine blob of a message's quarantined entries, and the entries, each (record key, record as sent)
    once. Named after those pairs, not the message (its ingestion id and landed_at differ per landed copy of a
    file, and per replay): the same records quarantined again, from a redelivery, a re-landed or copied file or a
    replay, land in their own blob instead of a new one. One blob per message, not per record (a message holds up
    to 1000 records); no day in the name, so a file landed again on a later day adds nothing either. A record with
    no usable key is told apart by its content alone."""
    unique: dict[str, dict[str, Any]] = {}
    for entry in entries:
        unique.setdefault(_entry_id(entry), entry)
    return f"{QUARANTINED_RECORDS_PREFIX}{_digest(chr(10).join(sorted(unique)))}.jsonl", list(unique.values())


def _digest(message: str | bytes) -> str:
    return hashlib.sha256(message.encode() if isinstance(message, str) else message).hexdigest()[:24]


def _entry_id(entry: Any) -> str | None:
    """(record key, content hash of the record as sent) of a quarantine entry; None for a line that is none."""
    if not isinstance(entry, dict) or "record" not in entry:
        return None
    return json.dumps([entry.get("record_key"), record_digest(entry["record"])])


def _line_id(line: bytes) -> str | None:
    try:
        return _entry_id(json.loads(line.decode("utf-8")))
    except (ValueError, RecursionError):  # not UTF-8 / not JSON: a line damaged by hand, kept as it is
        return None


def write_quarantined(name: str, entries: list[dict[str, Any]], settings: Settings) -> None:
    """Write the entries to their quarantine blob as JSON lines, each replacing the line of the same (record key,
    record as sent) and keeping the blob's other lines (edited by hand, or left by a replay that could not read
    them). Read, then written only if unchanged since (ETag), else again: a replay deleting or rewriting the blob
    meanwhile is neither undone nor lost (its conditional delete fails once the records are written again)."""
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError

    client = blob_service(settings).get_blob_client(settings.quarantine_container, name)
    ids = {_entry_id(entry) for entry in entries}
    new = "".join(json.dumps(entry, ensure_ascii=False, default=str) + "\n" for entry in entries).encode()
    for _ in range(10):
        try:
            downloader = client.download_blob()
            old, etag = downloader.readall(), downloader.properties.etag
        except ResourceNotFoundError:
            old, etag = b"", None
        kept = b"".join(line + b"\n" for line in old.split(b"\n") if line.strip() and _line_id(line) not in ids)
        try:
            if etag:
                client.upload_blob(kept + new, overwrite=True, etag=etag, match_condition=MatchConditions.IfNotModified)
            else:
                client.upload_blob(new, overwrite=False)  # created only if still absent
            return
        except (ResourceModifiedError, ResourceExistsError):  # written or replayed meanwhile: read it again
            continue
        except ResourceNotFoundError:  # deleted meanwhile, or no quarantine container yet
            try:
                blob_service(settings).create_container(settings.quarantine_container)
            except ResourceExistsError:
                pass
    raise RuntimeError(f"quarantine blob {name} kept changing while written")  # the queue retries the message


def _upload(container: str, name: str, data: bytes, settings: Settings) -> None:
    client = blob_service(settings).get_blob_client(container, name)
    try:
        client.upload_blob(data, overwrite=True)
    except ResourceNotFoundError:
        try:
            blob_service(settings).create_container(container)
        except ResourceExistsError:
            pass
        client.upload_blob(data, overwrite=True)


def send_to_poison(queue: str, message: str | bytes, reason: str, settings: Settings) -> None:
    """The message wrapped with its reason on `<queue>-poison`, kept until replayed (no time-to-live: the queue's
    default of 7 days would drop a message nobody replayed in a week)."""
    client = queue_client(queue + POISON_SUFFIX, settings)
    body = json.dumps({"reason": reason, **_poison_message(message)}, ensure_ascii=False)
    if len(body.encode()) > MAX_MESSAGE_JSON_BYTES:  # escaping + Base64 would pass the 64 KiB queue limit
        # Named after the content: poisoning the same message again overwrites its own blob.
        name = f"{POISON_CLAIM_PREFIX}{_digest(message)}.json"
        _upload(settings.claims_container, name, message.encode() if isinstance(message, str) else message, settings)
        body = json.dumps({"reason": reason, "message": claim_message(name)}, ensure_ascii=False)
    try:
        client.send_message(body, time_to_live=-1)
    except ResourceNotFoundError:
        try:
            client.create_queue()
        except ResourceExistsError:
            pass
        client.send_message(body, time_to_live=-1)


def _poison_message(message: str | bytes) -> dict[str, str]:
    if isinstance(message, bytes):  # not UTF-8: its bytes, as they came
        return {"message_base64": base64.b64encode(message).decode("ascii")}
    return {"message": message}


def unwrap_poison(content: str) -> tuple[str | bytes, str | None]:
    """(original message, reason) of a poison message: ours are wrapped ({"reason", "message"}, or
    "message_base64" for one that was not UTF-8); one the host gave up on is the raw message."""
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):
        return content, None
    if isinstance(body, dict) and set(body) == {"reason", "message"} and isinstance(body["message"], str):
        return body["message"], body["reason"]
    if isinstance(body, dict) and set(body) == {"reason", "message_base64"}:
        try:
            return base64.b64decode(body["message_base64"], validate=True), body["reason"]
        except (TypeError, ValueError):
            pass
    return content, None


def replay_poison(queue: str, settings: Settings, *, dry_run: bool = False) -> Iterator[dict[str, Any]]:
    """Move every message of `<queue>-poison` back to `queue` (unwrapped); yields one report per message.

    A message replayed in this run and poisoned again meanwhile (still bad, with the app running) comes back under
    a new id: it is recognised by its content, reported and left for the next run, so a run always ends. A dry
    run leaves every message visible."""
    # As stored: the real host moves a message it cannot decode from Base64 to the poison queue unchanged.
    poison = queue_client(queue + POISON_SUFFIX, settings, base64=False)
    target = queue_client(queue, settings, base64=False)
    try:
        poison.get_queue_properties()
    except ResourceNotFoundError:
        raise ValueError(f"there is no queue {queue}{POISON_SUFFIX}") from None
    seen: dict[str, Any] = {}  # id -> the message as last received (its pop receipt), while it is in the queue
    replayed: set[str] = set()  # digests of the contents sent back
    try:
        while True:
            # A dry run only hides each message briefly; a real run hides it while it is being moved.
            hide = 2 if dry_run else 30
            batch = list(poison.receive_messages(messages_per_page=32, visibility_timeout=hide, max_messages=32))
            fresh = [m for m in batch if m.id not in seen]
            seen.update((m.id, m) for m in batch)
            if not fresh:
                return
            for msg in fresh:
                original, reason = unwrap_poison(base64_text(msg.content) or msg.content)
                report = {"id": msg.id, "reason": reason, "dequeue_count": msg.dequeue_count}
                if _digest(original) in replayed:
                    yield {**report, "replayed": False,
                           "left": "its content was replayed earlier in this run (poisoned again, or a duplicate)"}
                    continue
                if not dry_run:
                    payload = original.encode("utf-8") if isinstance(original, str) else original
                    target.send_message(base64.b64encode(payload).decode("ascii"))
                    poison.delete_message(msg)
                    del seen[msg.id]
                    replayed.add(_digest(original))
                yield {**report, "replayed": not dry_run}
    finally:
        for msg in seen.values():  # listed but not moved: visible again at once, for the next run
            try:
                poison.update_message(msg, visibility_timeout=0)
            except HttpResponseError:  # gone, or received again since
                pass
