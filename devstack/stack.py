"""Start and stop the local Azure stack: Azurite (Blob, Queue) and the Cosmos DB emulator.

    python -m devstack.stack up      # foreground; prints the environment the app needs; Ctrl-C stops both

Both servers run as direct children (never through npx, whose parent would leave the server running) in
their own process group, and are stopped by that group on exit, failure, Ctrl-C, SIGTERM or SIGHUP (the terminal
closing). If this process dies without stopping them (SIGKILL), they get SIGTERM too (devstack/lifeline.py).
"""
from __future__ import annotations

import argparse
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from devstack import lifeline
from shared.settings import COSMOS_EMULATOR_KEY, azurite_connection_string

ROOT = Path(__file__).resolve().parent.parent
AZURITE_JS = ROOT / "node_modules" / "azurite" / "dist" / "src" / "azurite.js"
COSMOS_LAUNCHER = ROOT / "devstack" / "cosmos-launcher.js"
COSMOS_PACKAGE = ROOT / "node_modules" / "@vercel" / "cosmosdb-server"
NODE_MAJOR = 20  # @vercel/cosmosdb-server needs Node.js 20 or later
NODE_HINT = ("install Node.js 20 or later: https://nodejs.org or NodeSource's packages (the nodejs packages of "
             "Debian 12 and Ubuntu are older)")
# Seconds a stopped server gets between SIGTERM and SIGKILL; the Cosmos emulator writes its data file (--data-file)
# on the way down, ~2 s for the 1,000-customer sample of `make run`, so it gets much longer.
STOP_GRACE = 5.0
SAVE_GRACE = 120.0


class StackError(RuntimeError):
    """The stack could not start; the message says why and what to do."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


# What each server prints once it listens, with the port it got. Asked for port 0, a server binds a port the system
# picks, so no other process can take it between choosing and binding (a port chosen first and passed on could be).
LISTENING = {
    "Azurite (blob)": re.compile(r"Azurite Blob service is successfully listening at https?://[^\s/]+:(\d+)"),
    "Azurite (queue)": re.compile(r"Azurite Queue service is successfully listening at https?://[^\s/]+:(\d+)"),
    "Cosmos emulator": re.compile(r"cosmos-launcher ready on https?://[^\s/]+:(\d+)/"),
}


def wait_until_listening(name: str, proc: subprocess.Popen, log: Path, since: int, timeout: float = 30.0) -> int:
    """The port server `name` listens on, from what it wrote to log past offset since (the log is appended to)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        exited = proc.poll() is not None
        with open(log, "rb") as f:
            f.seek(since)
            said = f.read().decode(errors="replace")
        if found := LISTENING[name].search(said):
            return int(found.group(1))
        if exited:
            raise StackError(f"{name} exited with code {proc.returncode} before it was ready; its log ({log}):\n"
                             + said[-2000:])
        time.sleep(0.05)
    raise StackError(f"{name} did not say it was listening within {timeout:.0f} s; see {log}")


@functools.lru_cache(maxsize=None)
def node_major(node: str) -> int | None:
    try:
        out = subprocess.run([node, "-p", "process.versions.node"], capture_output=True, text=True, timeout=30)
        return int(out.stdout.strip().split(".")[0])
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def check_prerequisites() -> str:
    node = shutil.which("node")
    if not node:
        raise StackError(f"Node.js is not on PATH: {NODE_HINT}, then run make again.")
    major = node_major(node)
    if major is not None and major < NODE_MAJOR:
        raise StackError(f"{node} is Node.js {major}; the Cosmos emulator needs {NODE_MAJOR} or later: {NODE_HINT}.")
    missing = [p for p in (AZURITE_JS, COSMOS_PACKAGE) if not p.exists()]
    if missing:
        names = ", ".join(str(m.relative_to(ROOT)) for m in missing)
        raise StackError(f"npm packages are missing ({names}): run 'npm ci' in {ROOT}.")
    return node


