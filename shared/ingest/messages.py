"""Resolution-queue messages: customer records in batches under the 64 KB queue limit, claim-check beyond.

    {"v": 1, "ingestion_id": "...", "records": [CustomerRecord JSON, ...]}   # inline batch
    {"v": 1, "claim": "<blob name in settings.claims_container>"}          # a batch too big for a message

The queue speaks Base64 (like the Functions host), which inflates text by 4/3: 64 KB on the wire leaves ~48 KB of
JSON, and MAX_MESSAGE_JSON_BYTES keeps a margin below that. A claim blob holds the inline form.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from pydantic import ValidationError

from ..models import CustomerRecord

VERSION = 1
MAX_MESSAGE_JSON_BYTES = 45_000
# A cap on records per message, for deployments that want resolution spread over more invocations. On the local
# stack (2 shared cores) 25 per message showed no gain over size-bound batches (~100 records) for a 100-row file:
# upload-to-served p50 was 4.6-8 s either way, dominated by resolution and machine load. Size bounds by default.
MAX_RECORDS_PER_MESSAGE = 1000


@dataclass
class Batch:
    text: str  # the inline message JSON
    count: int
    oversize: bool = False  # one record that alone passes the limit: send through a claim blob


def _record_json(record: CustomerRecord | dict[str, Any]) -> str:
    body = record.model_dump(mode="json", exclude_none=True) if isinstance(record, CustomerRecord) else record
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def encode_batches(records: Iterable[CustomerRecord], *, ingestion_id: str | None = None,
                   max_bytes: int = MAX_MESSAGE_JSON_BYTES,
                   max_records: int = MAX_RECORDS_PER_MESSAGE) -> Iterator[Batch]:
    """Pack records, in order, into messages of at most max_records records and max_bytes of UTF-8 JSON."""
    head = json.dumps({"v": VERSION, "ingestion_id": ingestion_id}, separators=(",", ":"))[:-1] + ',"records":['
    tail = "]}"
    overhead = len(head.encode()) + len(tail)
    parts: list[str] = []
    size = overhead
    for record in records:
        part = _record_json(record)
        part_bytes = len(part.encode()) + 1  # + the comma
        if overhead + part_bytes > max_bytes:
            if parts:
                yield Batch(head + ",".join(parts) + tail, len(parts))
                parts, size = [], overhead
            yield Batch(head + part + tail, 1, oversize=True)
            continue
        if parts and (size + part_bytes > max_bytes or len(parts) >= max_records):
            yield Batch(head + ",".join(parts) + tail, len(parts))
            parts, size = [], overhead
        parts.append(part)
        size += part_bytes
    if parts:
        yield Batch(head + ",".join(parts) + tail, len(parts))


def claim_message(blob_name: str) -> str:
    return json.dumps({"v": VERSION, "claim": blob_name}, separators=(",", ":"))


def _parse(text: str | bytes) -> dict[str, Any]:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("message is not UTF-8 text") from None
    try:
        body = json.loads(text)
    except ValueError:
        raise ValueError("message is not JSON") from None
    if not isinstance(body, dict):
        raise ValueError("message must be a JSON object")
    if body.get("v") != VERSION:
        raise ValueError(f"unsupported message version {body.get('v')!r} (expected {VERSION})")
    return body


def _read_claim(name: str, settings) -> str:
    from azure.core.exceptions import ResourceNotFoundError

    from ..storage import blob_service

    client = blob_service(settings).get_blob_client(settings.claims_container, name)
    try:
        return client.download_blob().readall().decode("utf-8")
    except ResourceNotFoundError:
        raise ValueError(f"claim-check blob {name!r} not found") from None


def decode_message(text: str | bytes, settings=None) -> list[CustomerRecord]:
    """The customer records of a resolution-queue message (inline or claim-check).

    Raises ValueError, with a reason safe to log (no record content), for anything malformed."""
    body = _parse(text)
    if "claim" in body:
        name = body["claim"]
        if not isinstance(name, str) or not name or ".." in name:
            raise ValueError("claim must be a blob name")
        from ..settings import get_settings

        body = _parse(_read_claim(name, settings or get_settings()))
        if "claim" in body:
            raise ValueError("a claim blob cannot point to another claim")
    records = body.get("records")
    if not isinstance(records, list):
        raise ValueError("message has no records list")
    out: list[CustomerRecord] = []
    for i, record in enumerate(records):
        try:
            out.append(CustomerRecord.model_validate(record))
        except ValidationError as err:
            fields = sorted({".".join(str(p) for p in e["loc"]) for e in err.errors()})
            raise ValueError(f"record {i} is not a valid CustomerRecord (fields: {', '.join(fields)})") from None
    return out
