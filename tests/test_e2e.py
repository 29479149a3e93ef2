"""End to end on the local stack: generated multi-source files uploaded to Azurite, through the local Functions
host running the real app (blob trigger -> ingestion -> resolve queue -> identity -> Cosmos), read back over
real HTTP with function keys. Also: no 5xx under schemathesis, keys on every route, no PII in the logs."""
from __future__ import annotations

import csv
import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest

from devstack.stack import ROOT, free_port
from shared.bootstrap import bootstrap
from shared.settings import Settings
from shared.storage import blob_service, queue_client
from shared.store.cosmos import CosmosStore
from tests.conftest import settings_env, unique_suffix

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


class AppHost:
    """The real app in the local host, in a child process with its own containers, queues and log file."""

    def __init__(self, local_stack, tmp: Path):
        sfx = unique_suffix()
        base = Settings()
        names = {f: f"{getattr(base, f)}-{sfx}" for f in (
            "landing_container", "quarantine_container", "failed_container", "models_container",
            "exports_container", "claims_container", "config_container", "resolve_queue", "activity_queue")}
        self.settings = base.model_copy(update={**names, "container_prefix": f"e{sfx}-"})
        bootstrap(self.settings)
        self.store = CosmosStore(self.settings.cosmos_endpoint, self.settings.cosmos_key,
                                 self.settings.cosmos_database, prefix=self.settings.container_prefix)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.log_path = tmp / "host.log"
        env = {**os.environ, **settings_env(self.settings), "UCP_HOST_FUNCTION_KEYS": KEY,
               "UCP_HOST_MASTER_KEY": KEY + "-master", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "devstack.host", "--app", "function_app:app", "--port", str(self.port),
             "--no-timers", "--host-id", f"e2e-{sfx}", "--blob-poll-interval", "0.3", "-v"],
            cwd=ROOT, env=env, stdout=open(self.log_path, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
            try:
                if http("GET", f"{self.url}/health", key=None)[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError("host did not start:\n" + self.log_path.read_text()[-3000:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def upload(self, landing: Path) -> list[str]:
        container = blob_service(self.settings).get_container_client(self.settings.landing_container)
        names = []
        for path in sorted(landing.rglob("*")):
            if path.is_file():
                name = path.relative_to(landing).as_posix()
                container.upload_blob(name, path.read_bytes(), overwrite=True)
                names.append(name)
        return names

    def reports(self) -> list[dict]:
        return list(self.store.container("ledger").query_items(("doc_type", "=", "ingestion")))

    def settle(self, files: int, timeout: float = 240) -> list[dict]:
        """Wait until every file has a finished report and the resolve queue is drained."""
        queue = queue_client(self.settings.resolve_queue, self.settings)
        deadline = time.monotonic() + timeout
        quiet_since = None
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
            reports = self.reports()
            done = [r for r in reports if r.get("status") in ("completed", "failed")]
            pending = queue.get_queue_properties().approximate_message_count
            if len(done) >= files and pending == 0:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 2.0:  # in-flight messages finish too
                    return done
            else:
                quiet_since = None
            time.sleep(0.5)
        raise AssertionError(f"pipeline did not settle: {len(self.reports())} reports; log tail:\n"
                             + self.log_path.read_text()[-3000:])

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
    host = AppHost(local_stack, tmp_path_factory.mktemp("host"))
    yield host
    host.stop()


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
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


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
