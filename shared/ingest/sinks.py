"""Where ingested rows go: customer records to the resolution queue, activity to the store, bad rows to the
quarantine. Each has a blob/queue form (the Functions app) and a local form (the CLI, tests, benches)."""
from __future__ import annotations

import base64
from abc import ABC, abstractmethod
import json
import logging
from pathlib import Path
from typing import Any, Protocol

from ..activity import activity_doc, write_activity
from ..models import CustomerRecord, Event, Review, Transaction
from ..store import Store
from .messages import MAX_RECORDS_PER_MESSAGE, Batch, by_source_key, claim_message, encode_batches

log = logging.getLogger("ucp.ingest")

RAW_VALUE_CHARS = 1000  # quarantine keeps raw values truncated: enough to see the problem, not a 10 MB copy
RAW_ROW_CHARS = 16_000
QUARANTINE_BLOCK_BYTES = 4 * 1024 * 1024
CUSTOMER_BUFFER = 500
ACTIVITY_BUFFER = 1000


# ------------------------------------------------------------------------------------------------ quarantine


def _readable(value: str) -> str:
    """Undecodable bytes (kept as surrogates by the reader) shown as \\xNN, so the line is valid UTF-8."""
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")


def truncate_raw(raw: Any) -> Any:
    """The raw row for the quarantine, values cut to RAW_VALUE_CHARS and the row to RAW_ROW_CHARS."""
    def cut(value: Any) -> Any:
        if isinstance(value, str):
            value = _readable(value)
            return value if len(value) <= RAW_VALUE_CHARS else value[:RAW_VALUE_CHARS] + f"...[{len(value)} chars]"
        if isinstance(value, (dict, list)):
            text = json.dumps(value, default=str, ensure_ascii=False)
            return value if len(text) <= RAW_VALUE_CHARS else text[:RAW_VALUE_CHARS] + f"...[{len(text)} chars]"
        return value if isinstance(value, (int, float, bool)) or value is None else str(value)

    if isinstance(raw, dict):
        out, used = {}, 0
        for k, v in raw.items():
            key = cut(str(k))
            out[key] = cut(v)
            used += len(key) + len(str(out[key]))
            if used > RAW_ROW_CHARS:
                out["..."] = f"{len(raw) - len(out)} more columns"
                break
        return out
    return cut(raw)


class QuarantineSink(Protocol):
    location: str | None

    def write(self, entry: dict[str, Any]) -> None: ...

    def close(self) -> str | None: ...


def _line(entry: dict[str, Any]) -> bytes:
    return (json.dumps(entry, ensure_ascii=False, default=str) + "\n").encode("utf-8", "backslashreplace")


class BlobQuarantine:
    """quarantine/<ingestion id>.jsonl, written as staged blocks and committed once at the end: a retried
    ingestion rewrites the whole blob instead of appending a second copy."""

    def __init__(self, settings, ingestion: str):
        from ..storage import blob_service

        self.location = f"{settings.quarantine_container}/{ingestion}.jsonl"
        self._client = blob_service(settings).get_blob_client(settings.quarantine_container, f"{ingestion}.jsonl")
        self._buffer = bytearray()
        self._blocks: list[str] = []

    def write(self, entry: dict[str, Any]) -> None:
        self._buffer += _line(entry)
        if len(self._buffer) >= QUARANTINE_BLOCK_BYTES:
            self._stage()

    def _stage(self) -> None:
        block = base64.b64encode(f"{len(self._blocks):08d}".encode()).decode()
        self._client.stage_block(block, bytes(self._buffer))
        self._blocks.append(block)
        self._buffer.clear()

    def close(self) -> str | None:
        if self._buffer:
            self._stage()
        if not self._blocks:
            return None
        from azure.storage.blob import BlobBlock, ContentSettings

        self._client.commit_block_list([BlobBlock(b) for b in self._blocks],
                                       content_settings=ContentSettings(content_type="application/x-ndjson"))
        return self.location


class FileQuarantine:
    def __init__(self, path: Path):
        self.location = str(path)
        self._path = path
        self._file = None

    def write(self, entry: dict[str, Any]) -> None:
        if self._file is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self._path.open("wb")
        self._file.write(_line(entry))

    def close(self) -> str | None:
        if self._file is None:
            return None
        self._file.close()
        return self.location


class MemoryQuarantine:
    def __init__(self):
        self.location = "memory"
        self.entries: list[dict[str, Any]] = []

    def write(self, entry: dict[str, Any]) -> None:
        self.entries.append(json.loads(_line(entry)))

    def close(self) -> str | None:
        return self.location if self.entries else None


# ------------------------------------------------------------------------------------------------ customers


