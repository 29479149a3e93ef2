"""Ingestion: landed files (CSV, JSON Lines, JSON arrays, Parquet; gzip) mapped to canonical records.

Public API:
    ingest_blob(blob_path, settings=, store=) -> report   # a landed blob, once per (name, ETag)
    resume_stale_ingestions(settings=, store=) -> reports   # crashed ingestions whose retries ran out
    ingest_file(path, mapping, store=, settings=, out_dir=) -> (report, outputs)   # a local file
    load_mapping_file(path) / parse_mapping(data) -> Mapping
    iter_mapped(stream, name, mapping, settings=) -> MappedRow(row, raw, item | None, reasons, flags)
    read_rows(stream, name, ReadOptions) -> (row number, dict | RowError)
    get_ingestion(store, id) / list_ingestions(store, page_size=, continuation=)
    encode_batches(records) / decode_message(text, settings)   # resolution-queue messages
    escape_formula(value)   # make CSV-injection text inert when exporting to spreadsheets
"""
from __future__ import annotations

from .landing import ingest_blob, parse_landing_path, resolve_mapping, resume_stale_ingestions
from .ledger import IngestionBusy, LeaseLost, get_ingestion, list_ingestions
from .local import ingest_file
from .mapping import Mapping, MappedRow, Reason, escape_formula, is_formula_like, load_mapping_file, parse_mapping
from .messages import decode_message, encode_batches
from .pipeline import iter_mapped
from .readers import FileError, ReadOptions, RowError, read_rows

__all__ = [
    "ingest_blob", "ingest_file", "resume_stale_ingestions", "parse_landing_path", "resolve_mapping", "IngestionBusy", "LeaseLost",
    "get_ingestion", "list_ingestions", "Mapping", "MappedRow", "Reason", "escape_formula", "is_formula_like",
    "load_mapping_file", "parse_mapping", "decode_message", "encode_batches", "iter_mapped", "FileError",
    "ReadOptions", "RowError", "read_rows",
]
