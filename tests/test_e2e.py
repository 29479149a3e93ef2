"""End to end on the local stack: generated multi-source files uploaded to Azurite, through the local Functions
host running the real app (blob trigger -> ingestion -> resolve queue -> identity -> Cosmos), read back over
real HTTP with function keys. Also: no 5xx under schemathesis, keys on every route, no PII in the logs."""
from __future__ import annotations

import csv
import json
import re
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest

from devstack.apphost import AppHost, isolated_settings, upload, wait_settled
from devstack.stack import ROOT
from shared.bootstrap import bootstrap
from shared.storage import blob_service
from shared.store.cosmos import CosmosStore
from tests.conftest import unique_suffix

pytestmark = pytest.mark.stack
KEY = secrets.token_urlsafe(16)


def http(method: str, url: str, *, key: str | None = KEY, body: bytes | None = None) -> tuple[int, dict | None]:
    req = urllib.request.Request(url, data=body, method=method, headers={"x-functions-key": key} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw and "json" in r.headers.get("content-type", "") else None
    except urllib.error.HTTPError as err:
        raw = err.read()
        return err.code, json.loads(raw) if raw and "json" in err.headers.get("content-type", "") else None


class E2EHost:
    """The real app in one local host (devstack.apphost) with its own containers, queues and log."""

    def __init__(self, local_stack, tmp: Path):
        self.settings = isolated_settings(local_stack.env, f"e{unique_suffix()}")
        bootstrap(self.settings)
        self.store = CosmosStore(self.settings.cosmos_endpoint, self.settings.cosmos_key,
                                 self.settings.cosmos_database, prefix=self.settings.container_prefix)
        self.host = AppHost(self.settings, tmp, name="e2e",
                            keys={"UCP_HOST_FUNCTION_KEYS": KEY, "UCP_HOST_MASTER_KEY": KEY + "-master"}).start()
        self.url = f"{self.host.url}/api"

    @property
    def log_path(self) -> Path:
        return self.host.log_path

    def upload(self, landing: Path) -> list[str]:
        return upload(self.settings, landing)

    def settle(self, files: int, timeout: float = 240) -> list[dict]:
        reports = wait_settled(self.settings, self.store, files=files, hosts=[self.host], timeout=timeout)
        return [r for r in reports if r.get("status") in ("completed", "failed")]

    def profile_count(self) -> int:
        return self.store.container("profiles").count_items(("doc_type", "=", "profile"))


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen")
    subprocess.run([sys.executable, "-m", "shared.cli", "generate", "--customers", "80", "--seed", "5",
                    "--out", str(out)], cwd=ROOT, check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def app_host(local_stack, tmp_path_factory):
    e2e = E2EHost(local_stack, tmp_path_factory.mktemp("host"))
    yield e2e
    e2e.host.stop()


@pytest.fixture(scope="module")
def ingested(app_host, generated):
    names = app_host.upload(generated / "landing")
    reports = app_host.settle(len(names))
    return names, reports


def test_uploaded_files_are_ingested_with_exact_accounting(ingested, generated):
    names, reports = ingested
    manifest = json.loads((generated / "manifest.json").read_text())
    assert len(reports) == len(names)
    for report in reports:
        assert report["status"] == "completed", report
        assert report["rows_read"] == report["accepted"] + report["quarantined"] + report["duplicates"], report
    read = sum(r["rows_read"] for r in reports)
    assert read == sum(f["rows"] for f in manifest["files"])
    assert sum(r["quarantined"] for r in reports) >= 1  # the generator injects malformed rows


def test_profiles_answer_over_http_by_any_identifier(ingested, app_host, generated):
    truth = list(csv.DictReader(open(generated / "truth" / "records.csv")))
    people = {row["person_id"] for row in truth}
    profiles = app_host.profile_count()
    assert 0.8 * len(people) <= profiles <= 1.25 * len(people), (profiles, len(people))
    # Every stored source record points at a live profile that lists it.
    records = list(app_host.store.container("records").query_items())
    assert len(records) >= 0.9 * len(truth)
    sample = records[0]
    status, view = http("GET", f"{app_host.url}/profiles?source={quote(sample['source'])}&source_id={quote(sample['record_key'])}")
    assert status == 200, view
    assert sample["id"] in {r["key"] for r in view["source_records"]}
    status, same = http("GET", f"{app_host.url}/profiles/{view['id']}")
    assert status == 200 and same["id"] == view["id"]
    emails = [r["record"].get("email") for r in records if r["record"].get("email")]
    found = 0
    for email in emails[:20]:
        status, _ = http("GET", f"{app_host.url}/profiles?email={quote(email)}")
        found += status == 200
    assert found >= 0.8 * min(20, len(emails))


def test_reuploading_the_same_blobs_changes_nothing(ingested, app_host, generated):
    names, reports = ingested
    profiles, records = app_host.profile_count(), app_host.store.container("records").count_items()
    container = blob_service(app_host.settings).get_container_client(app_host.settings.landing_container)
    # Same content, new ETag: a new report, every row recognised; profiles and records unchanged.
    path = next(p for p in sorted((generated / "landing").rglob("*")) if p.is_file() and "/customers/" in p.as_posix())
    container.upload_blob(path.relative_to(generated / "landing").as_posix(), path.read_bytes(), overwrite=True)
    app_host.settle(len(names) + 1)
    assert app_host.profile_count() == profiles
    assert app_host.store.container("records").count_items() == records


def test_every_route_but_health_needs_a_key(app_host):
    from shared.api.openapi import document

    assert http("GET", f"{app_host.url}/health", key=None)[0] == 200
    for path, ops in document()["paths"].items():
        if path == "/health":
            continue
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        for method in ops:
            status, body = http(method.upper(), f"{app_host.url}{concrete}", key=None,
                                body=b"{}" if method in ("post", "put") else None)
            assert status == 401, (method, path, status)
            assert http(method.upper(), f"{app_host.url}{concrete}", key="wrong-key",
                        body=b"{}" if method in ("post", "put") else None)[0] == 401


def test_no_server_errors_under_schemathesis(ingested, app_host, tmp_path):
    report = tmp_path / "st.json"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "schemathesis"), "run", f"{app_host.url}/openapi.json",
         "--url", app_host.url, "--checks", "not_a_server_error", "--max-examples", "12",
         "-H", f"x-functions-key: {KEY}", "--request-timeout", "20", "--suppress-health-check", "all",
         "--report", "junit", "--report-junit-path", str(report)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    (artifacts := ROOT / "test-artifacts").mkdir(exist_ok=True)
    (artifacts / "schemathesis.txt").write_text(result.stdout + result.stderr)
    failures = [line[:300] for line in result.stdout.splitlines() if line.startswith(("_", "[", "- ", "  ["))]
    assert result.returncode == 0, "\n".join(failures[:40]) + "\nfull output: test-artifacts/schemathesis.txt"


def test_logs_of_a_full_run_hold_no_pii(ingested, app_host, generated):
    log = app_host.log_path.read_text(errors="replace").lower()
    assert "ingest" in log  # the log is real and covers the run
    leaked = {}
    truth_people = list(csv.DictReader(open(generated / "truth" / "people.csv")))
    for person in truth_people:
        for field in ("email", "phone", "given_name", "family_name"):
            value = (person.get(field) or "").strip().lower()
            match = re.search(rf"\b{re.escape(value)}\b", log) if len(value) >= 4 else None
            if match:  # generated (fake) people: showing where helps fix the leak
                leaked[field] = log[max(0, match.start() - 80):match.end() + 40]
    assert not leaked, f"PII found in the host log: {leaked}"
