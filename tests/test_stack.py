"""devstack.stack.LocalStack: starts Azurite and the Cosmos emulator, stops them completely, fails clearly.
These tests run their own stack (not the session one), so restarting or stopping it disturbs no other test."""
from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from azure.cosmos import CosmosClient, PartitionKey, exceptions
from azure.storage.blob import BlobServiceClient

import devstack.stack as stack_module
from devstack import lifeline
from devstack.stack import ROOT, LocalStack, StackError, free_port, port_in_use
from shared.settings import COSMOS_EMULATOR_KEY

warnings.filterwarnings("ignore", message="Unverified HTTPS request")


def process_group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def cosmos_container(stack: LocalStack):
    client = CosmosClient(f"https://127.0.0.1:{stack.cosmos_port}/", COSMOS_EMULATOR_KEY)
    db = client.create_database_if_not_exists("stack-test")
    return db.create_container_if_not_exists("c", partition_key=PartitionKey("/id"))


def test_start_serves_both_services_then_stop_leaves_no_process():
    stack = LocalStack()
    env = stack.start()
    pids = [p.pid for p in stack.procs]
    data_dir = stack.data_dir
    try:
        assert len(pids) == 2 and all(process_group_alive(pid) for pid in pids)
        assert env["COSMOS_ENDPOINT"] == f"https://127.0.0.1:{stack.cosmos_port}/"
        blobs = BlobServiceClient.from_connection_string(env["AzureWebJobsStorage"])
        blobs.create_container("probe")
        assert [c.name for c in blobs.list_containers()] == ["probe"]
        cosmos_container(stack).upsert_item({"id": "x"})
    finally:
        stack.stop()
    # every process group is gone (children included), the ports are free and the temporary data removed
    assert not any(process_group_alive(pid) for pid in pids)
    assert not any(port_in_use(p) for p in (stack.blob_port, stack.queue_port, stack.cosmos_port))
    assert stack.procs == [] and not data_dir.exists()
    stack.stop()  # stopping twice is harmless


def test_restart_cosmos_comes_back_empty_on_the_same_port():
    with LocalStack() as stack:
        container = cosmos_container(stack)
        container.upsert_item({"id": "before"})
        azurite_pid, old_pid = [p.pid for p in stack.procs]
        stack.restart_cosmos()
        new_pid = stack.procs[-1].pid
        assert new_pid != old_pid and not process_group_alive(old_pid)
        assert process_group_alive(azurite_pid)  # Azurite untouched
        assert {p.pid for p in stack.procs} == {azurite_pid, new_pid}
        with pytest.raises(exceptions.CosmosResourceNotFoundError):
            container.read_item("before", partition_key="before")  # in-memory emulator: data is gone
        fresh = cosmos_container(stack)
        fresh.upsert_item({"id": "after"})
        assert fresh.read_item("after", partition_key="after")["id"] == "after"
    assert not process_group_alive(new_pid) and not process_group_alive(azurite_pid)


def test_port_in_use_names_the_port_and_starts_nothing():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        stack = LocalStack(cosmos_port=port)
        with pytest.raises(StackError, match=rf"port {port} \(cosmos port\) is in use"):
            stack.start()
        assert stack.procs == [] and not stack.data_dir.exists()
        stack.stop()


