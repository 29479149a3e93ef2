"""The ingestion pipeline for one file: read -> map + validate -> dedupe -> fan out, with exact accounting.

Every row read ends in exactly one of accepted, quarantined or duplicates (rows_read = their sum, always). A
file-level problem (FileError) stops reading and marks the report failed; rows already read stay accounted and
their outputs are flushed, so nothing read is lost.
"""
from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Iterator

import numpy as np

from ..models import CustomerRecord
from .ledger import iso, utc_now
from .mapping import NATURAL_ID, Mapping, MappedRow, Reason, RowMapper
from .readers import CSV_DELIMITERS, FileError, FileInfo, RowError, read_rows
from .sinks import ActivityWriter, CustomerSink, QuarantineSink, truncate_raw

log = logging.getLogger("ucp.ingest")

HEARTBEAT_ROWS = 1000
MAX_LISTED_COLUMNS = 100


class SeenKeys:
    """Exact-enough set of 63-bit fingerprints in bounded memory: recent ones in a Python set, older ones merged
    into one sorted int64 array (8 bytes each instead of ~70), so a 5M-row file costs ~40 MB, not 350."""

    FLUSH_AT = 262_144

    def __init__(self):
        self._recent: set[int] = set()
        self._sorted = np.empty(0, dtype=np.int64)

    @staticmethod
    def fingerprint(*parts: str) -> int:
        digest = hashlib.blake2b("\x1f".join(parts).encode("utf-8", "surrogateescape"), digest_size=8).digest()
        return int.from_bytes(digest, "big") >> 1

    def add(self, fp: int) -> bool:
        """True when fp is new."""
        if fp in self._recent:
            return False
        old = self._sorted
        if old.size:
            i = int(old.searchsorted(fp))
            if i < old.size and int(old[i]) == fp:
                return False
        self._recent.add(fp)
        if len(self._recent) >= self.FLUSH_AT:
            # Recent keys are never in the old array (add() checked), so concatenate + sort suffices; it also
            # keeps the heap flat, where np.union1d's hash-based unique fragmented it (RSS +50 MB per 1M keys).
            merged = np.concatenate((old, np.fromiter(self._recent, dtype=np.int64, count=len(self._recent))))
            merged.sort()
            self._sorted = merged
            self._recent = set()
        return True


@dataclass
class Outputs:
    quarantine: QuarantineSink
    customers: CustomerSink | None = None
    activity: ActivityWriter | None = None
    delete_record: Callable[[str, str], Any] | None = None  # (source, record key): CI incremental Deletes
    delete_activity: Callable[[str, str], Any] | None = None  # (doc id, owner)


def empty_counts() -> dict[str, Any]:
    return {"rows_read": 0, "accepted": 0, "quarantined": 0, "duplicates": 0, "reasons": {}, "flags": {},
            "warnings": [], "unmapped_columns": [], "deleted": 0}


def iter_mapped(stream: BinaryIO, name: str, mapping: Mapping, *, settings=None,
                info: FileInfo | None = None) -> Iterator[MappedRow]:
    """Every row of a file as a MappedRow (item or reasons): the reader + mapping API for other tools."""
    max_field = settings.max_field_bytes if settings is not None else 64 * 1024
    mapper = RowMapper(mapping, max_field_bytes=max_field)
    info = info if info is not None else FileInfo()
    checked = False
    for row_number, raw in read_rows(stream, name, mapping.read_options(settings), info):
        if not checked:
            check_columns(info, mapping, "upsert")
            checked = True
        yield mapper.map_row(row_number, raw)
    if not checked:
        check_columns(info, mapping, "upsert")


