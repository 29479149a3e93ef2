"""The local Functions host (devstack/host.py) against real Azurite, with the small app in tests/hostapp.

Most tests share one in-process host (module fixture); restarts and signals use the host as a subprocess.
"""
from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest
import requests
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from devstack.host import LocalHost, app_functions, load_app
from tests.hostapp import function_app as hostapp

ROOT = Path(__file__).resolve().parent.parent
APP = "tests.hostapp.function_app:app"
FKEY, MKEY = "function-key-1", "master-key-1"
YEARLY = "0 0 0 1 1 *"

pytestmark = pytest.mark.stack


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def conn() -> str:
    return os.environ["AzureWebJobsStorage"]


def queue(name: str) -> QueueClient:
    q = QueueClient.from_connection_string(conn(), name, message_encode_policy=TextBase64EncodePolicy(),
                                           message_decode_policy=TextBase64DecodePolicy())
    try:
        q.create_queue()
    except ResourceExistsError:
        pass
    return q


class Inbox:
    """Collects (and deletes) the messages of a queue, so tests can count what arrived."""

    def __init__(self, name: str) -> None:
        self.q = queue(name)
        self.items: list[str] = []

    def poll(self) -> list[str]:
        for m in self.q.receive_messages(messages_per_page=32, max_messages=32):
            self.items.append(m.content)
            self.q.delete_message(m)
        return self.items

    def json(self) -> list[dict]:
        return [json.loads(i) for i in self.poll()]

    def wait(self, count: int = 1, timeout: float = 10.0, where=lambda item: True) -> list[dict]:
        wait_for(lambda: len([i for i in self.json() if where(i)]) >= count, timeout)
        return [i for i in self.json() if where(i)]


def container(name: str):
    c = BlobServiceClient.from_connection_string(conn()).get_container_client(name)
    try:
        c.create_container()
    except ResourceExistsError:
        pass
    return c


def app_settings(prefix: str, **extra: str) -> dict[str, str]:
    return {"HOSTAPP_PREFIX": prefix, "HOSTAPP_TICK": YEARLY, "HOSTAPP_MONITORED": YEARLY, **extra}


@pytest.fixture(scope="module")
def prefix() -> str:
    return f"h{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def host(local_stack, prefix):
    settings = app_settings(prefix, HOSTAPP_TICK="* * * * * *", UCP_HOST_FUNCTION_KEYS=f"other,{FKEY}",
                            UCP_HOST_MASTER_KEY=MKEY)
    with LocalHost(APP, port=0, app_settings=settings, blob_poll_interval=0.2, queue_lease=5,
                   drain_timeout=3) as h:
        yield h


@pytest.fixture(scope="module")
def http(host):
    with requests.Session() as s:
        yield s


# -- declarations ---------------------------------------------------------------------------------------------
def test_bindings_come_from_get_functions(host, prefix, http):
    declared = {f.get_function_name(): f for f in app_functions(hostapp.app)}
    served = {f["name"]: f for f in http.get(f"{host.url}/admin/functions", headers={"x-functions-key": MKEY}).json()}
    assert set(served) == set(declared)
    assert served["on_work"]["trigger"] == "queueTrigger"
    assert {b["queueName"] for b in served["on_work"]["bindings"]} == {f"{prefix}-work", f"{prefix}-done"}
    blob = next(b for b in served["on_blob"]["bindings"] if b["type"] == "blobTrigger")
    assert blob["path"] == f"{prefix}-in/{{name}}" and blob["source"] == "EventGrid"
    assert served["async_hello"]["isAsync"] is True
    assert "HOSTAPP_NEVER_SET" in served["misconfigured"]["error"]
    assert all(f["error"] is None for name, f in served.items() if name != "misconfigured")
    lines = "\n".join(host.describe())
    assert f"{host.url}/api/echo/{{id:int}}" in lines and "[error]" in lines


