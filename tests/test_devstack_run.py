"""devstack/run.py (`make run`) without running all of it: which sample customer it shows."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from devstack.run import sample_lookups, wait_for_profiles
from devstack.stack import ROOT, free_port, port_in_use


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    subprocess.run([sys.executable, "-m", "shared.cli", "generate", "--customers", "40", "--seed", "7",
                    "--end-date", "2026-01-31", "--out", str(out), "--no-progress"],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return out


def test_sample_lookups_are_distinct_emails_of_the_uploaded_customers(sample):
    candidates = sample_lookups(sample)
    assert len(candidates) == 10
    assert len({c["email"] for c in candidates}) == 10
    landed = "".join(p.read_text() for p in (sample / "landing").rglob("*.jsonl") if "/customers/" in p.as_posix())
    assert all(set(c) == {"email"} and json.dumps(c["email"]) in landed for c in candidates)
    assert sample_lookups(sample, limit=3) == candidates[:3]


def test_sample_lookups_skip_what_is_no_customer_email(tmp_path):
    customers = tmp_path / "landing" / "shop" / "customers"
    customers.mkdir(parents=True)
    (customers / "a.jsonl").write_text("\n".join([
        "not json", "[1, 2]", json.dumps({"email": "qa@test.example"}), json.dumps({"name": "no email"}),
        json.dumps({"Email": " ann@example.com "}), json.dumps({"email": "ann@example.com"}),
        json.dumps({"contact_mail": "bob@example.com"})]))
    (tmp_path / "landing" / "shop" / "orders").mkdir()
    (tmp_path / "landing" / "shop" / "orders" / "o.jsonl").write_text(json.dumps({"email": "order@example.com"}))
    assert sample_lookups(tmp_path) == [{"email": "ann@example.com"}, {"email": "bob@example.com"}]
    assert sample_lookups(tmp_path / "nothing-here") == []


class _Api(BaseHTTPRequestHandler):
    """GET /api/profiles?email=...: the first customer was erased by an earlier run (the lookup answers 404 for
    good), the second's profile id answers 410, the third is there."""

    answers: dict[str, int] = {}
    asked: list[str] = []

    def do_GET(self):  # noqa: N802
        query = parse_qs(urlparse(self.path).query)
        email = query["email"][0]
        type(self).asked.append(email)
        status = self.answers.get(email, 404)
        body = json.dumps({"id": f"profile-of-{email}"} if status == 200 else {"error": "gone"}).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def api():
    _Api.answers = {"first@example.com": 404, "second@example.com": 410, "third@example.com": 200}
    _Api.asked = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api"
    finally:
        server.shutdown()
        server.server_close()


def test_an_erased_first_customer_falls_back_to_another_at_once(api):
    """A second `make run` after DELETE /profiles/{id} of the shown customer: it shows another one straight away,
    instead of waiting 120 s, printing a failing lookup and skipping the churn and insights part."""
    candidates = [{"email": "first@example.com"}, {"email": "second@example.com"}, {"email": "third@example.com"}]
    started = time.monotonic()
    found = wait_for_profiles(api, "key", candidates, timeout=120)
    assert time.monotonic() - started < 10
    assert found == ({"email": "third@example.com"}, {"id": "profile-of-third@example.com"})
    assert _Api.asked == ["first@example.com", "second@example.com", "third@example.com"]


def test_the_first_customer_is_shown_when_it_answers(api):
    _Api.answers["first@example.com"] = 200
    found = wait_for_profiles(api, "key", [{"email": "first@example.com"}, {"email": "third@example.com"}])
    assert found == ({"email": "first@example.com"}, {"id": "profile-of-first@example.com"})
    assert _Api.asked == ["first@example.com"]


def test_profiles_that_appear_later_are_waited_for_and_a_timeout_gives_up():
    rounds = []

    def lookup(query):  # nothing is resolved until the third round, then only the second customer
        rounds.append(query["email"])
        return {"id": "p2"} if len(rounds) > 4 and query["email"] == "b" else None

    found = wait_for_profiles("unused", "key", [{"email": "a"}, {"email": "b"}], timeout=30, lookup=lookup,
                              pause=0.01)
    assert found == ({"email": "b"}, {"id": "p2"}) and rounds == ["a", "b", "a", "b", "a", "b"]
    assert wait_for_profiles("unused", "key", [{"email": "a"}], timeout=0.2, lookup=lambda q: None,
                             pause=0.05) is None
    assert wait_for_profiles("unused", "key", [], timeout=30, lookup=lambda q: None) is None


# `make run` on free ports and a scratch directory (not the repo's .devstack); SIGINT as in a terminal.
RUN = r"""
import json, signal, sys
from pathlib import Path
import devstack.run as run
from devstack.stack import LocalStack

base, ports = Path(sys.argv[1]), json.loads(sys.argv[2])
run.DATA_DIR, run.SAMPLE_DIR = base / "data", base / "sample"
run.LocalStack = lambda d, b, q, c, **kw: LocalStack(d, ports[0], ports[1], ports[2], **kw)
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.exit(run.main(["--customers", "30", "--port", str(ports[3])]))
"""


def test_closing_the_terminal_of_make_run_stops_everything_and_saves_the_cosmos_data(tmp_path):
    ports = [free_port() for _ in range(4)]
    proc = subprocess.Popen([sys.executable, "-c", RUN, str(tmp_path), json.dumps(ports)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    children: list[int] = []
    output: list[str] = []
    try:
        for line in proc.stdout:
            output.append(line)
            if "ready. Try:" in line:
                break
        assert "ready. Try:" in "".join(output), "".join(output)
        children = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
        assert len(children) == 3  # Azurite, the Cosmos emulator, the Functions host
        proc.send_signal(signal.SIGHUP)
        rest, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, "".join(output) + rest
        assert "stopping" in rest
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in children):
            time.sleep(0.2)
        assert [p for p in children if Path(f"/proc/{p}").exists()] == []
        assert [p for p in ports if port_in_use(p)] == []
        assert (tmp_path / "data" / "cosmos.json").exists()  # saved for the next run
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in children:  # the groups this test started, by id
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