def check_columns(info: FileInfo, mapping: Mapping, mode: str, report: dict[str, Any] | None = None) -> None:
    """For files with a header (CSV, Parquet): every required column present, else the file cannot be mapped."""
    if info.columns is None:
        return  # JSON: each row is checked on its own
    present = set(info.columns)
    required = mapping.record_key if mode == "delete" else mapping.required_columns()
    missing = [c for c in required if c not in present]
    if missing:
        hint = ""
        if len(info.columns) == 1:
            others = [d for d in CSV_DELIMITERS if d != info.delimiter and d in info.columns[0]]
            if others:
                hint = (f"; the header has one column and contains {others[0]!r}: the delimiter is probably "
                        f"{others[0]!r}, not {info.delimiter!r}")
        raise FileError("missing_columns", f"required column(s) missing: {', '.join(missing)}{hint}")
    if report is not None:
        mapped = mapping.mapped_columns()
        report["unmapped_columns"] = sorted(present - mapped)[:MAX_LISTED_COLUMNS]
        absent = sorted(c for c in mapped if c not in present and "." not in c)
        if absent and mode != "delete":
            report["warnings"].append(f"mapped column(s) not in the file: {', '.join(absent[:MAX_LISTED_COLUMNS])}")


class Pipeline:
    def __init__(self, mapping: Mapping, report: dict[str, Any], outputs: Outputs, *, settings,
                 mode: str = "upsert", heartbeat: Callable[[dict[str, Any]], None] | None = None):
        self.mapping = mapping
        self.report = report
        self.outputs = outputs
        self.settings = settings
        self.mode = mode
        self.heartbeat = heartbeat
        self.mapper = RowMapper(mapping, max_field_bytes=settings.max_field_bytes)
        self.seen = SeenKeys()
        self.reasons: Counter[str] = Counter(report.get("reasons") or {})
        self.flags: Counter[str] = Counter(report.get("flags") or {})

    def run(self, stream: BinaryIO, name: str, *, stop_on: dict[type, FileError] | None = None) -> dict[str, Any]:
        """Process the whole file. ``stop_on`` turns errors of the byte source (e.g. the blob changed while
        read) into file-level failures, so rows read so far are still flushed and accounted."""
        r = self.report
        info = FileInfo()
        started = time.perf_counter()
        checked = False
        try:
            for row_number, raw in read_rows(stream, name, self.mapping.read_options(self.settings), info):
                if not checked:
                    check_columns(info, self.mapping, self.mode, r)
                    checked = True
                if self.mode == "delete":
                    self._delete(row_number, raw)
                else:
                    self._upsert(self.mapper.map_row(row_number, raw))
                r["rows_read"] += 1  # after the row landed somewhere: a FileError mid-row leaves it unread
                if self.heartbeat and r["rows_read"] % HEARTBEAT_ROWS == 0:
                    self._sync(info)
                    self.heartbeat(r)
            if not checked:
                check_columns(info, self.mapping, self.mode, r)
            if r["rows_read"] == 0:
                r["warnings"].append("the file has no data rows" + (" (header only)" if info.columns else ""))
        except Exception as exc:
            err = exc if isinstance(exc, FileError) else next(
                (v for k, v in (stop_on or {}).items() if isinstance(exc, k)), None)
            if err is None:
                raise
            r["status"] = "failed"
            r["error"] = {"code": err.code, "message": err.message, "after_row": r["rows_read"]}
        r["warnings"].extend(info.warnings)
        self._flush()
        self._sync(info)
        elapsed = time.perf_counter() - started
        r["timings"] = {"read_map_fanout_s": round(elapsed, 3),
                        "rows_per_s": round(r["rows_read"] / elapsed, 1) if elapsed > 0 else None}
        if r["status"] == "processing":
            r["status"] = "completed"
        assert r["rows_read"] == r["accepted"] + r["quarantined"] + r["duplicates"], "accounting broke"
        return r

    # --- per row

    def _quarantine(self, row: int, raw: Any, reasons: list[Reason]) -> None:
        self.report["quarantined"] += 1
        for reason in reasons:
            self.reasons[reason.key] += 1
        self.outputs.quarantine.write({
            "ingestion_id": self.report.get("id"), "file": self.report.get("blob"), "row": row,
            "raw": truncate_raw(raw), "reasons": [x.as_dict() for x in reasons]})

    def _upsert(self, mapped: MappedRow) -> None:
        if mapped.reasons:
            self._quarantine(mapped.row, mapped.raw, mapped.reasons)
            return
        item = mapped.item
        key = item.record_key if isinstance(item, CustomerRecord) else getattr(item, NATURAL_ID[self.mapping.entity])
        if not self.seen.add(SeenKeys.fingerprint(key, item.content_hash())):
            self.report["duplicates"] += 1
            return
        self.report["accepted"] += 1
        for flag in mapped.flags:
            self.flags[flag] += 1
        if isinstance(item, CustomerRecord):
            self.outputs.customers.add(item)
        else:
            self.outputs.activity.add(item)

    def _delete(self, row: int, raw: Any) -> None:
        if isinstance(raw, RowError):
            self._quarantine(row, raw.raw, [Reason(raw.code, None, raw.message)])
            return
        key = self.mapper.record_key_of(raw)
        if self.mapping.entity == "customers":
            if key is None:
                self._quarantine(row, raw, [Reason("missing_value", "record_key", "a delete row needs the record key")])
                return
            if not self.seen.add(SeenKeys.fingerprint("delete", key)):
                self.report["duplicates"] += 1
                return
            self.outputs.delete_record(self.mapping.source, key)
        else:
            target = self._activity_target(raw, key)
            if isinstance(target, Reason):
                self._quarantine(row, raw, [target])
                return
            ids, owner = target
            if not self.seen.add(SeenKeys.fingerprint("delete", ids[0], owner)):
                self.report["duplicates"] += 1
                return
            for doc_id in ids:
                self.outputs.delete_activity(doc_id, owner)
        self.report["accepted"] += 1
        self.report["deleted"] += 1

    def _activity_target(self, raw: dict[str, Any], key: str | None) -> tuple[list[str], str] | Reason:
        """(doc ids, owner) of the activity a delete row names: for an order, its sale, return and refund ids (the
        delete also removes the docs stored under a part of these: lines, each return; shared.ingest.landing)."""
        from ..activity import TRANSACTION_KINDS, activity_id, owner_key

        m = self.mapping
        natural_spec = m.fields.get(NATURAL_ID[m.entity])
        natural = key or (self.mapper.value_of(natural_spec, raw) if natural_spec else None)
        customer_spec = m.fields.get("customer_key")
        customer = self.mapper.value_of(customer_spec, raw) if customer_spec else None
        if natural is None or customer is None:
            return Reason("missing_value", "customer_key", "a delete row needs the activity id and its customer key")
        kind = {"transactions": "transaction", "events": "event", "reviews": "review"}[m.entity]
        natural = str(natural).strip()
        kinds = TRANSACTION_KINDS if kind == "transaction" else (None,)
        return [activity_id(kind, m.source, natural, k) for k in kinds], owner_key(m.source, str(customer).strip())

    # --- bookkeeping

    def _flush(self) -> None:
        if self.outputs.customers is not None:
            self.outputs.customers.flush()
        if self.outputs.activity is not None:
            self.outputs.activity.flush()

    def _sync(self, info: FileInfo) -> None:
        r = self.report
        r["reasons"] = dict(self.reasons)
        r["flags"] = dict(self.flags)
        r.update(format=info.format, compression=info.compression, encoding=info.encoding, delimiter=info.delimiter,
                 decompressed_bytes=info.bytes_read)
        sink = self.outputs.customers
        if sink is not None:
            r.update(records_queued=sink.records_queued, messages_sent=sink.messages_sent, claim_blobs=sink.claim_blobs)
        if self.outputs.activity is not None:
            r["activity_saved"] = self.outputs.activity.saved
            r["activity_moved"] = self.outputs.activity.moved  # ids stored under another owner before


def finish_report(report: dict[str, Any], started_wall: float) -> dict[str, Any]:
    report["finished_at"] = iso(utc_now())
    report.setdefault("timings", {})["total_s"] = round(time.time() - started_wall, 3)
    return report