# -- HTTP -----------------------------------------------------------------------------------------------------
def test_http_route_params_query_headers_body(host, http):
    r = http.get(f"{host.url}/api/echo/42", params={"q": "x"}, headers={"x-test": "yes"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"id": "42", "params": {"q": "x"}, "method": "GET", "body": "", "header": "yes"}
    r = http.post(f"{host.url}/api/ECHO/7", data=b"payload")  # literal segments match case-insensitively
    assert r.status_code == 201 and r.json()["body"] == "payload"


def test_http_not_found_and_wrong_method(host, http):
    assert http.get(f"{host.url}/api/echo/not-a-number").status_code == 404  # {id:int} does not match
    assert http.get(f"{host.url}/api/nowhere").status_code == 404
    assert http.get(f"{host.url}/echo/42").status_code == 404  # outside the route prefix
    assert http.delete(f"{host.url}/api/echo/42").status_code == 404  # the real host answers 404, not 405


def test_http_literal_route_wins_over_parameter(host, http):
    assert http.get(f"{host.url}/api/items/special").text == "literal"
    assert http.get(f"{host.url}/api/items/other").text == "param:other"


def test_http_keys_and_auth_levels(host, http):
    url = f"{host.url}/api/files/a/b%20c/d.txt"
    assert http.get(url).status_code == 401
    assert http.get(url, params={"code": "wrong"}).status_code == 401
    r = http.get(url, params={"code": FKEY})
    assert r.status_code == 200 and r.text == "a/b c/d.txt" and r.headers["X-Rest"] == "yes"
    assert http.get(url, headers={"x-functions-key": MKEY}).status_code == 200
    assert http.get(f"{host.url}/api/adm", params={"code": FKEY}).status_code == 401  # admin needs the master key
    assert http.get(f"{host.url}/api/adm", params={"code": MKEY}).text == "admin ok"


def test_http_unhandled_exception_is_500_without_details(host, http):
    r = http.get(f"{host.url}/api/boom")
    assert r.status_code == 500
    assert b"do-not-leak" not in r.content and b"Traceback" not in r.content
    assert http.get(f"{host.url}/api/echo/1").status_code == 200  # the host keeps serving


def test_http_async_function_and_keep_alive(host, http):
    for i in range(20):
        assert http.get(f"{host.url}/api/async/n{i}").text == f"hello n{i}"


def test_http_function_with_queue_output(host, http, prefix):
    inbox = Inbox(f"{prefix}-enqueued")
    assert http.post(f"{host.url}/api/enqueue", data=b'{"k": 1}').status_code == 202
    assert inbox.wait(1) == [{"k": 1}]


# -- queues ---------------------------------------------------------------------------------------------------
def test_queue_output_binding_delivers(host, prefix):
    done = Inbox(f"{prefix}-done")
    tag = uuid.uuid4().hex
    queue(f"{prefix}-work").send_message(json.dumps({"action": "ok", "tag": tag}))
    got = done.wait(1, where=lambda m: m["tag"] == tag)
    assert len(got) == 1 and got[0]["dequeue_count"] == 1 and got[0]["function"] == "on_work"
    multi = uuid.uuid4().hex
    queue(f"{prefix}-work").send_message(json.dumps({"action": "multi", "tag": multi}))
    parts = done.wait(3, where=lambda m: m["tag"] == multi)
    assert sorted(m["part"] for m in parts) == [0, 1, 2]  # a list output: one message per item


def test_queue_concurrency_is_batch_size_plus_new_batch_threshold(host, prefix):
    done = Inbox(f"{prefix}-done")
    # 12 messages, not 8: the host may fetch its first batch before all are sent (a partial batch), and a loaded
    # machine may let the slow half end before the next batch starts; more batches leave room for both.
    tags = [uuid.uuid4().hex for _ in range(12)]
    work = queue(f"{prefix}-work")
    hostapp.CONCURRENCY["peak"] = 0
    for i, tag in enumerate(tags):  # half of each batch finishes fast, so the next batch overlaps the slow half
        work.send_message(json.dumps({"action": "sleep", "seconds": 1.5 if i % 2 else 0.2, "tag": tag}))
    assert len(done.wait(12, timeout=30, where=lambda m: m["tag"] in tags)) == 12
    assert hostapp.CONCURRENCY["peak"] == 4 + 2  # tests/hostapp/host.json: batchSize 4, newBatchThreshold 2


def test_failing_message_is_retried_5_times_then_poisoned(host, prefix):
    tag = uuid.uuid4().hex
    body = json.dumps({"action": "fail", "tag": tag})
    queue(f"{prefix}-work").send_message(body)
    poison = Inbox(f"{prefix}-work-poison")
    got = poison.wait(1, timeout=20, where=lambda m: m.get("tag") == tag)
    assert got == [json.loads(body)]  # copied unchanged, so it can be replayed
    assert hostapp.ATTEMPTS[tag] == 5
    time.sleep(1.5)
    assert hostapp.ATTEMPTS[tag] == 5  # and not retried any more


def test_message_that_is_not_base64_goes_to_poison_unchanged_at_once(host, prefix):
    """As the real host (Storage extension 5.x): no invocation, no retries, moved as it was."""
    raw = QueueClient.from_connection_string(conn(), f"{prefix}-work")  # no Base64 encoding
    raw.send_message("this is {not base64}!")
    poison = QueueClient.from_connection_string(conn(), f"{prefix}-work-poison")
    got: list = []

    def arrived():
        try:  # the host creates the poison queue as it moves the first message there
            got.extend(poison.receive_messages(max_messages=32))
        except ResourceNotFoundError:
            pass
        return got

    wait_for(arrived, 10)
    assert [m.content for m in got] == ["this is {not base64}!"] and got[0].dequeue_count == 1


# -- blobs ----------------------------------------------------------------------------------------------------
def test_blob_fires_once_per_version(host, prefix):
    seen = Inbox(f"{prefix}-seen")
    blobs = container(f"{prefix}-in")
    data = b"id,name\n1,x\n" * 1000
    blobs.upload_blob("dir/a.csv", data, metadata={"source": "pos"})
    got = seen.wait(1, where=lambda m: m["name"].endswith("dir/a.csv"))
    assert got[0]["name"] == f"{prefix}-in/dir/a.csv"
    assert got[0]["length"] == got[0]["read"] == len(data)
    assert got[0]["metadata"] == {"source": "pos"} and got[0]["etag"]
    assert got[0]["uri"].endswith(f"/{prefix}-in/dir/a.csv")
    out = container(f"{prefix}-out").download_blob("dir/a.csv.len").readall()  # blob output with {name}
    assert out == str(len(data)).encode()
    r = requests.get(f"{host.url}/api/outputs/dir/a.csv.len")  # a blob input binding with {name} from the route
    assert r.status_code == 200 and r.content == out
    assert requests.get(f"{host.url}/api/outputs/dir/none.len").status_code == 404
    time.sleep(1.0)  # several scans later it has not fired again
    assert len(seen.wait(1, where=lambda m: m["name"].endswith("dir/a.csv"))) == 1
    blobs.upload_blob("dir/a.csv", b"new version", overwrite=True)
    again = seen.wait(2, where=lambda m: m["name"].endswith("dir/a.csv"))
    assert len(again) == 2 and again[1]["length"] == len(b"new version") and again[1]["etag"] != got[0]["etag"]


def test_blob_trigger_with_an_sdk_type_gets_a_blob_client(host, prefix):
    """azurefunctions-extensions-bindings-blob: the parameter gets an azure.storage.blob client, as in Azure."""
    seen = Inbox(f"{prefix}-seen")
    container(f"{prefix}-sdk").upload_blob("x/b.csv", b"id\n7\n")
    got = seen.wait(1, where=lambda m: m["name"].endswith("-sdk/x/b.csv"))
    assert got[0]["type"].startswith("azure.storage.blob") and got[0]["content"] == "id\n7\n"


def test_failing_blob_is_retried_then_reported_on_poison_queue(host, prefix):
    name = f"fail-{uuid.uuid4().hex[:6]}.csv"
    container(f"{prefix}-in").upload_blob(name, b"x")
    poison = Inbox("webjobs-blobtrigger-poison")
    got = poison.wait(1, timeout=20, where=lambda m: m["BlobName"] == name)
    assert got[0]["ContainerName"] == f"{prefix}-in" and got[0]["FunctionId"] == "Host.Functions.on_blob"
    assert "ValueError" in got[0]["Reason"]
    assert hostapp.ATTEMPTS[f"{prefix}-in/{name}"] == 5


# -- timers and admin -----------------------------------------------------------------------------------------
def test_timer_fires_every_second(host, prefix):
    ticks = Inbox(f"{prefix}-ticks")
    ticks.poll()
    start = time.time()
    got = ticks.wait(3, timeout=6, where=lambda m: datetime.fromisoformat(m["at"]).timestamp() > start)
    times = sorted(datetime.fromisoformat(m["at"]).timestamp() for m in got)
    assert len(times) >= 3
    assert len({int(t) for t in times}) == len(times), times  # one run per second
    assert 1.5 <= times[-1] - times[0] <= 2.0 * (len(times) - 1) + 0.5, times
    assert sum(t % 1 < 0.5 for t in times) >= len(times) - 1, times  # on the second, as "* * * * * *" says
    assert not any(m["past_due"] for m in got)


def test_run_on_startup(host, prefix):
    got = Inbox(f"{prefix}-startup").wait(1)
    assert len(got) == 1 and got[0]["past_due"] is False


def test_admin_endpoint_runs_queue_and_timer_functions(host, prefix, http):
    tag = uuid.uuid4().hex
    url = f"{host.url}/admin/functions/on_work"
    payload = {"input": json.dumps({"action": "ok", "tag": tag})}
    assert http.post(url, json=payload).status_code == 401
    r = http.post(url, json=payload, headers={"x-functions-key": MKEY})
    assert r.status_code == 202
    assert Inbox(f"{prefix}-done").wait(1, where=lambda m: m["tag"] == tag)
    startup = Inbox(f"{prefix}-startup")
    startup.poll()
    before = len(startup.items)
    assert http.post(f"{host.url}/admin/functions/on_startup", json={}, params={"code": MKEY}).status_code == 202
    assert len(startup.wait(before + 1)) == before + 1
    assert http.post(f"{host.url}/admin/functions/echo", json={}, params={"code": MKEY}).status_code == 400
    assert http.post(f"{host.url}/admin/functions/nope", json={}, params={"code": MKEY}).status_code == 404


def test_monitored_timer_missed_while_down_runs_past_due(local_stack):
    p = f"h{uuid.uuid4().hex[:8]}"
    settings = app_settings(p, HOSTAPP_MONITORED="*/2 * * * * *")
    kwargs = dict(port=0, app_settings=settings, host_id=f"mon-{p}", blob_poll_interval=5, drain_timeout=1)
    with LocalHost(APP, **kwargs):
        time.sleep(0.3)  # records the schedule status (next occurrence within 2 s)
    monitored = Inbox(f"{p}-monitored")
    time.sleep(2.5)
    with LocalHost(APP, **kwargs):
        got = monitored.wait(1, timeout=3, where=lambda m: m["past_due"])  # host 1 may have run on schedule too
    assert got and got[0]["past_due"] is True


def test_local_settings_json_fills_in_without_overriding_env(local_stack, tmp_path, monkeypatch):
    p, env_p = f"h{uuid.uuid4().hex[:8]}", f"h{uuid.uuid4().hex[:8]}"
    (tmp_path / "host.json").write_text((ROOT / "tests/hostapp/host.json").read_text())
    values = {**app_settings(p), "UCP_HOST_MASTER_KEY": "local-master", "HOSTAPP_ONLY_LOCAL": "1"}
    (tmp_path / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    monkeypatch.setenv("HOSTAPP_PREFIX", env_p)
    monkeypatch.delenv("UCP_HOST_MASTER_KEY", raising=False)
    monkeypatch.delenv("UCP_HOST_FUNCTION_KEYS", raising=False)
    with LocalHost(APP, port=0, script_root=tmp_path, timers=False, blob_poll_interval=5) as h:
        assert os.environ["HOSTAPP_ONLY_LOCAL"] == "1"  # the function code sees local settings too
        fns = {f["name"]: f for f in requests.get(f"{h.url}/admin/functions", params={"code": "local-master"}).json()}
        assert f"{env_p}-work" in {b["queueName"] for b in fns["on_work"]["bindings"]}
        assert requests.get(f"{h.url}/api/files/x").status_code == 401  # keys come from local settings too
    assert "HOSTAPP_ONLY_LOCAL" not in os.environ


# -- as a process: restarts and signals -----------------------------------------------------------------------
def spawn(prefix: str, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    environment = {**os.environ, **app_settings(prefix), **(env or {})}
    environment.pop("UCP_HOST_FUNCTION_KEYS", None)
    environment.pop("UCP_HOST_MASTER_KEY", None)
    proc = subprocess.Popen([sys.executable, "-m", "devstack.host", "--app", APP, "--port", "0",
                             "--blob-poll-interval", "0.2", *args], cwd=ROOT, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Host started"):
            return proc, "".join(lines)
    proc.kill()
    raise AssertionError("host did not start:\n" + "".join(lines))


def terminate(proc: subprocess.Popen, timeout: float = 10) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0
    return out


def test_blob_receipts_survive_restart(local_stack):
    p = f"h{uuid.uuid4().hex[:8]}"
    seen = Inbox(f"{p}-seen")
    blobs = container(f"{p}-in")
    blobs.upload_blob("a.csv", b"first")
    proc, banner = spawn(p, "--no-timers")
    try:
        port = int(banner.split("Host started on http://127.0.0.1:")[1].split()[0])
        assert "No keys configured" in banner
        assert "on_blob: blobTrigger on" in banner and f"/api/echo/{{id:int}}" in banner
        assert requests.get(f"http://127.0.0.1:{port}/api/files/x").status_code == 200  # no keys: open
        assert len(seen.wait(1)) == 1
    finally:
        out = terminate(proc)
    assert "Host stopped" in out
    assert "first" not in out  # payloads never reach the log
    blobs.upload_blob("b.csv", b"written while the host was down")
    proc, _ = spawn(p, "--no-timers")
    try:
        got = seen.wait(2)
        time.sleep(1.0)
        got = seen.json()
        assert sorted(m["name"] for m in got) == [f"{p}-in/a.csv", f"{p}-in/b.csv"]  # b once, a not again
        blobs.upload_blob("a.csv", b"second version", overwrite=True)
        assert len(seen.wait(3)) == 3
    finally:
        terminate(proc)
    assert Inbox(f"{p}-startup").poll() == []  # --no-timers: run_on_startup did not run either


def test_shutdown_leaves_in_flight_message_to_reappear(local_stack):
    p = f"h{uuid.uuid4().hex[:8]}"
    work = queue(f"{p}-work")
    tag = uuid.uuid4().hex
    work.send_message(json.dumps({"action": "sleep", "seconds": 60, "tag": tag}))
    proc, _ = spawn(p, "--no-timers", "--queue-lease", "2", "--drain-timeout", "0.5")
    try:
        assert wait_for(lambda: not work.peek_messages(), timeout=10)  # taken: the function is running
        time.sleep(2.5)
        assert not work.peek_messages()  # the lease is renewed while it runs
        started = time.monotonic()
        out = terminate(proc)
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "still running" in out
    msg = wait_for(lambda: work.peek_messages(), timeout=5)  # not deleted: back after the lease
    assert msg and json.loads(msg[0].content)["tag"] == tag and msg[0].dequeue_count == 1


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in state  # a zombie has exited


def worker_pids(banner: str) -> list[int]:
    line = next(l for l in banner.splitlines() if "FUNCTIONS_WORKER_PROCESS_COUNT" in l)
    return [int(p) for p in line.split("worker processes ")[1].split(", ")]


def test_worker_processes_share_queue_invocations_with_the_same_retries(local_stack):
    p = f"h{uuid.uuid4().hex[:8]}"
    work, done = queue(f"{p}-work"), Inbox(f"{p}-done")
    proc, banner = spawn(p, "--no-timers", env={"FUNCTIONS_WORKER_PROCESS_COUNT": "3"})
    try:
        workers = worker_pids(banner)
        assert len(workers) == 2 and proc.pid not in workers and all(map(alive, workers))
        tags = [uuid.uuid4().hex for _ in range(6)]
        for tag in tags:
            work.send_message(json.dumps({"action": "sleep", "seconds": 0.5, "tag": tag}))
        got = done.wait(6, timeout=20, where=lambda m: m.get("tag") in tags)
        assert sorted(m["tag"] for m in got) == sorted(tags)  # each message once
        assert {m["pid"] for m in got} == {proc.pid, *workers}  # all three processes took some
        failing = json.dumps({"action": "fail", "tag": uuid.uuid4().hex})
        work.send_message(failing)
        poison = Inbox(f"{p}-work-poison")
        assert poison.wait(1, timeout=30, where=lambda m: m.get("tag") == json.loads(failing)["tag"])
        assert not work.peek_messages()  # poisoned after maxDequeueCount, not left behind
    finally:
        out = terminate(proc, timeout=20)
    assert wait_for(lambda: not any(map(alive, workers)), timeout=5)
    assert "Host stopped" in out and "[worker 2] Executed 'Functions.on_work'" in out


def test_worker_processes_exit_when_the_host_is_killed(local_stack):
    p = f"h{uuid.uuid4().hex[:8]}"
    proc, banner = spawn(p, "--no-timers", env={"FUNCTIONS_WORKER_PROCESS_COUNT": "2"})
    workers = worker_pids(banner)
    assert all(map(alive, workers))
    proc.kill()  # no chance to stop them: they notice their stdin closing
    proc.wait(10)
    try:
        assert wait_for(lambda: not any(map(alive, workers)), timeout=15)
    finally:
        proc.stdout.close()


def test_worker_process_count_setting_and_messages_over_the_pipe():
    from azure.functions.queue import QueueMessage

    from devstack.host_workers import message_from_json, message_to_json, process_count

    assert [process_count(v) for v in (None, "", "0", "3", "25", "two")] == [1, 1, 1, 3, 10, 1]
    now = datetime.now().astimezone()
    msg = QueueMessage(id="m1", body=b"\x00\xffbinary", dequeue_count=3, pop_receipt="r", insertion_time=now,
                       expiration_time=None, time_next_visible=now)
    back = message_from_json(json.loads(json.dumps(message_to_json(msg))))
    assert (back.id, back.get_body(), back.dequeue_count, back.pop_receipt, back.insertion_time,
            back.expiration_time) == ("m1", b"\x00\xffbinary", 3, "r", now, None)


def test_load_app_reports_missing_app():
    with pytest.raises(Exception, match="no FunctionApp"):
        load_app("tests.hostapp.function_app:nothing", None)


def test_event_grid_webhook_delivers_blob_created_once(local_stack):
    p = f"h{uuid.uuid4().hex[:8]}"
    settings = app_settings(p, UCP_HOST_MASTER_KEY=MKEY)
    with LocalHost(APP, port=0, app_settings=settings, timers=False, blob_poll_interval=120, drain_timeout=2) as h:
        time.sleep(0.5)  # the first scan (of a container that does not exist yet) is over; the next is in 2 min
        seen = Inbox(f"{p}-seen")
        container(f"{p}-in").upload_blob("eg/x.json", b"{}")
        url = f"{h.url}/runtime/webhooks/blobs?functionName=Host.Functions.on_blob&code={MKEY}"
        assert requests.post(url.replace(MKEY, "wrong"), json=[]).status_code == 401
        handshake = [{"eventType": "Microsoft.EventGrid.SubscriptionValidationEvent", "data": {"validationCode": "c0de"}}]
        assert requests.post(url, json=handshake).json() == {"validationResponse": "c0de"}
        event = [{"eventType": "Microsoft.Storage.BlobCreated",
                  "subject": f"/blobServices/default/containers/{p}-in/blobs/eg/x.json", "data": {}}]
        assert requests.post(url, json=event).status_code == 202
        assert len(seen.wait(1, timeout=5)) == 1
        assert requests.post(url, json=event).status_code == 202  # at-least-once delivery: a repeat is ignored
        time.sleep(0.5)
        assert len(seen.json()) == 1


# -- pure parts -----------------------------------------------------------------------------------------------
def test_route_templates_constraints_and_precedence():
    from devstack.host_http import Router
    from devstack.host_invoke import Binding, FunctionSpec

    def spec(name: str, route: str, methods=("GET",)) -> FunctionSpec:
        trigger = Binding("httpTrigger", "req", "IN", {"route": route, "methods": list(methods), "authLevel": "ANONYMOUS"})
        return FunctionSpec(name, trigger, [trigger], lambda req: None, ".")

    router = Router([spec("catch", "files/{*path}"), spec("byid", "items/{id:int}"), spec("byname", "items/{name}"),
                     spec("new", "items/new"), spec("opt", "orders/{id?}"), spec("ranged", "pages/{n:int:range(1,9)}"),
                     spec("post", "items/{id:int}", methods=("POST",))], "api")

    def hit(method: str, path: str):
        found = router.match(method, path)
        return (found[0].spec.name, found[1]) if found else None

    assert hit("GET", "/api/items/new") == ("new", {})
    assert hit("GET", "/api/items/12") == ("byid", {"id": "12"})
    assert hit("GET", "/api/items/abc") == ("byname", {"name": "abc"})
    assert hit("POST", "/api/items/12") == ("post", {"id": "12"})
    assert hit("PUT", "/api/items/12") is None
    assert hit("GET", "/api/files/a/b/c%2Fd.txt") == ("catch", {"path": "a/b/c/d.txt"})
    assert hit("GET", "/api/files") == ("catch", {})
    assert hit("GET", "/api/orders") == ("opt", {}) and hit("GET", "/api/orders/5") == ("opt", {"id": "5"})
    assert hit("GET", "/api/pages/3")[0] == "ranged" and hit("GET", "/api/pages/12") is None
    assert hit("GET", "/items/12") is None and hit("GET", "/api") is None


def test_ncrontab_schedules():
    from devstack.host_config import HostConfigError
    from devstack.host_timer import Schedule

    start = datetime.fromisoformat("2026-01-01T00:00:00+00:00")  # a Thursday
    assert Schedule("*/15 * * * * *", "t").next_after(start).isoformat() == "2026-01-01T00:00:15+00:00"
    assert Schedule("0 30 2 * * MON", "t").next_after(start).isoformat() == "2026-01-05T02:30:00+00:00"
    # NCRONTAB needs both day fields to match (the 13th AND a Friday), unlike Vixie cron's OR
    assert Schedule("0 0 0 13 * FRI", "t").next_after(start).isoformat() == "2026-02-13T00:00:00+00:00"
    assert Schedule("00:00:30", "t").next_after(start).isoformat() == "2026-01-01T00:00:30+00:00"
    assert Schedule("* * * * * *", "t").is_frequent() and not Schedule("0 0 2 * * *", "t").is_frequent()
    # Five fields: no seconds field, as the real host reads them (CronSchedule: IncludingSeconds = fields != 5)
    assert Schedule("0 2 * * *", "t").next_after(start).isoformat() == "2026-01-01T02:00:00+00:00"
    # What NCrontab refuses fails here too, not first in Azure: day-of-week 7, L, W, #, ?, out-of-range values
    for expression in ("0 0 0 * * 7", "0 0 0 * * 0-7", "0 0 0 L * *", "0 0 0 * * 5#2", "0 0 0 15W * *",
                       "0 0 0 ? * MON", "0 60 * * * *", "0 0 0 * 13 *", "* * * *"):
        with pytest.raises(HostConfigError, match="NCRONTAB"):
            Schedule(expression, "t")


def test_host_json_and_binding_expressions(tmp_path):
    from devstack.host_config import AppSettings, HostConfig, HostConfigError, parse_timespan
    from devstack.host_invoke import resolve_binding_data
    from devstack.host_queue import decode_body

    assert parse_timespan("00:00:10", "x") == 10 and parse_timespan("1.00:00:00.5", "x") == 86400.5
    (tmp_path / "host.json").write_text(json.dumps({"extensions": {"queues": {"batchSize": 8}, "http": {"routePrefix": ""}}}))
    config = HostConfig.load(tmp_path)
    assert (config.route_prefix, config.queues.batch_size, config.queues.new_batch_threshold) == ("", 8, 4)
    assert config.queues.max_dequeue_count == 5 and config.queues.message_encoding == "base64"
    (tmp_path / "host.json").write_text(json.dumps({"extensions": {"queues": {"batchSize": 64}}}))
    with pytest.raises(HostConfigError, match="batchSize"):
        HostConfig.load(tmp_path)
    settings = AppSettings(tmp_path, {"Q": "orders"})
    assert settings.resolve("%Q%-poison", "x") == "orders-poison"
    with pytest.raises(HostConfigError, match="MISSING_SETTING"):
        settings.resolve("%MISSING_SETTING%", "x")
    assert resolve_binding_data("out/{name}.{Id}", {"name": "a/b.csv", "id": 7}, "x") == "out/a/b.csv.7"
    with pytest.raises(HostConfigError, match="nothing"):
        resolve_binding_data("out/{nothing}", {}, "x")
    assert decode_body(base64.b64encode("héllo".encode()).decode()) == "héllo".encode()
    with pytest.raises(ValueError, match="Base64"):
        decode_body("plain text!")


def test_cli_fails_clearly_on_a_bad_app(tmp_path):
    r = subprocess.run([sys.executable, "-m", "devstack.host", "--app", "no_such_module:app", "--port", "0"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "no_such_module" in r.stderr and "Host started" not in r.stdout
