"""The real app in local Functions hosts (child processes), for end-to-end tests and the chaos run.

    settings = isolated_settings(stack, "chaos")       # unique containers, queues and Cosmos prefix
    bootstrap(settings)
    with AppHost(settings, log_dir, name="w0") as host:  # python -m devstack.host --app function_app:app
        upload(settings, landing_dir)
        wait_settled(settings, store, files=..., hosts=[host])

Several AppHosts on the same settings poll the same queues, like scaled-out instances of one Function App.
`kill()` is a crash (SIGKILL: no drain, leased messages reappear after the lease), `stop()` a graceful shutdown.
A host also gets SIGTERM when the process that started it dies without stopping it (devstack/lifeline.py).
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterable

from devstack import lifeline
from devstack.stack import ROOT
from shared.settings import Settings

ISOLATED_NAMES = ("landing_container", "quarantine_container", "failed_container", "models_container",
                  "exports_container", "claims_container", "config_container", "resolve_queue", "activity_queue")
_EXECUTING = re.compile(r"Executing 'Functions\.(\w+)' .*Id=([\w-]+)\)")
_EXECUTED = re.compile(r"Executed 'Functions\.(\w+)' \((\w+), Id=([\w-]+)")
_STARTED = re.compile(r"Host started on http://[^\s/]+:(\d+) ")


def isolated_settings(env: dict[str, str], suffix: str, *, base: Settings | None = None) -> Settings:
    """Settings for the stack described by env (LocalStack.env) with container, queue and Cosmos container
    names no other run uses."""
    base = base or Settings(**{k: v for k, v in env.items() if k in ("AzureWebJobsStorage", "COSMOS_ENDPOINT",
                                                                      "COSMOS_KEY")})
    names = {f: f"{getattr(base, f)}-{suffix}" for f in ISOLATED_NAMES}
    return base.model_copy(update={**names, "container_prefix": f"{suffix}-"})


class AppHost:
    """One `python -m devstack.host` process running function_app:app with the given settings."""

    def __init__(self, settings: Settings, log_dir: Path, *, name: str, app_settings: dict[str, str] | None = None,
                 queue_lease: int = 30, blob_poll_interval: float = 0.3, timers: bool = False,
                 keys: dict[str, str] | None = None, verbose: bool = True):
        self.settings = settings
        self.log_dir = Path(log_dir)
        self.name = name
        self.app_settings = dict(app_settings or {})
        self.queue_lease = queue_lease
        self.blob_poll_interval = blob_poll_interval
        self.timers = timers
        self.keys = keys or {}
        self.verbose = verbose
        self.port = 0  # the first start binds one the system picks (none can be taken meanwhile); restarts keep it
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, *, timeout: float = 60) -> "AppHost":
        self.starts += 1
        self.log_path = self.log_dir / f"host-{self.name}-{self.starts}.log"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.settings.to_env(), **self.app_settings, **self.keys, "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, "-m", "devstack.host", "--app", "function_app:app", "--port", str(self.port),
               "--host-id", f"{self.name}-{self.settings.container_prefix.strip('-')}",
               "--blob-poll-interval", str(self.blob_poll_interval), "--queue-lease", str(self.queue_lease)]
        if not self.timers:
            cmd.append("--no-timers")
        if self.verbose:
            cmd.append("-v")
        with open(self.log_path, "wb") as out:
            self.proc = lifeline.popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"host {self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
                if not self.port:
                    started = _STARTED.search(self.log_path.read_text(errors="replace"))
                    if started is None:
                        time.sleep(0.2)
                        continue
                    self.port = int(started.group(1))
                try:
                    with urllib.request.urlopen(f"{self.url}/admin/host/ping", timeout=2) as r:
                        if r.status == 200:
                            return self
                except OSError:
                    pass
                time.sleep(0.2)
            raise RuntimeError(f"host {self.name} did not start within {timeout:.0f} s:\n{self.log_tail()}")
        except BaseException:  # not started: nothing may keep running (the caller gets no host to stop)
            self.kill()
            raise

    def kill(self) -> None:
        """A crash: SIGKILL to the host's process group, nothing drains."""
        if self.alive:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        if self.proc is not None:
            lifeline.release(self.proc.pid)

    def stop(self, *, timeout: float = 30) -> None:
        """A graceful shutdown (SIGTERM: running invocations get the drain timeout)."""
        if not self.alive:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        lifeline.release(self.proc.pid)

    def __enter__(self) -> "AppHost":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path and self.log_path.exists() else ""

    def logs(self) -> str:
        """Every log of this host (all its starts)."""
        return "".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob(f"host-{self.name}-*.log")))

    def in_flight(self, function: str | None = None) -> int:
        """Invocations this run of the host started and has not finished (from its log)."""
        running: set[str] = set()
        for line in self.log_tail(10**9).splitlines():
            m = _EXECUTING.search(line)
            if m and (function is None or m.group(1) == function):
                running.add(m.group(2))
                continue
            m = _EXECUTED.search(line)
            if m:
                running.discard(m.group(3))
        return len(running)

    def invocations(self, function: str) -> dict[str, int]:
        """Finished invocations of a function over every start of this host: {"Succeeded": n, "Failed": m}."""
        counts: dict[str, int] = {}
        for m in _EXECUTED.finditer(self.logs()):
            if m.group(1) == function:
                counts[m.group(2)] = counts.get(m.group(2), 0) + 1
        return counts

    def run_function(self, name: str, value: str = "") -> int | None:
        """POST /admin/functions/<name>: run a non-HTTP function now (202 when accepted, None if the host is
        not reachable, e.g. it is restarting)."""
        body = json.dumps({"input": value}).encode()
        headers = {"content-type": "application/json"}
        if "UCP_HOST_MASTER_KEY" in self.keys:
            headers["x-functions-key"] = self.keys["UCP_HOST_MASTER_KEY"]
        req = urllib.request.Request(f"{self.url}/admin/functions/{name}", data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status
        except urllib.error.HTTPError as err:
            return err.code
        except OSError:
            return None


def upload(settings: Settings, landing: Path, names: Iterable[str] | None = None) -> list[str]:
    """Upload files of a landing folder (all, or the given relative names) to the landing container."""
    from shared.storage import blob_service

    container = blob_service(settings).get_container_client(settings.landing_container)
    if names is None:
        names = [p.relative_to(landing).as_posix() for p in sorted(landing.rglob("*")) if p.is_file()]
    names = list(names)
    for name in names:
        container.upload_blob(name, (landing / name).read_bytes(), overwrite=True)
    return names


def ingestion_reports(store) -> list[dict[str, Any]]:
    return list(store.container("ledger").query_items(("doc_type", "=", "ingestion")))


def queue_length(settings: Settings, queue: str) -> int:
    from azure.core.exceptions import ResourceNotFoundError

    from shared.storage import queue_client

    try:
        return queue_client(queue, settings).get_queue_properties().approximate_message_count
    except ResourceNotFoundError:
        return 0


def wait_settled(settings: Settings, store, *, files: int, hosts: list[AppHost], timeout: float = 300,
                 quiet: float = 3.0, stalled: float = 25.0, allow_unfinished: bool = False) -> list[dict[str, Any]]:
    """Wait until `files` ingestions are finished, the resolve queue is empty and no host runs anything for
    `quiet` seconds, or until nothing has moved for `stalled` seconds (longer than the hosts' retry delay)
    while some files are unfinished: the hosts gave up on them (poison), an operator's turn. With
    allow_unfinished, a quiet pipeline counts as settled whatever the files. Returns the reports; raises
    TimeoutError with the state when neither happens in time."""
    deadline = time.monotonic() + timeout
    quiet_since = None
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            reports = ingestion_reports(store)
        except Exception as err:  # the store may be restarting
            state = {"error": type(err).__name__}
            quiet_since = None
            time.sleep(0.5)
            continue
        done = [r for r in reports if r.get("status") in ("completed", "failed")]
        pending = queue_length(settings, settings.resolve_queue)
        running = sum(h.in_flight() for h in hosts if h.alive)
        state = {"reports": len(reports), "finished": len(done), "queue": pending, "running": running}
        if pending == 0 and running == 0:
            quiet_since = quiet_since or time.monotonic()
            wait = quiet if (len(done) >= files or allow_unfinished) else stalled
            if time.monotonic() - quiet_since >= wait:
                return reports
        else:
            quiet_since = None
        time.sleep(0.5)
    raise TimeoutError(f"the pipeline did not settle within {timeout:.0f} s: {state}")
