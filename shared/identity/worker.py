"""The resolve-queue worker: one message of customer records in, profiles out; bad input out of the way.

- A message that can never succeed (not JSON, wrong schema, missing claim blob) goes straight to
  `<queue>-poison` wrapped as {"reason", "message"}, instead of burning the host's five retries. A wrapper too
  big for a queue message keeps the message in a claim-check blob (like ingestion's oversize batches), and
  "message" is then the claim message pointing at it, which `ucp replay` re-enqueues as it is.
- Records with no usable field go to the quarantine container as JSON lines with the reason
  (`ucp replay --quarantined-records` puts them back on the queue once fixed: shared/ingest/replay.py).
- Anything else that fails (store unavailable, a lost race beyond the retries) raises, so the host retries the
  message; reprocessing is idempotent.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from datetime import datetime, timezone
from typing import Any, Iterator

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from shared.ingest.messages import (MAX_MESSAGE_JSON_BYTES, QUARANTINED_RECORDS_PREFIX, claim_message,
                                    decode_message)
from shared.settings import Settings
from shared.storage import blob_service, queue_client
from shared.store import Store

from .lanes import resolve_in_lanes

log = logging.getLogger(__name__)
POISON_SUFFIX = "-poison"
POISON_CLAIM_PREFIX = "poison/"  # claim-check blobs of poisoned messages, in settings.claims_container
HOST_POISON_KEYS = {"reason", "message", "queue"}  # the local host's wrapper of a message it could not decode


def handle_resolve_message(text: str | bytes, *, store: Store, settings: Settings, model=None) -> dict[str, Any]:
    """Resolve the records of one queue message; returns counts per action (or the poison reason)."""
    raw = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text
    try:
        records = decode_message(text, settings)
    except ValueError as err:
        send_to_poison(settings.resolve_queue, raw, str(err), settings)
        log.warning("resolve message sent to poison: %s", err)
        return {"poisoned": str(err)}
    results = resolve_in_lanes(store, records, settings=settings, model=model)
    bad = [{"reason": res.reason, "record_key": res.record_key,
            "record": rec.model_dump(mode="json", exclude_none=True)}
           for rec, res in zip(records, results) if res.action == "quarantined"]
    if bad:
        name = quarantine_blob_name(raw)
        write_jsonl(settings.quarantine_container, name, bad, settings)
        log.warning("quarantined %d of %d records to %s", len(bad), len(records), name)
    return dict(Counter(r.action for r in results))


def quarantine_blob_name(message_text: str) -> str:
    """Named after the day and the message content: a message redelivered the same day overwrites its file; one
    redelivered after midnight leaves an identical copy under the new day (readers go by record key, not file)."""
    day = datetime.now(timezone.utc).strftime("%Y/%m/%d")
    return f"{QUARANTINED_RECORDS_PREFIX}{day}/{hashlib.sha256(message_text.encode()).hexdigest()[:24]}.jsonl"


def write_jsonl(container: str, name: str, rows: list[dict[str, Any]], settings: Settings) -> None:
    data = "".join(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows).encode()
    _upload(container, name, data, settings)


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


def send_to_poison(queue: str, message_text: str, reason: str, settings: Settings) -> None:
    client = queue_client(queue + POISON_SUFFIX, settings)
    body = json.dumps({"reason": reason, "message": message_text}, ensure_ascii=False)
    if len(body.encode()) > MAX_MESSAGE_JSON_BYTES:  # escaping + Base64 would pass the 64 KiB queue limit
        # Named after the content: poisoning the same message again overwrites its own blob.
        name = f"{POISON_CLAIM_PREFIX}{hashlib.sha256(message_text.encode()).hexdigest()[:24]}.json"
        _upload(settings.claims_container, name, message_text.encode(), settings)
        body = json.dumps({"reason": reason, "message": claim_message(name)}, ensure_ascii=False)
    try:
        client.send_message(body)
    except ResourceNotFoundError:
        try:
            client.create_queue()
        except ResourceExistsError:
            pass
        client.send_message(body)


def unwrap_poison(content: str) -> tuple[str, str | None]:
    """(original message, reason) of a poison message: ours and the host's undecodable ones are wrapped
    ({"reason", "message"}, the host adds "queue"); one the host gave up on is the raw message."""
    try:
        body = json.loads(content)
    except ValueError:
        return content, None
    if isinstance(body, dict) and {"reason", "message"} <= set(body) <= HOST_POISON_KEYS \
            and isinstance(body["message"], str):
        return body["message"], body["reason"]
    return content, None


def replay_poison(queue: str, settings: Settings, *, dry_run: bool = False) -> Iterator[dict[str, Any]]:
    """Move every message of `<queue>-poison` back to `queue` (unwrapped); yields one report per message."""
    poison = queue_client(queue + POISON_SUFFIX, settings)
    target = queue_client(queue, settings)
    seen: set[str] = set()
    while True:
        # A dry run only hides each message briefly; a real run hides it while it is being moved.
        hide = 2 if dry_run else 30
        batch = list(poison.receive_messages(messages_per_page=32, visibility_timeout=hide, max_messages=32))
        fresh = [m for m in batch if m.id not in seen]
        if not fresh:
            return
        for msg in fresh:
            seen.add(msg.id)
            original, reason = unwrap_poison(msg.content)
            if not dry_run:
                target.send_message(original)
                poison.delete_message(msg)
            yield {"id": msg.id, "reason": reason, "dequeue_count": msg.dequeue_count, "replayed": not dry_run}