def test_free_ports_are_bound_by_the_servers_so_a_port_taken_meanwhile_cannot_collide(monkeypatch):
    """CI once lost a start to EADDRINUSE: a port chosen free was taken before Azurite bound it. Whatever a
    port-choosing helper would hand out now, each server binds one the system picks and says which."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setattr(stack_module, "free_port", lambda: port)
        with LocalStack() as stack:
            ports = [stack.blob_port, stack.queue_port, stack.cosmos_port]
            assert port not in ports and len(set(ports)) == 3 and all(port_in_use(p) for p in ports)
            assert all(p.poll() is None for p in stack.procs)
            blobs = BlobServiceClient.from_connection_string(stack.env["AzureWebJobsStorage"])
            blobs.create_container("probe")
            assert [c.name for c in blobs.list_containers()] == ["probe"]
            cosmos_container(stack).upsert_item({"id": "x"})


def test_an_earlier_runs_log_is_not_read_as_the_servers_being_ready(tmp_path):
    """The logs are appended to (make run keeps its data folder): only what this start's servers wrote counts."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        old = held.getsockname()[1]  # bound, not listening: nothing answers there, nothing else gets it
        (tmp_path / "azurite.log").write_text(
            f"Azurite Blob service is successfully listening at http://127.0.0.1:{old}\n"
            f"Azurite Queue service is successfully listening at http://127.0.0.1:{old}\n")
        (tmp_path / "cosmos.log").write_text(f"cosmos-launcher ready on https://127.0.0.1:{old}/\n")
        with LocalStack(tmp_path) as stack:
            assert old not in (stack.blob_port, stack.queue_port, stack.cosmos_port)
            BlobServiceClient.from_connection_string(stack.env["AzureWebJobsStorage"]).create_container("probe")
            cosmos_container(stack).upsert_item({"id": "x"})


def test_missing_node_modules_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(stack_module, "COSMOS_PACKAGE",
                        stack_module.ROOT / "node_modules" / "@vercel" / "no-such-server")
    stack = LocalStack()
    with pytest.raises(StackError, match=r"npm packages are missing .*no-such-server.*run 'npm ci'"):
        stack.start()
    assert stack.procs == [] and not stack.data_dir.exists()
    stack.stop()


def test_missing_node_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(stack_module.shutil, "which", lambda name: None)
    stack = LocalStack()
    with pytest.raises(StackError, match="Node.js is not on PATH"):
        stack.start()
    assert not stack.data_dir.exists()  # the temporary directory made for it is gone too


def test_a_server_that_dies_at_start_is_reported_with_its_log(monkeypatch, tmp_path):
    broken = tmp_path / "broken-launcher.js"
    broken.write_text('console.error("launcher exploded"); process.exit(7);\n')
    monkeypatch.setattr(stack_module, "COSMOS_LAUNCHER", broken)
    stack = LocalStack()
    with pytest.raises(StackError, match=r"(?s)Cosmos emulator exited with code 7.*launcher exploded"):
        stack.start()
    assert stack.procs == [] and not stack.data_dir.exists()  # Azurite, started first, was stopped again


def test_a_node_older_than_20_is_a_clear_error(monkeypatch, tmp_path):
    old_node = tmp_path / "node"
    old_node.write_text("#!/bin/sh\necho 18.19.0\n")
    old_node.chmod(0o755)
    monkeypatch.setattr(stack_module.shutil, "which", lambda name: str(old_node))
    stack = LocalStack()
    with pytest.raises(StackError, match=r"is Node\.js 18; the Cosmos emulator needs 20 or later"):
        stack.start()
    assert not stack.data_dir.exists()


# -- the servers die with their parent, however it dies -----------------------------------------------------------

def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _wait_gone(pids: list[int], ports: list[int], timeout: float) -> tuple[list[int], list[int]]:
    deadline = time.monotonic() + timeout
    while True:
        left = [p for p in pids if _alive(p)]
        busy = [p for p in ports if port_in_use(p)]
        if not (left or busy) or time.monotonic() > deadline:
            return left, busy
        time.sleep(0.2)


