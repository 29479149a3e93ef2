"""The generated multi-source set (shared.generate) through ingestion with the repo's mappings: every injected
malformed row is quarantined, nothing else is, and the accounting is exact for every file."""
from __future__ import annotations

from pathlib import Path

import pytest

from shared.ingest import decode_message, ingest_file, load_mapping_file
from shared.ingest.landing import REPO_SOURCES
from shared.storage import queue_client
from shared.store import MemoryStore
from tests.test_ingest_blob import env, functions  # noqa: F401  (module-scoped stack fixtures)

generate = pytest.importorskip("shared.generate")


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("generated")
    manifest = generate.generate(out, generate.GeneratorConfig(customers=300, seed=11), progress=False)
    return out, manifest


def test_every_repo_mapping_parses():
    files = sorted(REPO_SOURCES.glob("*.json"))
    assert files, "config/sources has no mappings"
    for path in files:
        mapping = load_mapping_file(path)
        assert path.name == f"{mapping.source}.{mapping.entity}.json"


def test_generated_files_are_ingested_with_exact_accounting(generated):
    out, manifest = generated
    store = MemoryStore()
    assert manifest["files"] and sum(f["malformed"] for f in manifest["files"]) > 0
    for spec in manifest["files"]:
        mapping = load_mapping_file(REPO_SOURCES / f"{spec['source']}.{spec['entity']}.json")
        report, _ = ingest_file(out / spec["path"], mapping, store=store)
        label = spec["path"]
        assert report["status"] == "completed", (label, report["error"])
        assert report["rows_read"] == spec["rows"], label
        assert report["rows_read"] == report["accepted"] + report["quarantined"] + report["duplicates"], label
        assert report["quarantined"] == spec["malformed"], (label, report["reasons"], spec.get("malformed_kinds"))


def test_generated_set_through_the_blob_function(generated, env, functions):
    """Upload the set to Azurite, trigger each blob as the host would: reports exact, customers queued once."""
    from tests.test_ingest_blob import Landing

    out, manifest = generated
    landing = Landing(*env, functions)
    q = queue_client(landing.settings.resolve_queue, landing.settings)
    q.clear_messages()
    reports = []
    for spec in manifest["files"]:
        path = spec["path"].split("/", 1)[1]  # the generator writes landing/<source>/<entity>/<file>
        reports.append(landing.land(path, (out / spec["path"]).read_bytes()))
    for spec, report in zip(manifest["files"], reports):
        assert report["status"] == "completed", report["error"]
        assert (report["rows_read"], report["quarantined"]) == (spec["rows"], spec["malformed"]), spec["path"]
    customers = sum(r["accepted"] for r in reports if r["entity"] == "customers")
    activity = sum(r["accepted"] for r in reports if r["entity"] != "customers")
    assert customers == sum(r["records_queued"] for r in reports) > 0
    assert activity == sum(r["activity_saved"] for r in reports) > 0

    def receive_records() -> int:  # received messages stay invisible for the rest of the test
        return sum(len(decode_message(m.content, landing.settings))
                   for m in q.receive_messages(messages_per_page=32, visibility_timeout=600))

    assert receive_records() == customers
    for spec in manifest["files"]:  # every event delivered again: nothing new is queued
        landing.trigger(spec["path"].split("/", 1)[1])
    assert receive_records() == 0
