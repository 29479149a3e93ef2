"""Ingesting a local file with the same pipeline (the `ucp ingest` command, tests and benches)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..settings import Settings, get_settings
from ..store import MemoryStore, Store
from . import ledger
from .landing import _delete_activity, _delete_record
from .mapping import Mapping
from .pipeline import Outputs, Pipeline, empty_counts, finish_report
from .sinks import ActivityWriter, CountingSink, FileCustomerSink, FileQuarantine, MemoryQuarantine


def ingest_file(path: str | Path, mapping: Mapping, *, store: Store | None = None, settings: Settings | None = None,
                out_dir: str | Path | None = None, mode: str = "upsert",
                customers=None) -> tuple[dict[str, Any], Outputs]:
    """Run the pipeline on a local file; returns (report, outputs). With ``out_dir``: customers.jsonl (accepted
    customer records) and quarantine/<ingestion id>.jsonl; without: kept in memory on the outputs."""
    path = Path(path)
    settings = settings or get_settings()
    store = store if store is not None else MemoryStore()
    stat = path.stat()
    started_wall = time.time()
    report = ledger.new_report(ledger.ingestion_id(str(path.resolve()), f"{stat.st_size}-{stat.st_mtime_ns}"),
                               blob=path.name, container="local", etag=None, size=stat.st_size)
    report.update(empty_counts(), source=mapping.source, entity=mapping.entity, mode=mode, mapping="file")
    out = Path(out_dir) if out_dir else None
    quarantine = FileQuarantine(out / "quarantine" / f"{report['id']}.jsonl") if out else MemoryQuarantine()
    outputs = Outputs(quarantine=quarantine)
    if mode == "delete":
        outputs.delete_record = _delete_record(store, settings)
        outputs.delete_activity = _delete_activity(store)
    elif mapping.entity == "customers":
        outputs.customers = customers or (FileCustomerSink(out / "customers.jsonl", report["id"]) if out
                                          else CountingSink(report["id"], keep=True))
    else:
        outputs.activity = ActivityWriter(store)
    with path.open("rb") as stream:
        report = Pipeline(mapping, report, outputs, settings=settings, mode=mode).run(stream, path.name)
    report["quarantine_blob"] = quarantine.close()
    finish_report(report, started_wall)
    report["lease_until"] = None
    store.container("ledger").upsert_item(report)
    return ledger.public_report(report), outputs