def _kill_groups(pids: list[int]) -> None:
    """Clean-up after a failed test: the groups this test started, by id."""
    for pid in pids:
        if _alive(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


# A parent that starts a stack and waits to be killed. "thread": from a thread that then ends (the kernel's
# parent-death signal would fire when that thread exits, so the watchdog is used); "no-prctl": as on macOS.
PARENT = r"""
import json, sys, threading
from pathlib import Path
from devstack import lifeline
from devstack.stack import LocalStack

mode, data_dir = sys.argv[1], Path(sys.argv[2])
if mode == "no-prctl":
    lifeline._PRCTL = None
stack = LocalStack(data_dir)
if mode == "thread":
    worker = threading.Thread(target=stack.start)
    worker.start()
    worker.join()
else:
    stack.start()
watchdog = lifeline._WATCHDOG._proc
print(json.dumps({"pids": [p.pid for p in stack.procs], "ports": [stack.blob_port, stack.queue_port,
                  stack.cosmos_port], "watchdog": watchdog.pid if watchdog else None}), flush=True)
threading.Event().wait()
"""


@pytest.mark.parametrize("mode", ["main-thread", "thread", "no-prctl"])
def test_a_sigkilled_parent_leaves_no_server_running(mode, tmp_path):
    """`kill -9` of `make run`, `make stack` or pytest (a CI timeout): the emulators must not keep their ports."""
    if mode == "main-thread" and lifeline._PRCTL is None:
        pytest.skip("no prctl here: the watchdog cases cover this platform")
    parent = subprocess.Popen([sys.executable, "-c", PARENT, mode, str(tmp_path / "stack")], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        info = json.loads(parent.stdout.readline())
        pids, ports = info["pids"], info["ports"]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        assert (info["watchdog"] is None) == (mode == "main-thread")
        if mode == "thread":
            time.sleep(1.0)  # the thread that started them has ended: they must still run
            assert all(_alive(p) for p in pids) and all(port_in_use(p) for p in ports)
        parent.kill()
        parent.wait(timeout=10)
        left, busy = _wait_gone(pids + ([info["watchdog"]] if info["watchdog"] else []), ports, timeout=20)
        assert left == [] and busy == [], f"still running: pids {left}, ports in use {busy}"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        _kill_groups(pids)


def test_the_watchdog_stops_what_it_guards_and_forgets_what_was_released():
    stubborn = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 60 & wait"], start_new_session=True)
    polite = subprocess.Popen(["sleep", "60"], start_new_session=True)
    released = subprocess.Popen(["sleep", "60"], start_new_session=True)
    procs = [stubborn, polite, released]
    try:
        time.sleep(0.2)  # the trap is set
        lines = f"+{stubborn.pid}\n+{polite.pid}\n+{released.pid}\n-{released.pid}\nnoise\n"
        started = time.monotonic()
        lifeline.watchdog_main(io.StringIO(lines), grace=1.0)
        assert polite.wait(timeout=5) == -signal.SIGTERM
        assert stubborn.wait(timeout=5) == -signal.SIGKILL  # ignored SIGTERM: SIGKILL after the grace
        assert time.monotonic() - started >= 1.0
        assert released.poll() is None
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _stack_up(data_dir: Path, ports: list[int]) -> tuple[subprocess.Popen, dict[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack.stack", "up", "--data-dir", str(data_dir), "--blob-port", str(ports[0]),
         "--queue-port", str(ports[1]), "--cosmos-port", str(ports[2])],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    env = dict(proc.stdout.readline().rstrip("\n").split("=", 1) for _ in range(3))
    return proc, env


def test_make_stack_stops_cleanly_on_sighup_and_keeps_cosmos_data(tmp_path):
    """`make stack` in a terminal that closes: an orderly stop (exit 0, not killed by the signal) that saves the
    Cosmos data, which the next `make stack` loads, as `make run` does."""
    data_dir = tmp_path / "data"
    ports = [free_port(), free_port(), free_port()]
    proc, env = _stack_up(data_dir, ports)
    pids: list[int] = []
    try:
        assert env["COSMOS_ENDPOINT"] == f"https://127.0.0.1:{ports[2]}/"
        pids = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
        client = CosmosClient(env["COSMOS_ENDPOINT"], COSMOS_EMULATOR_KEY)
        db = client.create_database_if_not_exists("stack-test")
        db.create_container_if_not_exists("c", partition_key=PartitionKey("/id")).upsert_item({"id": "kept"})
        proc.send_signal(signal.SIGHUP)
        assert proc.wait(timeout=30) == 0
        assert _wait_gone(pids, ports, timeout=10) == ([], [])
        assert (data_dir / "cosmos.json").exists()

        proc, env = _stack_up(data_dir, ports)
        pids = [int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
        container = CosmosClient(env["COSMOS_ENDPOINT"], COSMOS_EMULATOR_KEY).get_database_client(
            "stack-test").get_container_client("c")
        assert container.read_item("kept", partition_key="kept")["id"] == "kept"
        proc.terminate()
        assert proc.wait(timeout=30) == 0
        assert _wait_gone(pids, ports, timeout=10) == ([], [])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _kill_groups(pids)