@dataclass
class LocalStack:
    """Azurite + Cosmos emulator. Fixed ports for `make run`; with port=0 (tests) each server binds one the system
    picks."""

    data_dir: Path | None = None
    blob_port: int = 0
    queue_port: int = 0
    cosmos_port: int = 0
    procs: list[subprocess.Popen] = field(default_factory=list)
    # Extra launcher options, e.g. ["--data-file", path, "--throttle-rate", "0.1"] (devstack/cosmos-chaos.js).
    cosmos_args: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._own_dir = self.data_dir is None
        self.data_dir = Path(self.data_dir or tempfile.mkdtemp(prefix="ucp-stack-"))

    @property
    def env(self) -> dict[str, str]:
        return {
            "AzureWebJobsStorage": azurite_connection_string("127.0.0.1", self.blob_port, self.queue_port),
            "COSMOS_ENDPOINT": f"https://127.0.0.1:{self.cosmos_port}/",
            "COSMOS_KEY": COSMOS_EMULATOR_KEY,
        }

    def _check_fixed_ports(self) -> None:
        for attr in ("blob_port", "queue_port", "cosmos_port"):
            port = getattr(self, attr)
            if port and port_in_use(port):
                raise StackError(f"port {port} ({attr.replace('_', ' ')}) is in use: stop what holds it "
                                 f"(e.g. 'fuser -k {port}/tcp') or choose another port.")

    def _spawn(self, name: str, args: list[str]) -> tuple[subprocess.Popen, Path, int]:
        """The process, its log and where in the log its output starts (an earlier run's output is above it)."""
        log = self.data_dir / f"{name}.log"
        with open(log, "ab") as out:  # the child keeps its own descriptor; ours closes here
            since = out.tell()
            proc = lifeline.popen(args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc, log, since

    def _spawn_cosmos(self, node: str) -> tuple[subprocess.Popen, Path, int]:
        started = self._spawn("cosmos", [node, str(COSMOS_LAUNCHER), "--host", "127.0.0.1",
                                         "--port", str(self.cosmos_port), *self.cosmos_args])
        self._cosmos = started[0]
        return started

    def start(self) -> dict[str, str]:
        try:  # a start that fails, however early, stops what it started and removes its temporary directory
            node = check_prerequisites()
            self._check_fixed_ports()
            azurite_dir = self.data_dir / "azurite"
            azurite_dir.mkdir(parents=True, exist_ok=True)
            # Table storage is not used: any port will do. No telemetry leaves a developer's machine.
            azurite = self._spawn("azurite", [
                node, str(AZURITE_JS), "--silent", "--skipApiVersionCheck", "--disableProductStyleUrl",
                "--disableTelemetry", "--location", str(azurite_dir),
                "--blobHost", "127.0.0.1", "--blobPort", str(self.blob_port),
                "--queueHost", "127.0.0.1", "--queuePort", str(self.queue_port),
                "--tableHost", "127.0.0.1", "--tablePort", "0",
            ])
            cosmos = self._spawn_cosmos(node)
            self.blob_port = wait_until_listening("Azurite (blob)", *azurite)
            self.queue_port = wait_until_listening("Azurite (queue)", *azurite)
            self.cosmos_port = wait_until_listening("Cosmos emulator", *cosmos)
        except BaseException:
            self.stop()
            raise
        return self.env

    def restart_cosmos(self, *, down_for: float = 0.0) -> None:
        """Stop (SIGTERM) and start the Cosmos emulator on the same port. It keeps data in memory, so it comes
        back empty unless cosmos_args has "--data-file PATH": then it saves on the way down and loads on start.
        down_for: seconds to stay down (an outage) before starting again."""
        node = check_prerequisites()
        old = getattr(self, "_cosmos", None)
        if old is None:
            raise StackError("the stack is not running: call start() first")
        self.procs.remove(old)
        terminate(old, self._grace(old))
        time.sleep(down_for)
        wait_until_listening("Cosmos emulator", *self._spawn_cosmos(node))

    def _grace(self, proc: subprocess.Popen) -> float:
        saves = proc is getattr(self, "_cosmos", None) and "--data-file" in self.cosmos_args
        return SAVE_GRACE if saves else STOP_GRACE

    def stop(self) -> None:
        while self.procs:
            proc = self.procs.pop()
            terminate(proc, self._grace(proc))
        if self._own_dir and self.data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> "LocalStack":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def terminate(proc: subprocess.Popen, timeout: float = STOP_GRACE) -> None:
    """SIGTERM to the child's process group, SIGKILL after timeout seconds."""
    try:
        if proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except (ProcessLookupError, PermissionError):
        pass
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    finally:
        lifeline.release(proc.pid)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP (the terminal closing, an SSH session dropping) end the main thread like Ctrl-C, so the
    entry point's clean-up runs. A SIGHUP ignored on purpose (nohup) stays ignored."""
    signal.signal(signal.SIGTERM, _interrupt)
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        signal.signal(signal.SIGHUP, _interrupt)


def ignore_stop_signals() -> None:
    """While cleaning up: a second SIGTERM or SIGHUP must not cut the clean-up short."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.stack", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up"])
    parser.add_argument("--data-dir", default=str(ROOT / ".devstack" / "data"))
    parser.add_argument("--blob-port", type=int, default=10000)
    parser.add_argument("--queue-port", type=int, default=10001)
    parser.add_argument("--cosmos-port", type=int, default=8081)
    args = parser.parse_args(argv)
    data_dir = Path(args.data_dir)
    # Like Azurite, the Cosmos emulator keeps its data in the data directory (saved on stop, loaded on start), the
    # same file as `make run`'s; `make clean` removes it.
    stack = LocalStack(data_dir, args.blob_port, args.queue_port, args.cosmos_port,
                       cosmos_args=["--data-file", str(data_dir / "cosmos.json")])
    stop_on_signals()
    try:
        env = stack.start()
        for k, v in env.items():
            print(f"{k}={v}", flush=True)
        while True:
            time.sleep(3600)
    except StackError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        ignore_stop_signals()
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