class CustomerSink(Protocol):
    records_queued: int
    messages_sent: int
    claim_blobs: int

    def add(self, record: CustomerRecord) -> None: ...

    def flush(self) -> None: ...


class _BatchingSink(ABC):
    def __init__(self, ingestion: str, max_records: int = MAX_RECORDS_PER_MESSAGE, landed_at: str | None = None):
        self.ingestion = ingestion
        self.landed_at = landed_at
        self.max_records = max(1, max_records)
        self.records_queued = self.messages_sent = self.claim_blobs = 0
        self._pending: list[CustomerRecord] = []

    def add(self, record: CustomerRecord) -> None:
        self._pending.append(record)
        if len(self._pending) >= CUSTOMER_BUFFER:
            self.flush()

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        for batch in encode_batches(by_source_key(pending), ingestion_id=self.ingestion, landed_at=self.landed_at,
                                    max_records=self.max_records):
            self._send(batch)
            self.records_queued += batch.count
            self.messages_sent += 1

    @abstractmethod
    def _send(self, batch: Batch) -> None: ...


class QueueFanout(_BatchingSink):
    """Customer records to the resolution queue; a record too big for a message goes through a claim blob.

    Sends overlap (a few threads, a bounded window): one send is a ~5-10 ms round trip, and a big file makes
    tens of thousands of messages. A failed send fails the ingestion (its retry resends everything)."""

    SENDERS = 4
    WINDOW = 32

    def __init__(self, settings, ingestion: str, landed_at: str | None = None):
        super().__init__(ingestion, settings.resolve_batch_records, landed_at)
        from concurrent.futures import ThreadPoolExecutor

        from ..storage import queue_client

        self._settings = settings
        self._queue = queue_client(settings.resolve_queue, settings)
        self._pool = ThreadPoolExecutor(self.SENDERS, thread_name_prefix="ingest-send")
        self._inflight: list = []

    def _send(self, batch: Batch) -> None:
        text = batch.text
        if batch.oversize:
            from ..storage import blob_service

            # Named by ingestion and position: a retried ingestion overwrites its own claim blobs.
            name = f"{self.ingestion}/{self.messages_sent:06d}.json"
            blob_service(self._settings).get_blob_client(self._settings.claims_container, name).upload_blob(
                text.encode("utf-8"), overwrite=True)
            self.claim_blobs += 1
            text = claim_message(name)
        self._inflight.append(self._pool.submit(self._queue.send_message, text))
        if len(self._inflight) >= self.WINDOW:
            self._wait()

    def _wait(self) -> None:
        inflight, self._inflight = self._inflight, []
        for future in inflight:
            future.result()

    def flush(self) -> None:
        super().flush()
        self._wait()

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class FileCustomerSink(_BatchingSink):
    """The CLI's form: every accepted record as one JSON line (the messages are not written)."""

    def __init__(self, path: Path, ingestion: str):
        super().__init__(ingestion)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("w", encoding="utf-8")

    def flush(self) -> None:
        pending = self._pending
        super().flush()
        for record in pending:
            self._file.write(record.model_dump_json(exclude_none=True) + "\n")
        self._file.flush()

    def _send(self, batch: Batch) -> None:
        pass


class CountingSink(_BatchingSink):
    """Encodes messages exactly like the queue fan-out but sends nothing (benches), keeping the records if asked."""

    def __init__(self, ingestion: str = "local", *, keep: bool = False):
        super().__init__(ingestion)
        self.keep = keep
        self.records: list[CustomerRecord] = []
        self.messages: list[str] = []

    def _send(self, batch: Batch) -> None:
        if self.keep:
            self.messages.append(batch.text)

    def add(self, record: CustomerRecord) -> None:
        if self.keep:
            self.records.append(record)
        super().add(record)


# ------------------------------------------------------------------------------------------------ activity


class ActivityWriter:
    """Transactions, events and reviews into the activity container, batched per owner partition. Ids are
    stable (kind:source:natural id), so writing the same row twice leaves one document; an id stored under
    another owner before (a later file or buffer naming the order with another customer) is moved, not copied
    (shared.activity.write_activity)."""

    def __init__(self, store: Store):
        self._store = store
        self._pending: dict[str, dict[str, Any]] = {}  # by id across owners: an order moved in the file is kept once
        self.saved = 0
        self.moved = 0

    def add(self, item: Transaction | Event | Review) -> None:
        doc = activity_doc(item)
        self._pending.pop(doc["id"], None)  # last wins, in file order
        self._pending[doc["id"]] = doc
        if len(self._pending) >= ACTIVITY_BUFFER:
            self.flush()

    def flush(self) -> None:
        pending, self._pending = self._pending, {}
        if pending:
            self.moved += write_activity(self._store, list(pending.values()))
            self.saved += len(pending)
