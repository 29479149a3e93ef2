"""devstack.stack.LocalStack: starts Azurite and the Cosmos emulator, stops them completely, fails clearly.
These tests run their own stack (not the session one), so restarting or stopping it disturbs no other test."""
from __future__ import annotations

import os
import socket
import warnings

import pytest
from azure.cosmos import CosmosClient, PartitionKey, exceptions
from azure.storage.blob import BlobServiceClient

import devstack.stack as stack_module
from devstack.stack import LocalStack, StackError, port_in_use
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
        assert stack.procs == []
        stack.stop()


def test_missing_node_modules_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(stack_module, "COSMOS_PACKAGE", stack_module.ROOT / "node_modules" / "@vercel" / "no-such-server")
    stack = LocalStack()
    with pytest.raises(StackError, match=r"npm packages are missing .*no-such-server.*run 'npm ci'"):
        stack.start()
    assert stack.procs == []
    stack.stop()


def test_missing_node_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(stack_module.shutil, "which", lambda name: None)
    with pytest.raises(StackError, match="Node.js is not on PATH"):
        LocalStack().start()


def test_a_server_that_dies_at_start_is_reported_with_its_log(monkeypatch, tmp_path):
    broken = tmp_path / "broken-launcher.js"
    broken.write_text('console.error("launcher exploded"); process.exit(7);\n')
    monkeypatch.setattr(stack_module, "COSMOS_LAUNCHER", broken)
    stack = LocalStack()
    with pytest.raises(StackError, match=r"(?s)Cosmos emulator exited with code 7.*launcher exploded"):
        stack.start()
    assert stack.procs == []  # Azurite, started first, was stopped again
