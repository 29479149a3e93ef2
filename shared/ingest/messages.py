"""Resolution-queue messages: customer records in batches under the 64 KB queue limit, claim-check beyond.

    {"v": 1, "ingestion_id": "...", "landed_at": "...", "records": [CustomerRecord JSON, ...]}   # inline batch
    {"v": 1, "claim": "<blob name in settings.claims_container>"}          # a batch too big for a message

The queue speaks Base64 (like the Functions host), which inflates text by 4/3: 64 KB on the wire leaves ~48 KB of
JSON, and MAX_MESSAGE_JSON_BYTES keeps a margin below that. A claim blob holds the inline form.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from pydantic import ValidationError

from ..models import CustomerRecord

VERSION = 1
MAX_MESSAGE_JSON_BYTES = 45_000
# Default cap on records per message (settings.resolve_batch_records overrides it): one message is resolved by one
# process, so a file spread over several messages is resolved by several processes or instances at once.
MAX_RECORDS_PER_MESSAGE = 1000
# Where the resolver quarantines the records of these messages it cannot resolve, in the quarantine container:
# JSON lines {"reason", "record_key", "record": CustomerRecord JSON} (worker, `ucp replay`, audit).
QUARANTINED_RECORDS_PREFIX = "resolve/"


@dataclass
class Batch:
    text: str  # the inline message JSON
    count: int
    oversize: bool = False  # one record that alone passes the limit: send through a claim blob


def _record_json(record: CustomerRecord | dict[str, Any]) -> str:
    body = record.model_dump(mode="json", exclude_none=True) if isinstance(record, CustomerRecord) else record
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def by_source_key(records: Iterable[CustomerRecord]) -> list[CustomerRecord]:
    """The records with those of one source record (an update after the original) moved together, in file
    order: a message boundary never separates them, so they are resolved in order."""
    groups: dict[Any, list[CustomerRecord]] = {}
    for record in records:
        groups.setdefault(record.key if isinstance(record, CustomerRecord) else id(record), []).append(record)
    return [record for group in groups.values() for record in group]


def encode_batches(records: Iterable[CustomerRecord], *, ingestion_id: str | None = None, landed_at: str | None = None,
                   max_bytes: int = MAX_MESSAGE_JSON_BYTES,
                   max_records: int = MAX_RECORDS_PER_MESSAGE) -> Iterator[Batch]:
    """Pack records, in order, into messages of at most max_records records and max_bytes of UTF-8 JSON.
    Consecutive records of one source record are not split by max_records (only by max_bytes). `landed_at`: when
    their file landed (the resolver orders versions of a record by it when the source gives no updated_at)."""
    header = {"v": VERSION, "ingestion_id": ingestion_id, **({"landed_at": landed_at} if landed_at else {})}
    head = json.dumps(header, separators=(",", ":"))[:-1] + ',"records":['
    tail = "]}"
    overhead = len(head.encode()) + len(tail)
    parts: list[str] = []
    size = overhead
    last_key = None
    for record in records:
        key = record.key if isinstance(record, CustomerRecord) else None
        part = _record_json(record)
        part_bytes = len(part.encode()) + 1  # + the comma
        if overhead + part_bytes > max_bytes:
            if parts:
                yield Batch(head + ",".join(parts) + tail, len(parts))
                parts, size = [], overhead
            yield Batch(head + part + tail, 1, oversize=True)
            continue
        same_record = key is not None and key == last_key
        if parts and (size + part_bytes > max_bytes or (len(parts) >= max_records and not same_record)):
            yield Batch(head + ",".join(parts) + tail, len(parts))
            parts, size = [], overhead
        parts.append(part)
        size += part_bytes
        last_key = key
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
    except RecursionError:  # nested deeper than the parser goes
        raise ValueError("message is JSON nested too deeply") from None
    if not isinstance(body, dict):
        raise ValueError("message must be a JSON object")
    if body.get("v") != VERSION:  # its type only: a value is never echoed (it may be anything, PII included)
        raise ValueError(f"unsupported message version (a {type(body.get('v')).__name__}; expected {VERSION})")
    return body


def _read_claim(name: str, settings) -> str:
    from azure.core.exceptions import ResourceNotFoundError

    from ..storage import blob_service

    client = blob_service(settings).get_blob_client(settings.claims_container, name)
    try:
        return client.download_blob().readall().decode("utf-8")
    except ResourceNotFoundError:
        raise ValueError(f"claim-check blob {name!r} not found") from None


def decode_message(text: str | bytes, settings=None, *, invalid: list[dict[str, Any]] | None = None,
                   header: dict[str, Any] | None = None) -> list[CustomerRecord]:
    """The customer records of a resolution-queue message (inline or claim-check).

    Raises ValueError, with a reason safe to log (no record content), for anything malformed. A record that is
    not a valid CustomerRecord raises too, unless `invalid` is given: it is then appended there as
    {"reason", "record_key", "record"} (the record as sent), for quarantine, and the valid ones are returned.
    `header`, when given, receives the message's `landed_at` (None when it has none)."""
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
    landed_at = body.get("landed_at")
    if landed_at is not None and not (isinstance(landed_at, str) and _LANDED_AT.fullmatch(landed_at)):
        raise ValueError("landed_at must be a UTC time as 2024-06-01T07:00:00.000000Z")
    if header is not None:
        header["landed_at"] = landed_at
    out: list[CustomerRecord] = []
    for i, record in enumerate(records):
        try:
            out.append(CustomerRecord.model_validate(record))
        except (ValidationError, RecursionError) as err:
            reason = f"record {i} is not a valid CustomerRecord ({invalid_fields(err)})"
            if invalid is None:
                raise ValueError(reason) from None
            source, key = (record.get("source"), record.get("record_key")) if isinstance(record, dict) else (None, None)
            # The record's full key, as the resolver's own quarantine entries and the audit name records.
            full_key = f"{source}|{key}" if isinstance(source, str) and isinstance(key, str) else None
            invalid.append({"reason": reason, "record_key": full_key, "record": record})
    return out


def invalid_fields(err: Exception) -> str:
    """The fields a record failed on, by name. A name that is not a field's name (a word such as "nickname") is
    counted, not echoed, unless it looks like one: a sender's mistake can put anything in a name, an email too."""
    if not isinstance(err, ValidationError):
        return "nested too deeply"
    names = {".".join(str(p) for p in e["loc"]) for e in err.errors()}
    shown = sorted(n for n in names if n.split(".")[0] in CustomerRecord.model_fields or _FIELD_NAME.fullmatch(n))
    unknown = len(names) - len(shown)
    return "fields: " + ", ".join(shown + ([f"{unknown} other name(s)"] if unknown else []))


_LANDED_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")  # utc_text: its order is the times' order
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
