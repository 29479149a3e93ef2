"""Infrastructure and the dev stack as production and developers meet them (from an independent review).
Every docstring says what goes wrong in production and why.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.ingest import child_pids
from tests.test_stack import _alive

ROOT = Path(__file__).resolve().parent.parent


# =============================================================================================================
# 6. Infrastructure: containers as infra/main.bicep creates them vs as the code creates them
# =============================================================================================================

def test_bicep_containers_use_the_partition_key_version_that_bootstrap_uses():
    """Production: the containers deployed by infra/main.bicep use the legacy (v1) partition key hash, which
    hashes only the first 101 bytes of a key; `ucp bootstrap` (and every test and the devstack) creates v2
    containers. With v1, ids longer than 100 bytes that share their first 100 - records
    "<source>|<long record key>", "source:<source>|<record key>", identifier ids - collapse into one logical
    partition for quota and distribution (learn.microsoft.com/azure/cosmos-db/large-partition-keys; for ARM/Bicep
    v2 must be requested with "version": 2), so production differs from every environment the code was tested in.

    Why: infra/main.bicep:142 declares partitionKey { paths, kind } without version; CosmosStore.bootstrap uses the
    SDK's PartitionKey(path=...), which is version 2."""
    from azure.cosmos import PartitionKey

    assert PartitionKey(path="/id").version == 2  # what bootstrap creates
    bicep = (ROOT / "infra" / "main.bicep").read_text()
    declarations = re.findall(r"partitionKey:\s*\{[^}]*\}", bicep)
    assert declarations, "no partitionKey declaration found in infra/main.bicep"
    assert all(re.search(r"\bversion:\s*2\b", d) for d in declarations), declarations


# =============================================================================================================
# 7. The devstack launcher: stopping leaves nothing running
# =============================================================================================================

def test_closing_the_terminal_of_make_stack_stops_the_emulators():
    """Dev stack: closing the terminal (or an SSH session dropping) that runs `make stack` / `make run` leaves
    Azurite and the Cosmos emulator running in the background, holding ports 10000/10001/8081: the next
    `make stack` fails with "port ... is in use" until someone hunts the node processes down (and with
    `make run`, the Cosmos data file is never saved).

    Why: devstack/stack.py starts both servers with start_new_session=True (so the terminal's SIGHUP does not reach
    them) and main() stops them only on SIGINT/SIGTERM; SIGHUP kills the Python parent without running stop().
    docs/local-stack.md promises "Nothing is left running"."""
    from devstack.stack import free_port, port_in_use

    ports = [free_port(), free_port(), free_port()]
    data_dir = tempfile.mkdtemp(prefix="ucp-review-stack-")
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack.stack", "up", "--data-dir", data_dir, "--blob-port", str(ports[0]),
         "--queue-port", str(ports[1]), "--cosmos-port", str(ports[2])],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    servers: list[int] = []
    try:
        assert proc.stdout.readline().startswith("AzureWebJobsStorage="), "the stack did not start"
        servers = child_pids(proc.pid)
        assert len(servers) == 2
        proc.send_signal(signal.SIGHUP)  # what the terminal sends when it closes
        proc.wait(timeout=15)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in servers):
            time.sleep(0.2)
        left = [p for p in servers if _alive(p)]
        busy = [p for p in ports if port_in_use(p)]
        assert left == [] and busy == [], f"still running: pids {left}, ports in use {busy}"
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=15)
        shutil.rmtree(data_dir, ignore_errors=True)
        for pid in servers:  # the servers this test started, by id (each leads its own process group)
            if _alive(pid):
                try:
                    os.killpg(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for pid in servers:
            deadline = time.monotonic() + 5
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
